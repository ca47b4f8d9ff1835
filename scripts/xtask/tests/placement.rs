//! Where images, device trees, the hypervisor and host memory go.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Fixture, arm64_image};
use tessera_config::MemRange;
use xtask::Error;

const MIB: u64 = 1 << 20;

#[test]
fn raw_images_load_at_the_ram_base_and_dtbs_in_the_last_2m_slot() {
    let plan = Fixture::new("valid").check().unwrap();
    for vm in &plan.vms {
        assert_eq!((vm.load_ipa, vm.entry_ipa), (0x4000_0000, 0x4000_0000));
        assert_eq!(vm.dtb_ipa, 0x41e0_0000);
    }
}

#[test]
fn hypervisor_region_and_host_memory_follow_the_rules() {
    let plan = Fixture::new("valid").check().unwrap();
    // From the RAM bank's start, past the load address (RAM + 2 MiB) by the payload and 8 MiB,
    // rounded up to 2 MiB. Payload: two 4 KiB images and two DTBs of under 4 KiB each.
    assert_eq!(plan.payload_bytes(), 4 * 4096);
    assert_eq!(plan.hv_region, MemRange::new(0x4000_0000, 12 * MIB));
    // VM memory follows, in VM order, 2 MiB aligned.
    assert_eq!(plan.vms[0].memory[0].pa, 0x40c0_0000);
    assert_eq!(plan.vms[1].memory[0].pa, 0x42c0_0000);
}

#[test]
fn allocation_skips_memory_pinned_with_host_base() {
    // alpha's memory@0 is pinned at 0x60000000; memory@1 and beta are allocated after the
    // hypervisor, in order.
    let plan = Fixture::new("everything").check().unwrap();
    assert_eq!(plan.vms[0].memory[0].pa, 0x6000_0000);
    assert_eq!(
        plan.vms[0].memory[1].pa,
        plan.hv_region.base + plan.hv_region.size
    );
    assert_eq!(plan.vms[1].memory[0].pa, plan.vms[0].memory[1].pa + 4 * MIB);
}

#[test]
fn an_arm64_image_loads_at_text_offset_and_is_entered_there() {
    let image = arm64_image(0x20_0000, 0x30_0000, 0x1_0000);
    let plan = Fixture::with_image("valid", &image).check().unwrap();
    let alpha = &plan.vms[0];
    assert_eq!(
        (alpha.load_ipa, alpha.entry_ipa),
        (0x4020_0000, 0x4020_0000)
    );
    assert_eq!(alpha.image_footprint, 0x30_0000, "image_size counts BSS");
    assert_eq!(alpha.dtb_ipa, 0x41e0_0000);
}

#[test]
fn an_arm64_image_whose_bss_does_not_fit_is_refused() {
    // 64 KiB of file, but 40 MiB once running: more than the 32 MiB VM has.
    let image = arm64_image(0x20_0000, 40 * MIB, 0x1_0000);
    let (error, message) = Fixture::with_image("valid", &image).error();
    assert!(
        matches!(error, Error::ImageTooLarge { ref node, image_size, room }
        if node == "/vms/alpha" && image_size == 40 * MIB && room == 30 * MIB),
        "{message}"
    );
    assert!(
        message.starts_with("/vms/alpha: the image needs 41943040 bytes (with its BSS)"),
        "{message}"
    );
}

#[test]
fn the_dtb_avoids_an_image_bss_that_reaches_the_top_slot() {
    // Loaded at +2 MiB and running to 1 MiB below the end: no slot above the image is free,
    // so the DTB goes below it, at the RAM base.
    let image = arm64_image(0x20_0000, 29 * MIB, 0x1000);
    let plan = Fixture::with_image("valid", &image).check().unwrap();
    assert_eq!(plan.vms[0].dtb_ipa, 0x4000_0000);
}

#[test]
fn load_offsets_with_an_arm64_image_are_refused() {
    let image = arm64_image(0x8_0000, 0x10_0000, 0x1000);
    let (error, _) = Fixture::with_image("everything", &image).error();
    assert!(matches!(error, Error::OffsetsWithImageHeader { ref node } if node == "/vms/alpha"));
}
