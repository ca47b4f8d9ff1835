//! Running a guest: its saved registers, the world switch, and the EL2 controls that confine
//! it (HCR_EL2, stage 2, the virtual CPU identity).

/// A vCPU's general-purpose registers and the syndrome of its last exit. The layout is shared
/// with `vectors.S` (`GREGS_*` offsets): x0-x30, ELR, SPSR, then ESR, FAR, HPFAR.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GuestRegs {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
    pub hpfar: u64,
}

const _: () = assert!(core::mem::offset_of!(GuestRegs, elr) == 31 * 8);
const _: () = assert!(core::mem::offset_of!(GuestRegs, esr) == 33 * 8);
const _: () = assert!(core::mem::offset_of!(GuestRegs, hpfar) == 35 * 8);

/// Which vector the guest left through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Synchronous,
    Irq,
    Fiq,
    SError,
}

/// HCR_EL2 for a guest (DDI 0487 D23.2.53): stage 2 on (VM), set/way invalidation upgraded
/// (SWIO), stage-1 walks that hit device memory fault (PTW), physical IRQ/FIQ/SError to EL2
/// (IMO/FMO/AMO), SMC trapped (TSC), implementation-defined registers trapped (TIDCP),
/// set/way cache maintenance trapped (TSW), auxiliary control trapped (TACR), EL1 is AArch64 (RW).
pub const HCR_GUEST: u64 = (1 << 0)
    | (1 << 1)
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 19)
    | (1 << 20)
    | (1 << 21)
    | (1 << 22)
    | (1 << 31);

/// Runs the guest whose registers are `regs` until it exits to EL2; the exit's syndrome is
/// in `regs.esr/far/hpfar`. The caller must have loaded the VM's stage 2 and EL1 state.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn enter(regs: &mut GuestRegs) -> ExitKind {
    unsafe extern "C" {
        fn tessera_enter_guest(regs: *mut GuestRegs) -> u64;
    }
    // SAFETY: `regs` is a valid, exclusive GuestRegs for the whole call (the vectors write
    // into it through the PerCpu pointer that tessera_enter_guest sets from this argument).
    // The callee preserves the AAPCS64 callee-saved registers and the stack, and the guest
    // cannot reach EL2 memory: its stage 2 maps only its own RAM.
    let kind = unsafe { tessera_enter_guest(regs) };
    match kind {
        0 => ExitKind::Synchronous,
        1 => ExitKind::Irq,
        2 => ExitKind::Fiq,
        _ => ExitKind::SError,
    }
}

/// HCR_EL2.TWI and TWE: trap the guest's WFI and WFE (DDI 0487 D23.2.53).
pub const HCR_TWI: u64 = 1 << 13;
pub const HCR_TWE: u64 = 1 << 14;

/// How a VM is confined beyond stage 2.
#[derive(Debug, Clone, Copy)]
pub struct VmControls {
    pub vtcr: u64,
    pub vttbr: u64,
    /// Trap WFI and WFE.
    pub trap_wfx: bool,
    /// Let EL1 read CNTPCT_EL0 directly.
    pub physical_counter: bool,
    /// The VM's virtual counter is the physical counter minus this.
    pub cntvoff: u64,
}

/// Installs a VM's stage-2 translation and trap configuration on this CPU.
#[cfg(target_arch = "aarch64")]
pub fn load_vm(controls: &VmControls) {
    use aarch64_cpu::registers::{CNTHCTL_EL2, CNTVOFF_EL2, HCR_EL2, VTCR_EL2, VTTBR_EL2, Writeable};
    VTCR_EL2.set(controls.vtcr);
    VTTBR_EL2.set(controls.vttbr);
    let wfx = if controls.trap_wfx { HCR_TWI | HCR_TWE } else { 0 };
    HCR_EL2.set(HCR_GUEST | wfx);
    // EL1PCTEN (bit 0): EL1 may read the physical counter. EL1PCEN (bit 1) stays 0: the
    // physical timer registers trap, so a guest only has the virtual timer and never sees
    // or disturbs the hypervisor's (DDI 0487 D23.2.21).
    CNTHCTL_EL2.set(controls.physical_counter as u64);
    CNTVOFF_EL2.set(controls.cntvoff);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Puts this CPU's EL1 state in the reset state for a vCPU that is about to start: MMU and
/// caches off, no vector base, FP/SIMD trapping to EL1 (the guest turns it on), identity
/// `vmpidr`.
#[cfg(target_arch = "aarch64")]
pub fn reset_el1(vmpidr: u64, sctlr: u64) {
    use aarch64_cpu::registers::{
        CPACR_EL1, MIDR_EL1, Readable, SCTLR_EL1, SP_EL1, VBAR_EL1, VMPIDR_EL2, Writeable,
    };
    SCTLR_EL1.set(sctlr);
    VBAR_EL1.set(0);
    CPACR_EL1.set(0);
    SP_EL1.set(0);
    VMPIDR_EL2.set(vmpidr);
    disable_virtual_timer();
    let midr = MIDR_EL1.get();
    // VPIDR_EL2 is not in aarch64-cpu.
    // SAFETY: writes the MIDR value EL1 reads; no memory effect.
    unsafe { core::arch::asm!("msr S3_4_C0_C0_0, {}", in(reg) midr, options(nostack)) };
}

/// Turns the EL1 virtual timer off (a stopped vCPU's timer must not keep interrupting).
#[cfg(target_arch = "aarch64")]
pub fn disable_virtual_timer() {
    use aarch64_cpu::registers::{CNTV_CTL_EL0, Writeable};
    CNTV_CTL_EL0.set(0);
}

/// Reads VBAR_EL1 (to inject an exception into the guest).
#[cfg(target_arch = "aarch64")]
pub fn vbar_el1() -> u64 {
    use aarch64_cpu::registers::{Readable, VBAR_EL1};
    VBAR_EL1.get()
}

/// Writes the EL1 registers an injected synchronous exception sets (DDI 0487 D1.10).
#[cfg(target_arch = "aarch64")]
pub fn set_el1_exception_state(esr: u64, far: u64, elr: u64, spsr: u64) {
    use aarch64_cpu::registers::{ELR_EL1, ESR_EL1, FAR_EL1, SPSR_EL1, Writeable};
    ESR_EL1.set(esr);
    FAR_EL1.set(far);
    ELR_EL1.set(elr);
    SPSR_EL1.set(spsr);
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn enter(_regs: &mut GuestRegs) -> ExitKind {
    unimplemented!("host build")
}

#[cfg(not(target_arch = "aarch64"))]
mod host {
    pub fn load_vm(_: &super::VmControls) { unimplemented!("host build") }
    pub fn reset_el1(_: u64, _: u64) { unimplemented!("host build") }
    pub fn disable_virtual_timer() { unimplemented!("host build") }
    pub fn vbar_el1() -> u64 { unimplemented!("host build") }
    pub fn set_el1_exception_state(_: u64, _: u64, _: u64, _: u64) { unimplemented!("host build") }
}
#[cfg(not(target_arch = "aarch64"))]
pub use host::*;
