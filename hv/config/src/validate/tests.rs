//! One test per [`ConfigError`] variant, each starting from a valid system and breaking one thing.

use super::*;
use crate::{Conduit, ResetWrite, Watchdog, Device, DeviceAccess, Console, CpuDesc, ExitAction, FaultPolicy, GicDesc, GicVersion, Image, Initrd, MemoryRegion,
    TimerPpis, UartDesc, UartKind};

const MIB: u64 = 1 << 20;
const CPUS: [CpuDesc; 4] = [CpuDesc { mpidr: 0 }, CpuDesc { mpidr: 1 }, CpuDesc { mpidr: 2 }, CpuDesc { mpidr: 3 }];
const RAM: [MemRange; 1] = [MemRange::new(0x4000_0000, 1024 * MIB)];

fn board() -> Board<'static> {
    Board {
        name: "test-board",
        ram: &RAM,
        cpus: &CPUS,
        uart: UartDesc { kind: UartKind::Pl011, base: 0x0900_0000, size: 0x1000, intid: 33 },
        gic: GicDesc {
            version: GicVersion::V3,
            gicd: MemRange::new(0x0800_0000, 0x1_0000),
            gicr: MemRange::new(0x080a_0000, 0xf6_0000),
            gicr_stride: 0x2_0000,
            its: None,
            maintenance_intid: 25,
            group0_nonsecure: true,
        },
        timer: TimerPpis { secure_phys: 29, nonsecure_phys: 30, virt: 27, hyp_phys: 26 },
        psci_conduit: Conduit::Smc,
        default_console_ipa: 0x0900_0000,
        default_console_intid: 33,
        default_load_address: 0x4020_0000,
    }
}

const IMAGE: [u8; 0x1000] = [0; 0x1000];
const DTB: [u8; 0x100] = [0; 0x100];

fn vm<'a>(name: &'a str, vmid: u16, cpus: &'a [u32], memory: &'a [MemoryRegion]) -> Vm<'a> {
    let base = memory.first().map_or(0, |r| r.ipa);
    Vm {
        name,
        vmid,
        cpus,
        memory,
        console: Some(Console { ipa: 0x0900_0000, intid: 33 }),
        image: Image { bytes: &IMAGE, load_ipa: base, entry_ipa: base },
        dtb: &DTB,
        dtb_ipa: base + 0x10_0000,
        initrd: None,
        fault_policy: FaultPolicy::Inject,
        on_system_off: ExitAction::Stop,
        on_system_reset: ExitAction::Restart,
        wfi: crate::WfiPolicy::Native,
        physical_counter: true,
        devices: &[],
        watchdog: None,
        rtds: None,
        interrupt_mode: crate::InterruptMode::Virtual,
    }
}

const HV: MemRange = MemRange::new(0x4000_0000, 32 * MIB);
const MEM_A: [MemoryRegion; 1] = [MemoryRegion { ipa: 0x4000_0000, pa: 0x4200_0000, size: 16 * MIB }];
const MEM_B: [MemoryRegion; 1] = [MemoryRegion { ipa: 0x4000_0000, pa: 0x4300_0000, size: 16 * MIB }];

fn check<'a>(vms: &'a [Vm<'a>]) -> Result<(), ConfigError<'a>> {
    validate(&board(), &System { board: "test-board", hv_region: HV, vms, pools: &[] })
}

extern crate std;
use std::string::ToString;

#[test]
fn a_valid_system_passes() {
    assert_eq!(check(&[vm("a", 1, &[0], &MEM_A), vm("b", 2, &[1, 2], &MEM_B)]), Ok(()));
}

#[test]
fn board_mismatch() {
    let vms = [vm("a", 1, &[0], &MEM_A)];
    let err = validate(&board(), &System { board: "other", hv_region: HV, vms: &vms, pools: &[] }).unwrap_err();
    assert_eq!(err, ConfigError::BoardMismatch { system: "other", board: "test-board" });
}

#[test]
fn no_vms() {
    assert_eq!(check(&[]), Err(ConfigError::NoVms));
}

#[test]
fn duplicate_vm_name() {
    assert_eq!(check(&[vm("a", 1, &[0], &MEM_A), vm("a", 2, &[1], &MEM_B)]), Err(ConfigError::DuplicateVmName { name: "a" }));
}

#[test]
fn vmid_reused() {
    assert_eq!(check(&[vm("a", 1, &[0], &MEM_A), vm("b", 1, &[1], &MEM_B)]), Err(ConfigError::BadVmid { vm: "b", vmid: 1 }));
}

#[test]
fn no_cpus() {
    assert_eq!(check(&[vm("a", 1, &[], &MEM_A)]), Err(ConfigError::NoCpus { vm: "a" }));
}

#[test]
fn cpu_not_on_board() {
    assert_eq!(
        check(&[vm("a", 1, &[0, 4], &MEM_A)]),
        Err(ConfigError::CpuNotOnBoard { vm: "a", cpu: 4, board_cpus: 4 })
    );
}

#[test]
fn cpu_given_to_two_vms() {
    let vms = [vm("a", 1, &[0, 1], &MEM_A), vm("b", 2, &[1], &MEM_B)];
    let err = check(&vms).unwrap_err();
    assert_eq!(err, ConfigError::CpuAssignedTwice { cpu: 1, first: "a", second: "b" });
    assert_eq!(err.to_string(), "/vms/b: CPU 1 is already given to /vms/a");
}

#[test]
fn cpu_listed_twice_in_one_vm() {
    assert_eq!(check(&[vm("a", 1, &[2, 2], &MEM_A)]), Err(ConfigError::CpuAssignedTwice { cpu: 2, first: "a", second: "a" }));
}

#[test]
fn no_memory() {
    assert_eq!(check(&[vm("a", 1, &[0], &[])]), Err(ConfigError::NoMemory { vm: "a" }));
}

#[test]
fn memory_region_that_wraps() {
    let mem = [MemoryRegion { ipa: 0x4000_0000, pa: u64::MAX - 0xfff, size: 0x2000 }];
    assert!(matches!(check(&[vm("a", 1, &[0], &mem)]), Err(ConfigError::BadMemoryRegion { vm: "a", .. })));
}

#[test]
fn memory_not_page_aligned() {
    let mem = [MemoryRegion { ipa: 0x4000_0000, pa: 0x4200_0800, size: 16 * MIB }];
    assert!(matches!(check(&[vm("a", 1, &[0], &mem)]), Err(ConfigError::MemoryNotPageAligned { vm: "a", .. })));
}

#[test]
fn memory_outside_ram() {
    let mem = [MemoryRegion { ipa: 0x4000_0000, pa: 0x8000_0000 - MIB, size: 16 * MIB }];
    assert!(matches!(check(&[vm("a", 1, &[0], &mem)]), Err(ConfigError::MemoryOutsideRam { vm: "a", .. })));
}

#[test]
fn memory_inside_hypervisor_region() {
    let mem = [MemoryRegion { ipa: 0x4000_0000, pa: 0x4100_0000, size: 16 * MIB }];
    let vms = [vm("a", 1, &[0], &mem)];
    let err = check(&vms).unwrap_err();
    assert_eq!(
        err,
        ConfigError::MemoryInHypervisor { vm: "a", region: MemRange::new(0x4100_0000, 16 * MIB), hypervisor: HV }
    );
}

#[test]
fn memory_overlapping_another_vm() {
    let mem = [MemoryRegion { ipa: 0x4000_0000, pa: 0x4280_0000, size: 16 * MIB }];
    let vms = [vm("a", 1, &[0], &MEM_A), vm("b", 2, &[1], &mem)];
    let err = check(&vms).unwrap_err();
    assert!(matches!(err, ConfigError::MemoryOverlap { first: "a", second: "b", .. }));
    assert!(err.to_string().starts_with("/vms/b: memory 0x42800000..0x43800000 overlaps"));
}

#[test]
fn ipa_regions_overlap_in_one_vm() {
    let mem = [
        MemoryRegion { ipa: 0x4000_0000, pa: 0x4200_0000, size: 16 * MIB },
        MemoryRegion { ipa: 0x4080_0000, pa: 0x4400_0000, size: 16 * MIB },
    ];
    assert!(matches!(check(&[vm("a", 1, &[0], &mem)]), Err(ConfigError::IpaOverlap { vm: "a", .. })));
}

#[test]
fn console_inside_ram() {
    let mem = [MemoryRegion { ipa: 0x0900_0000, pa: 0x4200_0000, size: 16 * MIB }];
    assert_eq!(
        check(&[vm("a", 1, &[0], &mem)]),
        Err(ConfigError::IpaOverlap {
            vm: "a",
            first: MemRange::new(0x0900_0000, 16 * MIB),
            second: MemRange::new(0x0900_0000, 0x1000)
        })
    );
}

#[test]
fn vgic_redistributors_inside_ram() {
    // Two vCPUs: GICR 0x080a0000..0x080e0000; RAM from 0x080c0000 takes the second frame pair.
    let mem = [MemoryRegion { ipa: 0x080c_0000, pa: 0x4200_0000, size: MIB }];
    let vms = [vm("a", 1, &[0, 1], &mem)];
    let err = check(&vms).unwrap_err();
    assert_eq!(
        err,
        ConfigError::IpaOverlap {
            vm: "a",
            first: MemRange::new(0x080c_0000, MIB),
            second: MemRange::new(0x080a_0000, 0x4_0000)
        }
    );
    assert_eq!(err.to_string(), "/vms/a: guest-physical 0x80c0000..0x81c0000 overlaps 0x80a0000..0x80e0000");
}

#[test]
fn console_over_the_vgic_distributor() {
    let mut v = vm("a", 1, &[0], &MEM_A);
    v.console = Some(Console { ipa: 0x0800_f000, intid: 33 });
    assert_eq!(
        check(&[v]),
        Err(ConfigError::IpaOverlap {
            vm: "a",
            first: MemRange::new(0x0800_f000, 0x1000),
            second: MemRange::new(0x0800_0000, 0x1_0000)
        })
    );
}

#[test]
fn vgic_frames_are_the_boards_with_one_redistributor_per_vcpu() {
    let frames = vm("a", 1, &[0, 1, 2], &MEM_A).vgic_frames(&board());
    assert_eq!(frames.gicd, MemRange::new(0x0800_0000, 0x1_0000));
    assert_eq!(frames.gicr, MemRange::new(0x080a_0000, 3 * 0x2_0000));
}

static INITRD: [u8; 0x1800] = [0x5a; 0x1800];

#[test]
fn an_initrd_beside_image_and_dtb_passes() {
    let mut v = vm("a", 1, &[0], &MEM_A);
    v.initrd = Some(Initrd { bytes: &INITRD, ipa: 0x4020_0000 });
    assert_eq!(check(&[v]), Ok(()));
}

#[test]
fn initrd_over_the_image() {
    let mut v = vm("a", 1, &[0], &MEM_A);
    v.initrd = Some(Initrd { bytes: &INITRD, ipa: 0x4000_0000 });
    let vms = [v];
    let err = check(&vms).unwrap_err();
    assert_eq!(err, ConfigError::InitrdPlacement { vm: "a", initrd_ipa: 0x4000_0000, initrd_size: 0x1800 });
    assert_eq!(
        err.to_string(),
        "/vms/a: the initrd (6144 bytes at 0x40000000) is empty, or does not fit in the VM's memory beside its image and device tree"
    );
}

#[test]
fn initrd_over_the_dtb() {
    let mut v = vm("a", 1, &[0], &MEM_A);
    v.initrd = Some(Initrd { bytes: &INITRD, ipa: 0x400f_f000 });
    assert!(matches!(check(&[v]), Err(ConfigError::InitrdPlacement { vm: "a", initrd_ipa: 0x400f_f000, .. })));
}

#[test]
fn initrd_past_the_end_of_memory() {
    let mut v = vm("a", 1, &[0], &MEM_A);
    v.initrd = Some(Initrd { bytes: &INITRD, ipa: 0x4100_0000 - 0x1000 });
    assert!(matches!(check(&[v]), Err(ConfigError::InitrdPlacement { vm: "a", .. })));
    v.initrd = Some(Initrd { bytes: &INITRD, ipa: 0x2000_0000 });
    assert!(matches!(check(&[v]), Err(ConfigError::InitrdPlacement { vm: "a", initrd_ipa: 0x2000_0000, .. })));
}

#[test]
fn empty_initrd() {
    let mut v = vm("a", 1, &[0], &MEM_A);
    v.initrd = Some(Initrd { bytes: &[], ipa: 0x4020_0000 });
    assert_eq!(check(&[v]), Err(ConfigError::InitrdPlacement { vm: "a", initrd_ipa: 0x4020_0000, initrd_size: 0 }));
}

#[test]
fn hypervisor_region_outside_ram() {
    let vms = [vm("a", 1, &[0], &MEM_A)];
    let region = MemRange::new(0x2000_0000, 32 * MIB);
    let err = validate(&board(), &System { board: "test-board", hv_region: region, vms: &vms, pools: &[] }).unwrap_err();
    assert_eq!(err, ConfigError::HypervisorRegionInvalid { region });
}

#[test]
fn image_larger_than_memory() {
    static BIG: [u8; 0x3000] = [0; 0x3000];
    let mem = [MemoryRegion { ipa: 0x4000_0000, pa: 0x4200_0000, size: 0x2000 }];
    let mut v = vm("a", 1, &[0], &mem);
    v.image.bytes = &BIG;
    assert_eq!(check(&[v]), Err(ConfigError::ImageTooLarge { vm: "a", image_size: 0x3000, room: 0x2000 }));
}

#[test]
fn image_outside_memory() {
    let mut v = vm("a", 1, &[0], &MEM_A);
    v.image.load_ipa = 0x1000;
    assert_eq!(check(&[v]), Err(ConfigError::ImageOutsideMemory { vm: "a", load_ipa: 0x1000 }));
}

#[test]
fn entry_outside_image() {
    let mut v = vm("a", 1, &[0], &MEM_A);
    v.image.entry_ipa = 0x4000_2000;
    assert_eq!(check(&[v]), Err(ConfigError::EntryOutsideImage { vm: "a", entry_ipa: 0x4000_2000 }));
}

#[test]
fn dtb_over_the_image() {
    let mut v = vm("a", 1, &[0], &MEM_A);
    v.dtb_ipa = 0x4000_0800;
    assert!(matches!(check(&[v]), Err(ConfigError::DtbPlacement { vm: "a", .. })));
}

#[test]
fn too_many_vms() {
    let many: std::vec::Vec<Vm<'_>> = (0..256u16).map(|i| vm("x", i + 1, &[0], &MEM_A)).collect();
    assert_eq!(check(&many), Err(ConfigError::TooManyVms { count: 256 }));
}

// Passthrough devices: QEMU virt's virtio-mmio transports (0x200 apart, trap-and-forward)
// and its pl031 RTC (a page of its own, mapped).
const BLK_SPIS: [u32; 1] = [79];
const RTC_SPIS: [u32; 1] = [34];
const BLK: Device<'static> =
    Device { ipa: 0x0a00_3e00, pa: 0x0a00_3e00, size: 0x200, access: DeviceAccess::Trap, spis: &BLK_SPIS, reset_writes: &[] };
const RTC: Device<'static> =
    Device { ipa: 0x0901_0000, pa: 0x0901_0000, size: 0x1000, access: DeviceAccess::Map, spis: &RTC_SPIS, reset_writes: &[] };

#[test]
fn devices_pass() {
    let mut a = vm("a", 1, &[0], &MEM_A);
    let mut b = vm("b", 2, &[1], &MEM_B);
    let a_devices = [BLK];
    a.devices = &a_devices;
    let b_devices = [RTC];
    b.devices = &b_devices;
    assert_eq!(check(&[a, b]), Ok(()));
}

#[test]
fn device_given_to_two_vms() {
    let mut a = vm("a", 1, &[0], &MEM_A);
    let mut b = vm("b", 2, &[1], &MEM_B);
    let a_devices = [BLK];
    a.devices = &a_devices;
    let b_devices = [BLK];
    b.devices = &b_devices;
    let vms = [a, b];
    let err = check(&vms).unwrap_err();
    assert_eq!(
        err,
        ConfigError::DeviceAssignedTwice {
            first: "a",
            first_region: BLK.pa_range(),
            second: "b",
            second_region: BLK.pa_range()
        }
    );
    assert!(err.to_string().contains("/vms/b") && err.to_string().contains("/vms/a"));
}

#[test]
fn device_listed_twice_in_one_vm() {
    let mut a = vm("a", 1, &[0], &MEM_A);
    let a_devices = [RTC, RTC];
    a.devices = &a_devices;
    assert!(matches!(check(&[a]), Err(ConfigError::DeviceAssignedTwice { first: "a", second: "a", .. })));
}

#[test]
fn mapped_device_not_page_aligned() {
    let mut a = vm("a", 1, &[0], &MEM_A);
    let a_devices = [Device { access: DeviceAccess::Map, ..BLK }];
    a.devices = &a_devices;
    assert_eq!(check(&[a]), Err(ConfigError::DeviceNotPageAligned { vm: "a", pa: 0x0a00_3e00, size: 0x200 }));
}

#[test]
fn empty_device_window() {
    let mut a = vm("a", 1, &[0], &MEM_A);
    let a_devices = [Device { size: 0, ..RTC }];
    a.devices = &a_devices;
    assert_eq!(check(&[a]), Err(ConfigError::BadDeviceRegion { vm: "a", pa: 0x0901_0000, size: 0 }));
}

#[test]
fn device_in_board_ram() {
    let mut a = vm("a", 1, &[0], &MEM_A);
    let a_devices = [Device { pa: 0x7000_0000, ipa: 0x1000_0000, ..RTC }];
    a.devices = &a_devices;
    assert!(matches!(check(&[a]), Err(ConfigError::DeviceInRam { vm: "a", .. })));
}

#[test]
fn device_over_the_hypervisors_uart() {
    let mut a = vm("a", 1, &[0], &MEM_A);
    let a_devices = [Device { pa: 0x0900_0000, ipa: 0x0a00_0000, ..RTC }];
    a.devices = &a_devices;
    assert!(matches!(check(&[a]), Err(ConfigError::DeviceOfHypervisor { vm: "a", .. })));
}

#[test]
fn device_ipa_over_the_vms_ram() {
    let mut a = vm("a", 1, &[0], &MEM_A);
    let a_devices = [Device { ipa: 0x4000_0000, ..RTC }];
    a.devices = &a_devices;
    assert!(matches!(check(&[a]), Err(ConfigError::IpaOverlap { vm: "a", .. })));
}

#[test]
fn device_ipa_over_the_console_and_vgic() {
    let mut a = vm("a", 1, &[0], &MEM_A);
    let a_devices = [Device { ipa: 0x0900_0000, ..RTC }];
    a.devices = &a_devices;
    assert!(matches!(check(&[a]), Err(ConfigError::IpaOverlap { vm: "a", .. })));
    let mut b = vm("b", 1, &[0], &MEM_A);
    let b_devices = [Device { ipa: 0x0800_0000, ..RTC }];
    b.devices = &b_devices;
    assert!(matches!(check(&[b]), Err(ConfigError::IpaOverlap { vm: "b", .. })));
}

#[test]
fn device_irq_not_an_spi() {
    let mut a = vm("a", 1, &[0], &MEM_A);
    let a_devices = [Device { spis: &[27], ..RTC }];
    a.devices = &a_devices;
    assert_eq!(check(&[a]), Err(ConfigError::DeviceIrqNotSpi { vm: "a", intid: 27 }));
}

#[test]
fn device_irq_of_the_hypervisors_uart() {
    let mut a = vm("a", 1, &[0], &MEM_A);
    a.console = None;
    let a_devices = [Device { spis: &[33], ..RTC }];
    a.devices = &a_devices;
    assert_eq!(check(&[a]), Err(ConfigError::SpiOfHypervisor { vm: "a", intid: 33 }));
}

#[test]
fn spi_owned_by_two_vms() {
    let mut a = vm("a", 1, &[0], &MEM_A);
    let mut b = vm("b", 2, &[1], &MEM_B);
    let a_devices = [BLK];
    a.devices = &a_devices;
    let b_devices = [Device { spis: &BLK_SPIS, ..RTC }];
    b.devices = &b_devices;
    let vms = [a, b];
    let err = check(&vms).unwrap_err();
    assert_eq!(err, ConfigError::SpiOwnedTwice { intid: 79, first: "a", second: "b" });
    assert!(err.to_string().contains("SPI INTID 79 is already owned by /vms/a"));
}

#[test]
fn spi_of_a_device_and_the_console() {
    let mut a = vm("a", 1, &[0], &MEM_A);
    a.console = Some(Console { ipa: 0x0900_0000, intid: 34 });
    let a_devices = [RTC];
    a.devices = &a_devices;
    assert_eq!(check(&[a]), Err(ConfigError::SpiOwnedTwice { intid: 34, first: "a", second: "a" }));
}

#[test]
fn too_many_spis() {
    static MANY: [u32; 40] = {
        let mut spis = [0; 40];
        let mut i = 0;
        while i < 40 {
            spis[i] = 100 + i as u32;
            i += 1;
        }
        spis
    };
    let mut a = vm("a", 1, &[0], &MEM_A);
    let a_devices = [Device { spis: &MANY, ..RTC }];
    a.devices = &a_devices;
    assert_eq!(check(&[a]), Err(ConfigError::TooManySpis { vm: "a", count: 41, max: MAX_VM_SPIS }));
}

#[test]
fn reset_writes_inside_the_window_pass() {
    let writes = [ResetWrite { offset: 0x70, value: 0 }, ResetWrite { offset: 0x1fc, value: 1 }];
    let a_devices = [Device { reset_writes: &writes, ..BLK }];
    let a = Vm { devices: &a_devices, ..vm("a", 1, &[0], &MEM_A) };
    assert_eq!(check(&[a]), Ok(()));
}

#[test]
fn reset_write_outside_the_window() {
    // 0x200 is the first byte past a virtio-mmio transport's window.
    let writes = [ResetWrite { offset: 0x200, value: 0 }];
    let a_devices = [Device { reset_writes: &writes, ..BLK }];
    let vms = [Vm { devices: &a_devices, ..vm("a", 1, &[0], &MEM_A) }];
    let err = check(&vms).unwrap_err();
    assert_eq!(err, ConfigError::BadResetWrite { vm: "a", pa: 0x0a00_3e00, size: 0x200, offset: 0x200 });
    assert_eq!(
        err.to_string(),
        "/vms/a: device window 0xa003e00 size 0x200: reset write at offset 0x200 is not a 4-byte aligned register inside the window"
    );
}

#[test]
fn reset_write_unaligned_or_wrapping() {
    for offset in [0x72, u64::MAX - 1] {
        let writes = [ResetWrite { offset, value: 0 }];
        let a_devices = [Device { reset_writes: &writes, ..BLK }];
        let a = Vm { devices: &a_devices, ..vm("a", 1, &[0], &MEM_A) };
        assert_eq!(check(&[a]), Err(ConfigError::BadResetWrite { vm: "a", pa: 0x0a00_3e00, size: 0x200, offset }));
    }
}

const WATCHDOG: Watchdog = Watchdog { period_ms: 500, first_ms: 2000, action: ExitAction::Restart };

#[test]
fn a_watchdog_passes() {
    let a = Vm { watchdog: Some(WATCHDOG), ..vm("a", 1, &[0], &MEM_A) };
    let longest = Watchdog { period_ms: crate::MAX_WATCHDOG_MS, first_ms: 1, ..WATCHDOG };
    let b = Vm { watchdog: Some(longest), ..vm("b", 2, &[1], &MEM_B) };
    assert_eq!(check(&[a, b]), Ok(()));
}

#[test]
fn watchdog_period_zero() {
    let vms = [Vm { watchdog: Some(Watchdog { period_ms: 0, ..WATCHDOG }), ..vm("a", 1, &[0], &MEM_A) }];
    let err = check(&vms).unwrap_err();
    assert_eq!(err, ConfigError::BadWatchdogPeriod { vm: "a", property: "watchdog-ms", ms: 0 });
    assert_eq!(err.to_string(), "/vms/a: watchdog-ms = <0> is not a period of 1..=3600000 ms");
}

#[test]
fn watchdog_first_period_absurd() {
    let first_ms = crate::MAX_WATCHDOG_MS + 1;
    let b = Vm { watchdog: Some(Watchdog { first_ms, ..WATCHDOG }), ..vm("b", 2, &[1], &MEM_B) };
    let vms = [vm("a", 1, &[0], &MEM_A), b];
    let err = check(&vms).unwrap_err();
    assert_eq!(err, ConfigError::BadWatchdogPeriod { vm: "b", property: "watchdog-first-ms", ms: first_ms });
}

// ---- CPU pools and RTDS (`sched.rs`) ----

use crate::{CpuPool, RtdsParams, Scheduler};

const MEM_C: [MemoryRegion; 1] = [MemoryRegion { ipa: 0x4000_0000, pa: 0x4400_0000, size: 16 * MIB }];
const MEM_D: [MemoryRegion; 1] = [MemoryRegion { ipa: 0x4000_0000, pa: 0x4500_0000, size: 16 * MIB }];
const POOLS: [CpuPool<'static>; 2] = [
    CpuPool { name: "main", cpus: &[0, 1], scheduler: Scheduler::Null },
    CpuPool { name: "rt", cpus: &[2, 3], scheduler: Scheduler::Rtds },
];

fn rt_vm<'a>(name: &'a str, vmid: u16, cpus: &'a [u32], memory: &'a [MemoryRegion], budget_us: u32, period_us: u32) -> Vm<'a> {
    Vm {
        wfi: crate::WfiPolicy::Trap,
        rtds: Some(RtdsParams { budget_us, period_us, extratime: false }),
        ..vm(name, vmid, cpus, memory)
    }
}

fn check_pools<'a>(pools: &'a [CpuPool<'a>], vms: &'a [Vm<'a>]) -> Result<(), ConfigError<'a>> {
    validate(&board(), &System { board: "test-board", hv_region: HV, vms, pools })
}

#[test]
fn rtds_pool_shared_by_three_vms_at_90_percent() {
    let vms = [
        vm("main", 1, &[0, 1], &MEM_A),
        rt_vm("a", 2, &[2], &MEM_B, 2000, 10_000),
        rt_vm("b", 3, &[2], &MEM_C, 3000, 10_000),
        rt_vm("c", 4, &[2], &MEM_D, 4000, 10_000),
    ];
    assert_eq!(check_pools(&POOLS, &vms), Ok(()));
}

#[test]
fn exactly_full_cpu_with_thirds_is_schedulable() {
    // 1/3 + 1/3 + 1/3 = 1 exactly: a test rounded to ppm would refuse it.
    let vms = [
        rt_vm("a", 1, &[2], &MEM_A, 1000, 3000),
        rt_vm("b", 2, &[2], &MEM_B, 1000, 3000),
        rt_vm("c", 3, &[2], &MEM_C, 1000, 3000),
    ];
    assert_eq!(check_pools(&POOLS, &vms), Ok(()));
}

#[test]
fn cpu_overloaded_names_the_vm_that_tips_it() {
    let vms = [
        rt_vm("a", 1, &[2], &MEM_A, 5000, 10_000),
        rt_vm("b", 2, &[3], &MEM_B, 9000, 10_000),
        rt_vm("c", 3, &[2], &MEM_C, 1001, 2000),
    ];
    let err = check_pools(&POOLS, &vms).unwrap_err();
    assert_eq!(err, ConfigError::CpuOverloaded { vm: "c", pool: "rt", cpu: 2, load_ppm: 1_000_500 });
    assert_eq!(
        err.to_string(),
        "/vms/c: CPU 2 of /cpupools/rt would be loaded to 1.000500 (sum of budget/period > 1): not schedulable under partitioned EDF"
    );
}

#[test]
fn pool_load_is_checked_per_cpu() {
    // 1.2 on a two-CPU pool is below its CPU count, but partitioned EDF needs each CPU <= 1.
    let vms = [rt_vm("a", 1, &[2], &MEM_A, 600, 1000), rt_vm("b", 2, &[2], &MEM_B, 600, 1000)];
    assert!(matches!(check_pools(&POOLS, &vms), Err(ConfigError::CpuOverloaded { vm: "b", cpu: 2, .. })));
}

#[test]
fn budget_exceeds_period() {
    let vms = [rt_vm("a", 1, &[2], &MEM_A, 1001, 1000)];
    let err = check_pools(&POOLS, &vms).unwrap_err();
    assert_eq!(err, ConfigError::BudgetExceedsPeriod { vm: "a", budget_us: 1001, period_us: 1000 });
    assert_eq!(err.to_string(), "/vms/a: budget 1001 us exceeds its period 1000 us");
}

#[test]
fn bad_rtds_params() {
    for (budget, period) in [(0, 1000), (10, 99), (10, 10_000_001)] {
        let vms = [rt_vm("a", 1, &[2], &MEM_A, budget, period)];
        assert_eq!(
            check_pools(&POOLS, &vms),
            Err(ConfigError::BadRtdsParams { vm: "a", budget_us: budget, period_us: period })
        );
    }
}

#[test]
fn null_pool_with_two_vcpus() {
    let vms = [vm("a", 1, &[0], &MEM_A), vm("b", 2, &[0], &MEM_B)];
    let err = check_pools(&POOLS, &vms).unwrap_err();
    assert_eq!(err, ConfigError::CpuAssignedTwice { cpu: 0, first: "a", second: "b" });
}

#[test]
fn two_vcpus_of_one_vm_on_one_rtds_cpu() {
    let vms = [rt_vm("a", 1, &[2, 2], &MEM_A, 100, 1000)];
    assert_eq!(check_pools(&POOLS, &vms), Err(ConfigError::CpuAssignedTwice { cpu: 2, first: "a", second: "a" }));
}

#[test]
fn vcpu_in_no_pool() {
    let pools = [CpuPool { name: "rt", cpus: &[2], scheduler: Scheduler::Rtds }];
    let vms = [vm("a", 1, &[0, 1], &MEM_A)];
    let err = check_pools(&pools, &vms).unwrap_err();
    assert_eq!(err, ConfigError::VcpuInNoPool { vm: "a", vcpu: 0, cpu: 0 });
    assert_eq!(err.to_string(), "/vms/a: vCPU 0 runs on CPU 0, which is in no CPU pool");
}

#[test]
fn rtds_params_missing() {
    let vms = [Vm { wfi: crate::WfiPolicy::Trap, ..vm("a", 1, &[3], &MEM_A) }];
    assert_eq!(check_pools(&POOLS, &vms), Err(ConfigError::RtdsParamsMissing { vm: "a", cpu: 3 }));
}

#[test]
fn rtds_params_on_null_cpu() {
    let vms = [rt_vm("a", 1, &[1], &MEM_A, 100, 1000)];
    assert_eq!(check_pools(&POOLS, &vms), Err(ConfigError::RtdsParamsOnNullCpu { vm: "a", cpu: 1 }));
    // Without /cpupools every CPU is null-scheduled.
    assert_eq!(check(&vms), Err(ConfigError::RtdsParamsOnNullCpu { vm: "a", cpu: 1 }));
}

#[test]
fn rtds_needs_trapped_wfi() {
    let vms = [Vm { wfi: crate::WfiPolicy::Native, ..rt_vm("a", 1, &[2], &MEM_A, 100, 1000) }];
    assert_eq!(check_pools(&POOLS, &vms), Err(ConfigError::RtdsNeedsTrappedWfi { vm: "a" }));
}

#[test]
fn empty_pool() {
    let pools = [CpuPool { name: "rt", cpus: &[], scheduler: Scheduler::Rtds }];
    assert_eq!(check_pools(&pools, &[vm("a", 1, &[0], &MEM_A)]), Err(ConfigError::EmptyPool { pool: "rt" }));
}

#[test]
fn pool_cpu_not_on_board() {
    let pools = [CpuPool { name: "rt", cpus: &[4], scheduler: Scheduler::Rtds }];
    assert_eq!(
        check_pools(&pools, &[vm("a", 1, &[0], &MEM_A)]),
        Err(ConfigError::PoolCpuNotOnBoard { pool: "rt", cpu: 4, board_cpus: 4 })
    );
}

#[test]
fn cpu_in_two_pools() {
    let pools = [
        CpuPool { name: "a", cpus: &[0, 1], scheduler: Scheduler::Null },
        CpuPool { name: "b", cpus: &[1], scheduler: Scheduler::Rtds },
    ];
    let vms = [vm("x", 1, &[0], &MEM_A)];
    let err = check_pools(&pools, &vms).unwrap_err();
    assert_eq!(err, ConfigError::CpuInTwoPools { cpu: 1, first: "a", second: "b" });
    assert_eq!(err.to_string(), "/cpupools/b: CPU 1 is already in /cpupools/a");
    let twice = [CpuPool { name: "a", cpus: &[2, 2], scheduler: Scheduler::Null }];
    assert_eq!(
        check_pools(&twice, &[vm("x", 1, &[2], &MEM_A)]),
        Err(ConfigError::CpuInTwoPools { cpu: 2, first: "a", second: "a" })
    );
}

#[test]
fn too_many_vcpus_on_one_cpu() {
    let mems: [[MemoryRegion; 1]; 9] =
        core::array::from_fn(|i| [MemoryRegion { ipa: 0x4000_0000, pa: 0x4200_0000 + i as u64 * 16 * MIB, size: 16 * MIB }]);
    let names = ["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8"];
    let vms: [Vm<'_>; 9] = core::array::from_fn(|i| rt_vm(names[i], i as u16 + 1, &[2], &mems[i], 100, 1000));
    assert_eq!(
        check_pools(&POOLS, &vms),
        Err(ConfigError::TooManyVcpusOnCpu { vm: "v8", cpu: 2, max: crate::MAX_VCPUS_PER_CPU })
    );
}

fn direct(vm: Vm<'_>) -> Vm<'_> {
    Vm { interrupt_mode: crate::InterruptMode::Direct, ..vm }
}

#[test]
fn a_direct_vm_on_its_own_cpus_passes() {
    assert_eq!(check(&[vm("a", 1, &[0], &MEM_A), direct(vm("rt", 2, &[1, 2], &MEM_B))]), Ok(()));
}

#[test]
fn direct_needs_group0_from_nonsecure() {
    let vms = [vm("a", 1, &[0], &MEM_A), direct(vm("rt", 2, &[1], &MEM_B))];
    let mut secure = board();
    secure.gic.group0_nonsecure = false;
    let system = System { board: "test-board", hv_region: HV, vms: &vms, pools: &[] };
    let err = validate(&secure, &system).unwrap_err();
    assert_eq!(err, ConfigError::DirectNeedsGroup0 { vm: "rt" });
    assert!(err.to_string().starts_with("/vms/rt: interrupt-mode = \"direct\" needs a GICv3"));
    let mut v2 = board();
    v2.gic.version = GicVersion::V2;
    assert_eq!(validate(&v2, &system), Err(ConfigError::DirectNeedsGroup0 { vm: "rt" }));
}

#[test]
fn direct_cpu_shared_in_an_rtds_pool() {
    let vms = [direct(rt_vm("rt", 1, &[2], &MEM_A, 100, 1000))];
    let err = check_pools(&POOLS, &vms).unwrap_err();
    assert_eq!(err, ConfigError::DirectCpuShared { vm: "rt", cpu: 2 });
    assert_eq!(
        err.to_string(),
        "/vms/rt: interrupt-mode = \"direct\" needs CPUs the VM owns alone, but CPU 2 is in an rtds pool"
    );
}

#[test]
fn direct_on_the_console_cpu() {
    let vms = [direct(vm("rt", 1, &[1, 0], &MEM_A))];
    let err = check(&vms).unwrap_err();
    assert_eq!(err, ConfigError::DirectOnConsoleCpu { vm: "rt", cpu: 0 });
    assert!(err.to_string().contains("CPU 0, which takes the console UART's interrupt"));
}

#[test]
fn direct_with_trapped_wfi() {
    let vms = [Vm { wfi: crate::WfiPolicy::Trap, ..direct(vm("rt", 1, &[1], &MEM_A)) }];
    let err = check(&vms).unwrap_err();
    assert_eq!(err, ConfigError::DirectTrapsWfi { vm: "rt" });
    assert!(err.to_string().contains("needs wfi = \"native\""));
}

#[test]
fn direct_with_a_watchdog() {
    let watchdog = Some(Watchdog { period_ms: 100, first_ms: 100, action: ExitAction::Restart });
    let vms = [Vm { watchdog, ..direct(vm("rt", 1, &[1], &MEM_A)) }];
    let err = check(&vms).unwrap_err();
    assert_eq!(err, ConfigError::DirectWithWatchdog { vm: "rt" });
    assert!(err.to_string().contains("ICC_AP1R0_EL1"));
    // The same VM in virtual mode may have one.
    assert_eq!(check(&[Vm { watchdog, ..vm("rt", 1, &[1], &MEM_A) }]), Ok(()));
}
