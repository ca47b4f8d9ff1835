//! The attack guest's unsafe part beyond the shared `arch.rs`: single instructions that may
//! fault, and the bookkeeping that tells a probe whether it did.
//!
//! Every primitive is one faulting instruction (after a `mov` that zeroes its destination),
//! so when the vector skips it (ELR + 4) the result is 0 and nothing else is lost. The vector
//! (`attack::exception`) calls [`record`]; [`attempt`] compares the fault count around a
//! closure. Only the boot CPU runs probes, with IRQs masked.
//!
//! Encodings: DDI 0487 (system registers and instructions; `S3_…` for IMPLEMENTATION DEFINED
//! ones), IHI 0069H §12.2.22 (ICC_SGI1R_EL1), DEN 0028 (SMCCC).

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

static FAULTS: AtomicU64 = AtomicU64::new(0);
static LAST_ESR: AtomicU64 = AtomicU64::new(0);
static LAST_FAR: AtomicU64 = AtomicU64::new(0);

/// Called by the synchronous vector for every exception a probe took.
pub fn record(esr: u64, far: u64) {
    LAST_ESR.store(esr, Ordering::Relaxed);
    LAST_FAR.store(far, Ordering::Relaxed);
    FAULTS.fetch_add(1, Ordering::Release);
}

/// How one attempted instruction (or short sequence) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No exception; the value it produced (0 for a store).
    Completed(u64),
    /// It took an exception: ESR_EL1 and FAR_EL1 of the last one.
    Faulted { esr: u64, far: u64 },
}

impl Outcome {
    /// An injected synchronous external abort on a data access (EC 0x25, DFSC 0x10).
    pub fn is_external_abort(&self) -> bool {
        matches!(self, Outcome::Faulted { esr, .. } if (esr >> 26) & 0x3f == 0x25 && esr & 0x3f == 0x10)
    }
}

/// Runs `f` and says whether it faulted.
pub fn attempt(f: impl FnOnce() -> u64) -> Outcome {
    let before = FAULTS.load(Ordering::Acquire);
    let value = f();
    if FAULTS.load(Ordering::Acquire) == before {
        Outcome::Completed(value)
    } else {
        Outcome::Faulted {
            esr: LAST_ESR.load(Ordering::Relaxed),
            far: LAST_FAR.load(Ordering::Relaxed),
        }
    }
}

/// A 32-bit load from any address.
pub fn load32(address: u64) -> u64 {
    let value: u64;
    // SAFETY: a deliberate load from an address outside this VM (the point of the probe); the
    // guest has its MMU off, so nothing it owns is mapped there, and a fault is skipped by the
    // vector with the destination still zero.
    unsafe {
        asm!("mov {v:x}, #0", "ldr {v:w}, [{a}]", a = in(reg) address, v = out(reg) value, options(nostack, preserves_flags))
    };
    value
}

/// A 32-bit store to any address.
pub fn store32(address: u64, value: u32) {
    // SAFETY: as for `load32`, a store; it never targets this guest's own RAM (the plan skips
    // it), so an escape corrupts someone else, which the test then reports.
    unsafe { asm!("str {v:w}, [{a}]", a = in(reg) address, v = in(reg) value, options(nostack, preserves_flags)) };
}

/// A load pair: a valid syndrome cannot describe it (ISV = 0), so the hypervisor cannot
/// emulate it even inside an emulated frame.
pub fn load_pair(address: u64) -> u64 {
    let (first, second): (u64, u64);
    // SAFETY: as for `load32`; two 32-bit loads from an emulated device frame or outside RAM.
    unsafe {
        asm!(
            "mov {a:x}, #0", "mov {b:x}, #0",
            "ldp {a:w}, {b:w}, [{p}]",
            p = in(reg) address, a = out(reg) first, b = out(reg) second,
            options(nostack, preserves_flags)
        )
    };
    first | second
}

/// A branch with link to `address`: an instruction fetch outside the VM. The vector returns
/// an instruction abort to x30, just after the `blr`.
pub fn execute(address: u64) -> u64 {
    let value: u64;
    // SAFETY: fetching from an address outside this VM must abort (the point of the probe);
    // the vector resumes at x30. x0 is zeroed first and would carry anything a fetched
    // instruction stream left there if the fetch escaped; every caller-saved register is
    // declared clobbered, in case foreign code runs.
    unsafe {
        asm!(
            "mov x0, #0",
            "blr {a}",
            a = in(reg) address,
            out("x0") value,
            clobber_abi("C"),
            options(nostack)
        )
    };
    value
}

/// A byte store (the vGIC's distributor takes 32- and 64-bit accesses only, except for the
/// byte-wide priority and target registers).
pub fn store8(address: u64, value: u8) {
    // SAFETY: as for `store32`.
    unsafe { asm!("strb {v:w}, [{a}]", a = in(reg) address, v = in(reg) u32::from(value), options(nostack, preserves_flags)) };
}

/// Defines a read and a write function for one system register. Reads zero their destination
/// first, so a trapped-and-skipped read returns 0.
macro_rules! sysreg {
    ($read:ident, $write:ident, $reg:literal) => {
        #[allow(dead_code, reason = "not every register is both read and written")]
        pub fn $read() -> u64 {
            let value: u64;
            // SAFETY: reading a system register has no memory effect; if EL1 may not read it,
            // the exception is recorded and the instruction skipped.
            unsafe { asm!("mov {v}, #0", concat!("mrs {v}, ", $reg), v = out(reg) value, options(nomem, nostack, preserves_flags)) };
            value
        }
        #[allow(dead_code, reason = "not every register is both read and written")]
        pub fn $write(value: u64) {
            // SAFETY: the probe writes a register the hypervisor must keep from this guest (or
            // RAZ/WI); the value never makes this guest touch memory it does not own, and
            // debug exceptions stay masked (PSTATE.D).
            unsafe { asm!(concat!("msr ", $reg, ", {v}"), "isb", v = in(reg) value, options(nomem, nostack, preserves_flags)) };
        }
    };
}

sysreg!(id_aa64mmfr0_el1, _set_id_aa64mmfr0_el1, "id_aa64mmfr0_el1");
sysreg!(pmcr_el0, set_pmcr_el0, "pmcr_el0");
sysreg!(pmcntenset_el0, set_pmcntenset_el0, "pmcntenset_el0");
sysreg!(_pmcntenclr_el0, set_pmcntenclr_el0, "pmcntenclr_el0");
sysreg!(pmselr_el0, set_pmselr_el0, "pmselr_el0");
sysreg!(pmxevcntr_el0, set_pmxevcntr_el0, "pmxevcntr_el0");
sysreg!(pmxevtyper_el0, set_pmxevtyper_el0, "pmxevtyper_el0");
sysreg!(mdscr_el1, set_mdscr_el1, "mdscr_el1");
sysreg!(dbgbvr0_el1, set_dbgbvr0_el1, "dbgbvr0_el1");
sysreg!(dbgbcr0_el1, set_dbgbcr0_el1, "dbgbcr0_el1");
sysreg!(dbgwvr0_el1, set_dbgwvr0_el1, "dbgwvr0_el1");
sysreg!(dbgwcr0_el1, set_dbgwcr0_el1, "dbgwcr0_el1");
sysreg!(cntp_ctl_el0, set_cntp_ctl_el0, "cntp_ctl_el0");
sysreg!(cntp_cval_el0, set_cntp_cval_el0, "cntp_cval_el0");
sysreg!(cntp_tval_el0, set_cntp_tval_el0, "cntp_tval_el0");
sysreg!(cntpct_el0, _set_cntpct_el0, "cntpct_el0");
sysreg!(cntvct_el0, _set_cntvct_el0, "cntvct_el0");
sysreg!(_cntkctl_el1, set_cntkctl_el1, "cntkctl_el1");
sysreg!(actlr_el1, set_actlr_el1, "actlr_el1");
// Cortex-A57 IMPLEMENTATION DEFINED registers (A57 TRM §4.3): L2CTLR_EL1, L2ECTLR_EL1,
// CPUACTLR_EL1, CPUECTLR_EL1, CBAR_EL1 (reads the GIC's physical base when not trapped).
sysreg!(l2ctlr_el1, set_l2ctlr_el1, "S3_1_C11_C0_2");
sysreg!(l2ectlr_el1, set_l2ectlr_el1, "S3_1_C11_C0_3");
sysreg!(cpuactlr_el1, _set_cpuactlr_el1, "S3_1_C15_C2_0");
sysreg!(cpuectlr_el1, _set_cpuectlr_el1, "S3_1_C15_C2_1");
sysreg!(cbar_el1, _set_cbar_el1, "S3_1_C15_C3_0");
// EL2 registers: UNDEFINED at EL1.
sysreg!(hcr_el2, set_hcr_el2, "hcr_el2");
sysreg!(vttbr_el2, _set_vttbr_el2, "vttbr_el2");
sysreg!(_vbar_el2, set_vbar_el2, "vbar_el2");
sysreg!(mdcr_el2, _set_mdcr_el2, "mdcr_el2");
// ICC_SGI1R_EL1 (IHI 0069H §12.2.22).
sysreg!(_icc_sgi1r_el1, set_icc_sgi1r_el1, "S3_0_C12_C11_5");

/// Defines a function for one system instruction with a register operand.
macro_rules! sysop {
    ($name:ident, $op:literal) => {
        pub fn $name(operand: u64) {
            // SAFETY: cache and TLB maintenance by set/way, or an EL2-only operation: it never
            // changes what this guest's own memory holds (its accesses are Device, uncached,
            // with the MMU off), and an UNDEFINED one is recorded and skipped.
            unsafe { asm!(concat!($op, ", {v}"), "dsb sy", "isb", v = in(reg) operand, options(nostack, preserves_flags)) };
        }
    };
    ($name:ident, $op:literal, none) => {
        pub fn $name() {
            // SAFETY: as above, with no operand.
            unsafe { asm!($op, "dsb sy", "isb", options(nostack, preserves_flags)) };
        }
    };
}

sysop!(dc_cisw, "dc cisw");
sysop!(dc_csw, "dc csw");
sysop!(dc_isw, "dc isw");
sysop!(tlbi_ipas2e1is, "tlbi ipas2e1is");
sysop!(at_s12e1r, "at s12e1r");
sysop!(tlbi_vmalle1is, "tlbi vmalle1is", none);
sysop!(tlbi_alle1is, "tlbi alle1is", none);
sysop!(tlbi_alle2, "tlbi alle2", none);
sysop!(tlbi_vmalls12e1is, "tlbi vmalls12e1is", none);

/// `count` WFEs. The caller turns on the virtual counter's event stream first, so each one
/// ends within its period even if it is not trapped.
pub fn wfe_storm(count: u64) {
    for _ in 0..count {
        // SAFETY: WFE only waits for an event; the event stream bounds the wait.
        unsafe { asm!("wfe", options(nomem, nostack, preserves_flags)) };
    }
}

/// An SMCCC call through HVC or SMC with x0..x3; returns x0..x3.
pub fn smccc(use_smc: bool, args: [u64; 4]) -> [u64; 4] {
    let [mut x0, mut x1, mut x2, mut x3] = args;
    if use_smc {
        // SAFETY: an SMCCC call changes at most x0-x17 (clobbered per the C ABI) and touches no
        // memory Rust owns. Tessera traps it (HCR_EL2.TSC).
        unsafe {
            asm!("smc #0", inout("x0") x0, inout("x1") x1, inout("x2") x2, inout("x3") x3, clobber_abi("C"))
        };
    } else {
        // SAFETY: as above.
        unsafe {
            asm!("hvc #0", inout("x0") x0, inout("x1") x1, inout("x2") x2, inout("x3") x3, clobber_abi("C"))
        };
    }
    [x0, x1, x2, x3]
}
