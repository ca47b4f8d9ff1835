//! The GICv3 CPU interface system registers the hypervisor uses for its own interrupts
//! (IHI 0069 12.2). aarch64-cpu does not cover these, so they are accessed by encoding.

#[cfg(target_arch = "aarch64")]
macro_rules! sysreg_rw {
    ($read:ident, $write:ident, $enc:literal) => {
        #[allow(dead_code)]
        pub fn $read() -> u64 {
            let value: u64;
            // SAFETY: reading a GIC CPU interface register has no memory effect (an IAR read
            // acknowledges an interrupt, which is what the caller asks for).
            unsafe { core::arch::asm!(concat!("mrs {}, ", $enc), out(reg) value, options(nostack)) };
            value
        }
        #[allow(dead_code)]
        pub fn $write(value: u64) {
            // SAFETY: writing a GIC CPU interface register changes interrupt state only.
            unsafe { core::arch::asm!(concat!("msr ", $enc, ", {}"), "isb", in(reg) value, options(nostack)) };
        }
    };
}

#[cfg(target_arch = "aarch64")]
mod regs {
    sysreg_rw!(icc_sre_el2, set_icc_sre_el2, "S3_4_C12_C9_5");
    sysreg_rw!(icc_pmr_el1, set_icc_pmr_el1, "S3_0_C4_C6_0");
    sysreg_rw!(icc_bpr1_el1, set_icc_bpr1_el1, "S3_0_C12_C12_3");
    sysreg_rw!(icc_ctlr_el1, set_icc_ctlr_el1, "S3_0_C12_C12_4");
    sysreg_rw!(icc_igrpen1_el1, set_icc_igrpen1_el1, "S3_0_C12_C12_7");
    sysreg_rw!(icc_iar1_el1, set_icc_iar1_el1_unused, "S3_0_C12_C12_0");
    sysreg_rw!(icc_eoir1_el1_unused, set_icc_eoir1_el1, "S3_0_C12_C12_1");
    sysreg_rw!(icc_sgi1r_el1_unused, set_icc_sgi1r_el1, "S3_0_C12_C11_5");
}

/// INTIDs 1020-1023 are special: 1023 means nothing is pending (IHI 0069 2.2.1).
pub const SPURIOUS: u32 = 1023;

/// Enables the system-register interface at EL2 (and lets EL1 use it), unmasks every
/// priority and enables Group 1 interrupts for this CPU.
#[cfg(target_arch = "aarch64")]
pub fn init_cpu_interface() {
    // ICC_SRE_EL2: SRE (bit 0) and Enable (bit 3, EL1 may use ICC_SRE_EL1).
    regs::set_icc_sre_el2(regs::icc_sre_el2() | 0b1001);
    regs::set_icc_pmr_el1(0xff);
    regs::set_icc_bpr1_el1(0);
    // EOImode = 0: writing EOIR both drops priority and deactivates.
    regs::set_icc_ctlr_el1(regs::icc_ctlr_el1() & !0b10);
    regs::set_icc_igrpen1_el1(1);
}

/// Acknowledges the highest-priority pending Group 1 interrupt; `SPURIOUS` if none.
#[cfg(target_arch = "aarch64")]
pub fn acknowledge() -> u32 {
    (regs::icc_iar1_el1() & 0xff_ffff) as u32
}

/// Ends (and deactivates) an acknowledged interrupt.
#[cfg(target_arch = "aarch64")]
pub fn end_of_interrupt(intid: u32) {
    regs::set_icc_eoir1_el1(intid as u64);
}

/// Sends SGI `intid` (0-15) to the CPU with affinity `mpidr` (ICC_SGI1R_EL1, IHI 0069 12.2.22).
#[cfg(target_arch = "aarch64")]
pub fn send_sgi(intid: u32, mpidr: u64) {
    let aff0 = mpidr & 0xff;
    let aff1 = (mpidr >> 8) & 0xff;
    let aff2 = (mpidr >> 16) & 0xff;
    let aff3 = (mpidr >> 32) & 0xff;
    // Target list is a 16-bit mask over Aff0 values within a group of 16 (RS = Aff0 / 16).
    let range_selector = aff0 >> 4;
    let target_list = 1u64 << (aff0 & 0xf);
    let value = target_list
        | (aff1 << 16)
        | (((intid & 0xf) as u64) << 24)
        | (aff2 << 32)
        | (range_selector << 44)
        | (aff3 << 48);
    // SAFETY: a barrier only orders our earlier stores before the interrupt is sent.
    unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
    regs::set_icc_sgi1r_el1(value);
}

#[cfg(not(target_arch = "aarch64"))]
mod host {
    pub fn init_cpu_interface() {}
    pub fn acknowledge() -> u32 { super::SPURIOUS }
    pub fn end_of_interrupt(_: u32) {}
    pub fn send_sgi(_: u32, _: u64) {}
}
#[cfg(not(target_arch = "aarch64"))]
pub use host::*;
