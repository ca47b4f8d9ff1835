//! The hypervisor's own timer: the EL2 physical timer (CNTHP_*_EL2, DDI 0487 D24.11; its
//! interrupt is PPI 26 on QEMU virt, `Board::timer.hyp_phys`). RTDS CPUs arm it for the
//! scheduler's next event; null-pool CPUs never do. (The EL1 physical timer, PPI 30, is left
//! to other hypervisor users; guests only have the virtual timer.)

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
pub fn set_hyp_timer(_: Option<u64>) {
    unimplemented!("host build")
}
