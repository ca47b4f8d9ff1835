//! The EL1 physical timer (CNTP_*_EL0), which the hypervisor keeps for itself: guests never
//! reach it (CNTHCTL_EL2.EL1PCEN = 0 traps their accesses; `guest::load_vm`), so at EL2 it
//! is a free per-CPU timer. Tessera uses it for VM watchdogs; its interrupt is the board's
//! non-secure physical timer PPI (INTID 30 on QEMU virt). DDI 0487 D11.2 (the Generic Timer)
//! and D11.2.4 (timer control: ENABLE bit 0, IMASK bit 1, ISTATUS bit 2).

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

#[cfg(not(target_arch = "aarch64"))]
mod host {
    pub fn arm_physical(_: u64) {}
    pub fn disarm_physical() {}
}
#[cfg(not(target_arch = "aarch64"))]
pub use host::*;
