//! VM watchdogs (`watchdog-ms` in the system description): a deadline per VM, kicked by the
//! guest's `TESSERA_WDOG_KICK`, and the EL1 physical timer of the CPU that runs the VM's
//! vCPU 0 to notice a missed one. The decisions (deadlines, expiry) are
//! `tessera_core::watchdog`; this module keeps the state and touches the timer.
//!
//! The deadline is one atomic per VM: a kick from any vCPU stores a new one and touches no
//! timer. The timer is armed on vCPU 0's CPU when vCPU 0 starts (so after every restart) and
//! re-armed there at the current deadline each time it fires early; when it fires late, the
//! watchdog has expired. A stopped VM's deadline is [`OFF`]; a timer that fires for it is
//! silenced.

use core::sync::atomic::{AtomicU64, Ordering};

use tessera_config::{ExitAction, Vm};
use tessera_core::watchdog::{self, Check, Timing};

use crate::Platform;
use crate::vm::{MAX_VMS, VMS, VmState};

/// No deadline: the VM has no watchdog, or is not running.
const OFF: u64 = u64::MAX;

static DEADLINES: [AtomicU64; MAX_VMS] = [const { AtomicU64::new(OFF) }; MAX_VMS];

fn timing(vm: &Vm<'_>) -> Option<Timing> {
    vm.watchdog.map(|dog| Timing::new(&dog, tessera_arch::cpu::counter_frequency()))
}

/// VM `index` is (re)starting: its first deadline is `first_ms` from now.
pub fn start(vm: &Vm<'_>, index: usize) {
    let deadline = timing(vm).map_or(OFF, |timing| timing.first_deadline(tessera_arch::cpu::counter()));
    if let Some(slot) = DEADLINES.get(index) {
        slot.store(deadline, Ordering::Release);
    }
}

/// VM `index` stopped or is going down for a restart: no deadline until it starts again.
pub fn stop(index: usize) {
    if let Some(slot) = DEADLINES.get(index) {
        slot.store(OFF, Ordering::Release);
    }
}

/// The guest kicked its watchdog: the deadline is a period from now. False if the VM has
/// none (the caller answers NOT_SUPPORTED; `psci::handle` already does).
pub fn kick(vm: &Vm<'_>, index: usize) -> bool {
    let (Some(timing), Some(slot)) = (timing(vm), DEADLINES.get(index)) else { return false };
    let deadline = timing.kicked(tessera_arch::cpu::counter());
    // A kick never revives a watchdog that expired or stopped in the meantime.
    let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| (old != OFF).then_some(deadline));
    true
}

/// The VM whose watchdog timer runs on `cpu` (the CPU of its vCPU 0), if any.
fn served_here(platform: &Platform, cpu: usize) -> Option<usize> {
    platform
        .system
        .vms
        .iter()
        .position(|vm| vm.watchdog.is_some() && vm.cpus.first() == Some(&(cpu as u32)))
}

/// vCPU 0 of VM `index` is starting on this CPU: arm the timer at the VM's deadline.
pub fn arm_here(index: usize) {
    match DEADLINES.get(index).map(|slot| slot.load(Ordering::Acquire)) {
        Some(deadline) if deadline != OFF => tessera_arch::timer::arm_physical(deadline),
        _ => tessera_arch::timer::disarm_physical(),
    }
}

/// An expired watchdog: which VM, what to do, how late the timer noticed (ns).
pub struct Expiry {
    pub vm_index: usize,
    pub action: ExitAction,
    pub late_ns: u64,
}

/// This CPU's physical timer fired. Re-arms it at a deadline a kick moved on, silences it
/// when there is nothing to watch, or reports an expiry (the deadline is then OFF).
pub fn on_timer(platform: &Platform) -> Option<Expiry> {
    let cpu = tessera_arch::cpu::index();
    let Some(vm_index) = served_here(platform, cpu) else {
        tessera_arch::timer::disarm_physical();
        return None;
    };
    let vm = &platform.system.vms[vm_index];
    let slot = &DEADLINES[vm_index];
    let deadline = slot.load(Ordering::Acquire);
    if deadline == OFF || VMS[vm_index].state() != VmState::Running {
        // Stopped or restarting: vCPU 0's next start arms it again.
        tessera_arch::timer::disarm_physical();
        return None;
    }
    match watchdog::check(deadline, tessera_arch::cpu::counter()) {
        Check::Rearm { deadline } => {
            tessera_arch::timer::arm_physical(deadline);
            None
        }
        Check::Expired { late_ticks } => {
            // A kick racing with this check wins: the timer goes again at its deadline.
            if let Err(kicked) = slot.compare_exchange(deadline, OFF, Ordering::AcqRel, Ordering::Acquire) {
                if kicked == OFF {
                    tessera_arch::timer::disarm_physical();
                } else {
                    tessera_arch::timer::arm_physical(kicked);
                }
                return None;
            }
            tessera_arch::timer::disarm_physical();
            let frequency = tessera_arch::cpu::counter_frequency().max(1);
            // late_ticks * 10^9 / frequency, whole seconds and the rest apart (no 128-bit
            // division in the image); exact for counters below 18 GHz.
            let late_ns = (late_ticks / frequency)
                .saturating_mul(1_000_000_000)
                .saturating_add((late_ticks % frequency).saturating_mul(1_000_000_000) / frequency);
            let action = vm.watchdog.map_or(ExitAction::Stop, |dog| dog.action);
            Some(Expiry { vm_index, action, late_ns })
        }
    }
}
