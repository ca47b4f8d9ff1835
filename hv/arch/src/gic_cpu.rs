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
    sysreg_rw!(icc_dir_el1_unused, set_icc_dir_el1, "S3_0_C12_C11_1");
    // Group 0 and the active priorities, for direct-interrupt CPUs (IHI 0069 12.2).
    sysreg_rw!(icc_iar0_el1, set_icc_iar0_el1_unused, "S3_0_C12_C8_0");
    sysreg_rw!(icc_eoir0_el1_unused, set_icc_eoir0_el1, "S3_0_C12_C8_1");
    sysreg_rw!(icc_bpr0_el1_unused, set_icc_bpr0_el1, "S3_0_C12_C8_3");
    sysreg_rw!(icc_igrpen0_el1_unused, set_icc_igrpen0_el1, "S3_0_C12_C12_6");
    sysreg_rw!(icc_sgi0r_el1_unused, set_icc_sgi0r_el1, "S3_0_C12_C11_7");
    sysreg_rw!(icc_ap0r0_el1_unused, set_icc_ap0r0_el1, "S3_0_C12_C8_4");
    sysreg_rw!(icc_ap1r0_el1, set_icc_ap1r0_el1, "S3_0_C12_C9_0");
    sysreg_rw!(icc_ap1r1_el1_unused, set_icc_ap1r1_el1, "S3_0_C12_C9_1");
    sysreg_rw!(icc_ap1r2_el1_unused, set_icc_ap1r2_el1, "S3_0_C12_C9_2");
    sysreg_rw!(icc_ap1r3_el1_unused, set_icc_ap1r3_el1, "S3_0_C12_C9_3");
    // Virtual CPU interface control (IHI 0069 12.5).
    sysreg_rw!(ich_hcr_el2, set_ich_hcr_el2, "S3_4_C12_C11_0");
    sysreg_rw!(ich_vtr_el2, set_ich_vtr_el2_unused, "S3_4_C12_C11_1");
    sysreg_rw!(ich_misr_el2, set_ich_misr_el2_unused, "S3_4_C12_C11_2");
    sysreg_rw!(ich_elrsr_el2, set_ich_elrsr_el2_unused, "S3_4_C12_C11_5");
    sysreg_rw!(ich_vmcr_el2, set_ich_vmcr_el2, "S3_4_C12_C11_7");
    sysreg_rw!(ich_ap1r0_el2, set_ich_ap1r0_el2, "S3_4_C12_C9_0");
    sysreg_rw!(ich_lr0, set_ich_lr0, "S3_4_C12_C12_0");
    sysreg_rw!(ich_lr1, set_ich_lr1, "S3_4_C12_C12_1");
    sysreg_rw!(ich_lr2, set_ich_lr2, "S3_4_C12_C12_2");
    sysreg_rw!(ich_lr3, set_ich_lr3, "S3_4_C12_C12_3");
    sysreg_rw!(ich_lr4, set_ich_lr4, "S3_4_C12_C12_4");
    sysreg_rw!(ich_lr5, set_ich_lr5, "S3_4_C12_C12_5");
    sysreg_rw!(ich_lr6, set_ich_lr6, "S3_4_C12_C12_6");
    sysreg_rw!(ich_lr7, set_ich_lr7, "S3_4_C12_C12_7");
    sysreg_rw!(ich_lr8, set_ich_lr8, "S3_4_C12_C13_0");
    sysreg_rw!(ich_lr9, set_ich_lr9, "S3_4_C12_C13_1");
    sysreg_rw!(ich_lr10, set_ich_lr10, "S3_4_C12_C13_2");
    sysreg_rw!(ich_lr11, set_ich_lr11, "S3_4_C12_C13_3");
    sysreg_rw!(ich_lr12, set_ich_lr12, "S3_4_C12_C13_4");
    sysreg_rw!(ich_lr13, set_ich_lr13, "S3_4_C12_C13_5");
    sysreg_rw!(ich_lr14, set_ich_lr14, "S3_4_C12_C13_6");
    sysreg_rw!(ich_lr15, set_ich_lr15, "S3_4_C12_C13_7");
}

/// Most list registers any GICv3 implementation has (ICH_VTR_EL2.ListRegs + 1 <= 16).
pub const MAX_LIST_REGISTERS: usize = 16;

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
    // EOImode = 1: EOIR only drops priority; deactivation is separate (DIR), so that an
    // interrupt forwarded to a guest is deactivated by the guest's own EOI (HW list
    // registers, IHI 0069 4.4).
    regs::set_icc_ctlr_el1(regs::icc_ctlr_el1() | 0b10);
    regs::set_icc_igrpen1_el1(1);
}

/// Lets this CPU's vectors wait for a trapped WFI themselves (`vectors.S`, `guest_wfx`): the
/// ICH_ELRSR_EL2 value with every list register empty, their test that the vCPU has nothing
/// loaded. For CPUs that run one vCPU for good, whose list register 0 is reserved for the
/// timer fast path (`set_timer_fast_path`).
#[cfg(target_arch = "aarch64")]
pub fn enable_wfi_fast_path() {
    let empty = (1u64 << list_register_count()) - 1;
    crate::cpu::set_fast_path_field(crate::cpu::FastPathField::LrsEmpty, empty);
}

/// Turns the virtual-timer fast path of the exception vectors on for the vCPU that runs on
/// this CPU (`vectors.S`, `guest_irq` and `guest_wfx`), or off with 0. `lr` is the
/// ICH_LR0_EL2 value that makes the timer pending (HW-linked, the guest's priority; its low
/// 32 bits are the INTID the physical timer interrupt has). The caller reserves list register
/// 0 for it: nothing else may load that list register while the fast path can be on.
pub fn set_timer_fast_path(lr: u64) {
    crate::cpu::set_fast_path_field(crate::cpu::FastPathField::TimerLr, lr);
}

/// The interrupt a fast path acknowledged but left to the kernel (then its exit is an IRQ
/// exit), if any; handled like one `acknowledge` just returned. Taking it clears it.
pub fn take_stashed() -> Option<u32> {
    // Stored plus one (0: none).
    let stored = crate::cpu::set_fast_path_field(crate::cpu::FastPathField::Stashed, 0);
    let intid = (stored.checked_sub(1)? & 0xff_ffff) as u32;
    (intid < SPURIOUS - 3).then_some(intid)
}


/// Acknowledges the highest-priority pending Group 1 interrupt; `SPURIOUS` if none.
#[cfg(target_arch = "aarch64")]
pub fn acknowledge() -> u32 {
    (regs::icc_iar1_el1() & 0xff_ffff) as u32
}

/// Drops the running priority of an acknowledged interrupt (EOImode = 1: it stays active).
#[cfg(target_arch = "aarch64")]
pub fn priority_drop(intid: u32) {
    regs::set_icc_eoir1_el1(intid as u64);
}

/// Deactivates an interrupt the hypervisor handled itself.
#[cfg(target_arch = "aarch64")]
pub fn deactivate(intid: u32) {
    regs::set_icc_dir_el1(intid as u64);
}

/// How many list registers this CPU has (ICH_VTR_EL2.ListRegs + 1).
#[cfg(target_arch = "aarch64")]
pub fn list_register_count() -> usize {
    ((regs::ich_vtr_el2() & 0x1f) as usize + 1).min(MAX_LIST_REGISTERS)
}

/// Reads list register `n` (0 for an index the CPU does not have).
#[cfg(target_arch = "aarch64")]
pub fn read_lr(n: usize) -> u64 {
    match n {
        0 => regs::ich_lr0(), 1 => regs::ich_lr1(), 2 => regs::ich_lr2(), 3 => regs::ich_lr3(),
        4 => regs::ich_lr4(), 5 => regs::ich_lr5(), 6 => regs::ich_lr6(), 7 => regs::ich_lr7(),
        8 => regs::ich_lr8(), 9 => regs::ich_lr9(), 10 => regs::ich_lr10(), 11 => regs::ich_lr11(),
        12 => regs::ich_lr12(), 13 => regs::ich_lr13(), 14 => regs::ich_lr14(), 15 => regs::ich_lr15(),
        _ => 0,
    }
}

/// Writes list register `n` (ignored for an index the CPU does not have).
#[cfg(target_arch = "aarch64")]
pub fn write_lr(n: usize, value: u64) {
    match n {
        0 => regs::set_ich_lr0(value), 1 => regs::set_ich_lr1(value), 2 => regs::set_ich_lr2(value),
        3 => regs::set_ich_lr3(value), 4 => regs::set_ich_lr4(value), 5 => regs::set_ich_lr5(value),
        6 => regs::set_ich_lr6(value), 7 => regs::set_ich_lr7(value), 8 => regs::set_ich_lr8(value),
        9 => regs::set_ich_lr9(value), 10 => regs::set_ich_lr10(value), 11 => regs::set_ich_lr11(value),
        12 => regs::set_ich_lr12(value), 13 => regs::set_ich_lr13(value), 14 => regs::set_ich_lr14(value),
        15 => regs::set_ich_lr15(value),
        _ => {}
    }
}

/// ICH_HCR_EL2 (IHI 0069 12.5.5): En (bit 0) turns the virtual CPU interface on; UIE (bit 1)
/// raises the maintenance interrupt when at most one list register holds an interrupt, so
/// the hypervisor can refill them.
#[cfg(target_arch = "aarch64")]
pub fn set_virtual_interface(enabled: bool, underflow_irq: bool) {
    regs::set_ich_hcr_el2(enabled as u64 | ((underflow_irq as u64) << 1));
}

/// ICH_VMCR_EL2: the guest's view of its CPU interface (priority mask, group enables).
#[cfg(target_arch = "aarch64")]
pub fn vmcr() -> u64 {
    regs::ich_vmcr_el2()
}

/// Restores ICH_VMCR_EL2.
#[cfg(target_arch = "aarch64")]
pub fn set_vmcr(value: u64) {
    regs::set_ich_vmcr_el2(value);
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

/// Sends SGI `intid` (0-15) to every CPU but this one: ICC_SGI1R_EL1.IRM = 1 (bit 40,
/// IHI 0069 12.2.22), so no affinity is needed (the fatal-fault path).
#[cfg(target_arch = "aarch64")]
pub fn send_sgi_to_others(intid: u32) {
    let value = (1u64 << 40) | (((intid & 0xf) as u64) << 24);
    // SAFETY: a barrier only orders our earlier stores before the interrupt is sent.
    unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
    regs::set_icc_sgi1r_el1(value);
}

/// ICC_SRE_EL1 as a direct guest reads it (its accesses trap, ICC_SRE_EL2.Enable = 0): SRE,
/// DFB and DIB set (IHI 0069 12.2.23), the system-register interface it already has.
pub const GUEST_ICC_SRE_EL1: u64 = 0b111;

/// The CPU interface of a CPU that runs a direct-interrupt VM (docs/direct-mode.md): EL1
/// may not reach ICC_SRE_EL1 (ICC_SRE_EL2.Enable = 0); EOImode = 0, so the guest's EOIR1
/// drops priority and deactivates; Group 0 (the hypervisor's kick and halt SGIs) enabled,
/// with no priority grouping; Group 1 (the guest's) off until the guest enables it; every
/// priority unmasked (ICC_PMR_EL1 stays the hypervisor's: the guest's PMR is virtual).
#[cfg(target_arch = "aarch64")]
pub fn init_direct_cpu_interface() {
    // ICC_SRE_EL2: SRE, DFB, DIB (bits 0-2); Enable (bit 3) clear.
    regs::set_icc_sre_el2((regs::icc_sre_el2() & !0b1000) | 0b111);
    regs::set_icc_pmr_el1(0xff);
    regs::set_icc_bpr0_el1(0);
    regs::set_icc_ctlr_el1(regs::icc_ctlr_el1() & !0b10);
    regs::set_icc_igrpen0_el1(1);
    clear_guest_cpu_interface();
}

/// Takes back what a direct guest left in the physical CPU interface: its active priorities
/// (ICC_AP1Rn_EL1, however many the CPU implements: ICC_CTLR_EL1.PRIbits) and its Group 1
/// enable, so a stopped guest neither blocks the hypervisor's Group 0 nor leaves its
/// interrupts signalled to an idle CPU.
#[cfg(target_arch = "aarch64")]
pub fn clear_guest_cpu_interface() {
    regs::set_icc_igrpen1_el1(0);
    let priority_bits = ((regs::icc_ctlr_el1() >> 8) & 0b111) + 1;
    regs::set_icc_ap1r0_el1(0);
    if priority_bits >= 6 {
        regs::set_icc_ap1r1_el1(0);
    }
    if priority_bits >= 7 {
        regs::set_icc_ap1r2_el1(0);
        regs::set_icc_ap1r3_el1(0);
    }
    regs::set_icc_ap0r0_el1(0);
}

/// ICC_AP1R0_EL1 as the guest left it (a test and a log line read it).
#[cfg(target_arch = "aarch64")]
pub fn active_priorities_group1() -> u64 {
    regs::icc_ap1r0_el1()
}

/// Acknowledges the highest-priority pending Group 0 interrupt; `SPURIOUS` if none.
#[cfg(target_arch = "aarch64")]
pub fn acknowledge_group0() -> u32 {
    (regs::icc_iar0_el1() & 0xff_ffff) as u32
}

/// Ends a Group 0 interrupt (EOImode = 0 on a direct CPU: drops priority and deactivates).
#[cfg(target_arch = "aarch64")]
pub fn end_group0(intid: u32) {
    regs::set_icc_eoir0_el1(intid as u64);
}

/// ICC_SGI1R_EL1 / ICC_SGI0R_EL1 value naming the one CPU with affinity `mpidr`.
#[cfg(target_arch = "aarch64")]
const fn sgi_value(intid: u32, mpidr: u64) -> u64 {
    let aff0 = mpidr & 0xff;
    let aff1 = (mpidr >> 8) & 0xff;
    let aff2 = (mpidr >> 16) & 0xff;
    let aff3 = (mpidr >> 32) & 0xff;
    (1u64 << (aff0 & 0xf)) | (aff1 << 16) | (((intid & 0xf) as u64) << 24) | (aff2 << 32) | ((aff0 >> 4) << 44) | (aff3 << 48)
}

/// Sends Group 0 SGI `intid` to the CPU with affinity `mpidr` (ICC_SGI0R_EL1): the kick of a
/// direct-interrupt CPU, where the hypervisor's SGIs are Group 0 (a Group 1 SGI would not
/// reach them, IHI 0069 12.2.21).
#[cfg(target_arch = "aarch64")]
pub fn send_sgi0(intid: u32, mpidr: u64) {
    // SAFETY: a barrier only orders our earlier stores before the interrupt is sent.
    unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
    regs::set_icc_sgi0r_el1(sgi_value(intid, mpidr));
}

/// Sends Group 0 SGI `intid` to every CPU but this one (IRM = 1): the halt, to the CPUs
/// where it is Group 0.
#[cfg(target_arch = "aarch64")]
pub fn send_sgi0_to_others(intid: u32) {
    // SAFETY: a barrier only orders our earlier stores before the interrupt is sent.
    unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
    regs::set_icc_sgi0r_el1((1u64 << 40) | (((intid & 0xf) as u64) << 24));
}

#[cfg(not(target_arch = "aarch64"))]
mod host {
    pub fn init_direct_cpu_interface() {}
    pub fn clear_guest_cpu_interface() {}
    pub fn active_priorities_group1() -> u64 { 0 }
    pub fn acknowledge_group0() -> u32 { super::SPURIOUS }
    pub fn end_group0(_: u32) {}
    pub fn send_sgi0(_: u32, _: u64) {}
    pub fn send_sgi0_to_others(_: u32) {}
    pub fn init_cpu_interface() {}
    pub fn enable_wfi_fast_path() {}
    pub fn acknowledge() -> u32 { super::SPURIOUS }
    pub fn priority_drop(_: u32) {}
    pub fn deactivate(_: u32) {}
    pub fn list_register_count() -> usize { 4 }
    pub fn read_lr(_: usize) -> u64 { 0 }
    pub fn write_lr(_: usize, _: u64) {}
    pub fn set_virtual_interface(_: bool, _: bool) {}
    pub fn vmcr() -> u64 { 0 }
    pub fn set_vmcr(_: u64) {}
    pub fn send_sgi(_: u32, _: u64) {}
    pub fn send_sgi_to_others(_: u32) {}
}
#[cfg(not(target_arch = "aarch64"))]
pub use host::*;
