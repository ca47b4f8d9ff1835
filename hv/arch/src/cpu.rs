//! Per-CPU identity and low-level CPU control (wait, wake, halt).

use crate::MAX_CPUS;

/// Per-CPU block that the assembly reaches through TPIDR_EL2. Field offsets are passed to the
/// assembly as constants, so this layout is the single source of truth.
#[repr(C)]
#[derive(Debug)]
pub struct PerCpu {
    /// This CPU's index in the board description.
    pub index: u64,
    /// The hypervisor's stack pointer while a guest runs (for debugging).
    pub host_sp: u64,
    /// The `GuestRegs` the running guest's registers are saved into.
    pub guest_regs: u64,
    /// Top of this CPU's emergency stack, which the EL2-fault vectors switch to.
    pub fault_sp: u64,
    /// The forwarding fast path (`vectors.S`, `gic_cpu::set_timer_fast_path`): the
    /// ICH_LR0_EL2 value that makes the running vCPU's virtual timer pending, HW-linked to
    /// the physical timer PPI; 0 when the fast path is off (the model delivers it).
    pub timer_lr: u64,
    /// ICH_ELRSR_EL2 with every implemented list register empty.
    pub lrs_empty: u64,
    /// An INTID a fast path acknowledged but left to the kernel (`gic_cpu::take_stashed`),
    /// plus one; 0 when none (so the block is all zeros, in BSS).
    pub stashed: u64,
}

/// Each block is written by its own CPU only: `index` and `fault_sp` by `cpu_common_setup`,
/// `host_sp` and `guest_regs` by `tessera_enter_guest`, the fast-path fields by
/// [`set_fast_path_field`] and the vectors. Rust reaches it through TPIDR_EL2.
#[unsafe(no_mangle)]
static mut TESSERA_PER_CPU: [PerCpu; MAX_CPUS] = {
    const EMPTY: PerCpu = PerCpu {
        index: 0,
        host_sp: 0,
        guest_regs: 0,
        fault_sp: 0,
        timer_lr: 0,
        lrs_empty: 0,
        stashed: 0,
    };
    [EMPTY; MAX_CPUS]
};

/// This CPU's index.
#[cfg(target_arch = "aarch64")]
pub fn index() -> usize {
    use aarch64_cpu::registers::{Readable, TPIDR_EL2};
    let block = TPIDR_EL2.get() as *const PerCpu;
    // SAFETY: TPIDR_EL2 is set by `cpu_common_setup` to this CPU's entry in TESSERA_PER_CPU
    // before any Rust code runs, and `index` is written only there, before that.
    unsafe { (*block).index as usize }
}

/// The fast-path fields of this CPU's block that Rust may write.
#[derive(Debug, Clone, Copy)]
pub enum FastPathField {
    TimerLr,
    LrsEmpty,
    Stashed,
}

/// Writes one fast-path field of this CPU's block; returns the old value.
#[cfg(target_arch = "aarch64")]
pub fn set_fast_path_field(field: FastPathField, value: u64) -> u64 {
    use aarch64_cpu::registers::{Readable, TPIDR_EL2};
    let block = TPIDR_EL2.get() as *mut PerCpu;
    // SAFETY: TPIDR_EL2 points at this CPU's own block (set by `cpu_common_setup`), which no
    // other CPU touches; the only other user of these fields is this CPU's exception vectors,
    // which cannot run in the middle of this (EL2 runs with interrupts masked and these
    // accesses cannot fault). Volatile: the vectors read the fields behind the compiler's back.
    unsafe {
        let slot = match field {
            FastPathField::TimerLr => core::ptr::addr_of_mut!((*block).timer_lr),
            FastPathField::LrsEmpty => core::ptr::addr_of_mut!((*block).lrs_empty),
            FastPathField::Stashed => core::ptr::addr_of_mut!((*block).stashed),
        };
        let old = slot.read_volatile();
        slot.write_volatile(value);
        old
    }
}

/// MPIDR_EL1 affinity of this CPU (Aff3..Aff0, without the MT/U bits).
#[cfg(target_arch = "aarch64")]
pub fn mpidr() -> u64 {
    use aarch64_cpu::registers::{MPIDR_EL1, Readable};
    MPIDR_EL1.get() & 0xff_00ff_ffff
}

/// Waits for an event (WFE); returns on any event or interrupt, or spuriously.
#[cfg(target_arch = "aarch64")]
pub fn wait_for_event() {
    aarch64_cpu::asm::wfe();
}

/// Waits for an interrupt (WFI). Interrupts stay masked at EL2; a pending one still wakes us.
#[cfg(target_arch = "aarch64")]
pub fn wait_for_interrupt() {
    aarch64_cpu::asm::wfi();
}

/// Wakes every CPU waiting in WFE.
#[cfg(target_arch = "aarch64")]
pub fn send_event() {
    aarch64_cpu::asm::sev();
}

/// Stops this CPU for good: interrupts masked, WFE forever.
#[cfg(target_arch = "aarch64")]
pub fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// Reads the physical counter (CNTPCT_EL0).
#[cfg(target_arch = "aarch64")]
pub fn counter() -> u64 {
    use aarch64_cpu::registers::{CNTPCT_EL0, Readable};
    CNTPCT_EL0.get()
}

/// Counter frequency in Hz (CNTFRQ_EL0).
#[cfg(target_arch = "aarch64")]
pub fn counter_frequency() -> u64 {
    use aarch64_cpu::registers::{CNTFRQ_EL0, Readable};
    CNTFRQ_EL0.get()
}

#[cfg(not(target_arch = "aarch64"))]
mod host {
    pub fn index() -> usize { 0 }
    pub fn set_fast_path_field(_: super::FastPathField, _: u64) -> u64 { 0 }
    pub fn mpidr() -> u64 { 0 }
    pub fn wait_for_event() {}
    pub fn wait_for_interrupt() {}
    pub fn send_event() {}
    pub fn halt() -> ! { panic!("halt on a host build") }
    pub fn counter() -> u64 { 0 }
    pub fn counter_frequency() -> u64 { 1 }
}
#[cfg(not(target_arch = "aarch64"))]
pub use host::*;

/// ID_AA64MMFR0_EL1.PARange: the physical address size this CPU supports (DDI 0487 D23.2.74).
#[cfg(target_arch = "aarch64")]
pub fn parange() -> u8 {
    use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, Readable};
    (ID_AA64MMFR0_EL1.get() & 0xf) as u8
}

#[cfg(not(target_arch = "aarch64"))]
pub fn parange() -> u8 {
    0
}
