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

/// HCR_EL2 for a guest (DDI 0487 D23.2.53; every bit and why: docs/threat-model.md):
/// stage 2 on (VM), set/way invalidation upgraded (SWIO), stage-1 walks that hit device memory
/// fault (PTW), physical IRQ/FIQ/SError to EL2 (IMO/FMO/AMO), SMC trapped (TSC),
/// implementation-defined registers trapped (TIDCP), set/way cache maintenance trapped (TSW),
/// auxiliary control trapped (TACR), EL1 is AArch64 (RW). FB and BSU stay 0: every vCPU is
/// pinned to one physical CPU, so a guest's local TLB maintenance and barriers are exactly as
/// local as it thinks (and a forced broadcast would cost every other CPU, other VMs' too). A
/// scheduler that moves a vCPU between CPUs must set them or invalidate on the move.
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

/// MDCR_EL2 (DDI 0487 D13.3.x, `MDCR_EL2`): trap the debug registers (TDA: breakpoints,
/// watchpoints, MDSCR_EL1, the debug communication channel), the OS lock and power-down
/// registers (TDOSA) and the debug ROM address (TDRA), so a guest can neither set a
/// breakpoint nor see or stop the debug state of the CPU; the kernel answers them RAZ/WI.
/// TDE stays 0: debug exceptions a guest takes (BRK, single step) go to its own EL1.
const MDCR_TDA: u64 = 1 << 9;
const MDCR_TDOSA: u64 = 1 << 10;
const MDCR_TDRA: u64 = 1 << 11;
/// TPM and TPMCR: trap every PMU register access from EL1/EL0. The architecture hides the
/// counters at or above HPMN from EL1, but PMCR_EL0.P and the reserved counter's enable and
/// filter bits are still reachable on some implementations (QEMU 10 shows them), so guests get
/// no PMU at all: the kernel answers these registers RAZ/WI. Set when a PMU exists.
const MDCR_TPMCR: u64 = 1 << 5;
const MDCR_TPM: u64 = 1 << 6;
/// TPMS: trap the Statistical Profiling Extension's registers (E2PB = 0b00 keeps its buffer
/// EL2's); only when FEAT_SPE is implemented (RES0 otherwise).
const MDCR_TPMS: u64 = 1 << 14;
/// HPMD: guest event counters do not count at EL2 (FEAT_PMUv3p1), so a guest cannot profile
/// the hypervisor.
const MDCR_HPMD: u64 = 1 << 17;
/// TTRF: trap the trace filter control TRFCR_EL1 (FEAT_TRF).
const MDCR_TTRF: u64 = 1 << 19;
/// HPMN (bits \[4:0\]) is the PMU split that `pmu::init_el2_counter` sets; kept here.
const MDCR_HPMN_MASK: u64 = 0x1f;

/// The MDCR_EL2 trap bits for a CPU whose ID_AA64DFR0_EL1 is `dfr0` (DDI 0487 D23.2.59:
/// PMUVer \[11:8\], PMSVer \[35:32\], TraceFilt \[43:40\]).
pub const fn mdcr_traps(dfr0: u64) -> u64 {
    let pmu_version = (dfr0 >> 8) & 0xf;
    let spe = (dfr0 >> 32) & 0xf;
    let trace_filter = (dfr0 >> 40) & 0xf;
    let mut mdcr = MDCR_TDA | MDCR_TDOSA | MDCR_TDRA;
    if pmu_version != 0 && pmu_version != 0xf {
        mdcr |= MDCR_TPM | MDCR_TPMCR;
    }
    if pmu_version >= 4 && pmu_version != 0xf {
        mdcr |= MDCR_HPMD;
    }
    if spe != 0 {
        mdcr |= MDCR_TPMS;
    }
    if trace_filter != 0 {
        mdcr |= MDCR_TTRF;
    }
    mdcr
}

/// Sets this CPU's guest trap controls that do not depend on the VM (MDCR_EL2). Call once per
/// CPU before `pmu::init_el2_counter` (which keeps these bits).
#[cfg(target_arch = "aarch64")]
pub fn init_cpu_traps() {
    use aarch64_cpu::registers::{ID_AA64DFR0_EL1, MDCR_EL2, Readable, Writeable};
    let hpmn = MDCR_EL2.get() & MDCR_HPMN_MASK;
    MDCR_EL2.set(hpmn | mdcr_traps(ID_AA64DFR0_EL1.get()));
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

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

/// HCR_EL2.IMO (DDI 0487 D23.2.53): physical IRQs to EL2, and EL1's Group 1 GIC CPU
/// interface registers virtual.
pub const HCR_IMO: u64 = 1 << 4;

/// For a direct-interrupt VM, after [`load_vm`]: HCR_EL2.IMO = 0, so the guest's physical
/// Group 1 interrupts go straight to EL1 and its Group 1 ICC_* accesses reach the physical
/// CPU interface; FMO and AMO stay set (Group 0, the hypervisor's, is FIQ to EL2; ICC_PMR,
/// CTLR, DIR, the Group 0 registers and the SGI registers stay virtual or trapped).
#[cfg(target_arch = "aarch64")]
pub fn route_irqs_to_guest() {
    use aarch64_cpu::registers::{HCR_EL2, Readable, Writeable};
    HCR_EL2.set(HCR_EL2.get() & !HCR_IMO);
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
    pub fn init_cpu_traps() { unimplemented!("host build") }
    pub fn reset_el1(_: u64, _: u64) { unimplemented!("host build") }
    pub fn disable_virtual_timer() { unimplemented!("host build") }
    pub fn route_irqs_to_guest() { unimplemented!("host build") }
    pub fn vbar_el1() -> u64 { unimplemented!("host build") }
    pub fn set_el1_exception_state(_: u64, _: u64, _: u64, _: u64) { unimplemented!("host build") }
}
#[cfg(not(target_arch = "aarch64"))]
pub use host::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_registers_always_trap_optional_features_only_when_present() {
        // Cortex-A57: PMUv3 (PMUVer 1), no SPE, no trace filter.
        let a57 = 0x1030_6106;
        let base = MDCR_TDA | MDCR_TDOSA | MDCR_TDRA;
        assert_eq!(mdcr_traps(a57), base | MDCR_TPM | MDCR_TPMCR);
        // No PMU: nothing to trap.
        assert_eq!(mdcr_traps(a57 & !(0xf << 8)), base);
        // PMUv3p5, SPE, TRF.
        let modern = (1 << 40) | (1 << 32) | (6 << 8);
        assert_eq!(mdcr_traps(modern), base | MDCR_TPM | MDCR_TPMCR | MDCR_HPMD | MDCR_TPMS | MDCR_TTRF);
        // An IMPLEMENTATION DEFINED PMU (0xf) is not PMUv3p1.
        assert_eq!(mdcr_traps(0xf << 8) & MDCR_HPMD, 0);
        assert_eq!(mdcr_traps(0) & MDCR_HPMN_MASK, 0);
    }

    #[test]
    fn hcr_guest_bits() {
        // VM, SWIO, PTW, FMO, IMO, AMO, TSC, TIDCP, TACR, TSW, RW.
        assert_eq!(HCR_GUEST, 0x8078_003f);
        // No TGE, TVM, TRVM, FB, BSU; no E2H (bit 34).
        let absent = (1 << 27) | (1 << 26) | (1 << 30) | (1 << 9) | (3 << 10) | (1 << 34);
        assert_eq!(HCR_GUEST & absent, 0);
    }
}
