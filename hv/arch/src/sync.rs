//! Tessera's `critical-section` implementation: interrupts masked on this CPU *and* a global
//! spin lock, so a critical section excludes every CPU (the single-core implementation would
//! be unsound here). Nested sections on one CPU are allowed: the owner re-enters freely.

use core::sync::atomic::{AtomicUsize, Ordering};

/// `usize::MAX` = free; otherwise the owning CPU's index.
static OWNER: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Bit in the restore state that says "this acquire was nested: don't release the lock".
const NESTED: u64 = 1 << 63;

struct TesseraCriticalSection;
critical_section::set_impl!(TesseraCriticalSection);

// SAFETY: acquire masks interrupts on this CPU and then takes a lock that no other CPU can
// hold at the same time, so the closure runs alone in the system; release restores exactly
// the interrupt mask acquire saved and frees the lock only for the outermost section.
unsafe impl critical_section::Impl for TesseraCriticalSection {
    unsafe fn acquire() -> critical_section::RawRestoreState {
        let daif = daif_save_and_mask();
        let me = crate::cpu::index();
        if OWNER.load(Ordering::Relaxed) == me {
            return daif | NESTED;
        }
        // Bounded by the other CPUs' critical sections, which are short and never wait.
        while OWNER.compare_exchange_weak(usize::MAX, me, Ordering::Acquire, Ordering::Relaxed).is_err() {
            core::hint::spin_loop();
        }
        daif
    }

    unsafe fn release(state: critical_section::RawRestoreState) {
        if state & NESTED == 0 {
            OWNER.store(usize::MAX, Ordering::Release);
        }
        daif_restore(state & !NESTED);
    }
}

#[cfg(target_arch = "aarch64")]
fn daif_save_and_mask() -> u64 {
    let daif: u64;
    // SAFETY: reading DAIF and masking interrupts has no memory effect.
    unsafe { core::arch::asm!("mrs {}, daif", "msr daifset, #0xf", out(reg) daif, options(nostack)) };
    daif
}

#[cfg(target_arch = "aarch64")]
fn daif_restore(daif: u64) {
    // SAFETY: restores the mask saved by `daif_save_and_mask`.
    unsafe { core::arch::asm!("msr daif, {}", in(reg) daif, options(nostack)) };
}

#[cfg(not(target_arch = "aarch64"))]
fn daif_save_and_mask() -> u64 {
    0
}

#[cfg(not(target_arch = "aarch64"))]
fn daif_restore(_: u64) {}
