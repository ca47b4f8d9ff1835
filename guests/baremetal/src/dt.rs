//! What the guest needs from its device tree: name, bootargs, RAM, UART, PSCI conduit, CPUs,
//! and for `rt=1` the GICv3 frames, the virtual timer's PPI and the UART's SPI.
//!
//! fdt-rs walks the tree as a flat list of properties, each with its node's name (no parent
//! links). [`Scanner`] consumes that list; it relies on the property order the DT
//! specification (v0.4, §5.4) guarantees: a node's properties come before its children, so
//! `/cpus/#address-cells` is seen before any `cpu@N/reg`. Devices are looked for by node
//! name at any depth, which holds for QEMU's `virt` tree and for the trees Tessera generates.
//! Nodes found by `compatible` (the UART, the timer, the GIC) are decided when the scanner
//! moves on to the next node, because `reg` and `interrupts` may come before `compatible`.
//! Interrupt specifiers are decoded at the end, with the GIC's `#interrupt-cells`, because
//! the GIC node may come after the devices that use it. Every interrupt is assumed to go to
//! that GIC (the only interrupt controller in the trees the guest is given).

use fdt_rs::base::DevTree;
use fdt_rs::prelude::{FallibleIterator, PropReader};

use crate::gic::{GicRegions, Interrupt};

/// The most CPUs the guest records (and has stacks for).
pub const MAX_CPUS: usize = 8;

/// How the guest calls PSCI (`/psci/method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduit {
    Hvc,
    Smc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtError {
    /// The blob is not 4-byte aligned, shorter than its header says, or has a bad magic.
    BadBlob,
    /// fdt-rs could not walk the structure block.
    Parse,
}

/// The facts the guest takes from its device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform<'dt> {
    /// `/model`, if present.
    pub model: Option<&'dt str>,
    pub bootargs: &'dt str,
    /// The first `reg` entry of the first `memory@…` node: (base, size).
    pub memory: Option<(u64, u64)>,
    /// The base of the first node compatible with `arm,sbsa-uart` or `arm,pl011`.
    pub uart: Option<u64>,
    pub psci: Option<Conduit>,
    /// The first `arm,gic-v3` node's distributor and first redistributor region.
    pub gic: Option<GicRegions>,
    /// The third entry of the `arm,armv8-timer` (or `armv7-timer`) node's `interrupts`: the
    /// EL1 virtual timer (binding `timer/arm,arch_timer.yaml`).
    pub virtual_timer: Option<Interrupt>,
    /// The first entry of the UART node's `interrupts`, if it has one.
    pub uart_interrupt: Option<Interrupt>,
    /// The MPIDR affinity (`reg`) of each `cpu@…` node, in tree order.
    cpus: [u64; MAX_CPUS],
    /// How many `cpu@…` nodes there are (may exceed [`MAX_CPUS`]).
    cpu_count: usize,
}

impl<'dt> Platform<'dt> {
    /// The guest's name: the part after the comma of `model = "tessera,<vm>"`, else
    /// [`crate::NATIVE_NAME`].
    pub fn name(&self) -> &'dt str {
        match self.model.and_then(|model| model.strip_prefix("tessera,")) {
            Some(name) if !name.is_empty() => name,
            _ => crate::NATIVE_NAME,
        }
    }

    /// The number of CPU nodes.
    pub fn cpu_count(&self) -> usize {
        self.cpu_count
    }

    /// The recorded CPUs' `reg` values (at most [`MAX_CPUS`]).
    pub fn cpus(&self) -> &[u64] {
        &self.cpus[..self.cpu_count.min(MAX_CPUS)]
    }
}

/// The kinds of node the guest looks for by `compatible`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    Other,
    Uart,
    Timer,
    GicV3,
}

impl NodeKind {
    fn of(compatible: &[u8]) -> Self {
        let mut kind = NodeKind::Other;
        for entry in compatible.split(|&b| b == 0) {
            kind = match entry {
                b"arm,sbsa-uart" | b"arm,pl011" => NodeKind::Uart,
                b"arm,armv8-timer" | b"arm,armv7-timer" => NodeKind::Timer,
                b"arm,gic-v3" => NodeKind::GicV3,
                _ => continue,
            };
            break;
        }
        kind
    }
}

/// What one node said so far, until the scanner moves to the next node.
#[derive(Debug, Clone, Copy)]
struct Node<'dt> {
    name: &'dt str,
    kind: NodeKind,
    reg: Option<&'dt [u8]>,
    interrupts: Option<&'dt [u8]>,
    interrupt_cells: Option<u32>,
}

impl<'dt> Node<'dt> {
    const fn new(name: &'dt str) -> Self {
        Self {
            name,
            kind: NodeKind::Other,
            reg: None,
            interrupts: None,
            interrupt_cells: None,
        }
    }
}

/// Builds a [`Platform`] from a stream of `(node, property, value)`.
#[derive(Debug)]
pub struct Scanner<'dt> {
    platform: Platform<'dt>,
    root_address_cells: u32,
    root_size_cells: u32,
    cpus_address_cells: u32,
    /// The node whose properties are streaming past.
    node: Node<'dt>,
    /// Raw `interrupts` of the UART and the timer, decoded in [`Scanner::finish`].
    uart_interrupts: Option<&'dt [u8]>,
    timer_interrupts: Option<&'dt [u8]>,
    /// The GIC's `#interrupt-cells` (3 unless it says otherwise).
    gic_interrupt_cells: u32,
}

impl Default for Scanner<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'dt> Scanner<'dt> {
    pub const fn new() -> Self {
        Self {
            platform: Platform {
                model: None,
                bootargs: "",
                memory: None,
                uart: None,
                psci: None,
                gic: None,
                virtual_timer: None,
                uart_interrupt: None,
                cpus: [0; MAX_CPUS],
                cpu_count: 0,
            },
            // DT spec v0.4 §2.3.5: the defaults when a node has no #address-cells/#size-cells.
            root_address_cells: 2,
            root_size_cells: 1,
            cpus_address_cells: 2,
            node: Node::new(""),
            uart_interrupts: None,
            timer_interrupts: None,
            gic_interrupt_cells: 3,
        }
    }

    /// One property. `node` is the node's name with its unit address (`""` for the root).
    pub fn property(&mut self, node: &'dt str, name: &'dt str, value: &'dt [u8]) {
        if node != self.node.name {
            self.end_node();
            self.node = Node::new(node);
        }
        let base_name = node.split('@').next().unwrap_or(node);
        match (base_name, name) {
            ("", "#address-cells") => self.root_address_cells = cell(value, 0).unwrap_or(2),
            ("", "#size-cells") => self.root_size_cells = cell(value, 0).unwrap_or(1),
            ("", "model") => self.platform.model = string(value),
            ("chosen", "bootargs") => self.platform.bootargs = string(value).unwrap_or(""),
            ("cpus", "#address-cells") => self.cpus_address_cells = cell(value, 0).unwrap_or(2),
            ("cpu", "reg") => {
                if let Some(mpidr) = cells(value, 0, self.cpus_address_cells)
                    && self.platform.cpu_count < MAX_CPUS
                {
                    self.platform.cpus[self.platform.cpu_count] = mpidr;
                }
                self.platform.cpu_count += 1;
            }
            ("memory", "reg") if self.platform.memory.is_none() => {
                let base = cells(value, 0, self.root_address_cells);
                let size = cells(value, self.root_address_cells, self.root_size_cells);
                if let (Some(base), Some(size)) = (base, size) {
                    self.platform.memory = Some((base, size));
                }
            }
            ("psci", "method") => {
                self.platform.psci = match string(value) {
                    Some("hvc") => Some(Conduit::Hvc),
                    Some("smc") => Some(Conduit::Smc),
                    _ => None,
                }
            }
            (_, "compatible") => self.node.kind = NodeKind::of(value),
            (_, "reg") => self.node.reg = Some(value),
            (_, "interrupts") => self.node.interrupts = Some(value),
            (_, "#interrupt-cells") => self.node.interrupt_cells = cell(value, 0),
            _ => {}
        }
    }

    /// Records what the node just finished told us, if it is one we look for.
    fn end_node(&mut self) {
        let node = self.node;
        let address = |index: u32| {
            let size_index = index.checked_mul(self.root_address_cells + self.root_size_cells)?;
            let base = cells(node.reg?, size_index, self.root_address_cells)?;
            let size = cells(
                node.reg?,
                size_index + self.root_address_cells,
                self.root_size_cells,
            )?;
            Some((base, size))
        };
        match node.kind {
            NodeKind::Uart if self.platform.uart.is_none() => {
                if let Some((base, _)) = address(0) {
                    self.platform.uart = Some(base);
                    self.uart_interrupts = node.interrupts;
                }
            }
            NodeKind::Timer if self.timer_interrupts.is_none() => {
                self.timer_interrupts = node.interrupts;
            }
            NodeKind::GicV3 if self.platform.gic.is_none() => {
                if let (Some(distributor), Some(redistributors)) = (address(0), address(1)) {
                    self.platform.gic = Some(GicRegions {
                        distributor,
                        redistributors,
                    });
                    self.gic_interrupt_cells = node.interrupt_cells.unwrap_or(3);
                }
            }
            _ => {}
        }
    }

    pub fn finish(mut self) -> Platform<'dt> {
        self.end_node();
        let per_interrupt = self.gic_interrupt_cells;
        self.platform.uart_interrupt = self
            .uart_interrupts
            .and_then(|v| interrupt(v, 0, per_interrupt));
        // Timer interrupts: secure physical, non-secure physical, virtual, hypervisor.
        self.platform.virtual_timer = self
            .timer_interrupts
            .and_then(|v| interrupt(v, 2, per_interrupt));
        self.platform
    }
}

/// The `index`th specifier of `per_interrupt` cells in an `interrupts` value.
fn interrupt(value: &[u8], index: u32, per_interrupt: u32) -> Option<Interrupt> {
    if !(3..=4).contains(&per_interrupt) {
        return None;
    }
    let first = index.checked_mul(per_interrupt)?;
    let mut specifier = [0u32; 4];
    for (i, slot) in specifier
        .iter_mut()
        .take(per_interrupt as usize)
        .enumerate()
    {
        *slot = cell(value, first + i as u32)?;
    }
    Interrupt::from_specifier(&specifier[..per_interrupt as usize])
}

/// Reads the platform facts from a device tree.
pub fn scan<'dt>(tree: &DevTree<'dt>) -> Result<Platform<'dt>, DtError> {
    let mut scanner = Scanner::new();
    let mut properties = tree.props();
    while let Some(property) = properties.next().map_err(|_| DtError::Parse)? {
        let node = property.node().name().map_err(|_| DtError::Parse)?;
        let name = property.name().map_err(|_| DtError::Parse)?;
        scanner.property(node, name, property.raw());
    }
    Ok(scanner.finish())
}

/// The size of a flattened device tree's header that [`open`] needs to read first.
pub const HEADER_SIZE: usize = DevTree::MIN_HEADER_SIZE;

/// The `totalsize` field of an FDT header (big-endian, offset 4), if `header` starts with the
/// FDT magic (DT spec v0.4 §5.2).
pub fn total_size(header: &[u8]) -> Option<usize> {
    let magic = u32::from_be_bytes(header.get(0..4)?.try_into().ok()?);
    let size = u32::from_be_bytes(header.get(4..8)?.try_into().ok()?);
    (magic == 0xd00d_feed).then_some(size as usize)
}

/// Checks `blob` and opens it with fdt-rs. `blob` may be longer than the tree.
pub fn open(blob: &[u8]) -> Result<DevTree<'_>, DtError> {
    let size = total_size(blob).ok_or(DtError::BadBlob)?;
    let tree = blob.get(..size).ok_or(DtError::BadBlob)?;
    if !tree.as_ptr().cast::<u32>().is_aligned() || size < HEADER_SIZE {
        return Err(DtError::BadBlob);
    }
    // SAFETY: `DevTree::new` requires a 4-byte aligned buffer exactly as long as the header's
    // `totalsize` (fdt-rs 0.4.5 docs); both were checked just above. fdt-rs bounds-checks every
    // later read against that buffer.
    #[allow(unsafe_code)]
    let opened = unsafe { DevTree::new(tree) };
    opened.map_err(|_| DtError::BadBlob)
}

fn string(value: &[u8]) -> Option<&str> {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    core::str::from_utf8(&value[..end]).ok()
}

fn cell(value: &[u8], index: u32) -> Option<u32> {
    let start = usize::try_from(index).ok()?.checked_mul(4)?;
    let bytes = value.get(start..start.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// A number of `count` (1 or 2) cells starting at cell `index`.
fn cells(value: &[u8], index: u32, count: u32) -> Option<u64> {
    match count {
        1 => cell(value, index).map(u64::from),
        2 => Some(u64::from(cell(value, index)?) << 32 | u64::from(cell(value, index + 1)?)),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use crate::gic::Trigger;

    /// QEMU 10.0 `-M virt -cpu cortex-a57 -smp 2 -m 1G -machine dumpdtb=…`, kept as source
    /// (`dtc -O dts`) and compiled with dtc here: binaries are never committed.
    fn qemu_virt_dtb() -> Vec<u8> {
        compile("qemu-virt-smp2.dts")
    }

    /// The same machine with `gic-version=3` and bootargs `heartbeat=100 rt=1`.
    fn qemu_virt_gicv3_dtb() -> Vec<u8> {
        compile("qemu-virt-gicv3.dts")
    }

    fn compile(name: &str) -> Vec<u8> {
        let source = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        let output = std::process::Command::new("dtc")
            .args(["-q", "-I", "dts", "-O", "dtb", &source])
            .output()
            .expect("dtc runs (scripts/setup-host.sh installs it)");
        assert!(
            output.status.success(),
            "dtc failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    fn aligned(blob: &[u8]) -> Vec<u32> {
        let mut words = vec![0u32; blob.len().div_ceil(4)];
        for (i, chunk) in blob.chunks(4).enumerate() {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            words[i] = u32::from_ne_bytes(word);
        }
        words
    }

    fn as_bytes(words: &[u32]) -> &[u8] {
        let ptr = words.as_ptr().cast::<u8>();
        // SAFETY: test-only view of a u32 slice as its bytes; same length and lifetime.
        #[allow(unsafe_code)]
        unsafe {
            core::slice::from_raw_parts(ptr, words.len() * 4)
        }
    }

    #[test]
    fn qemu_virt_tree() {
        let words = aligned(&qemu_virt_dtb());
        let tree = open(as_bytes(&words)).unwrap();
        let platform = scan(&tree).unwrap();
        assert_eq!(platform.name(), "native");
        assert_eq!(platform.memory, Some((0x4000_0000, 0x4000_0000)));
        assert_eq!(platform.uart, Some(0x0900_0000));
        assert_eq!(platform.psci, Some(Conduit::Hvc));
        assert_eq!(platform.cpu_count(), 2);
        assert_eq!(platform.cpus(), &[0, 1]);
        assert_eq!(platform.bootargs, "heartbeat=100 smp=1");
        // A GICv2 (`arm,cortex-a15-gic`): interrupts are decoded, but there is no GICv3.
        assert_eq!(platform.gic, None);
        assert_eq!(
            platform.uart_interrupt,
            Some(Interrupt {
                intid: 33,
                trigger: Trigger::Level
            })
        );
        assert_eq!(
            platform.virtual_timer,
            Some(Interrupt {
                intid: 27,
                trigger: Trigger::Level
            })
        );
    }

    #[test]
    fn qemu_virt_gicv3_tree() {
        let words = aligned(&qemu_virt_gicv3_dtb());
        let tree = open(as_bytes(&words)).unwrap();
        let platform = scan(&tree).unwrap();
        assert_eq!(platform.bootargs, "heartbeat=100 rt=1");
        assert_eq!(
            platform.gic,
            Some(GicRegions {
                distributor: (0x800_0000, 0x1_0000),
                redistributors: (0x80a_0000, 0xf6_0000),
            })
        );
        // `timer`: PPIs 13, 14, 11, 10; the third is the virtual timer, INTID 16 + 11.
        assert_eq!(
            platform.virtual_timer,
            Some(Interrupt {
                intid: 27,
                trigger: Trigger::Level
            })
        );
        // pl011: SPI 1, level-high.
        assert_eq!(
            platform.uart_interrupt,
            Some(Interrupt {
                intid: 33,
                trigger: Trigger::Level
            })
        );
        assert_eq!(platform.uart, Some(0x0900_0000));
        assert_eq!(platform.cpus(), &[0, 1]);
    }

    #[test]
    fn gic_after_its_users_and_four_cell_specifiers() {
        let be = |words: &[u32]| {
            words
                .iter()
                .flat_map(|w| w.to_be_bytes())
                .collect::<Vec<u8>>()
        };
        let uart_interrupts = be(&[0, 5, 1, 0]);
        let timer_interrupts = be(&[1, 13, 8, 0, 1, 14, 8, 0, 1, 12, 8, 0, 1, 10, 8, 0]);
        let uart_reg = be(&[0, 0x1c09_0000, 0, 0x1000]);
        let gic_reg = be(&[0, 0x2f00_0000, 0, 0x1_0000, 0, 0x2f10_0000, 0, 0x20_0000]);
        let four = be(&[4]);
        let two = be(&[2]);
        let mut scanner = Scanner::new();
        let props: Vec<(&str, &str, &[u8])> = vec![
            ("", "#address-cells", &two),
            ("", "#size-cells", &two),
            ("serial@1c090000", "interrupts", &uart_interrupts),
            ("serial@1c090000", "compatible", b"arm,sbsa-uart\0"),
            ("serial@1c090000", "reg", &uart_reg),
            ("timer", "compatible", b"arm,armv8-timer\0"),
            ("timer", "interrupts", &timer_interrupts),
            (
                "interrupt-controller@2f000000",
                "compatible",
                b"arm,gic-v3\0",
            ),
            ("interrupt-controller@2f000000", "#interrupt-cells", &four),
            ("interrupt-controller@2f000000", "reg", &gic_reg),
            ("its@2f020000", "reg", &uart_reg),
        ];
        for (node, name, value) in props {
            scanner.property(node, name, value);
        }
        let platform = scanner.finish();
        assert_eq!(platform.uart, Some(0x1c09_0000));
        assert_eq!(
            platform.uart_interrupt,
            Some(Interrupt {
                intid: 37,
                trigger: Trigger::Edge
            })
        );
        assert_eq!(
            platform.virtual_timer,
            Some(Interrupt {
                intid: 28,
                trigger: Trigger::Level
            })
        );
        assert_eq!(
            platform.gic,
            Some(GicRegions {
                distributor: (0x2f00_0000, 0x1_0000),
                redistributors: (0x2f10_0000, 0x20_0000),
            })
        );
    }

    #[test]
    fn missing_or_malformed_interrupt_facts() {
        let mut scanner = Scanner::new();
        scanner.property("", "#size-cells", &[0, 0, 0, 2]);
        // A GICv3 node with only the distributor in `reg` is not usable.
        scanner.property("intc", "compatible", b"arm,gic-v3\0");
        scanner.property(
            "intc",
            "reg",
            &[0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
        );
        // A timer with two interrupts has no virtual timer entry.
        scanner.property("timer", "compatible", b"arm,armv7-timer\0");
        scanner.property(
            "timer",
            "interrupts",
            &[0, 0, 0, 1, 0, 0, 0, 13, 0, 0, 0, 4],
        );
        // A UART without `interrupts`.
        scanner.property("uart@9000000", "compatible", b"arm,pl011\0");
        scanner.property(
            "uart@9000000",
            "reg",
            &[0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0],
        );
        let platform = scanner.finish();
        assert_eq!(platform.gic, None);
        assert_eq!(platform.virtual_timer, None);
        assert_eq!(platform.uart, Some(0x0900_0000));
        assert_eq!(platform.uart_interrupt, None);
        assert_eq!(
            interrupt(&[0; 20], 0, 2),
            None,
            "two-cell specifiers are not a GIC's"
        );
    }

    #[test]
    fn open_rejects_bad_blobs() {
        let words = aligned(&qemu_virt_dtb());
        let bytes = as_bytes(&words);
        assert_eq!(open(&bytes[..100]).err(), Some(DtError::BadBlob));
        assert_eq!(open(&bytes[4..]).err(), Some(DtError::BadBlob));
        let mut bad_magic = words.clone();
        bad_magic[0] = 0;
        assert_eq!(open(as_bytes(&bad_magic)).err(), Some(DtError::BadBlob));
    }

    #[test]
    fn tessera_shaped_tree() {
        let mut scanner = Scanner::new();
        let be = |words: &[u32]| {
            words
                .iter()
                .flat_map(|w| w.to_be_bytes())
                .collect::<Vec<u8>>()
        };
        let two = be(&[2]);
        let one = be(&[1]);
        let memory = be(&[0, 0x4000_0000, 0, 0x200_0000]);
        let uart = be(&[0, 0x0900_0000, 0, 0x1000]);
        let cpu0 = be(&[0]);
        let cpu1 = be(&[0x100]);
        let props: Vec<(&str, &str, &[u8])> = vec![
            ("", "#address-cells", &two),
            ("", "#size-cells", &two),
            ("", "model", b"tessera,beta\0"),
            ("chosen", "bootargs", b"smp=1\0"),
            ("cpus", "#address-cells", &one),
            ("cpu@0", "reg", &cpu0),
            ("cpu@100", "reg", &cpu1),
            ("memory@40000000", "reg", &memory),
            ("uart@9000000", "reg", &uart),
            ("uart@9000000", "compatible", b"arm,sbsa-uart\0"),
            ("psci", "method", b"smc\0"),
        ];
        for (node, name, value) in props {
            scanner.property(node, name, value);
        }
        let platform = scanner.finish();
        assert_eq!(platform.name(), "beta");
        assert_eq!(platform.bootargs, "smp=1");
        assert_eq!(platform.cpus(), &[0, 0x100]);
        assert_eq!(platform.memory, Some((0x4000_0000, 0x200_0000)));
        assert_eq!(platform.uart, Some(0x0900_0000));
        assert_eq!(platform.psci, Some(Conduit::Smc));
    }

    #[test]
    fn names() {
        let mut platform = Scanner::new().finish();
        assert_eq!(platform.name(), "native");
        platform.model = Some("linux,dummy-virt");
        assert_eq!(platform.name(), "native");
        platform.model = Some("tessera,");
        assert_eq!(platform.name(), "native");
        platform.model = Some("tessera,alpha");
        assert_eq!(platform.name(), "alpha");
    }

    #[test]
    fn more_cpus_than_slots_are_counted() {
        let mut scanner = Scanner::new();
        scanner.property("cpus", "#address-cells", &[0, 0, 0, 1]);
        for _ in 0..MAX_CPUS + 2 {
            scanner.property("cpu@0", "reg", &[0, 0, 0, 7]);
        }
        scanner.property("cpu@0", "reg", &[0, 0]); // malformed: counted, not recorded
        let platform = scanner.finish();
        assert_eq!(platform.cpu_count(), MAX_CPUS + 3);
        assert_eq!(platform.cpus().len(), MAX_CPUS);
    }

    #[test]
    fn cell_reading() {
        assert_eq!(cells(&[0, 0, 0, 1, 0, 0, 0, 2], 0, 2), Some(0x1_0000_0002));
        assert_eq!(cells(&[0, 0, 0, 1], 1, 1), None);
        assert_eq!(cells(&[0, 0, 0, 1], 0, 3), None);
        assert_eq!(string(b"abc\0def\0"), Some("abc"));
        assert_eq!(string(b"abc"), Some("abc"));
    }
}
