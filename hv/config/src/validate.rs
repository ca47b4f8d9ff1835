//! The checks a system description must pass before it becomes an image.
//!
//! The build tool runs them on what it parsed, before it writes the same values out as the
//! image's static tables; the hypervisor does not run them again at boot (docs/design.md). They stop at the first error, in a fixed order, so the same bad input gives
//! the same message every time.

use crate::{Board, ConfigError, MemRange, System, Vm};

/// Most VMs one system may hold: VMIDs are 8 bits (VTCR_EL2.VS = 0) and 0 is not used.
pub const MAX_VMS: usize = 255;

const BLOCK_2M: u64 = 2 << 20;

/// Most SPIs one VM's vGIC holds (its console's and its devices'); the hypervisor sizes its
/// vGICs with it.
pub const MAX_VM_SPIS: usize = 32;

/// GIC INTIDs of SPIs (IHI 0069 2.2.1).
const SPI_INTIDS: core::ops::RangeInclusive<u32> = 32..=1019;

/// Checks `system` against `board`. The first problem found is returned.
pub fn validate<'a>(board: &Board<'a>, system: &System<'a>) -> Result<(), ConfigError<'a>> {
    if system.board != board.name {
        return Err(ConfigError::BoardMismatch { system: system.board, board: board.name });
    }
    let hv = system.hv_region;
    let hv_ok = hv.size != 0
        && hv.base.is_multiple_of(BLOCK_2M)
        && hv.size.is_multiple_of(BLOCK_2M)
        && board.ram.iter().any(|bank| bank.contains_range(&hv));
    if !hv_ok {
        return Err(ConfigError::HypervisorRegionInvalid { region: hv });
    }
    if system.vms.is_empty() {
        return Err(ConfigError::NoVms);
    }
    if system.vms.len() > MAX_VMS {
        return Err(ConfigError::TooManyVms { count: system.vms.len() });
    }
    crate::sched::check_pools(board, system)?;
    for (i, vm) in system.vms.iter().enumerate() {
        let earlier = &system.vms[..i];
        if earlier.iter().any(|other| other.name == vm.name) {
            return Err(ConfigError::DuplicateVmName { name: vm.name });
        }
        if vm.vmid == 0 || earlier.iter().any(|other| other.vmid == vm.vmid) {
            return Err(ConfigError::BadVmid { vm: vm.name, vmid: vm.vmid });
        }
        check_cpus(board, system, earlier, vm)?;
        crate::direct::check_direct(board, system, vm)?;
        crate::sched::check_vm(system, vm)?;
        check_memory(board, hv, earlier, vm)?;
        check_ipa_space(board, vm)?;
        check_image(vm)?;
        check_initrd(vm)?;
        check_devices(board, earlier, vm)?;
        check_watchdog(vm)?;
    }
    crate::sched::check_load(system)
}

/// A watchdog's periods are at least 1 ms and at most [`crate::MAX_WATCHDOG_MS`].
fn check_watchdog<'a>(vm: &Vm<'a>) -> Result<(), ConfigError<'a>> {
    let Some(watchdog) = vm.watchdog else {
        return Ok(());
    };
    let periods = [("watchdog-ms", watchdog.period_ms), ("watchdog-first-ms", watchdog.first_ms)];
    for (property, ms) in periods {
        if ms == 0 || ms > crate::MAX_WATCHDOG_MS {
            return Err(ConfigError::BadWatchdogPeriod { vm: vm.name, property, ms });
        }
    }
    Ok(())
}

/// Passed-through devices: sane, aligned when mapped, not RAM, not the hypervisor's, clear of
/// the VM's other IPA ranges, each window and each SPI owned once.
fn check_devices<'a>(board: &Board<'a>, earlier: &[Vm<'a>], vm: &Vm<'a>) -> Result<(), ConfigError<'a>> {
    let vgic = vm.vgic_frames(board);
    let console = vm.console.map(|c| MemRange::new(c.ipa, crate::PAGE_SIZE));
    let mut spi_count = usize::from(vm.console.is_some());
    for (j, device) in vm.devices.iter().enumerate() {
        let (pa, ipa) = (device.pa_range(), device.ipa_range());
        if device.size == 0 || pa.end().is_none() || ipa.end().is_none() {
            return Err(ConfigError::BadDeviceRegion { vm: vm.name, pa: device.pa, size: device.size });
        }
        if device.access == crate::DeviceAccess::Map && (!pa.is_page_aligned() || !ipa.is_page_aligned()) {
            return Err(ConfigError::DeviceNotPageAligned { vm: vm.name, pa: device.pa, size: device.size });
        }
        if board.ram.iter().any(|bank| bank.overlaps(&pa)) {
            return Err(ConfigError::DeviceInRam { vm: vm.name, region: pa });
        }
        let hv_uart = MemRange::new(board.uart.base, board.uart.size);
        if [hv_uart, board.gic.gicd, board.gic.gicr].iter().chain(board.gic.its.iter()).any(|r| r.overlaps(&pa)) {
            return Err(ConfigError::DeviceOfHypervisor { vm: vm.name, region: pa });
        }
        for taken in [Some(vgic.gicd), Some(vgic.gicr), console].into_iter().flatten() {
            if taken.overlaps(&ipa) {
                return Err(ConfigError::IpaOverlap { vm: vm.name, first: ipa, second: taken });
            }
        }
        if let Some(region) = vm.memory.iter().find(|r| r.ipa_range().overlaps(&ipa)) {
            return Err(ConfigError::IpaOverlap { vm: vm.name, first: region.ipa_range(), second: ipa });
        }
        for other in &vm.devices[..j] {
            if other.pa_range().overlaps(&pa) {
                return Err(ConfigError::DeviceAssignedTwice {
                    first: vm.name,
                    first_region: other.pa_range(),
                    second: vm.name,
                    second_region: pa,
                });
            }
            if other.ipa_range().overlaps(&ipa) {
                return Err(ConfigError::IpaOverlap { vm: vm.name, first: other.ipa_range(), second: ipa });
            }
        }
        for owner in earlier {
            if let Some(theirs) = owner.devices.iter().find(|d| d.pa_range().overlaps(&pa)) {
                return Err(ConfigError::DeviceAssignedTwice {
                    first: owner.name,
                    first_region: theirs.pa_range(),
                    second: vm.name,
                    second_region: pa,
                });
            }
        }
        for write in device.reset_writes {
            let inside = write.offset.checked_add(4).is_some_and(|end| end <= device.size);
            if !write.offset.is_multiple_of(4) || !inside {
                return Err(ConfigError::BadResetWrite { vm: vm.name, pa: device.pa, size: device.size, offset: write.offset });
            }
        }
        for (k, &intid) in device.spis.iter().enumerate() {
            if !SPI_INTIDS.contains(&intid) {
                return Err(ConfigError::DeviceIrqNotSpi { vm: vm.name, intid });
            }
            if intid == board.uart.intid {
                return Err(ConfigError::SpiOfHypervisor { vm: vm.name, intid });
            }
            let in_this_vm = vm.console.is_some_and(|c| c.intid == intid)
                || device.spis[..k].contains(&intid)
                || vm.devices[..j].iter().any(|d| d.spis.contains(&intid));
            if in_this_vm {
                return Err(ConfigError::SpiOwnedTwice { intid, first: vm.name, second: vm.name });
            }
            // Consoles' SPIs are virtual: only another VM's *device* SPI is a physical owner.
            if let Some(owner) = earlier.iter().find(|o| o.devices.iter().any(|d| d.spis.contains(&intid))) {
                return Err(ConfigError::SpiOwnedTwice { intid, first: owner.name, second: vm.name });
            }
        }
        spi_count += device.spis.len();
    }
    if spi_count > MAX_VM_SPIS {
        return Err(ConfigError::TooManySpis { vm: vm.name, count: spi_count, max: MAX_VM_SPIS });
    }
    Ok(())
}

/// CPUs exist and are given once, except that an RTDS CPU is shared by the vCPUs of several
/// VMs (still never two vCPUs of one VM: that would serialise the VM's own parallelism).
fn check_cpus<'a>(board: &Board<'a>, system: &System<'a>, earlier: &[Vm<'a>], vm: &Vm<'a>) -> Result<(), ConfigError<'a>> {
    if vm.cpus.is_empty() {
        return Err(ConfigError::NoCpus { vm: vm.name });
    }
    for (j, &cpu) in vm.cpus.iter().enumerate() {
        if cpu as usize >= board.cpus.len() {
            return Err(ConfigError::CpuNotOnBoard { vm: vm.name, cpu, board_cpus: board.cpus.len() });
        }
        if vm.cpus[..j].contains(&cpu) {
            return Err(ConfigError::CpuAssignedTwice { cpu, first: vm.name, second: vm.name });
        }
        let shared = system.scheduler_of(cpu) == crate::Scheduler::Rtds;
        if !shared && let Some(owner) = earlier.iter().find(|other| other.cpus.contains(&cpu)) {
            return Err(ConfigError::CpuAssignedTwice { cpu, first: owner.name, second: vm.name });
        }
    }
    Ok(())
}

fn check_memory<'a>(
    board: &Board<'a>,
    hv: MemRange,
    earlier: &[Vm<'a>],
    vm: &Vm<'a>,
) -> Result<(), ConfigError<'a>> {
    if vm.memory.is_empty() {
        return Err(ConfigError::NoMemory { vm: vm.name });
    }
    for (j, region) in vm.memory.iter().enumerate() {
        let bad = ConfigError::BadMemoryRegion { vm: vm.name, ipa: region.ipa, pa: region.pa, size: region.size };
        if region.size == 0 || region.pa_range().end().is_none() || region.ipa_range().end().is_none() {
            return Err(bad);
        }
        if !region.pa_range().is_page_aligned() || region.ipa % crate::PAGE_SIZE != 0 {
            return Err(ConfigError::MemoryNotPageAligned {
                vm: vm.name,
                ipa: region.ipa,
                pa: region.pa,
                size: region.size,
            });
        }
        let pa = region.pa_range();
        if !board.ram.iter().any(|bank| bank.contains_range(&pa)) {
            return Err(ConfigError::MemoryOutsideRam { vm: vm.name, region: pa });
        }
        if pa.overlaps(&hv) {
            return Err(ConfigError::MemoryInHypervisor { vm: vm.name, region: pa, hypervisor: hv });
        }
        for earlier_region in &vm.memory[..j] {
            if earlier_region.pa_range().overlaps(&pa) {
                return Err(ConfigError::MemoryOverlap {
                    first: vm.name,
                    first_region: earlier_region.pa_range(),
                    second: vm.name,
                    second_region: pa,
                });
            }
        }
        for other in earlier {
            if let Some(theirs) = other.memory.iter().find(|r| r.pa_range().overlaps(&pa)) {
                return Err(ConfigError::MemoryOverlap {
                    first: other.name,
                    first_region: theirs.pa_range(),
                    second: vm.name,
                    second_region: pa,
                });
            }
        }
    }
    Ok(())
}

fn check_ipa_space<'a>(board: &Board<'a>, vm: &Vm<'a>) -> Result<(), ConfigError<'a>> {
    let vgic = vm.vgic_frames(board);
    let console = vm.console.map(|c| MemRange::new(c.ipa, crate::PAGE_SIZE));
    for frame in [vgic.gicd, vgic.gicr] {
        if let Some(console) = console
            && console.overlaps(&frame)
        {
            return Err(ConfigError::IpaOverlap { vm: vm.name, first: console, second: frame });
        }
        if let Some(region) = vm.memory.iter().find(|r| r.ipa_range().overlaps(&frame)) {
            return Err(ConfigError::IpaOverlap { vm: vm.name, first: region.ipa_range(), second: frame });
        }
    }
    for (j, region) in vm.memory.iter().enumerate() {
        for earlier_region in &vm.memory[..j] {
            if earlier_region.ipa_range().overlaps(&region.ipa_range()) {
                return Err(ConfigError::IpaOverlap {
                    vm: vm.name,
                    first: earlier_region.ipa_range(),
                    second: region.ipa_range(),
                });
            }
        }
        if let Some(console) = vm.console {
            let frame = MemRange::new(console.ipa, crate::PAGE_SIZE);
            if frame.overlaps(&region.ipa_range()) {
                return Err(ConfigError::IpaOverlap { vm: vm.name, first: region.ipa_range(), second: frame });
            }
        }
    }
    Ok(())
}

/// The RAM region holding `ipa`, and how many bytes of it lie at and after `ipa`.
fn room_after(vm: &Vm<'_>, ipa: u64) -> Option<u64> {
    vm.memory
        .iter()
        .find(|r| r.ipa_range().contains(ipa))
        .and_then(|r| r.ipa_range().end())
        .map(|end| end - ipa)
}

fn check_image<'a>(vm: &Vm<'a>) -> Result<(), ConfigError<'a>> {
    let image = &vm.image;
    let image_size = image.bytes.len() as u64;
    let Some(room) = room_after(vm, image.load_ipa) else {
        return Err(ConfigError::ImageOutsideMemory { vm: vm.name, load_ipa: image.load_ipa });
    };
    if image_size > room {
        return Err(ConfigError::ImageTooLarge { vm: vm.name, image_size, room });
    }
    let loaded = MemRange::new(image.load_ipa, image_size);
    if !loaded.contains(image.entry_ipa) {
        return Err(ConfigError::EntryOutsideImage { vm: vm.name, entry_ipa: image.entry_ipa });
    }
    let dtb_size = vm.dtb.len() as u64;
    let dtb = MemRange::new(vm.dtb_ipa, dtb_size);
    let dtb_fits = room_after(vm, vm.dtb_ipa).is_some_and(|room| dtb_size <= room);
    if !dtb_fits || dtb.overlaps(&loaded) {
        return Err(ConfigError::DtbPlacement { vm: vm.name, dtb_ipa: vm.dtb_ipa, dtb_size });
    }
    Ok(())
}

/// The initrd lies inside one RAM region and clear of the image and the DTB.
fn check_initrd<'a>(vm: &Vm<'a>) -> Result<(), ConfigError<'a>> {
    let Some(initrd) = vm.initrd else {
        return Ok(());
    };
    let range = initrd.ipa_range();
    let fits = room_after(vm, initrd.ipa).is_some_and(|room| range.size <= room);
    let image = MemRange::new(vm.image.load_ipa, vm.image.bytes.len() as u64);
    let dtb = MemRange::new(vm.dtb_ipa, vm.dtb.len() as u64);
    if range.size == 0 || !fits || range.overlaps(&image) || range.overlaps(&dtb) {
        return Err(ConfigError::InitrdPlacement { vm: vm.name, initrd_ipa: initrd.ipa, initrd_size: range.size });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
