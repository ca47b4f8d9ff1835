//! Passed-through devices, end to end from a `.dts` against QEMU virt's board tree
//! (`platforms/qemu-virt/board.dts`): what the tables and the guest tree get, and one test
//! per error, each naming the nodes.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Fixture, node, parse_fdt};
use tessera_config::DeviceAccess;
use xtask::Error;

fn fixture(alpha_extra: &str, beta_extra: &str) -> Fixture {
    Fixture::two_vms(alpha_extra, beta_extra)
}

const BLK: &str = r#"devices = "/virtio_mmio@a003e00"; dma-unrestricted = "/virtio_mmio@a003e00"; sub-page = "trap";"#;

fn message(alpha: &str, beta: &str) -> String {
    fixture(alpha, beta).error().1
}

#[test]
fn virtio_and_pl031_resolve_into_tables_and_guest_trees() {
    let plan = fixture(BLK, r#"devices = "/pl031@9010000";"#).check().unwrap();
    let alpha = &plan.vms[0];
    let table = alpha.device_table();
    assert_eq!(table.len(), 1);
    assert_eq!((table[0].ipa, table[0].pa, table[0].size), (0x0a00_3e00, 0x0a00_3e00, 0x200));
    assert_eq!(table[0].access, DeviceAccess::Trap, "eight transports share a page");
    assert_eq!(table[0].spis, &[32 + 0x2f], "<0 0x2f 1> is SPI 47, INTID 79");
    let beta = plan.vms[1].device_table();
    assert_eq!((beta[0].pa, beta[0].size, beta[0].access), (0x0901_0000, 0x1000, DeviceAccess::Map));
    assert_eq!(beta[0].spis, &[34]);

    let nodes = parse_fdt(&alpha.dtb);
    let virtio = node(&nodes, "virtio_mmio@a003e00");
    assert_eq!(virtio.strings("compatible"), ["virtio,mmio"]);
    assert_eq!(virtio.u64s("reg"), [0x0a00_3e00, 0x200]);
    assert_eq!(virtio.cells("interrupts"), [0, 0x2f, 1]);
    let gic_phandle = node(&nodes, "interrupt-controller@8000000").cells("phandle");
    assert_eq!(virtio.cells("interrupt-parent"), gic_phandle);
    assert!(virtio.prop("dma-coherent").is_some(), "other properties are copied");

    let nodes = parse_fdt(&plan.vms[1].dtb);
    let rtc = node(&nodes, "pl031@9010000");
    assert!(rtc.prop("clocks").is_none() && rtc.prop("clock-names").is_none(), "phandle references are dropped");
    assert_eq!(rtc.strings("compatible"), ["arm,pl031", "arm,primecell"]);
}

#[test]
fn raw_devices_take_explicit_windows_and_spis() {
    let raw = r#"device@0 { reg = /bits/ 64 <0x9030000 0x1000>; guest-base = /bits/ 64 <0x20000000>; interrupts = <39>; dma = "none"; };"#;
    let plan = fixture("", raw).check().unwrap();
    let table = plan.vms[1].device_table();
    assert_eq!((table[0].ipa, table[0].pa, table[0].access), (0x2000_0000, 0x0903_0000, DeviceAccess::Map));
    assert_eq!(table[0].spis, &[39]);
}

#[test]
fn device_given_to_two_vms() {
    assert_eq!(
        message(r#"devices = "/pl031@9010000";"#, r#"devices = "/pl031@9010000";"#),
        "/vms/beta: device window 0x9010000..0x9011000 overlaps device window 0x9010000..0x9011000 of /vms/alpha"
    );
}

#[test]
fn path_missing_from_the_board_tree() {
    let (error, text) = fixture(r#"devices = "/virtio_mmio@a004000"; dma-unrestricted = "/virtio_mmio@a004000";"#, "").error();
    assert!(matches!(error, Error::DeviceNotInBoard { .. }), "{text}");
    assert!(text.starts_with("/vms/alpha: device /virtio_mmio@a004000 is not a node of"), "{text}");
}

#[test]
fn sub_page_device_without_trap_names_the_page_and_its_neighbours() {
    let text = message(r#"devices = "/virtio_mmio@a003e00"; dma-unrestricted = "/virtio_mmio@a003e00";"#, "");
    assert!(text.starts_with("/vms/alpha: device /virtio_mmio@a003e00 (0x200 bytes) does not own its 4 KiB page 0xa003000, which it shares with /virtio_mmio@a003000, /virtio_mmio@a003200"), "{text}");
    assert!(text.contains("/virtio_mmio@a003c00;") && text.contains("sub-page = \"trap\""), "{text}");
}

#[test]
fn spi_owned_twice() {
    // Transport 0x0a003e00 raises SPI 47 = INTID 79.
    let raw = r#"device@0 { reg = /bits/ 64 <0x9030000 0x1000>; interrupts = <79>; dma = "none"; };"#;
    assert_eq!(message(BLK, raw), "/vms/beta: SPI INTID 79 is already owned by /vms/alpha");
}

#[test]
fn device_over_the_vms_ram() {
    let raw = r#"device@0 { reg = /bits/ 64 <0x9030000 0x1000>; guest-base = /bits/ 64 <0x40001000>; dma = "none"; };"#;
    assert_eq!(message("", raw), "/vms/beta: guest-physical 0x40000000..0x42000000 overlaps 0x40001000..0x40002000");
}

#[test]
fn device_over_the_vgic_or_console() {
    let raw = |ipa: u32| format!(r#"device@0 {{ reg = /bits/ 64 <0x9030000 0x1000>; guest-base = /bits/ 64 <{ipa:#x}>; dma = "none"; }};"#);
    assert_eq!(message("", &raw(0x0800_0000)), "/vms/beta: guest-physical 0x8000000..0x8001000 overlaps 0x8000000..0x8010000");
    assert_eq!(message("", &raw(0x0900_0000)), "/vms/beta: guest-physical 0x9000000..0x9001000 overlaps 0x9000000..0x9001000");
}

#[test]
fn dma_capable_device_needs_dma_unrestricted() {
    let (error, text) = fixture(r#"devices = "/virtio_mmio@a003e00"; sub-page = "trap";"#, "").error();
    assert!(matches!(error, Error::DmaPolicyMissing { .. }));
    assert!(text.starts_with("/vms/alpha: device /virtio_mmio@a003e00 (virtio,mmio) can do DMA"), "{text}");
}

#[test]
fn dma_unrestricted_needs_identity_mapped_ram() {
    let (error, text) = fixture("", BLK).error();
    assert!(matches!(error, Error::DmaNeedsIdentityRam { .. }), "{text}");
    assert!(text.starts_with("/vms/beta: the VM has a DMA-capable device"), "{text}");
}

#[test]
fn dma_unrestricted_must_name_a_listed_device() {
    let text = message(r#"dma-unrestricted = "/virtio_mmio@a003e00";"#, "");
    assert_eq!(
        text,
        "/vms/alpha: device /virtio_mmio@a003e00 cannot be passed through: named in `dma-unrestricted` but not in `devices`"
    );
}

#[test]
fn mapped_raw_device_must_be_page_aligned() {
    let raw = r#"device@0 { reg = /bits/ 64 <0x9030100 0x100>; dma = "none"; };"#;
    let text = message("", raw);
    assert!(text.starts_with("/vms/beta: device /vms/beta/device@0 (0x100 bytes) does not own its 4 KiB page 0x9030000"), "{text}");
}

#[test]
fn raw_device_needs_a_dma_policy() {
    let raw = r#"device@0 { reg = /bits/ 64 <0x9030000 0x1000>; };"#;
    assert!(matches!(fixture("", raw).error().0, Error::MissingProperty { property: "dma", .. }));
}

#[test]
fn the_hypervisors_uart_cannot_be_passed_through() {
    let text = message("", r#"devices = "/pl011@9000000";"#);
    assert_eq!(text, "/vms/beta: device window 0x9000000..0x9001000 overlaps the hypervisor's UART or the GIC");
}
