//! Linux guests: the `initrd` property, its placement, and the device tree nodes Linux needs
//! (GICv3, timer, the console's interrupt, the initrd range), read back with fdt-rs.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Fixture, arm64_image, node, parse_fdt};
use xtask::Error;

const MIB: u64 = 1 << 20;

/// Debian 6.1's Image: text_offset 0, image_size 0x2010000 (32 MiB + 64 KiB with BSS).
fn linux_like() -> Fixture {
    Fixture::with_image("linux", &arm64_image(0, 0x201_0000, 0x1_0000)).with_initrd(&[0x17; 5000])
}

#[test]
fn the_initrd_goes_at_the_first_2m_boundary_after_the_image_bss() {
    let plan = linux_like().check().unwrap();
    let linux = &plan.vms[0];
    assert_eq!(linux.load_ipa, 0x4000_0000);
    assert_eq!(linux.image_footprint, 0x201_0000);
    assert_eq!(linux.initrd.as_deref(), Some(&[0x17; 5000][..]));
    assert_eq!(linux.initrd_ipa, 0x4220_0000);
    // The DTB keeps the top slot of the 64 MiB region.
    assert_eq!(linux.dtb_ipa, 0x43e0_0000);
    assert_eq!(plan.vms[1].initrd, None);
    // The initrd is part of the hypervisor's payload, page aligned.
    assert_eq!(
        plan.vms[0].payload_bytes(),
        0x1_0000 + 4096 + 8192,
        "image + DTB + initrd"
    );
    plan.with_system(|system| {
        let initrd = system.vms[0].initrd.unwrap();
        assert_eq!((initrd.ipa, initrd.bytes.len()), (0x4220_0000, 5000));
        assert!(system.vms[1].initrd.is_none());
    });
}

#[test]
fn chosen_names_the_initrd_range_in_64_bit_cells() {
    let plan = linux_like().check().unwrap();
    let nodes = parse_fdt(&plan.vms[0].dtb);
    let chosen = node(&nodes, "chosen");
    assert_eq!(chosen.u64s("linux,initrd-start"), [0x4220_0000]);
    assert_eq!(chosen.u64s("linux,initrd-end"), [0x4220_0000 + 5000]);
    assert_eq!(
        chosen.str("bootargs"),
        "console=ttyAMA0 earlycon rdinit=/init"
    );
    assert_eq!(chosen.str("stdout-path"), "/uart@9000000");
    let rt = parse_fdt(&plan.vms[1].dtb);
    assert_eq!(node(&rt, "chosen").prop("linux,initrd-start"), None);
    assert_eq!(node(&rt, "chosen").prop("linux,initrd-end"), None);
}

#[test]
fn the_gic_is_a_gicv3_at_the_boards_addresses_with_a_redistributor_per_vcpu() {
    let plan = linux_like().check().unwrap();
    for (vm, vcpus) in [(0, 2u64), (1, 1)] {
        let nodes = parse_fdt(&plan.vms[vm].dtb);
        let gic = node(&nodes, "interrupt-controller@8000000");
        assert_eq!(gic.str("compatible"), "arm,gic-v3");
        assert_eq!(gic.prop("interrupt-controller"), Some(&[][..]));
        assert_eq!(gic.prop("ranges"), Some(&[][..]));
        assert_eq!(gic.cells("#interrupt-cells"), [3]);
        assert_eq!(gic.cells("#address-cells"), [2]);
        assert_eq!(gic.cells("#size-cells"), [2]);
        assert_eq!(
            gic.u64s("reg"),
            [0x0800_0000, 0x1_0000, 0x080a_0000, vcpus * 0x2_0000]
        );
        assert_eq!(gic.cells("interrupts"), [1, 9, 4], "maintenance: PPI 9");
        let root = node(&nodes, "");
        assert_eq!(root.cells("interrupt-parent"), gic.cells("phandle"));
    }
}

#[test]
fn the_timer_has_the_boards_four_ppis_level_low() {
    let plan = linux_like().check().unwrap();
    let nodes = parse_fdt(&plan.vms[0].dtb);
    let timer = node(&nodes, "timer");
    assert_eq!(timer.str("compatible"), "arm,armv8-timer");
    // Secure phys 13, non-secure phys 14, virtual 11, hypervisor 10 (INTIDs 29, 30, 27, 26);
    // IRQ_TYPE_LEVEL_LOW with GIC_CPU_MASK_SIMPLE(2).
    assert_eq!(
        timer.cells("interrupts"),
        [1, 13, 0x308, 1, 14, 0x308, 1, 11, 0x308, 1, 10, 0x308]
    );
    assert_eq!(timer.prop("always-on"), Some(&[][..]));
    let rt = parse_fdt(&plan.vms[1].dtb);
    assert_eq!(node(&rt, "timer").cells("interrupts")[2], 0x108, "one vCPU");
}

#[test]
fn the_console_raises_its_spi_level_high() {
    let plan = Fixture::new("everything").check().unwrap();
    let nodes = parse_fdt(&plan.vms[0].dtb);
    // interrupt = <37>: SPI 5.
    assert_eq!(node(&nodes, "uart@1c090000").cells("interrupts"), [0, 5, 4]);
}

#[test]
fn a_missing_initrd_names_the_vm_and_the_path() {
    let (error, message) = Fixture::new("missing-initrd").error();
    assert!(
        matches!(error, Error::InitrdUnreadable { ref node, ref path, .. }
            if node == "/vms/linux" && path.ends_with("does-not-exist.cpio.gz")),
        "{message}"
    );
    assert!(
        message.starts_with("/vms/linux: cannot read initrd /"),
        "{message}"
    );
}

#[test]
fn an_initrd_that_does_not_fit_after_the_image_is_refused() {
    // 64 MiB region, the initrd starting at +34 MiB: 30 MiB of room.
    let big = vec![0; (31 * MIB) as usize];
    let fixture =
        Fixture::with_image("linux", &arm64_image(0, 0x201_0000, 0x1_0000)).with_initrd(&big);
    let (error, message) = fixture.error();
    assert!(
        matches!(error, Error::NoRoomForInitrd { ref node, initrd_size, room }
            if node == "/vms/linux" && initrd_size == 31 * MIB && room == 30 * MIB),
        "{message}"
    );
    assert_eq!(
        message,
        "/vms/linux: the initrd needs 32505856 bytes but only 31457280 bytes of the first memory region lie after the image (2 MiB aligned)"
    );
}

#[test]
fn an_initrd_that_leaves_no_slot_for_the_dtb_is_refused() {
    // 30 MiB fills the region after the image up to its end: the DTB's slots are all taken.
    let full = vec![0; (30 * MIB) as usize];
    let fixture =
        Fixture::with_image("linux", &arm64_image(0, 0x201_0000, 0x1_0000)).with_initrd(&full);
    let (error, message) = fixture.error();
    assert!(matches!(error, Error::Invalid { .. }), "{message}");
    assert!(message.starts_with("/vms/linux: "), "{message}");
}

#[test]
fn system_rs_carries_the_initrd_in_the_payload() {
    let fixture = linux_like();
    let plan = fixture.check().unwrap();
    let out = fixture.dir.path().join("out");
    let path = xtask::tables::write(&plan, &fixture.dts, &out).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let initrd = out.join("vm0.initrd");
    assert_eq!(std::fs::read(&initrd).unwrap(), [0x17; 5000]);
    assert!(!out.join("vm1.initrd").exists());
    let initrd_static = format!(
        "#[unsafe(link_section = \".payload\")]\n    static VM0_INITRD: PageAligned<[u8; 5000]> = PageAligned(*include_bytes!({:?}));",
        initrd.to_str().unwrap()
    );
    assert!(text.contains(&initrd_static), "{text}");
    assert!(
        text.contains("initrd: Some(Initrd { bytes: &VM0_INITRD.0, ipa: 0x42200000 }),"),
        "{text}"
    );
    assert!(text.contains("initrd: None,"), "{text}");
}
