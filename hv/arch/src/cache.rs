//! Cache and TLB maintenance (DDI 0487 D7.5 and D8.13).

/// Smallest data cache line this code assumes; CTR_EL0.DminLine is at least this on every
/// Armv8-A core we target, so stepping by it never skips a line.
const LINE: u64 = 64;

/// Cleans `[start, start + len)` from the data caches to the point of coherency, so that an
/// observer with caches off (a guest with its MMU off, a CPU before its MMU is on) sees it.
#[cfg(target_arch = "aarch64")]
pub fn clean_dcache_range(start: u64, len: u64) {
    let mut line = start & !(LINE - 1);
    let end = start.saturating_add(len);
    while line < end {
        // SAFETY: DC CVAC by VA only cleans cache lines; it never changes memory contents,
        // and a VA that is not mapped would fault at EL2, which every caller rules out by
        // passing ranges inside RAM that EL2 maps.
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) line, options(nostack, preserves_flags)) };
        line += LINE;
    }
    // SAFETY: a barrier has no memory-safety effect.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Invalidates the whole instruction cache (inner shareable).
#[cfg(target_arch = "aarch64")]
pub fn invalidate_icache_all() {
    // SAFETY: cache invalidation of instructions only; memory is unaffected.
    unsafe { core::arch::asm!("ic ialluis", "dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// Invalidates every EL2 TLB entry on this CPU.
#[cfg(target_arch = "aarch64")]
pub fn invalidate_el2_tlb() {
    // SAFETY: TLB maintenance only forces fresh walks of valid tables.
    unsafe { core::arch::asm!("tlbi alle2", "dsb nsh", "isb", options(nostack, preserves_flags)) };
}

/// Invalidates every stage-1 and stage-2 TLB entry of the EL1&0 regime, all VMIDs, all CPUs.
#[cfg(target_arch = "aarch64")]
pub fn invalidate_guest_tlbs_all() {
    // SAFETY: TLB maintenance only: every VM's next access walks its stage-2 tables again,
    // which the caller has left valid; the barriers order earlier table writes before it.
    unsafe { core::arch::asm!("dsb ishst", "tlbi alle1is", "dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// Makes a stage-2 descriptor this CPU just wrote (invalid to valid, which needs no TLB
/// maintenance) visible to every CPU's table walks before the guest is re-entered.
#[cfg(target_arch = "aarch64")]
pub fn publish_stage2_update() {
    // SAFETY: barriers only.
    unsafe { core::arch::asm!("dsb ishst", "isb", options(nostack, preserves_flags)) };
}

#[cfg(not(target_arch = "aarch64"))]
mod host {
    pub fn publish_stage2_update() {}
    pub fn clean_dcache_range(_start: u64, _len: u64) {}
    pub fn invalidate_icache_all() {}
    pub fn invalidate_el2_tlb() {}
    pub fn invalidate_guest_tlbs_all() {}
}
#[cfg(not(target_arch = "aarch64"))]
pub use host::*;
