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
}

/// Written only by the assembly (`cpu_common_setup`, `tessera_enter_guest`); Rust reads the
/// index through TPIDR_EL2, the EL2-fault vectors read `fault_sp`.
#[unsafe(no_mangle)]
static mut TESSERA_PER_CPU: [PerCpu; MAX_CPUS] = {
    const EMPTY: PerCpu = PerCpu { index: 0, host_sp: 0, guest_regs: 0, fault_sp: 0 };
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
