//! The hypervisor's own timers, which guests never reach (they have only the virtual timer):
//!
//! - The EL1 physical timer (CNTP_*_EL0): guests' accesses trap (CNTHCTL_EL2.EL1PCEN = 0;
//!   `guest::load_vm`), so at EL2 it is a free per-CPU timer. Tessera uses it for VM
//!   watchdogs; its interrupt is the board's non-secure physical timer PPI (INTID 30 on QEMU
//!   virt).
//! - The EL2 physical timer (CNTHP_*_EL2; PPI 26 on QEMU virt, `Board::timer.hyp_phys`): RTDS
//!   CPUs arm it for the scheduler's next event; null-pool CPUs never do.
//!
//! DDI 0487 D11.2 (the Generic Timer) and D11.2.4 (timer control: ENABLE bit 0, IMASK bit 1,
//! ISTATUS bit 2).

/// Fires this CPU's timer when the physical count reaches `deadline` (CNTP_CVAL_EL0),
/// interrupt unmasked.
#[cfg(target_arch = "aarch64")]
pub fn arm_physical(deadline: u64) {
    use aarch64_cpu::registers::{CNTP_CTL_EL0, CNTP_CVAL_EL0, Writeable};
    CNTP_CVAL_EL0.set(deadline);
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::CLEAR);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Stops this CPU's timer: its interrupt line drops.
#[cfg(target_arch = "aarch64")]
pub fn disarm_physical() {
    use aarch64_cpu::registers::{CNTP_CTL_EL0, Writeable};
    CNTP_CTL_EL0.set(0);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Arms the EL2 physical timer to fire when the physical count reaches `deadline`, or turns
/// it off (`None`). The interrupt is level: a fired timer stays asserted until it is re-armed
/// in the future or turned off.
#[cfg(target_arch = "aarch64")]
pub fn set_hyp_timer(deadline: Option<u64>) {
    match deadline {
        // SAFETY: CNTHP_CVAL_EL2/CNTHP_CTL_EL2 only control the EL2 timer's interrupt; no
        // memory effect. CTL = ENABLE (bit 0), IMASK (bit 1) clear.
        Some(deadline) => unsafe {
            core::arch::asm!("msr cnthp_cval_el2, {}", "msr cnthp_ctl_el2, {}", "isb", in(reg) deadline, in(reg) 1u64, options(nostack));
        },
        // SAFETY: as above; CTL = 0 turns the timer (and its interrupt) off.
        None => unsafe { core::arch::asm!("msr cnthp_ctl_el2, xzr", "isb", options(nostack)) },
    }
}

#[cfg(not(target_arch = "aarch64"))]
mod host {
    pub fn arm_physical(_: u64) {}
    pub fn disarm_physical() {}
    pub fn set_hyp_timer(_: Option<u64>) {}
}
#[cfg(not(target_arch = "aarch64"))]
pub use host::*;
