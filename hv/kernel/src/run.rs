//! Boot flow and each CPU's run loop under the null scheduler: one vCPU per physical CPU,
//! no scheduler tick. A CPU waits (WFI) until its vCPU is started, runs it until it stops,
//! and handles every exit in between.

use core::sync::atomic::Ordering;

use tessera_arch::guest::{ExitKind, GuestRegs};
use tessera_arch::BootInfo;
use tessera_config::{DeviceAccess, ExitAction, FaultPolicy, MemRange, Vm, WfiPolicy};
use tessera_core::exit::{self, DataAbort, Exit, MmioAccess};
use tessera_core::psci::{self, Outcome, PowerState, SmcccCall, VmView};
use tessera_core::stage2::{S2Attrs, Stage2, Table};
use tessera_core::{inject, vcpu};

use crate::vm::{VmState, MAX_VCPUS, MAX_VMS, VMS};
use crate::{console, vgic, watchdog, Platform, KICK_SGI};

/// Stage-2 tables for every VM, handed out at boot. With 2 MiB blocks a VM needs a root
/// table, one table per GiB of IPA space it uses, and one per unaligned 2 MiB piece.
const STAGE2_TABLES: usize = 64;
pub(crate) static STAGE2_POOL: spin::Mutex<[Table; STAGE2_TABLES]> = spin::Mutex::new([const { Table([0; 512]) }; STAGE2_TABLES]);

/// ICC_SGI1R_EL1 (op0 3, op1 0, CRn 12, CRm 11, op2 5; IHI 0069 12.2.22): EL1 writes trap
/// to EL2 while HCR_EL2.IMO is set.
const ICC_SGI1R_EL1: u16 = exit::sysreg_encoding(3, 0, 12, 11, 5);

/// CNTPCT_EL0 (op0 3, op1 3, CRn 14, CRm 0, op2 1): traps when CNTHCTL_EL2.EL1PCTEN is 0.
const CNTPCT_EL0: u16 = exit::sysreg_encoding(3, 3, 14, 0, 1);

/// How long a restart waits for each of the VM's other CPUs to leave the guest and finish
/// handling its exit. A kick takes microseconds; the second is for emulators whose vCPU
/// threads the host may deschedule (QEMU on a loaded machine). A CPU that needs longer is
/// stuck, and the VM is stopped instead.
const LEAVE_GUEST_TIMEOUT_MS: u64 = 1000;

/// The primary CPU after the MMU is on: checks placement, programs the GIC, builds every VM's
/// stage 2, starts the other CPUs, then becomes CPU 0's run loop. Each VM is scrubbed and
/// loaded by its own boot CPU (`boot_load`), all VMs in parallel.
pub fn boot_primary(platform: &'static Platform, boot: BootInfo) -> ! {
    let system = platform.system;
    let image = MemRange::new(boot.load_base, boot.image_end.saturating_sub(boot.load_base));
    if !system.hv_region.contains_range(&image) {
        defmt::error!(
            "image at {=u64:#x}..{=u64:#x} is outside the hypervisor region {=u64:#x}+{=u64:#x} the system was built for; halting",
            boot.load_base, boot.image_end, system.hv_region.base, system.hv_region.size
        );
        tessera_arch::cpu::halt();
    }
    if system.uses_rtds() && !cfg!(feature = "rtds") {
        // `cargo xtask build` enables the feature for such a system, and its generated tables
        // do not compile without it; a hand-made build still stops here, before any VM runs.
        defmt::error!("system has an rtds CPU pool, but this build has no RTDS scheduler (feature `rtds`); halting");
        tessera_arch::cpu::halt();
    }
    if !watchdog::ENABLED && system.vms.iter().any(|vm| vm.watchdog.is_some()) {
        defmt::error!("a VM has a watchdog, but this build has none (feature `watchdog`); halting");
        tessera_arch::cpu::halt();
    }
    if system.vms.len() > MAX_VMS || system.vms.iter().any(|vm| vm.cpus.len() > MAX_VCPUS) {
        defmt::error!("system has more VMs or vCPUs than this build supports; halting");
        tessera_arch::cpu::halt();
    }
    // The tables were validated by the build tool (`tessera_config::validate`, the same code
    // and the same board constant) before it generated them, and they are read-only here:
    // the boot only checks that they were built for this board (docs/design.md, "Boot flow").
    if system.board != platform.board.name {
        defmt::error!("system tables were built for board {=str}, not {=str}; halting", system.board, platform.board.name);
        tessera_arch::cpu::halt();
    }
    if platform.gicd.init().is_err() {
        defmt::error!("GIC distributor did not respond; halting");
        tessera_arch::cpu::halt();
    }
    if system.vms.iter().any(|vm| vm.interrupt_mode == tessera_config::InterruptMode::Direct) {
        crate::direct::init_distributor(platform);
    }
    console::init(platform);
    tessera_arch::cache::invalidate_guest_tlbs_all();

    let mut pool = STAGE2_POOL.lock();
    // The hypervisor's own memory, which no VM's stage 2 may reach: its region (image,
    // BSS, stacks), the image as loaded, and the stage-2 pool itself.
    let pool_range = (pool.as_ptr() as u64, pool.as_ptr() as u64 + core::mem::size_of_val(&*pool) as u64);
    let hv_region = (system.hv_region.base, system.hv_region.base.saturating_add(system.hv_region.size));
    let own_memory = [hv_region, (boot.load_base, boot.image_end), pool_range];
    let mut next_table = 0;
    for (index, vm) in system.vms.iter().enumerate() {
        let tables = &mut pool[next_table..];
        let pool_pa = tables.as_ptr() as u64;
        match build_stage2(vm, tables, pool_pa, &own_memory) {
            Ok((vttbr, used)) => {
                crate::scrub::record_tables(index, next_table, used);
                next_table += used;
                VMS[index].vttbr.store(vttbr, Ordering::Release);
                // Loading: not stopped (no power-off while it loads), not yet running.
                VMS[index].transition(VmState::Restarting);
            }
            Err(reason) => defmt::error!("VM {=str}: stage 2 not built ({=str}); it will not run", vm.name, reason),
        }
    }
    drop(pool);

    // boot.S gives the primary index 0; the board must agree that it is CPU 0.
    let boot_cpu = tessera_arch::cpu::index();
    let boot_mpidr = tessera_arch::cpu::mpidr();
    if platform.board.cpus.first().map(|desc| desc.mpidr) != Some(boot_mpidr) {
        defmt::error!("booted on MPIDR {=u64:#x}, but the board's CPU 0 is another; halting", boot_mpidr);
        tessera_arch::cpu::halt();
    }
    for (cpu, desc) in platform.board.cpus.iter().enumerate() {
        if cpu == boot_cpu {
            continue;
        }
        if cpu >= tessera_arch::MAX_CPUS {
            defmt::warn!("CPU {=usize} not started: this build supports {=usize} CPUs", cpu, tessera_arch::MAX_CPUS);
            abandon_boot_loads(system, cpu);
            continue;
        }
        let status = tessera_arch::smccc::cpu_on(conduit(platform), desc.mpidr, cpu);
        if status != 0 {
            abandon_boot_loads(system, cpu);
            let used_by = system.vms.iter().find(|vm| vm.cpus.contains(&(cpu as u32)));
            match used_by {
                Some(vm) => defmt::error!("CPU {=usize} did not start (PSCI {=i64}); VM {=str} cannot run on it", cpu, status, vm.name),
                None => defmt::warn!("CPU {=usize} did not start (PSCI {=i64}); no VM uses it", cpu, status),
            }
        }
    }
    cpu_main(platform, boot_cpu)
}

/// A VM whose boot CPU is `cpu`, which did not start, will never be loaded: it is stopped.
fn abandon_boot_loads(system: &tessera_config::System<'_>, cpu: usize) {
    for (index, vm) in system.vms.iter().enumerate() {
        if vm.cpus.first() == Some(&(cpu as u32)) && VMS[index].state() == VmState::Restarting {
            VMS[index].transition(VmState::Stopped);
        }
    }
}

/// At boot, the VM whose boot CPU (its first) this is: scrub and load it here, so that every
/// VM's RAM is scrubbed by its own CPU, in parallel with the others (`first_guest_insn_ms`).
pub(crate) fn boot_load(platform: &Platform, cpu: usize) {
    let system = platform.system;
    for (index, vm) in system.vms.iter().enumerate() {
        if vm.cpus.first() == Some(&(cpu as u32)) && VMS[index].state() == VmState::Restarting {
            start_vm(platform, index);
        }
    }
}

fn conduit(platform: &Platform) -> tessera_arch::smccc::Conduit {
    match platform.board.psci_conduit {
        tessera_config::Conduit::Smc => tessera_arch::smccc::Conduit::Smc,
        tessera_config::Conduit::Hvc => tessera_arch::smccc::Conduit::Hvc,
    }
}

/// Builds `vm`'s stage 2 into `tables` (whose first table is at `pool_pa`): its RAM, Normal
/// memory. The console frame stays unmapped so every access traps. Then walks the result
/// and refuses the VM if any translation reaches a range of `excluded` (the hypervisor's own
/// memory): the validator already keeps VM memory out of it; this checks what was built.
/// Returns VTTBR_EL2 and the number of tables used.
fn build_stage2(
    vm: &Vm<'_>,
    tables: &mut [Table],
    pool_pa: u64,
    excluded: &[(u64, u64)],
) -> Result<(u64, usize), &'static str> {
    let mut stage2 = Stage2::new(tables, pool_pa).map_err(|_| "no stage-2 tables left")?;
    for region in vm.memory {
        stage2
            .map(region.ipa, region.pa, region.size, S2Attrs::NormalRwx)
            .map_err(|_| "memory region cannot be mapped")?;
    }
    // Passed-through devices that own their pages: Device-nGnRE, read/write, never executable.
    for device in vm.devices.iter().filter(|d| d.access == DeviceAccess::Map) {
        stage2
            .map(device.ipa, device.pa, device.size, S2Attrs::DeviceRw)
            .map_err(|_| "device window cannot be mapped")?;
    }
    if excluded.iter().any(|&(start, end)| stage2.first_mapping_into(start, end).is_some()) {
        return Err("it would map hypervisor memory");
    }
    Ok((tessera_core::stage2::vttbr_el2(stage2.root_pa(), vm.vmid as u8), stage2.tables_used()))
}

/// The host-physical range behind `len` bytes at `ipa`, if they lie in one RAM region.
fn ipa_to_pa(vm: &Vm<'_>, ipa: u64, len: u64) -> Option<u64> {
    let wanted = MemRange::new(ipa, len);
    vm.memory
        .iter()
        .find(|region| region.ipa_range().contains_range(&wanted))
        .map(|region| region.pa + (ipa - region.ipa))
}

/// Scrubs the VM's RAM (what it is loaded into now, the rest on first touch: `scrub`) and
/// copies its image, DTB and initrd from the pristine copies in the image.
fn load_vm(index: usize, vm: &Vm<'_>) -> Result<(), &'static str> {
    crate::scrub::scrub_for_load(index, vm)?;
    let image_pa = ipa_to_pa(vm, vm.image.load_ipa, vm.image.bytes.len() as u64).ok_or("image outside RAM")?;
    tessera_arch::phys::copy_to(image_pa, vm.image.bytes).map_err(|_| "image refused")?;
    let dtb_pa = ipa_to_pa(vm, vm.dtb_ipa, vm.dtb.len() as u64).ok_or("DTB outside RAM")?;
    tessera_arch::phys::copy_to(dtb_pa, vm.dtb).map_err(|_| "DTB refused")?;
    if let Some(initrd) = vm.initrd {
        let initrd_pa = ipa_to_pa(vm, initrd.ipa, initrd.bytes.len() as u64).ok_or("initrd outside RAM")?;
        tessera_arch::phys::copy_to(initrd_pa, initrd.bytes).map_err(|_| "initrd refused")?;
    }
    tessera_arch::cache::invalidate_icache_all();
    Ok(())
}

/// Loads VM `index` from its pristine image and starts its boot vCPU.
fn start_vm(platform: &Platform, index: usize) {
    let vm = &platform.system.vms[index];
    let runtime = &VMS[index];
    if let Err(reason) = load_vm(index, vm) {
        defmt::error!("VM {=str}: not loaded ({=str})", vm.name, reason);
        runtime.transition(VmState::Stopped);
        return;
    }
    runtime.uart.lock().reset();
    if !crate::vgic::init(platform, index) {
        runtime.transition(VmState::Stopped);
        return;
    }
    runtime.cntvoff.store(tessera_arch::cpu::counter(), Ordering::Release);
    watchdog::start(vm, index);
    runtime.transition(VmState::Running);
    if runtime.vcpus[0].request_on(vm.image.entry_ipa, vm.dtb_ipa).is_ok() {
        kick_vcpu(platform, vm, 0);
    }
    defmt::info!("VM {=str} started: entry {=u64:#x}, DTB {=u64:#x}", vm.name, vm.image.entry_ipa, vm.dtb_ipa);
}

/// Makes the CPU that runs `vm`'s vCPU `vcpu_index` look at its state (unless it is us).
fn kick_vcpu(platform: &Platform, vm: &Vm<'_>, vcpu_index: usize) {
    let Some(&cpu) = vm.cpus.get(vcpu_index) else { return };
    if cpu as usize == tessera_arch::cpu::index() {
        return;
    }
    if let Some(desc) = platform.board.cpus.get(cpu as usize) {
        if crate::direct::is_direct(vm) {
            crate::direct::kick(desc.mpidr);
        } else {
            tessera_arch::gic_cpu::send_sgi(KICK_SGI, desc.mpidr);
        }
    }
}

/// Stops VM `index` and tells the hypervisor's log why. If no VM is left running, powers
/// the machine off.
fn stop_vm(platform: &Platform, index: usize, why: &str) {
    let vm = &platform.system.vms[index];
    if !VMS[index].transition(VmState::Stopped) {
        return;
    }
    watchdog::stop(index);
    for vcpu_index in 0..vm.cpus.len() {
        kick_vcpu(platform, vm, vcpu_index);
    }
    vgic::release_device_spis(platform, vm);
    reset_devices(vm);
    defmt::info!("VM {=str} stopped: {=str}", vm.name, why);
    console::hv_notice(vm.name, "stopped", why);
    let all_stopped = (0..platform.system.vms.len()).all(|i| VMS[i].state() == VmState::Stopped);
    if all_stopped {
        defmt::info!("every VM has stopped; powering off");
        tessera_arch::smccc::system_off(conduit(platform));
    }
}

/// Runs each passed-through device's reset sequence (`reset-writes`), so a device the guest
/// left running (DMA, interrupts) is quiet while the VM is down and found reset by its next
/// boot. The tables' validator has checked every write lies inside its device's window.
fn reset_devices(vm: &Vm<'_>) {
    for device in vm.devices.iter().filter(|device| !device.reset_writes.is_empty()) {
        defmt::info!("VM {=str}: device {=u64:#x} reset ({=usize} writes)", vm.name, device.pa, device.reset_writes.len());
        for write in device.reset_writes {
            let Some(pa) = device.pa.checked_add(write.offset) else { continue };
            if tessera_arch::mmio::write(pa, 4, u64::from(write.value)).is_err() {
                defmt::warn!("VM {=str}: device reset write to {=u64:#x} refused", vm.name, pa);
            }
        }
    }
}

/// Waits (bounded) until every vCPU of VM `index` other than this CPU's has left the guest
/// and finished handling its exit. False if one did not.
fn wait_for_vcpus_to_leave(platform: &Platform, index: usize) -> bool {
    let vm = &platform.system.vms[index];
    let runtime = &VMS[index];
    let me = tessera_arch::cpu::index();
    for (vcpu_index, &cpu) in vm.cpus.iter().enumerate() {
        kick_vcpu(platform, vm, vcpu_index);
        if cpu as usize == me {
            continue;
        }
        let slot = &runtime.vcpus[vcpu_index];
        let ticks = tessera_arch::cpu::counter_frequency().saturating_mul(LEAVE_GUEST_TIMEOUT_MS) / 1000;
        let deadline = tessera_arch::cpu::counter().saturating_add(ticks);
        while slot.in_guest.load(Ordering::Acquire) {
            if tessera_arch::cpu::counter() >= deadline {
                defmt::error!("VM {=str}: vCPU {=usize} did not leave the guest", vm.name, vcpu_index);
                if crate::direct::is_direct(vm) {
                    // docs/direct-mode.md, "The AP1R hole": the guest can raise its CPU's
                    // running priority above the hypervisor's Group 0 kick.
                    defmt::error!(
                        "VM {=str}: vCPU {=usize} is deaf to the hypervisor's Group 0 kick (a direct guest can hold it off); its CPU stays with it",
                        vm.name, vcpu_index
                    );
                }
                return false;
            }
            core::hint::spin_loop();
        }
    }
    true
}

/// Restarts VM `index`: every vCPU leaves the guest (bounded wait), its devices are reset,
/// RAM is scrubbed and reloaded, the vGIC, console and watchdog are reset, and the boot vCPU
/// starts again. Each CPU of the VM resets its own list registers and virtual timer when it
/// sees the new generation (`leave_generation`). Other VMs are not touched.
fn restart_vm(platform: &Platform, index: usize, why: &str) {
    let vm = &platform.system.vms[index];
    let runtime = &VMS[index];
    if !runtime.transition(VmState::Restarting) {
        return;
    }
    watchdog::stop(index);
    defmt::info!("VM {=str} restarting: {=str}", vm.name, why);
    console::hv_notice(vm.name, "restarting", why);
    if !wait_for_vcpus_to_leave(platform, index) {
        defmt::error!("VM {=str}: not restarted; stopping it instead", vm.name);
        stop_vm(platform, index, "a vCPU did not leave the guest for a restart");
        return;
    }
    tessera_arch::cache::invalidate_guest_tlbs_all();
    vgic::release_device_spis(platform, vm);
    reset_devices(vm);
    start_vm(platform, index);
}

/// This CPU leaves a generation of its vCPU (the VM stopped or is restarting): nothing of
/// the old guest may reach the next one. The list registers are emptied and the virtual
/// interface disabled (the vGIC model was or will be reset; the next flush loads from it),
/// the virtual timer is stopped, and its physical PPI, which may be active (forwarded with
/// the HW bit, the old guest never EOIed it), is deactivated.
pub(crate) fn leave_generation(platform: &Platform) {
    for n in 0..tessera_arch::gic_cpu::list_register_count() {
        tessera_arch::gic_cpu::write_lr(n, 0);
    }
    tessera_arch::gic_cpu::set_virtual_interface(false, false);
    tessera_arch::gic_cpu::set_timer_fast_path(0);
    tessera_arch::guest::disable_virtual_timer();
    tessera_arch::gic_cpu::deactivate(platform.board.timer.virt);
}

/// A CPU's life: set up its GIC interface, then run its vCPU (if any) forever.
pub fn cpu_main(platform: &'static Platform, cpu: usize) -> ! {
    if let Some((vm_index, vcpu_index)) = crate::direct::assignment(platform, cpu) {
        crate::direct::cpu_main(platform, cpu, vm_index, vcpu_index);
    }
    let mpidr = tessera_arch::cpu::mpidr();
    let rtds = platform.system.scheduler_of(cpu as u32) == tessera_config::Scheduler::Rtds;
    // CNTP_CTL_EL0 resets to an UNKNOWN value: silence the watchdog timer before its PPI is
    // enabled below (a watched VM's vCPU 0 arms it when it starts).
    tessera_arch::timer::disarm_physical();
    match (platform.redistributor)(mpidr) {
        Ok(redistributor) => {
            // The virtual timer (forwarded to guests), the maintenance interrupt, and the EL1
            // physical timer (the hypervisor's own: VM watchdogs).
            let mut ppis = (1 << platform.board.timer.virt)
                | (1 << platform.board.gic.maintenance_intid)
                | (1 << platform.board.timer.nonsecure_phys);
            if rtds {
                // The RTDS scheduler's tick: the EL2 physical timer.
                ppis |= 1 << platform.board.timer.hyp_phys;
            }
            let sgis = (1 << KICK_SGI) | (1 << tessera_arch::fatal::HALT_SGI);
            if redistributor.init(sgis | ppis).is_err() {
                defmt::error!("CPU {=usize}: redistributor did not wake", cpu);
            }
        }
        Err(_) => defmt::error!("CPU {=usize}: no redistributor for MPIDR {=u64:#x}", cpu, mpidr),
    }
    tessera_arch::gic_cpu::init_cpu_interface();
    tessera_arch::guest::init_cpu_traps();
    if !tessera_arch::pmu::init_el2_counter() {
        defmt::warn!("CPU {=usize}: no PMU event counter; TESSERA_STATS reads 0", cpu);
    }
    if cpu == tessera_config::CONSOLE_CPU as usize {
        console::enable_input(platform, mpidr);
    }
    boot_load(platform, cpu);
    let assignment = platform.system.vms.iter().enumerate().find_map(|(vm_index, vm)| {
        vm.cpus.iter().position(|&c| c as usize == cpu).map(|vcpu_index| (vm_index, vcpu_index))
    });
    defmt::info!("CPU {=usize} (MPIDR {=u64:#x}) up", cpu, mpidr);
    if rtds {
        #[cfg(feature = "rtds")]
        crate::rtds::run(platform, cpu);
        // Not reached: `boot_primary` refuses an rtds system without the feature.
        #[cfg(not(feature = "rtds"))]
        tessera_arch::cpu::halt();
    }
    if !rtds {
        // One vCPU here for good: the vectors may forward its virtual timer themselves.
        vgic::enable_timer_fast_path();
    }
    let Some((vm_index, vcpu_index)) = assignment else {
        loop {
            tessera_arch::cpu::wait_for_interrupt();
            handle_interrupts(platform, None);
        }
    };
    let vm = &platform.system.vms[vm_index];
    let runtime = &VMS[vm_index];
    let slot = &runtime.vcpus[vcpu_index];
    loop {
        // Idle until this vCPU is asked to start. Interrupts (the console, a kick) wake us.
        let (entry, context) = wait_for_start(vm_index, vcpu_index, || handle_interrupts(platform, None));
        let generation = runtime.generation();
        if vcpu_index == 0 && vm.watchdog.is_some() {
            watchdog::arm_here(vm_index);
        }
        let mut regs = GuestRegs { elr: entry, spsr: vcpu::RESET_SPSR_EL2, ..GuestRegs::default() };
        regs.x[0] = context;
        tessera_arch::guest::reset_el1(vcpu::vmpidr(vcpu_index), vcpu::RESET_SCTLR_EL1);
        tessera_arch::gic_cpu::set_vmcr(0);
        tessera_arch::guest::load_vm(&vm_controls(vm, vm_index, vm.wfi == WfiPolicy::Trap));
        // `in_guest` stays set from before the entry until the exit is handled, so a
        // restart (which waits for it to clear) never races this vCPU's last exit into the
        // VM's fresh vGIC model.
        loop {
            slot.in_guest.store(true, Ordering::Release);
            if tessera_arch::fatal::stopping() {
                tessera_arch::fatal::halt_here();
            }
            if runtime.generation() != generation || slot.power() != PowerState::On {
                if runtime.generation() != generation {
                    leave_generation(platform);
                }
                slot.in_guest.store(false, Ordering::Release);
                break;
            }
            vgic::flush(vm_index, vcpu_index, platform.board.timer.virt);
            let kind = tessera_arch::guest::enter(&mut regs);
            let kick = vgic::sync(vm_index, vcpu_index);
            kick_vcpus(platform, vm_index, kick);
            match kind {
                ExitKind::Synchronous => {
                    if !console_store_fast(vm, vm_index, &mut regs) {
                        handle_sync(platform, vm_index, vcpu_index, &mut regs);
                    }
                }
                ExitKind::Irq | ExitKind::Fiq => handle_interrupts(platform, Some((vm_index, vcpu_index))),
                ExitKind::SError => guest_fault(platform, vm_index, &mut regs, "SError"),
            }
        }
    }
}

/// Idles until vCPU `vcpu_index` of VM `vm_index` is asked to start (PSCI CPU_ON, or its
/// VM's start) while the VM runs; returns its entry point and context. `handle` deals with
/// the interrupts that end each WFI (a kick, the console).
#[inline(always)] // see `vm_controls`
pub(crate) fn wait_for_start(vm_index: usize, vcpu_index: usize, mut handle: impl FnMut()) -> (u64, u64) {
    let runtime = &VMS[vm_index];
    let slot = &runtime.vcpus[vcpu_index];
    loop {
        if runtime.state() == VmState::Running
            && let Some(start) = slot.take_pending()
        {
            return start;
        }
        tessera_arch::cpu::wait_for_interrupt();
        handle();
    }
}

/// VM `vm_index`'s stage 2 and trap controls, for `tessera_arch::guest::load_vm`.
#[inline(always)] // out of line, these two made the rtds image 60 bytes larger
pub(crate) fn vm_controls(vm: &Vm<'_>, vm_index: usize, trap_wfx: bool) -> tessera_arch::guest::VmControls {
    let runtime = &VMS[vm_index];
    tessera_arch::guest::VmControls {
        vtcr: tessera_core::stage2::vtcr_el2(tessera_arch::cpu::parange()),
        vttbr: runtime.vttbr.load(Ordering::Acquire),
        trap_wfx,
        physical_counter: vm.physical_counter,
        cntvoff: runtime.cntvoff.load(Ordering::Acquire),
    }
}

/// A trapped WFI: waits at EL2 (interrupts masked; a pending one still ends WFI) until the
/// vCPU has something to take, or its VM or power state changes (the run loop looks then).
fn wait_for_guest_interrupt(platform: &Platform, vm_index: usize, vcpu_index: usize) {
    let runtime = &VMS[vm_index];
    let generation = runtime.generation();
    let slot = &runtime.vcpus[vcpu_index];
    while !vgic::has_pending_here(vm_index, vcpu_index)
        && runtime.generation() == generation
        && slot.power() == PowerState::On
    {
        tessera_arch::cpu::wait_for_interrupt();
        handle_interrupts(platform, Some((vm_index, vcpu_index)));
    }
}

/// Kicks the CPUs of the vCPUs in `mask` (bit n = vCPU n of VM `vm_index`).
#[inline(always)] // the check, on every exit; the kicks themselves out of line
pub(crate) fn kick_vcpus(platform: &Platform, vm_index: usize, mask: u32) {
    if mask != 0 {
        kick_vcpus_now(platform, vm_index, mask);
    }
}

#[inline(never)]
fn kick_vcpus_now(platform: &Platform, vm_index: usize, mask: u32) {
    let vm = &platform.system.vms[vm_index];
    for vcpu_index in 0..vm.cpus.len().min(32) {
        if mask & (1 << vcpu_index) != 0 {
            kick_vcpu(platform, vm, vcpu_index);
        }
    }
}

/// Acknowledges and handles every pending physical interrupt (bounded). `current` is the
/// vCPU this CPU was running, if it left a guest for this.
pub(crate) fn handle_interrupts(platform: &Platform, current: Option<(usize, usize)>) {
    // One the vectors' fast path acknowledged and left to us comes first.
    let mut stashed = tessera_arch::gic_cpu::take_stashed();
    for _ in 0..64 {
        let intid = stashed.take().unwrap_or_else(tessera_arch::gic_cpu::acknowledge);
        if intid >= tessera_arch::gic_cpu::SPURIOUS - 3 {
            return;
        }
        if intid == tessera_arch::fatal::HALT_SGI {
            // Another CPU failed (fail-stop, `tessera_arch::fatal`): stop here for good.
            tessera_arch::fatal::halt_here();
        }
        tessera_arch::gic_cpu::priority_drop(intid);
        if intid == platform.board.timer.nonsecure_phys {
            // The hypervisor's own timer: a VM watchdog on this CPU. Re-armed or silenced
            // (its level drops) before it is deactivated.
            let expiry = watchdog::on_timer(platform);
            tessera_arch::gic_cpu::deactivate(intid);
            if let Some(expiry) = expiry {
                watchdog_expired(platform, &expiry);
            }
            continue;
        } else if intid == platform.board.timer.virt {
            if let Some((vm_index, vcpu_index)) = current {
                // Forwarded with the HW bit: the guest's EOI deactivates it.
                let kick = vgic::hw_fired(vm_index, vcpu_index, intid);
                kick_vcpus(platform, vm_index, kick);
                continue;
            }
            // No vCPU to take it (the guest stopped with its timer armed): silence it.
            tessera_arch::guest::disable_virtual_timer();
        } else if let Some(vm_index) = spi_owner(platform, intid) {
            // A passed-through device's SPI, routed to the CPU of the vCPU the guest chose.
            // HW-linked: the guest's EOI deactivates it, so it is not deactivated here.
            // (A VM that is not running gets nothing: the SPI is deactivated below.)
            let vm = &platform.system.vms[vm_index];
            let here = tessera_arch::cpu::index() as u32;
            let running = VMS[vm_index].state() == VmState::Running;
            if running && let Some(vcpu_index) = vm.cpus.iter().position(|&cpu| cpu == here) {
                let kick = vgic::hw_fired(vm_index, vcpu_index, intid);
                kick_vcpus(platform, vm_index, kick);
                continue;
            }
        } else if cfg!(feature = "rtds") && intid == platform.board.timer.hyp_phys {
            // The RTDS scheduler's timer (only RTDS CPUs enable it): silence it; the run loop
            // re-arms it after deciding again.
            #[cfg(feature = "rtds")]
            tessera_arch::timer::set_hyp_timer(None);
        } else if intid == platform.board.uart.intid {
            let levels = console::on_uart_interrupt();
            for (vm_index, level) in levels.iter().enumerate() {
                if let (Some(level), Some(vm)) = (level, platform.system.vms.get(vm_index))
                    && let Some(console) = vm.console
                {
                    let kick = vgic::set_level(vm_index, console.intid, *level);
                    kick_vcpus(platform, vm_index, kick);
                }
            }
        }
        // KICK_SGI and the maintenance interrupt need no action: the run loop syncs the
        // list registers and re-reads its vCPU's state after every exit.
        tessera_arch::gic_cpu::deactivate(intid);
    }
}

/// A VM missed its watchdog deadline: apply its `on-watchdog`.
fn watchdog_expired(platform: &Platform, expiry: &watchdog::Expiry) {
    let vm = &platform.system.vms[expiry.vm_index];
    let period_ms = vm.watchdog.map_or(0, |dog| dog.period_ms);
    defmt::warn!(
        "VM {=str}: watchdog expired (period {=u32} ms, noticed {=u64} us after the deadline)",
        vm.name, period_ms, expiry.late_ns / 1000
    );
    match expiry.action {
        ExitAction::Restart => restart_vm(platform, expiry.vm_index, "watchdog expired"),
        ExitAction::Stop => stop_vm(platform, expiry.vm_index, "watchdog expired"),
    }
}

/// The VM that owns physical SPI `intid` through a passed-through device, if any.
fn spi_owner(platform: &Platform, intid: u32) -> Option<usize> {
    if intid < 32 {
        return None;
    }
    platform.system.vms.iter().position(|vm| vm.devices.iter().any(|d| d.spis.contains(&intid)))
}

pub(crate) fn handle_sync(platform: &Platform, vm_index: usize, vcpu_index: usize, regs: &mut GuestRegs) {
    let vm = &platform.system.vms[vm_index];
    match exit::decode(regs.esr, regs.far, regs.hpfar) {
        // RAM not touched since the VM was loaded: scrubbed now, and the fetch retried.
        Exit::InstructionAbort { ipa, external: false, .. } if crate::scrub::on_stage2_fault(vm_index, vm, ipa) => {}
        Exit::DataAbort(abort) => data_abort(platform, vm_index, vcpu_index, regs, &abort),
        Exit::Hvc { .. } => smccc(platform, vm_index, vcpu_index, regs),
        Exit::Smc { .. } => {
            // A trapped SMC leaves ELR at the SMC itself (DDI 0487 D1.10.4).
            regs.elr = regs.elr.wrapping_add(4);
            smccc(platform, vm_index, vcpu_index, regs);
        }
        Exit::SysReg(access) if access.encoding() == CNTPCT_EL0 && access.read => {
            // Only trapped when the VM may not see the physical counter: give it the
            // virtual count instead.
            if access.rt < 31 {
                let offset = VMS[vm_index].cntvoff.load(Ordering::Acquire);
                regs.x[access.rt as usize] = tessera_arch::cpu::counter().wrapping_sub(offset);
            }
            regs.elr = regs.elr.wrapping_add(4);
        }
        Exit::SysReg(access) if access.encoding() == ICC_SGI1R_EL1 && !access.read => {
            let value = if access.rt < 31 { regs.x[access.rt as usize] } else { 0 };
            let targets = vgic::send_sgi(vm_index, vcpu_index, value);
            kick_vcpus(platform, vm_index, targets);
            regs.elr = regs.elr.wrapping_add(4);
        }
        Exit::SysReg(access) => {
            // Trapped by TIDCP/TACR/TSW (HCR_EL2), TDA/TDOSA/TDRA/TPMS/TTRF (MDCR_EL2) or TTA
            // (CPTR_EL2): implementation-defined, auxiliary, debug, profiling and trace
            // registers read as zero and ignore writes; set/way cache maintenance is a no-op
            // (the guest's memory is always coherent: stage 2 makes it Normal write-back).
            if access.read && access.rt < 31 {
                regs.x[access.rt as usize] = 0;
            }
            regs.elr = regs.elr.wrapping_add(4);
        }
        Exit::Wfx { wfe } => {
            regs.elr = regs.elr.wrapping_add(4);
            // A trapped WFE returns at once (nothing else could use this CPU); a trapped WFI
            // waits here until the vCPU has an interrupt to take or is stopped.
            if !wfe {
                wait_for_guest_interrupt(platform, vm_index, vcpu_index);
            }
        }
        Exit::InstructionAbort { ipa, .. } => {
            defmt::warn!("VM {=str}: instruction abort at IPA {=u64:#x}", vm.name, ipa);
            guest_fault(platform, vm_index, regs, "instruction fetch outside its memory");
        }
        Exit::Other { ec, iss } => {
            defmt::warn!("VM {=str}: unhandled exception EC {=u8:#x} ISS {=u32:#x} at {=u64:#x}", vm.name, ec, iss, regs.elr);
            guest_fault(platform, vm_index, regs, "unhandled exception");
        }
    }
}

/// The value a trapped store writes, masked to its width (the zero register reads 0);
/// `None` for a load.
fn store_value(regs: &GuestRegs, access: &MmioAccess) -> Option<u64> {
    access.write.then(|| {
        let value = if access.reg_is_zero() { 0 } else { regs.x[usize::from(access.reg)] };
        exit::mmio_write_value(access, value)
    })
}

/// Finishes an emulated access: a load's value (width-masked, sign-extended as the
/// instruction asks) goes to its register, and the guest resumes after the instruction.
fn complete_access(regs: &mut GuestRegs, access: &MmioAccess, read: Option<u64>) {
    if let Some(raw) = read
        && !access.reg_is_zero()
    {
        regs.x[usize::from(access.reg)] = exit::mmio_read_result(access, raw);
    }
    regs.elr = regs.elr.wrapping_add(4);
}

#[inline(never)] // out of line: about 900 bytes smaller; the console's fast path stays inline
fn data_abort(platform: &Platform, vm_index: usize, vcpu_index: usize, regs: &mut GuestRegs, abort: &DataAbort) {
    let vm = &platform.system.vms[vm_index];
    if let (Some(console), Some(access)) = (vm.console, abort.access) {
        let frame = MemRange::new(console.ipa, tessera_config::PAGE_SIZE);
        if frame.contains(abort.ipa) {
            let offset = abort.ipa - console.ipa;
            let value = store_value(regs, &access).unwrap_or(0);
            match console::guest_access(vm_index, offset, &access, value) {
                Ok((read, level)) => {
                    let kick = vgic::set_level(vm_index, console.intid, level);
                    kick_vcpus(platform, vm_index, kick);
                    return complete_access(regs, &access, read);
                }
                Err(()) => {
                    defmt::warn!("VM {=str}: bad console access at offset {=u64:#x}", vm.name, offset);
                    return guest_fault(platform, vm_index, regs, "bad console access");
                }
            }
        }
    }
    if let (Some(frame), Some(access)) = (vgic::frame_of(platform.board, vm, abort.ipa), abort.access) {
        match vgic::access(platform, vm_index, vcpu_index, frame, access.width, store_value(regs, &access)) {
            Ok((read, kick)) => {
                kick_vcpus(platform, vm_index, kick);
                return complete_access(regs, &access, read);
            }
            Err(error) => {
                defmt::warn!("VM {=str}: bad GIC access at IPA {=u64:#x}: {}", vm.name, abort.ipa, error);
                return guest_fault(platform, vm_index, regs, "bad GIC access");
            }
        }
    }
    if let Some(access) = abort.access
        && let Some(device) = vm
            .devices
            .iter()
            .find(|d| d.access == DeviceAccess::Trap && d.ipa_range().contains(abort.ipa))
    {
        // Trap and forward: the allow-list is the device's own window, whole accesses only.
        let bytes = access.width.bytes();
        let offset = abort.ipa - device.ipa;
        let inside = offset.checked_add(bytes).is_some_and(|end| end <= device.size);
        if inside {
            let pa = device.pa + offset;
            let done = match store_value(regs, &access) {
                Some(value) => tessera_arch::mmio::write(pa, bytes, value).map(|()| None),
                None => tessera_arch::mmio::read(pa, bytes).map(Some),
            };
            if let Ok(read) = done {
                return complete_access(regs, &access, read);
            }
        }
        defmt::warn!("VM {=str}: device access at IPA {=u64:#x} refused", vm.name, abort.ipa);
        return guest_fault(platform, vm_index, regs, "bad device access");
    }
    // RAM not touched since the VM was loaded: scrubbed now, and the access retried.
    if !abort.external && crate::scrub::on_stage2_fault(vm_index, vm, abort.ipa) {
        return;
    }
    defmt::warn!(
        "VM {=str}: data abort at IPA {=u64:#x} ({=str}) from {=u64:#x}",
        vm.name, abort.ipa, if abort.write { "write" } else { "read" }, regs.elr
    );
    guest_fault(platform, vm_index, regs, "access outside its memory");
}

/// The MMIO fast path, tried before the exit is decoded: a store to the VM's console with
/// nothing queued in its UART model (`console::guest_tx_fast`). Returns false, having done
/// nothing, for anything else.
#[inline(always)]
fn console_store_fast(vm: &Vm<'_>, vm_index: usize, regs: &mut GuestRegs) -> bool {
    let Some(console) = vm.console else { return false };
    let Some(store) = exit::decode_store(regs.esr, regs.far, regs.hpfar) else { return false };
    let Some(offset) = store.ipa.checked_sub(console.ipa) else { return false };
    if offset >= tessera_config::PAGE_SIZE {
        return false;
    }
    let value = regs.x.get(usize::from(store.reg)).copied().unwrap_or(0) & store.width.mask();
    if !console::guest_tx_fast(vm_index, offset, store.width, value) {
        return false;
    }
    regs.elr = regs.elr.wrapping_add(4);
    true
}

/// A fault the hypervisor cannot hand back as an emulated access: apply the VM's policy.
#[inline(never)] // out of line: a cold path, kept out of its callers
pub(crate) fn guest_fault(platform: &Platform, vm_index: usize, regs: &mut GuestRegs, what: &'static str) {
    let vm = &platform.system.vms[vm_index];
    match vm.fault_policy {
        FaultPolicy::Inject => {
            let decoded = exit::decode(regs.esr, regs.far, regs.hpfar);
            let kind = match decoded {
                Exit::InstructionAbort { .. } => inject::AbortKind::Instruction,
                Exit::DataAbort(abort) => inject::AbortKind::Data { write: abort.write },
                _ => inject::AbortKind::Data { write: false },
            };
            let guest = inject::GuestPstate {
                spsr_el2: regs.spsr,
                elr_el2: regs.elr,
                vbar_el1: tessera_arch::guest::vbar_el1(),
            };
            match inject::sync_external_abort(kind, &guest, regs.far) {
                Ok(injection) => {
                    tessera_arch::guest::set_el1_exception_state(
                        injection.esr_el1,
                        injection.far_el1,
                        injection.elr_el1,
                        injection.spsr_el1,
                    );
                    regs.elr = injection.elr_el2;
                    regs.spsr = injection.spsr_el2;
                    defmt::info!("VM {=str}: {=str}; abort injected", vm.name, what);
                }
                Err(_) => stop_vm(platform, vm_index, what),
            }
        }
        FaultPolicy::Stop => stop_vm(platform, vm_index, what),
        FaultPolicy::Restart => restart_vm(platform, vm_index, what),
    }
}

/// A view of one VM for the PSCI decision logic.
struct View<'a> {
    vm: &'a Vm<'a>,
    vm_index: usize,
}

impl VmView for View<'_> {
    fn vcpu_count(&self) -> usize {
        self.vm.cpus.len()
    }
    fn vcpu_index_by_mpidr(&self, mpidr: u64) -> Option<usize> {
        vcpu::index_by_mpidr(mpidr, self.vm.cpus.len())
    }
    fn vcpu_power(&self, index: usize) -> PowerState {
        VMS[self.vm_index].vcpus.get(index).map_or(PowerState::Off, |slot| slot.power())
    }
    fn ipa_is_ram(&self, ipa: u64) -> bool {
        self.vm.memory.iter().any(|region| region.ipa_range().contains(ipa))
    }
    fn has_watchdog(&self) -> bool {
        self.vm.watchdog.is_some()
    }
}

#[inline(never)] // out of line: keeps `handle_sync`'s prologue small
fn smccc(platform: &Platform, vm_index: usize, vcpu_index: usize, regs: &mut GuestRegs) {
    let vm = &platform.system.vms[vm_index];
    #[cfg(feature = "fault-test")]
    fault_test::provoke(regs.x[0]);
    let call = SmcccCall { x: [regs.x[0], regs.x[1], regs.x[2], regs.x[3]] };
    match psci::handle(call, &View { vm, vm_index }) {
        Outcome::Return(values) => regs.x[..4].copy_from_slice(&values),
        Outcome::TesseraStats => {
            regs.x[..4].copy_from_slice(&[psci::ret::SUCCESS, tessera_arch::pmu::el2_instructions(), 0, 0]);
        }
        Outcome::SchedStats { vcpu } => {
            #[cfg(feature = "rtds")]
            let stats = crate::rtds::stats(platform, vm_index, vcpu);
            // Without the RTDS scheduler every vCPU is on a null-pool CPU.
            #[cfg(not(feature = "rtds"))]
            let stats = {
                let _ = vcpu;
                [psci::ret::NOT_SUPPORTED, 0, 0, 0, 0, 0, 0]
            };
            regs.x[..7].copy_from_slice(&stats);
        }
        Outcome::WatchdogKick => {
            let result = if watchdog::kick(vm, vm_index) { psci::ret::SUCCESS } else { psci::ret::NOT_SUPPORTED };
            regs.x[..4].copy_from_slice(&[result, 0, 0, 0]);
        }
        Outcome::CpuOn { target, entry, context } => {
            let result = match VMS[vm_index].vcpus[target].request_on(entry, context) {
                Ok(()) => {
                    kick_vcpu(platform, vm, target);
                    psci::ret::SUCCESS
                }
                Err(PowerState::OnPending) => psci::ret::ON_PENDING,
                Err(_) => psci::ret::ALREADY_ON,
            };
            regs.x[0] = result;
        }
        Outcome::CpuOff => {
            VMS[vm_index].vcpus[vcpu_index].set_off();
            defmt::info!("VM {=str}: vCPU {=usize} off", vm.name, vcpu_index);
        }
        Outcome::SystemOff => match vm.on_system_off {
            ExitAction::Stop => stop_vm(platform, vm_index, "PSCI SYSTEM_OFF"),
            ExitAction::Restart => restart_vm(platform, vm_index, "PSCI SYSTEM_OFF"),
        },
        Outcome::SystemReset => match vm.on_system_reset {
            ExitAction::Stop => stop_vm(platform, vm_index, "PSCI SYSTEM_RESET"),
            ExitAction::Restart => restart_vm(platform, vm_index, "PSCI SYSTEM_RESET"),
        },
    }
}

/// Test-only (cargo feature `fault-test`, which no production build enables): hypervisor calls
/// that make the hypervisor fail, so `hil-tests/tests/fail_stop.rs` can check the fail-stop
/// path with a real panic and a real stack overflow.
#[cfg(feature = "fault-test")]
mod fault_test {
    /// Panics at EL2.
    pub const PANIC: u64 = 0xC600_FF00;
    /// Recurses until the stack runs into its guard page.
    pub const STACK_OVERFLOW: u64 = 0xC600_FF01;

    pub fn provoke(function: u64) {
        match function {
            PANIC => panic!("fault-test: deliberate panic"),
            STACK_OVERFLOW => {
                core::hint::black_box(recurse(0));
            }
            _ => {}
        }
    }

    /// 512 bytes of stack per call, kept alive across the recursive call.
    #[inline(never)]
    fn recurse(depth: u64) -> u64 {
        let frame = core::hint::black_box([depth; 64]);
        if depth == u64::MAX {
            return 0;
        }
        recurse(depth + 1).wrapping_add(core::hint::black_box(frame)[63])
    }
}
