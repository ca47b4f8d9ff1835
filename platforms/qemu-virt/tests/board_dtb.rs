//! `PLATFORM` against the device tree QEMU itself generates for the command line that
//! `cargo xtask run` uses: every value in `src/lib.rs` must be what QEMU says.
//!
//! Needs `qemu-system-aarch64` (install it with `scripts/setup-host.sh`).
#![allow(clippy::unwrap_used)] // a test: a bad DTB should fail loudly

use std::process::Command;

use fdt_rs::base::{DevTree, DevTreeItem};
use fdt_rs::prelude::{FallibleIterator, PropReader};
use tessera_config::{Conduit, GicVersion, MemRange, UartKind};
use tessera_qemu_virt::PLATFORM;

/// QEMU's `virt` options: the same as `cargo xtask run` (scripts/xtask/src/qemu.rs).
const MACHINE: &str = "virt,virtualization=on,gic-version=3";

/// DT interrupt specifier types (include/dt-bindings/interrupt-controller/arm-gic.h).
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;

/// One node, flat: children follow their parent.
struct Node {
    name: String,
    props: Vec<(String, Vec<u8>)>,
}

impl Node {
    fn prop(&self, name: &str) -> Option<&[u8]> {
        self.props.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
    fn cells(&self, name: &str) -> Vec<u32> {
        let value = self.prop(name).unwrap_or_else(|| panic!("{}: no `{name}`", self.name));
        value.chunks_exact(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect()
    }
    fn str(&self, name: &str) -> String {
        let value = self.prop(name).unwrap_or_else(|| panic!("{}: no `{name}`", self.name));
        String::from_utf8_lossy(value).trim_end_matches('\0').to_owned()
    }
    /// `reg` as (base, size) pairs, with `#address-cells = #size-cells = 2`.
    fn regs(&self) -> Vec<MemRange> {
        let words = |c: &[u32]| (u64::from(c[0]) << 32) | u64::from(c[1]);
        self.cells("reg").chunks_exact(4).map(|c| MemRange::new(words(&c[..2]), words(&c[2..]))).collect()
    }
    /// `interrupts` as INTIDs (SPI n = 32 + n, PPI n = 16 + n; IHI 0069 2.2.1).
    fn intids(&self) -> Vec<u32> {
        self.cells("interrupts")
            .chunks_exact(3)
            .map(|i| match i[0] {
                GIC_SPI => 32 + i[1],
                GIC_PPI => 16 + i[1],
                other => panic!("{}: interrupt type {other}", self.name),
            })
            .collect()
    }
}

fn dump_dtb() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("virt-{}.dtb", std::process::id()));
    let machine = format!("{MACHINE},dumpdtb={}", path.display());
    let output = Command::new("qemu-system-aarch64")
        .args(["-M", &machine, "-cpu", "cortex-a57", "-smp", "4", "-m", "1G", "-display", "none"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run qemu-system-aarch64 ({e}); install it with scripts/setup-host.sh")
        });
    assert!(output.status.success(), "qemu failed: {}", String::from_utf8_lossy(&output.stderr));
    let blob = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    blob
}

fn parse(blob: &[u8]) -> Vec<Node> {
    // fdt-rs wants a 4-byte aligned buffer exactly `totalsize` long.
    let mut buffer = vec![0u8; blob.len() + 3];
    let start = buffer.as_ptr().align_offset(4);
    buffer[start..start + blob.len()].copy_from_slice(blob);
    let aligned = &buffer[start..start + blob.len()];
    // SAFETY: `aligned` is 4-byte aligned (`align_offset`) and is the whole blob, so exactly
    // `totalsize` long: what `DevTree::new` requires.
    let tree = unsafe { DevTree::new(aligned) }.unwrap();
    let mut nodes: Vec<Node> = Vec::new();
    let mut items = tree.items();
    while let Some(item) = items.next().unwrap() {
        match item {
            DevTreeItem::Node(node) => nodes.push(Node { name: node.name().unwrap().to_owned(), props: Vec::new() }),
            DevTreeItem::Prop(prop) => {
                let entry = (prop.name().unwrap().to_owned(), prop.raw().to_vec());
                nodes.last_mut().unwrap().props.push(entry);
            }
        }
    }
    nodes
}

fn node<'a>(nodes: &'a [Node], name: &str) -> &'a Node {
    nodes.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("QEMU's DTB has no `{name}`"))
}

#[test]
fn platform_matches_the_dtb_qemu_generates() {
    let nodes = parse(&dump_dtb());
    let root = node(&nodes, "");
    assert_eq!((root.cells("#address-cells"), root.cells("#size-cells")), (vec![2], vec![2]));

    // RAM
    let memory: Vec<MemRange> = nodes.iter().filter(|n| n.name.starts_with("memory@")).flat_map(Node::regs).collect();
    assert_eq!(memory, PLATFORM.ram);

    // The PL011 the hypervisor owns.
    let uart_node = format!("pl011@{:x}", PLATFORM.uart.base);
    let uart = node(&nodes, &uart_node);
    assert_eq!(PLATFORM.uart.kind, UartKind::Pl011);
    assert!(uart.str("compatible").starts_with("arm,pl011"));
    assert_eq!(uart.regs(), [MemRange::new(PLATFORM.uart.base, PLATFORM.uart.size)]);
    assert_eq!(uart.intids(), [PLATFORM.uart.intid]);

    // GICv3: distributor, one redistributor region, ITS, maintenance interrupt.
    let gic_node = format!("intc@{:x}", PLATFORM.gic.gicd.base);
    let gic = node(&nodes, &gic_node);
    assert_eq!(PLATFORM.gic.version, GicVersion::V3);
    assert_eq!(gic.str("compatible"), "arm,gic-v3");
    assert_eq!(gic.regs(), [PLATFORM.gic.gicd, PLATFORM.gic.gicr]);
    assert_eq!(gic.cells("#redistributor-regions"), [1]);
    // No `redistributor-stride`: the GICv3 default, 0x20000 (RD + SGI frames).
    assert_eq!(gic.prop("redistributor-stride"), None);
    assert_eq!(PLATFORM.gic.gicr_stride, 0x2_0000);
    assert_eq!(gic.intids(), [PLATFORM.gic.maintenance_intid]);
    let its = PLATFORM.gic.its.expect("virt with gic-version=3 has an ITS");
    let its_node = node(&nodes, &format!("its@{:x}", its.base));
    assert_eq!(its_node.str("compatible"), "arm,gic-v3-its");
    assert_eq!(its_node.regs(), [its]);

    // Generic timer, in the binding's order: secure, non-secure, virtual, hypervisor.
    let timer = node(&nodes, "timer");
    let t = PLATFORM.timer;
    assert_eq!(timer.intids(), [t.secure_phys, t.nonsecure_phys, t.virt, t.hyp_phys]);

    // CPUs: count and MPIDRs (`reg` of cpu@N, one cell under `cpus`).
    let cpus = node(&nodes, "cpus");
    assert_eq!(cpus.cells("#address-cells"), [1]);
    let mpidrs: Vec<u64> = nodes
        .iter()
        .filter(|n| n.name.starts_with("cpu@"))
        .map(|n| u64::from(n.cells("reg")[0]))
        .collect();
    let expected: Vec<u64> = PLATFORM.cpus.iter().map(|c| c.mpidr).collect();
    assert_eq!(mpidrs, expected);

    // PSCI through SMC: QEMU is the EL3 firmware when virtualization=on.
    let psci = node(&nodes, "psci");
    assert_eq!(psci.str("method"), "smc");
    assert_eq!(PLATFORM.psci_conduit, Conduit::Smc);

    // The defaults a VM's console takes are where virt's PL011 is.
    assert_eq!(PLATFORM.default_console_ipa, PLATFORM.uart.base);
    assert_eq!(PLATFORM.default_console_intid, PLATFORM.uart.intid);
    // QEMU loads a `-kernel` Image with text_offset 0 at RAM base + 2 MiB.
    assert_eq!(PLATFORM.default_load_address, PLATFORM.ram[0].base + 0x20_0000);
}
