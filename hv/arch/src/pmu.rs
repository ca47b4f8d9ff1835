//! The hypervisor's own PMU counter: instructions retired at EL2, for the benchmark suite's
//! `el2_instr_per_irq` (read by guests through the `TESSERA_STATS` call, `docs/hvcall.md`).
//!
//! The last event counter is reserved for EL2 with MDCR_EL2.HPMN = PMCR_EL0.N − 1, enabled by
//! MDCR_EL2.HPME (so PMCR_EL0.E, which the guest owns, does not stop it), and programmed with
//! event 0x08 INST_RETIRED filtered to EL2: PMEVTYPER<n>_EL0.P = 1 (not EL1), U = 1 (not EL0),
//! NSH = 1 (EL2). Register fields: DDI 0487 D13.3 (MDCR_EL2), D13.4 (PMCR_EL0, PMEVTYPER,
//! PMCNTENSET). Guests keep counters 0..HPMN−1. QEMU (TCG) counts INST_RETIRED only with a
//! precise `-icount`; without it the counter reads a cycle-like count, which is still harmless.

/// PMCR_EL0.N: the number of event counters (bits 15:11).
const PMCR_N_SHIFT: u64 = 11;
/// MDCR_EL2.HPMN (bits 4:0) and HPME (bit 7).
const MDCR_EL2_HPMN_MASK: u64 = 0x1f;
const MDCR_EL2_HPME: u64 = 1 << 7;
/// PMEVTYPER<n>_EL0: P (bit 31), U (bit 30), NSH (bit 27), evtCount = 0x08 INST_RETIRED.
const EL2_INST_RETIRED: u64 = (1 << 31) | (1 << 30) | (1 << 27) | 0x08;

/// Reserves and starts the EL2 instruction counter on this CPU. Returns false (and does
/// nothing) if the PMU has no event counter.
#[cfg(target_arch = "aarch64")]
pub fn init_el2_counter() -> bool {
    use core::arch::asm;
    let pmcr: u64;
    // SAFETY: reading PMCR_EL0 at EL2 has no side effects.
    unsafe { asm!("mrs {}, pmcr_el0", out(reg) pmcr, options(nomem, nostack, preserves_flags)) };
    let counters = (pmcr >> PMCR_N_SHIFT) & 0x1f;
    if counters == 0 {
        return false;
    }
    let counter = counters - 1;
    // SAFETY: this reserves counter `counter` for EL2 (MDCR_EL2.HPMN = counter, HPME = 1),
    // selects it through PMSELR_EL0, programs its event filter, zeroes it and enables it.
    // Guests are left counters 0..counter; nothing else in the hypervisor uses the PMU, and
    // the sequence runs on this CPU before it enters any guest.
    unsafe {
        asm!(
            "mrs {t}, mdcr_el2",
            "bic {t}, {t}, {hpmn_mask}",
            "orr {t}, {t}, {n}",
            "orr {t}, {t}, {hpme}",
            "msr mdcr_el2, {t}",
            "msr pmselr_el0, {n}",
            "isb",
            "msr pmxevtyper_el0, {event}",
            "msr pmxevcntr_el0, xzr",
            "lsl {t}, {one}, {n}",
            "msr pmcntenset_el0, {t}",
            "isb",
            t = out(reg) _,
            n = in(reg) counter,
            hpmn_mask = in(reg) MDCR_EL2_HPMN_MASK,
            hpme = in(reg) MDCR_EL2_HPME,
            event = in(reg) EL2_INST_RETIRED,
            one = in(reg) 1u64,
            options(nomem, nostack, preserves_flags)
        )
    };
    true
}

/// Instructions retired at EL2 on this CPU since [`init_el2_counter`] (0 if it failed).
#[cfg(target_arch = "aarch64")]
pub fn el2_instructions() -> u64 {
    use core::arch::asm;
    let value: u64;
    // SAFETY: selects the reserved counter (MDCR_EL2.HPMN, set by `init_el2_counter`), reads
    // it, and puts the guest's PMSELR_EL0 back, so the guest sees no change.
    unsafe {
        asm!(
            "mrs {saved}, pmselr_el0",
            "mrs {t}, mdcr_el2",
            "and {t}, {t}, {hpmn_mask}",
            "msr pmselr_el0, {t}",
            "isb",
            "mrs {v}, pmxevcntr_el0",
            "msr pmselr_el0, {saved}",
            saved = out(reg) _,
            t = out(reg) _,
            v = out(reg) value,
            hpmn_mask = in(reg) MDCR_EL2_HPMN_MASK,
            options(nomem, nostack, preserves_flags)
        )
    };
    value
}

#[cfg(not(target_arch = "aarch64"))]
pub fn init_el2_counter() -> bool {
    false
}

#[cfg(not(target_arch = "aarch64"))]
pub fn el2_instructions() -> u64 {
    0
}
