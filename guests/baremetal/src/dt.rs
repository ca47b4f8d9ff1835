//! What the guest needs from its device tree: name, bootargs, RAM, UART, PSCI conduit, CPUs.
//!
//! fdt-rs walks the tree as a flat list of properties, each with its node's name (no parent
//! links). [`Scanner`] consumes that list; it relies on the property order the DT
//! specification (v0.4, §5.4) guarantees: a node's properties come before its children, so
//! `/cpus/#address-cells` is seen before any `cpu@N/reg`. Devices are looked for by node
//! name at any depth, which holds for QEMU's `virt` tree and for the trees Tessera generates.

use fdt_rs::base::DevTree;
use fdt_rs::prelude::{FallibleIterator, PropReader};

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

/// Builds a [`Platform`] from a stream of `(node, property, value)`.
#[derive(Debug)]
pub struct Scanner<'dt> {
    platform: Platform<'dt>,
    root_address_cells: u32,
    root_size_cells: u32,
    cpus_address_cells: u32,
    /// The node whose properties are streaming past, and what they said so far: its first
    /// `reg` address and whether it is a UART we drive. `reg` may come before or after
    /// `compatible`.
    node: &'dt str,
    node_reg: Option<u64>,
    node_is_uart: bool,
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
                cpus: [0; MAX_CPUS],
                cpu_count: 0,
            },
            // DT spec v0.4 §2.3.5: the defaults when a node has no #address-cells/#size-cells.
            root_address_cells: 2,
            root_size_cells: 1,
            cpus_address_cells: 2,
            node: "",
            node_reg: None,
            node_is_uart: false,
        }
    }

    /// One property. `node` is the node's name with its unit address (`""` for the root).
    pub fn property(&mut self, node: &'dt str, name: &'dt str, value: &'dt [u8]) {
        if node != self.node {
            self.node = node;
            self.node_reg = None;
            self.node_is_uart = false;
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
            (_, "compatible") => {
                self.node_is_uart = value
                    .split(|&b| b == 0)
                    .any(|s| s == b"arm,sbsa-uart" || s == b"arm,pl011");
            }
            (_, "reg") => self.node_reg = cells(value, 0, self.root_address_cells),
            _ => {}
        }
        if self.node_is_uart && self.platform.uart.is_none() {
            self.platform.uart = self.node_reg;
        }
    }

    pub fn finish(self) -> Platform<'dt> {
        self.platform
    }
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

    /// QEMU 10.0 `-M virt -cpu cortex-a57 -smp 2 -m 1G -machine dumpdtb=…`, kept as source
    /// (`dtc -O dts`) and compiled with dtc here: binaries are never committed.
    fn qemu_virt_dtb() -> Vec<u8> {
        let source = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/qemu-virt-smp2.dts");
        let output = std::process::Command::new("dtc")
            .args(["-q", "-I", "dts", "-O", "dtb", source])
            .output()
            .expect("dtc runs (scripts/setup-host.sh installs it)");
        assert!(output.status.success(), "dtc failed: {}", String::from_utf8_lossy(&output.stderr));
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
