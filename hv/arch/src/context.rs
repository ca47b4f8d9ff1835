//! A vCPU's CPU state beyond its general-purpose registers, saved and restored when an RTDS
//! CPU switches between vCPUs (a null-pool CPU never switches and never calls this).
//!
//! What is switched (DDI 0487, the EL1 registers an ARMv8.0 guest can write, as KVM's
//! `sysreg-sr.c` lists them for a CPU without later extensions): the EL1 translation and
//! control registers, exception state, thread IDs, the EL0/EL1 stack pointers, MDSCR_EL1,
//! CNTKCTL_EL1, the EL1 virtual timer (CNTV_CTL_EL0, CNTV_CVAL_EL0), the virtual CPU
//! interface's VMCR and active-priority registers (ICH_VMCR_EL2, ICH_AP0R0_EL2,
//! ICH_AP1R0_EL2: five priority bits, so one of each, IHI 0069 12.5.1-2), VMPIDR_EL2, and the
//! FP/SIMD registers q0-q31, FPSR and FPCR. The list registers travel through the vGIC
//! model (`flush`/`sync`); VTTBR_EL2, HCR_EL2, CNTHCTL_EL2 and CNTVOFF_EL2 are per VM and
//! reloaded with `guest::load_vm`.
//!
//! FP/SIMD is saved eagerly: the hypervisor is built soft-float, so these two routines are
//! the only EL2 code that touches the FP registers, in assembly, with `.arch_extension fp`.

/// Offsets (in u64 words) of the system registers in [`El1Context::sys`], shared with the
/// assembly below.
pub mod slot {
    pub const SCTLR_EL1: usize = 0;
    pub const CNTV_CTL_EL0: usize = 24;
    pub const CNTV_CVAL_EL0: usize = 25;
    pub const VMPIDR_EL2: usize = 29;
}

/// Number of system-register words.
pub const SYS_WORDS: usize = 30;

/// A descheduled vCPU's state (see the module docs). `#[repr(C)]`, layout shared with the
/// assembly: `fp` (32 × 16 bytes), `fpsr`, `fpcr`, then `sys`.
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy)]
pub struct El1Context {
    pub fp: [[u64; 2]; 32],
    pub fpsr: u64,
    pub fpcr: u64,
    pub sys: [u64; SYS_WORDS],
}

const _: () = assert!(core::mem::offset_of!(El1Context, fpsr) == 512);
const _: () = assert!(core::mem::offset_of!(El1Context, sys) == 528);

impl El1Context {
    /// The state of a vCPU that has never run: MMU and caches off (`sctlr`), everything else
    /// zero, timer off, identity `vmpidr`.
    pub const fn reset(vmpidr: u64, sctlr: u64) -> Self {
        let mut sys = [0; SYS_WORDS];
        sys[slot::SCTLR_EL1] = sctlr;
        sys[slot::VMPIDR_EL2] = vmpidr;
        Self { fp: [[0; 2]; 32], fpsr: 0, fpcr: 0, sys }
    }

    /// The virtual timer's compare value as physical counter time (`cntvoff` added), if the
    /// timer is enabled and unmasked: when a descheduled vCPU's timer fires.
    pub fn timer_deadline(&self, cntvoff: u64) -> Option<u64> {
        let ctl = self.sys[slot::CNTV_CTL_EL0];
        // CNTV_CTL_EL0: ENABLE bit 0, IMASK bit 1 (DDI 0487 D24.11.19).
        (ctl & 0b11 == 0b01).then(|| self.sys[slot::CNTV_CVAL_EL0].wrapping_add(cntvoff))
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
core::arch::global_asm!(
    r#"
.arch_extension fp
.arch_extension simd

// Saves this CPU's vCPU state into the El1Context at x0 and turns the virtual timer off (so
// that it cannot fire for the next vCPU). Clobbers x1-x3.
.section .text.tessera_context_save, "ax"
.global tessera_context_save
tessera_context_save:
    stp     q0, q1, [x0, #0]
    stp     q2, q3, [x0, #32]
    stp     q4, q5, [x0, #64]
    stp     q6, q7, [x0, #96]
    stp     q8, q9, [x0, #128]
    stp     q10, q11, [x0, #160]
    stp     q12, q13, [x0, #192]
    stp     q14, q15, [x0, #224]
    stp     q16, q17, [x0, #256]
    stp     q18, q19, [x0, #288]
    stp     q20, q21, [x0, #320]
    stp     q22, q23, [x0, #352]
    stp     q24, q25, [x0, #384]
    stp     q26, q27, [x0, #416]
    stp     q28, q29, [x0, #448]
    stp     q30, q31, [x0, #480]
    add     x3, x0, #512
    mrs     x1, fpsr
    mrs     x2, fpcr
    stp     x1, x2, [x3]
    add     x3, x0, #528
    mrs     x1, sctlr_el1
    mrs     x2, cpacr_el1
    stp     x1, x2, [x3, #0]
    mrs     x1, ttbr0_el1
    mrs     x2, ttbr1_el1
    stp     x1, x2, [x3, #16]
    mrs     x1, tcr_el1
    mrs     x2, esr_el1
    stp     x1, x2, [x3, #32]
    mrs     x1, afsr0_el1
    mrs     x2, afsr1_el1
    stp     x1, x2, [x3, #48]
    mrs     x1, far_el1
    mrs     x2, mair_el1
    stp     x1, x2, [x3, #64]
    mrs     x1, vbar_el1
    mrs     x2, contextidr_el1
    stp     x1, x2, [x3, #80]
    mrs     x1, amair_el1
    mrs     x2, cntkctl_el1
    stp     x1, x2, [x3, #96]
    mrs     x1, par_el1
    mrs     x2, tpidr_el1
    stp     x1, x2, [x3, #112]
    mrs     x1, sp_el1
    mrs     x2, elr_el1
    stp     x1, x2, [x3, #128]
    mrs     x1, spsr_el1
    mrs     x2, sp_el0
    stp     x1, x2, [x3, #144]
    mrs     x1, tpidr_el0
    mrs     x2, tpidrro_el0
    stp     x1, x2, [x3, #160]
    mrs     x1, csselr_el1
    mrs     x2, mdscr_el1
    stp     x1, x2, [x3, #176]
    mrs     x1, cntv_ctl_el0
    mrs     x2, cntv_cval_el0
    stp     x1, x2, [x3, #192]
    mrs     x1, S3_4_C12_C11_7      // ICH_VMCR_EL2
    mrs     x2, S3_4_C12_C8_0       // ICH_AP0R0_EL2
    stp     x1, x2, [x3, #208]
    mrs     x1, S3_4_C12_C9_0       // ICH_AP1R0_EL2
    mrs     x2, vmpidr_el2
    stp     x1, x2, [x3, #224]
    msr     cntv_ctl_el0, xzr
    isb
    ret

// Loads the vCPU state at x0 into this CPU. Clobbers x1-x3.
.section .text.tessera_context_restore, "ax"
.global tessera_context_restore
tessera_context_restore:
    ldp     q0, q1, [x0, #0]
    ldp     q2, q3, [x0, #32]
    ldp     q4, q5, [x0, #64]
    ldp     q6, q7, [x0, #96]
    ldp     q8, q9, [x0, #128]
    ldp     q10, q11, [x0, #160]
    ldp     q12, q13, [x0, #192]
    ldp     q14, q15, [x0, #224]
    ldp     q16, q17, [x0, #256]
    ldp     q18, q19, [x0, #288]
    ldp     q20, q21, [x0, #320]
    ldp     q22, q23, [x0, #352]
    ldp     q24, q25, [x0, #384]
    ldp     q26, q27, [x0, #416]
    ldp     q28, q29, [x0, #448]
    ldp     q30, q31, [x0, #480]
    add     x3, x0, #512
    ldp     x1, x2, [x3]
    msr     fpsr, x1
    msr     fpcr, x2
    add     x3, x0, #528
    ldp     x1, x2, [x3, #0]
    msr     sctlr_el1, x1
    msr     cpacr_el1, x2
    ldp     x1, x2, [x3, #16]
    msr     ttbr0_el1, x1
    msr     ttbr1_el1, x2
    ldp     x1, x2, [x3, #32]
    msr     tcr_el1, x1
    msr     esr_el1, x2
    ldp     x1, x2, [x3, #48]
    msr     afsr0_el1, x1
    msr     afsr1_el1, x2
    ldp     x1, x2, [x3, #64]
    msr     far_el1, x1
    msr     mair_el1, x2
    ldp     x1, x2, [x3, #80]
    msr     vbar_el1, x1
    msr     contextidr_el1, x2
    ldp     x1, x2, [x3, #96]
    msr     amair_el1, x1
    msr     cntkctl_el1, x2
    ldp     x1, x2, [x3, #112]
    msr     par_el1, x1
    msr     tpidr_el1, x2
    ldp     x1, x2, [x3, #128]
    msr     sp_el1, x1
    msr     elr_el1, x2
    ldp     x1, x2, [x3, #144]
    msr     spsr_el1, x1
    msr     sp_el0, x2
    ldp     x1, x2, [x3, #160]
    msr     tpidr_el0, x1
    msr     tpidrro_el0, x2
    ldp     x1, x2, [x3, #176]
    msr     csselr_el1, x1
    msr     mdscr_el1, x2
    ldp     x1, x2, [x3, #192]
    msr     cntv_cval_el0, x2
    msr     cntv_ctl_el0, x1
    ldp     x1, x2, [x3, #208]
    msr     S3_4_C12_C11_7, x1      // ICH_VMCR_EL2
    msr     S3_4_C12_C8_0, x2       // ICH_AP0R0_EL2
    ldp     x1, x2, [x3, #224]
    msr     S3_4_C12_C9_0, x1       // ICH_AP1R0_EL2
    msr     vmpidr_el2, x2
    isb
    ret
"#
);

/// Saves this CPU's current vCPU state into `context` and disables the virtual timer.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn save(context: &mut El1Context) {
    unsafe extern "C" {
        fn tessera_context_save(context: *mut El1Context);
    }
    // SAFETY: `context` is a valid, exclusive, 16-byte aligned El1Context whose layout the
    // routine follows (offsets asserted above); the routine writes only into it and reads
    // EL1/EL2 system and FP registers, clobbering x1-x3 (caller-saved), and turns the EL1
    // virtual timer off, which only affects the guest that is no longer on this CPU.
    unsafe { tessera_context_save(context) }
}

/// Loads `context` into this CPU's EL1, FP/SIMD, timer and virtual-interface registers.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn restore(context: &El1Context) {
    unsafe extern "C" {
        fn tessera_context_restore(context: *const El1Context);
    }
    // SAFETY: reads only from `context` (valid, aligned); writes EL1 registers (which only
    // the guest about to be entered uses: EL2 runs with its own translation regime), the
    // virtual timer and ICH_* state of that guest, and FP/SIMD registers, which EL2 code
    // never uses (soft-float build). Clobbers x1-x3 only.
    unsafe { tessera_context_restore(context) }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn save(_: &mut El1Context) {
    unimplemented!("host build")
}
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn restore(_: &El1Context) {
    unimplemented!("host build")
}
