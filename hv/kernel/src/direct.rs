//! Direct-interrupt VMs (`interrupt-mode = "direct"`, `docs/direct-mode.md`): the guest takes
//! its physical Group 1 interrupts (its virtual timer, its SGIs, its devices' SPIs) at EL1
//! and acknowledges and ends them on the physical GIC CPU interface, with no EL2 entry.
//!
//! On such a VM's CPUs (each owned by it alone, validated at build time):
//! - HCR_EL2.IMO = 0, FMO = 1, AMO = 1, TWI = 0 (`tessera_arch::guest::route_irqs_to_guest`);
//! - the hypervisor's kick SGI, halt SGI and physical-timer PPI are **Group 0**, priority
//!   [`direct::HYPERVISOR_PRIORITY`]: FIQs to EL2, which the guest cannot mask (PSTATE.F
//!   does not mask an exception taken to a higher level), acknowledged with ICC_IAR0_EL1
//!   only: the hypervisor never reads ICC_IAR1_EL1 on these CPUs, which would steal the
//!   guest's interrupts;
//! - physical EOImode = 0 (the guest's EOIR1 drops and deactivates), ICC_SRE_EL2.Enable = 0
//!   (ICC_SRE_EL1 traps, answered with SRE set), the maintenance PPI disabled (no list
//!   registers are used: the virtual CPU interface is off);
//! - the guest's GICD/GICR frames stay trapped and emulated by the vGIC model; its
//!   enables of the timer PPI go to the physical redistributor, and every priority it
//!   writes is applied physically, halved into the lower half ([`direct::physical_priority`]);
//! - its `ICC_SGI1R_EL1` writes trap (FMO): only its own CPUs receive them, as physical
//!   Group 1 SGIs; the hypervisor's INTIDs and every other target are dropped
//!   ([`direct::guest_sgi1r`]); `ICC_SGI0R_EL1` and `ICC_ASGI1R_EL1` are dropped.
//!
//! No virtual interrupt reaches such a guest (IMO = 0): its emulated console has no
//! interrupt, so it polls.

use core::sync::atomic::{AtomicBool, Ordering};

use tessera_arch::guest::{ExitKind, GuestRegs};
use tessera_config::{InterruptMode, Vm};
use tessera_core::direct::{self, Dropped};
use tessera_core::exit::{self, Exit};
use tessera_core::psci::PowerState;
use tessera_core::vcpu;
use tessera_drivers::gicv3::{GicError, Redistributor};
use tessera_vdev::vgic::Effect;

use crate::vm::VMS;
use crate::{run, vgic, Platform, KICK_SGI};

/// Whether this build supports direct-interrupt VMs (cargo feature `direct`).
pub(crate) const ENABLED: bool = cfg!(feature = "direct");

const ICC_SGI1R_EL1: u16 = exit::sysreg_encoding(3, 0, 12, 11, 5);
const ICC_ASGI1R_EL1: u16 = exit::sysreg_encoding(3, 0, 12, 11, 6);
const ICC_SGI0R_EL1: u16 = exit::sysreg_encoding(3, 0, 12, 11, 7);
const ICC_SRE_EL1: u16 = exit::sysreg_encoding(3, 0, 12, 12, 5);

/// The validator and the kernel agree on which SGIs the hypervisor keeps.
const _: () = assert!(
    tessera_config::DIRECT_RESERVED_SGIS == (1 << KICK_SGI) | (1 << tessera_arch::fatal::HALT_SGI)
);

/// Set once per kind, so that a guest spraying SGIs fills no log.
static LOGGED_RESERVED: AtomicBool = AtomicBool::new(false);
static LOGGED_OUTSIDE: AtomicBool = AtomicBool::new(false);
static LOGGED_GROUP0: AtomicBool = AtomicBool::new(false);

/// True if `vm` takes its interrupts directly (and this build supports it).
pub(crate) fn is_direct(vm: &Vm<'_>) -> bool {
    ENABLED && vm.interrupt_mode == InterruptMode::Direct
}

/// The direct VM's vCPU that runs on `cpu`, as `(vm index, vCPU index)`.
pub(crate) fn assignment(platform: &Platform, cpu: usize) -> Option<(usize, usize)> {
    platform.system.vms.iter().enumerate().filter(|(_, vm)| is_direct(vm)).find_map(|(vm_index, vm)| {
        vm.cpus.iter().position(|&c| c as usize == cpu).map(|vcpu_index| (vm_index, vcpu_index))
    })
}

/// Kicks a direct VM's CPU: the kick SGI is Group 0 there.
pub(crate) fn kick(mpidr: u64) {
    tessera_arch::gic_cpu::send_sgi0(KICK_SGI, mpidr);
}

/// At boot, when some VM is direct: Group 0 on in the distributor. The board description
/// promised it (`GicDesc::group0_nonsecure`, checked by the validator); a GIC that says
/// otherwise means the board description is wrong, and the hypervisor halts.
pub(crate) fn init_distributor(platform: &Platform) {
    if !ENABLED {
        defmt::error!("a VM has interrupt-mode = \"direct\", but this build has no direct mode (feature `direct`); halting");
        tessera_arch::cpu::halt();
    }
    if platform.gicd.enable_group0().is_err() {
        defmt::error!("direct-interrupt VMs need Group 0, but this GIC keeps it Secure (GICD_CTLR.DS = 0); halting");
        tessera_arch::cpu::halt();
    }
}

/// The hypervisor's SGIs and PPIs on a direct CPU: Group 0.
fn hypervisor_private(platform: &Platform) -> u32 {
    (1 << KICK_SGI) | (1 << tessera_arch::fatal::HALT_SGI) | (1 << platform.board.timer.nonsecure_phys)
}

/// The guest's SGIs and PPIs on a direct CPU: Group 1.
fn guest_private(platform: &Platform) -> u32 {
    (0xffff & !u32::from(tessera_config::DIRECT_RESERVED_SGIS)) | (1 << platform.board.timer.virt)
}

/// The redistributor of vCPU `vcpu_index` of `vm`.
fn redistributor_of(platform: &Platform, vm: &Vm<'_>, vcpu_index: usize) -> Option<Redistributor> {
    let cpu = *vm.cpus.get(vcpu_index)?;
    let desc = platform.board.cpus.get(cpu as usize)?;
    (platform.redistributor)(desc.mpidr).ok()
}

/// A model effect on a private interrupt of a direct VM (its timer PPI): carried out in the
/// redistributor of the vCPU's CPU. Anything else (other VMs, SPIs) is not ours: `Ok`.
pub(crate) fn apply_private(platform: &Platform, vm: &Vm<'_>, effect: Effect) -> Result<(), GicError> {
    if !is_direct(vm) {
        return Ok(());
    }
    let (hw_intid, vcpu_index, enable) = match effect {
        Effect::EnablePhysical { hw_intid, vcpu } => (hw_intid, vcpu, true),
        Effect::DisablePhysical { hw_intid, vcpu } => (hw_intid, vcpu, false),
        _ => return Ok(()),
    };
    if hw_intid >= 32 || guest_private(platform) & (1 << hw_intid) == 0 {
        return Ok(());
    }
    let redistributor = redistributor_of(platform, vm, vcpu_index).ok_or(GicError::NoRedistributor { mpidr: 0 })?;
    redistributor.set_enabled(1 << hw_intid, enable);
    Ok(())
}

/// A CPU that runs vCPU `vcpu_index` of direct VM `vm_index`, for good.
pub(crate) fn cpu_main(platform: &'static Platform, cpu: usize, vm_index: usize, vcpu_index: usize) -> ! {
    let mpidr = tessera_arch::cpu::mpidr();
    let vm = &platform.system.vms[vm_index];
    tessera_arch::timer::disarm_physical();
    match (platform.redistributor)(mpidr) {
        Ok(redistributor) => {
            if redistributor.init(0).is_err() {
                defmt::error!("CPU {=usize}: redistributor did not wake", cpu);
            }
            // The guest's SGIs and timer PPI are enabled when it enables them in its vGIC.
            redistributor.init_direct(
                hypervisor_private(platform),
                direct::HYPERVISOR_PRIORITY,
                guest_private(platform),
                0,
                direct::physical_priority(0),
            );
        }
        Err(_) => defmt::error!("CPU {=usize}: no redistributor for MPIDR {=u64:#x}", cpu, mpidr),
    }
    tessera_arch::gic_cpu::init_direct_cpu_interface();
    tessera_arch::guest::init_cpu_traps();
    if !tessera_arch::pmu::init_el2_counter() {
        defmt::warn!("CPU {=usize}: no PMU event counter; TESSERA_STATS reads 0", cpu);
    }
    run::boot_load(platform, cpu);
    defmt::info!("CPU {=usize} (MPIDR {=u64:#x}) up: direct interrupts for VM {=str}", cpu, mpidr, vm.name);
    let runtime = &VMS[vm_index];
    let slot = &runtime.vcpus[vcpu_index];
    loop {
        // Idle until this vCPU is asked to start. Only Group 0 (a kick) is signalled here:
        // the guest's Group 1 stays off (ICC_IGRPEN1_EL1 = 0) while it does not run.
        let (entry, context) = run::wait_for_start(vm_index, vcpu_index, || handle_interrupts(platform));
        let generation = runtime.generation();
        let mut regs = GuestRegs { elr: entry, spsr: vcpu::RESET_SPSR_EL2, ..GuestRegs::default() };
        regs.x[0] = context;
        tessera_arch::guest::reset_el1(vcpu::vmpidr(vcpu_index), vcpu::RESET_SCTLR_EL1);
        tessera_arch::gic_cpu::set_virtual_interface(false, false);
        tessera_arch::gic_cpu::set_vmcr(0);
        tessera_arch::guest::load_vm(&run::vm_controls(vm, vm_index, false));
        tessera_arch::guest::route_irqs_to_guest();
        loop {
            slot.in_guest.store(true, Ordering::Release);
            if tessera_arch::fatal::stopping() {
                tessera_arch::fatal::halt_here();
            }
            if runtime.generation() != generation || slot.power() != PowerState::On {
                leave(platform, vm, vcpu_index);
                slot.in_guest.store(false, Ordering::Release);
                break;
            }
            match tessera_arch::guest::enter(&mut regs) {
                ExitKind::Synchronous => handle_sync(platform, vm_index, vcpu_index, &mut regs),
                ExitKind::Irq | ExitKind::Fiq => handle_interrupts(platform),
                ExitKind::SError => run::guest_fault(platform, vm_index, &mut regs, "SError"),
            }
        }
    }
}

/// This CPU leaves its direct vCPU (the VM stopped or restarts, or the vCPU is off): nothing
/// the guest left in the physical GIC may stay. Its timer stops; its active priorities and
/// Group 1 enable are cleared; its SGIs and timer PPI are disabled, lose pending and active
/// state, and their priorities go back to the reset value.
fn leave(platform: &Platform, vm: &Vm<'_>, vcpu_index: usize) {
    tessera_arch::guest::disable_virtual_timer();
    tessera_arch::gic_cpu::clear_guest_cpu_interface();
    let guest = guest_private(platform);
    if let Some(redistributor) = redistributor_of(platform, vm, vcpu_index) {
        redistributor.set_enabled(guest, false);
        redistributor.clear_private(guest);
        for intid in (0..32).filter(|n| guest & (1 << n) != 0) {
            redistributor.set_priority(intid, direct::physical_priority(0));
        }
    }
}

/// Acknowledges and handles every pending Group 0 interrupt (bounded): the hypervisor's own
/// on this CPU. A kick needs nothing (the run loop re-reads its vCPU's state); the halt SGI
/// halts; the physical timer (no direct VM has a watchdog) is silenced.
fn handle_interrupts(platform: &Platform) {
    for _ in 0..64 {
        let intid = tessera_arch::gic_cpu::acknowledge_group0();
        if intid >= tessera_arch::gic_cpu::SPURIOUS - 3 {
            return;
        }
        if intid == tessera_arch::fatal::HALT_SGI {
            tessera_arch::fatal::halt_here();
        }
        if intid == platform.board.timer.nonsecure_phys {
            tessera_arch::timer::disarm_physical();
        }
        tessera_arch::gic_cpu::end_group0(intid);
    }
}

/// A direct vCPU's synchronous exit: its SGI-register writes and ICC_SRE_EL1 are handled
/// here, and a write to its vGIC's priority or enable registers is followed by setting the
/// physical priorities; the rest is any VM's (`run::handle_sync`).
fn handle_sync(platform: &Platform, vm_index: usize, vcpu_index: usize, regs: &mut GuestRegs) {
    let vm = &platform.system.vms[vm_index];
    let decoded = exit::decode(regs.esr, regs.far, regs.hpfar);
    match decoded {
        Exit::SysReg(access) if access.encoding() == ICC_SRE_EL1 => {
            if access.read && access.rt < 31 {
                regs.x[access.rt as usize] = tessera_arch::gic_cpu::GUEST_ICC_SRE_EL1;
            }
            regs.elr = regs.elr.wrapping_add(4);
        }
        Exit::SysReg(access) if !access.read && access.encoding() == ICC_SGI1R_EL1 => {
            let value = if access.rt < 31 { regs.x[access.rt as usize] } else { 0 };
            send_guest_sgi(platform, vm, vcpu_index, value);
            regs.elr = regs.elr.wrapping_add(4);
        }
        Exit::SysReg(access)
            if !access.read && (access.encoding() == ICC_SGI0R_EL1 || access.encoding() == ICC_ASGI1R_EL1) =>
        {
            // Group 0 is the hypervisor's, and there is no other security state to signal.
            if !LOGGED_GROUP0.swap(true, Ordering::Relaxed) {
                defmt::warn!("VM {=str}: ICC_SGI0R/ASGI1R write dropped (logged once)", vm.name);
            }
            regs.elr = regs.elr.wrapping_add(4);
        }
        Exit::DataAbort(abort) if abort.write => {
            let frame = vgic::frame_of(platform.board, vm, abort.ipa);
            let (touches_priorities, touches_enables) = match frame {
                // GICD_ISENABLER (re-enabling an SPI resets its physical priority) and
                // GICD_IPRIORITYR (IHI 0069 12.9).
                Some(vgic::Frame::Distributor { offset }) => {
                    ((0x100..0x180).contains(&offset) || (0x400..0x800).contains(&offset), None)
                }
                // GICR_IPRIORITYR<n>, GICR_ISENABLER0 and GICR_ICENABLER0 in the SGI frame
                // (IHI 0069 12.10).
                Some(vgic::Frame::Redistributor { vcpu, offset }) => (
                    (0x1_0400..0x1_0420).contains(&offset),
                    (offset == 0x1_0100 || offset == 0x1_0180).then_some(vcpu),
                ),
                None => (false, None),
            };
            run::handle_sync(platform, vm_index, vcpu_index, regs);
            if touches_priorities {
                set_physical_priorities(platform, vm_index);
            }
            if let Some(vcpu) = touches_enables {
                set_physical_sgi_enables(platform, vm_index, vcpu);
            }
        }
        _ => run::handle_sync(platform, vm_index, vcpu_index, regs),
    }
}

/// Sends a direct guest's SGI to the CPUs of its own vCPUs (physical Group 1, the guest's
/// INTID); drops the hypervisor's INTIDs and every other target (logged once each).
fn send_guest_sgi(platform: &Platform, vm: &Vm<'_>, vcpu_index: usize, value: u64) {
    let decision = direct::guest_sgi1r(value, vcpu_index, vm.cpus.len(), tessera_config::DIRECT_RESERVED_SGIS);
    for (target, &cpu) in vm.cpus.iter().enumerate().take(32) {
        if decision.targets & (1 << target) != 0
            && let Some(desc) = platform.board.cpus.get(cpu as usize)
        {
            tessera_arch::gic_cpu::send_sgi(decision.intid, desc.mpidr);
        }
    }
    let logged = match decision.dropped {
        Some(Dropped::ReservedIntid) => &LOGGED_RESERVED,
        Some(Dropped::OutsideVm) => &LOGGED_OUTSIDE,
        None => return,
    };
    if !logged.swap(true, Ordering::Relaxed) {
        defmt::warn!(
            "VM {=str}: SGI {=u32} not sent ({}; logged once)",
            vm.name, decision.intid, decision.dropped
        );
    }
}

/// Enables and disables vCPU `vcpu_index`'s SGIs on its CPU's redistributor as the guest did
/// in its vGIC (its timer PPI follows the model's `EnablePhysical`/`DisablePhysical`
/// effects, [`apply_private`]). The hypervisor's SGIs are never touched.
fn set_physical_sgi_enables(platform: &Platform, vm_index: usize, vcpu_index: usize) {
    let vm = &platform.system.vms[vm_index];
    let sgis = guest_private(platform) & 0xffff;
    if let (Some(enabled), Some(redistributor)) =
        (vgic::private_enables(vm_index, vcpu_index), redistributor_of(platform, vm, vcpu_index))
    {
        redistributor.set_enabled(sgis & enabled, true);
        redistributor.set_enabled(sgis & !enabled, false);
    }
}

/// Applies the priorities in VM `vm_index`'s vGIC model to the physical GIC, halved into
/// the lower half: its devices' SPIs, and the SGIs and timer PPI of each of its CPUs.
fn set_physical_priorities(platform: &Platform, vm_index: usize) {
    let vm = &platform.system.vms[vm_index];
    for &intid in vm.devices.iter().flat_map(|d| d.spis) {
        if let Some(priority) = vgic::priority(vm_index, 0, intid) {
            platform.gicd.set_priority(intid, direct::physical_priority(priority));
        }
    }
    let guest = guest_private(platform);
    for vcpu_index in 0..vm.cpus.len() {
        let Some(redistributor) = redistributor_of(platform, vm, vcpu_index) else { continue };
        for intid in (0..32).filter(|n| guest & (1 << n) != 0) {
            if let Some(priority) = vgic::priority(vm_index, vcpu_index, intid) {
                redistributor.set_priority(intid, direct::physical_priority(priority));
            }
        }
    }
}
