//! The run loop of a CPU in an RTDS pool: several vCPUs (of different VMs) share it under
//! the pure run queue `tessera_core::sched::rtds`, with a context switch between them and
//! the EL2 physical timer (CNTHP, `tessera_arch::timer`) as the scheduler's tick. Null-pool
//! CPUs never come here (`run::cpu_main` keeps their loop as it was).
//!
//! Per CPU, `CPUS[cpu]` holds the run queue and each vCPU's saved state; only that CPU
//! changes it, other CPUs only read accounting through it (TESSERA_SCHED_STATS).
//!
//! Lock order: `CPUS[cpu]`, then a VM's vGIC lock (`vgic::has_pending`, `vgic::forget_flush`).
//! Nothing is held while the guest runs or while an exit is handled.
//!
//! A vCPU's life here: its VM starts it (`VcpuSlot::take_pending`) → its server is activated
//! with a fresh period; a trapped WFI with nothing pending blocks it (no budget used); an
//! interrupt for it (the vGIC says pending, or its saved virtual timer is due) wakes it; a
//! VM stop/restart or PSCI CPU_OFF deactivates it. The loaded vCPU's virtual timer runs on
//! the CPU; a descheduled one's was saved and turned off, and its expiry is one of the
//! times the hypervisor timer is armed for.

use core::sync::atomic::Ordering;

use tessera_arch::context::{self, El1Context};
use tessera_arch::guest::{ExitKind, GuestRegs};
use tessera_config::MAX_VCPUS_PER_CPU;
use tessera_core::exit::{self, Exit};
use tessera_core::psci::{self, PowerState};
use tessera_core::sched::rtds::{Activity, Params, RtdsCpu, Stats};
use tessera_core::vcpu;

use crate::vm::{VmState, VMS};
use crate::{run, vgic, Platform};

const SLOTS: usize = MAX_VCPUS_PER_CPU;

const ZERO_REGS: GuestRegs = GuestRegs { x: [0; 31], elr: 0, spsr: 0, esr: 0, far: 0, hpfar: 0 };

/// One vCPU in a CPU's run queue, with its state while it is not loaded. All-zero is an
/// empty slot (`present` false), so the per-CPU tables live in BSS.
#[derive(Clone, Copy)]
struct Member {
    present: bool,
    vm_index: usize,
    vcpu_index: usize,
    /// The VM generation this vCPU was started in; `None` while it is off.
    generation: Option<u32>,
    regs: GuestRegs,
    context: El1Context,
}

struct CpuSched {
    queue: RtdsCpu<SLOTS>,
    members: [Member; SLOTS],
    /// Counter frequency (Hz), for reporting in microseconds (0 until the CPU starts; every
    /// field starts zero so that `CPUS` lives in BSS, not in the image).
    frequency: u64,
    /// EL2 instructions of the last context switch on this CPU (save, restore, VM controls).
    last_switch_cost: u64,
}

const EMPTY: Member = Member {
    present: false,
    vm_index: 0,
    vcpu_index: 0,
    generation: None,
    regs: ZERO_REGS,
    context: El1Context::reset(0, 0),
};

impl CpuSched {
    fn member(&self, slot: usize) -> Option<&Member> {
        self.members.get(slot).filter(|m| m.present)
    }

    fn member_mut(&mut self, slot: usize) -> Option<&mut Member> {
        self.members.get_mut(slot).filter(|m| m.present)
    }

    const fn new() -> Self {
        Self {
            queue: RtdsCpu::new(),
            members: [EMPTY; SLOTS],
            frequency: 0,
            last_switch_cost: 0,
        }
    }
}

static CPUS: [spin::Mutex<CpuSched>; tessera_arch::MAX_CPUS] =
    [const { spin::Mutex::new(CpuSched::new()) }; tessera_arch::MAX_CPUS];

/// What the run loop does next.
enum Decision {
    Idle { wake_at: Option<u64>, loaded: Option<(usize, usize)> },
    Run { vm_index: usize, vcpu_index: usize, slot: usize, generation: u32, wake_at: Option<u64> },
}

/// Runs CPU `cpu` under RTDS forever.
pub fn run(platform: &'static Platform, cpu: usize) -> ! {
    let frequency = tessera_arch::cpu::counter_frequency().max(1);
    {
        let mut sched = CPUS[cpu].lock();
        sched.frequency = frequency;
        let mut slot = 0;
        for (vm_index, vm) in platform.system.vms.iter().enumerate() {
            let Some(params) = vm.rtds else { continue };
            for (vcpu_index, _) in vm.cpus.iter().enumerate().filter(|&(_, &c)| c as usize == cpu) {
                if slot >= SLOTS || sched.queue.add(slot, Params::from_config(&params, frequency)).is_err() {
                    defmt::error!("CPU {=usize}: no run-queue slot for VM {=str} vCPU {=usize}", cpu, vm.name, vcpu_index);
                    continue;
                }
                sched.members[slot] = Member {
                    present: true,
                    vm_index,
                    vcpu_index,
                    generation: None,
                    regs: ZERO_REGS,
                    context: El1Context::reset(vcpu::vmpidr(vcpu_index), vcpu::RESET_SCTLR_EL1),
                };
                slot += 1;
            }
        }
        defmt::info!("CPU {=usize}: RTDS, {=usize} vCPU(s), counter {=u64} Hz", cpu, slot, frequency);
    }
    // VPIDR_EL2 and a clean EL1 (the first restore overwrites the rest).
    tessera_arch::guest::reset_el1(0, vcpu::RESET_SCTLR_EL1);
    let mut loaded: Option<usize> = None;
    let mut regs = ZERO_REGS;
    loop {
        match decide(cpu, &mut loaded, &mut regs) {
            Decision::Idle { wake_at, loaded } => {
                tessera_arch::timer::set_hyp_timer(wake_at);
                tessera_arch::cpu::wait_for_interrupt();
                run::handle_interrupts(platform, loaded);
            }
            Decision::Run { vm_index, vcpu_index, slot, generation, wake_at } => {
                tessera_arch::timer::set_hyp_timer(wake_at);
                run_once(platform, cpu, vm_index, vcpu_index, slot, generation, &mut regs);
            }
        }
    }
}

/// Accounts time, follows vCPU life-cycle changes, picks the next vCPU and switches to it.
fn decide(cpu: usize, loaded: &mut Option<usize>, regs: &mut GuestRegs) -> Decision {
    let now = tessera_arch::cpu::counter();
    let mut sched = CPUS[cpu].lock();
    let sched = &mut *sched;
    for slot in 0..SLOTS {
        let Some(member) = sched.members.get_mut(slot).filter(|m| m.present) else { continue };
        let runtime = &VMS[member.vm_index];
        let vcpu_slot = &runtime.vcpus[member.vcpu_index];
        if let Some(generation) = member.generation
            && (runtime.generation() != generation || vcpu_slot.power() != PowerState::On)
        {
            member.generation = None;
            let _ = sched.queue.deactivate(slot, now);
            if *loaded == Some(slot) {
                // Its state is of no more use: nothing of it (list registers, virtual timer,
                // an active timer PPI) may reach the next guest on this CPU.
                if let Some(platform) = crate::PLATFORM.get() {
                    run::leave_generation(platform);
                }
                *loaded = None;
                sched.queue.forget_loaded();
            }
        }
        if member.generation.is_none()
            && runtime.state() == VmState::Running
            && let Some((entry, context)) = vcpu_slot.take_pending()
        {
            member.generation = Some(runtime.generation());
            member.regs = GuestRegs { elr: entry, spsr: vcpu::RESET_SPSR_EL2, ..ZERO_REGS };
            member.regs.x[0] = context;
            member.context = El1Context::reset(vcpu::vmpidr(member.vcpu_index), vcpu::RESET_SCTLR_EL1);
            if *loaded == Some(slot) {
                *loaded = None;
                sched.queue.forget_loaded();
            }
            let _ = sched.queue.activate(slot, now);
            if member.vcpu_index == 0
                && let Some(platform) = crate::PLATFORM.get()
                && platform.system.vms[member.vm_index].watchdog.is_some()
            {
                crate::watchdog::arm_here(member.vm_index);
            }
        }
        if sched.queue.server(slot).is_some_and(|s| s.activity == Activity::Blocked) {
            let cntvoff = runtime.cntvoff.load(Ordering::Acquire);
            let timer_due = *loaded != Some(slot) && member.context.timer_deadline(cntvoff).is_some_and(|at| at <= now);
            if timer_due || vgic::has_pending(member.vm_index, member.vcpu_index) {
                let _ = sched.queue.wake(slot, now);
            }
        }
    }
    let picked = sched.queue.pick(now);
    if let Some((slot, _)) = picked
        && *loaded != Some(slot)
    {
        let switch_start = tessera_arch::pmu::el2_instructions();
        switch(sched, *loaded, slot, regs);
        *loaded = Some(slot);
        sched.last_switch_cost = tessera_arch::pmu::el2_instructions().wrapping_sub(switch_start);
    }
    // Descheduled vCPUs waiting for their virtual timer are woken by the hypervisor's (the
    // loaded one's own timer is live on the CPU).
    let timers = (0..SLOTS)
        .filter(|&slot| Some(slot) != *loaded && sched.queue.server(slot).is_some_and(|s| s.activity == Activity::Blocked))
        .filter_map(|slot| {
            let member = sched.member(slot)?;
            member.context.timer_deadline(VMS[member.vm_index].cntvoff.load(Ordering::Acquire))
        })
        .min();
    let wake_at = match (sched.queue.next_event(), timers) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let Some((slot, _)) = picked else {
        let loaded = loaded.and_then(|slot| sched.member(slot)).map(|m| (m.vm_index, m.vcpu_index));
        return Decision::Idle { wake_at, loaded };
    };
    match sched.member(slot) {
        Some(member) => Decision::Run {
            vm_index: member.vm_index,
            vcpu_index: member.vcpu_index,
            slot,
            generation: member.generation.unwrap_or(0),
            wake_at,
        },
        None => Decision::Idle { wake_at, loaded: None },
    }
}

/// Saves the vCPU in `from` (if any) and loads the one in `to`: general registers, EL1 and
/// FP/SIMD state, virtual timer, virtual CPU interface, and its VM's stage 2 and traps.
fn switch(sched: &mut CpuSched, from: Option<usize>, to: usize, regs: &mut GuestRegs) {
    let platform_timer = crate::PLATFORM.get().map(|p| p.board.timer.virt);
    if let Some(member) = from.and_then(|slot| sched.member_mut(slot)) {
        member.regs = *regs;
        context::save(&mut member.context);
        // A virtual-timer interrupt the leaving guest took but has not deactivated stays
        // active on the physical GIC (HW-linked); deactivate it, or the next guest's timer
        // could never fire. The leaving guest's later EOI of it is then harmless.
        if let Some(intid) = platform_timer {
            tessera_arch::gic_cpu::deactivate(intid);
        }
    }
    let Some(member) = sched.member(to) else { return };
    *regs = member.regs;
    context::restore(&member.context);
    if let Some(platform) = crate::PLATFORM.get() {
        let vm = &platform.system.vms[member.vm_index];
        tessera_arch::guest::load_vm(&run::vm_controls(vm, member.vm_index, true));
    }
    // The list registers hold the last vCPU's interrupts: the next flush must rewrite them.
    vgic::forget_flush(member.vm_index, member.vcpu_index);
}

/// Enters the loaded vCPU once and handles its exit.
fn run_once(platform: &Platform, cpu: usize, vm_index: usize, vcpu_index: usize, slot: usize, generation: u32, regs: &mut GuestRegs) {
    let runtime = &VMS[vm_index];
    let vcpu_slot = &runtime.vcpus[vcpu_index];
    vcpu_slot.in_guest.store(true, Ordering::Release);
    if runtime.generation() != generation || vcpu_slot.power() != PowerState::On {
        vcpu_slot.in_guest.store(false, Ordering::Release);
        return;
    }
    // `in_guest` stays set until the exit is handled (a restart waits for it to clear).
    vgic::flush(vm_index, vcpu_index, platform.board.timer.virt);
    let kind = tessera_arch::guest::enter(regs);
    let kick = vgic::sync(vm_index, vcpu_index);
    run::kick_vcpus(platform, vm_index, kick);
    match kind {
        ExitKind::Synchronous => match exit::decode(regs.esr, regs.far, regs.hpfar) {
            Exit::Wfx { wfe } => {
                regs.elr = regs.elr.wrapping_add(4);
                // WFE returns at once; WFI with nothing to take blocks the vCPU.
                if !wfe && !vgic::has_pending(vm_index, vcpu_index) {
                    let now = tessera_arch::cpu::counter();
                    let _ = CPUS[cpu].lock().queue.block(slot, now);
                }
            }
            _ => run::handle_sync(platform, vm_index, vcpu_index, regs),
        },
        ExitKind::Irq | ExitKind::Fiq => run::handle_interrupts(platform, Some((vm_index, vcpu_index))),
        ExitKind::SError => run::guest_fault(platform, vm_index, regs, "SError"),
    }
    vcpu_slot.in_guest.store(false, Ordering::Release);
}

/// TESSERA_SCHED_STATS for vCPU `vcpu_index` of VM `vm_index` (checked by the caller to be
/// one of its vCPUs): `[x0..x6]` = SUCCESS, budget used (µs), run beyond budget (µs),
/// deadline misses, context switches, periods, EL2 instructions of its CPU's last switch.
/// A vCPU on a null-pool CPU answers NOT_SUPPORTED.
pub fn stats(platform: &Platform, vm_index: usize, vcpu_index: usize) -> [u64; 7] {
    let not_supported = [psci::ret::NOT_SUPPORTED, 0, 0, 0, 0, 0, 0];
    let Some(&cpu) = platform.system.vms.get(vm_index).and_then(|vm| vm.cpus.get(vcpu_index)) else {
        return not_supported;
    };
    let Some(lock) = CPUS.get(cpu as usize) else { return not_supported };
    let sched = lock.lock();
    let found = (0..SLOTS).find(|&slot| {
        sched.member(slot).is_some_and(|m| m.vm_index == vm_index && m.vcpu_index == vcpu_index)
    });
    let Some(stats) = found.and_then(|slot| sched.queue.server(slot)).map(|s| s.stats) else {
        return not_supported;
    };
    let us = |ticks: u64| tessera_core::sched::rtds::us_from_ticks(ticks, sched.frequency);
    let Stats { budget_used, beyond_budget, deadline_misses, switches, periods } = stats;
    [
        psci::ret::SUCCESS,
        us(budget_used),
        us(beyond_budget),
        u64::from(deadline_misses),
        u64::from(switches),
        u64::from(periods),
        sched.last_switch_cost,
    ]
}
