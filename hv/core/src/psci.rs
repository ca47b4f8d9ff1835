//! The guest-facing PSCI 1.1 (DEN0022D) and SMCCC 1.1 (DEN0028) decisions.
//!
//! [`handle`] looks at a guest's SMC or HVC arguments and the VM's state (through [`VmView`])
//! and says what to do. It changes nothing itself: a CPU_ON decision ([`Outcome::CpuOn`]) is
//! carried out by the caller, which must make the Off -> OnPending transition atomically and
//! may still answer `ALREADY_ON` if another vCPU won the race.
//!
//! Every argument is guest-controlled; nothing here panics, and unknown calls get
//! `NOT_SUPPORTED`, as SMCCC requires for an unknown Function Identifier (DEN0028, "Unknown Function Identifier").

use crate::vcpu::MPIDR_AFFINITY_MASK;

/// Function Identifiers (DEN0022D, "Function IDs"; DEN0028, "Arm Architecture Calls"). `SMC32`/`SMC64` pairs differ
/// in bit 30; an SMC32 call takes 32-bit arguments.
pub mod id {
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    pub const CPU_SUSPEND_32: u32 = 0x8400_0001;
    pub const CPU_SUSPEND_64: u32 = 0xC400_0001;
    pub const CPU_OFF: u32 = 0x8400_0002;
    pub const CPU_ON_32: u32 = 0x8400_0003;
    pub const CPU_ON_64: u32 = 0xC400_0003;
    pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
    pub const AFFINITY_INFO_64: u32 = 0xC400_0004;
    pub const MIGRATE_32: u32 = 0x8400_0005;
    pub const MIGRATE_64: u32 = 0xC400_0005;
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    pub const PSCI_FEATURES: u32 = 0x8400_000A;
    pub const SYSTEM_SUSPEND_64: u32 = 0xC400_000E;
    pub const SYSTEM_RESET2_64: u32 = 0xC400_0012;
    /// SMCCC_VERSION (DEN0028).
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
    /// SMCCC_ARCH_FEATURES (DEN0028).
    pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
    /// SMCCC_ARCH_WORKAROUND_1 (DEN0028), Spectre variant 2.
    pub const SMCCC_ARCH_WORKAROUND_1: u32 = 0x8000_8000;
    /// SMCCC_ARCH_WORKAROUND_2 (DEN0028), Spectre variant 4.
    pub const SMCCC_ARCH_WORKAROUND_2: u32 = 0x8000_7FFF;
    /// SMCCC_ARCH_WORKAROUND_3 (DEN0028), Spectre-BHB.
    pub const SMCCC_ARCH_WORKAROUND_3: u32 = 0x8000_3FFF;
    /// TESSERA_STATS: Tessera's own call in the Vendor Specific Hypervisor Service range
    /// (DEN0028: fast call, SMC64, owning entity 6, function 1). Returns `x0 = SUCCESS`,
    /// `x1` = instructions retired at EL2 on the calling vCPU's physical CPU (`docs/hvcall.md`).
    pub const TESSERA_STATS: u32 = 0xC600_0001;
    /// TESSERA_SCHED_STATS (function 3): the RTDS accounting of the calling VM's vCPU `x1`
    /// (`docs/hvcall.md`).
    pub const TESSERA_SCHED_STATS: u32 = 0xC600_0003;
    /// TESSERA_WDOG_KICK: Tessera's own call, same range, function 2. Kicks the calling VM's
    /// watchdog (its deadline moves to one period from now) and returns `SUCCESS`; a VM
    /// without a watchdog gets `NOT_SUPPORTED` (`docs/hvcall.md`).
    pub const TESSERA_WDOG_KICK: u32 = 0xC600_0002;
}

/// Return codes (DEN0022D, "Return error codes"), as the 64-bit value written to `x0`.
pub mod ret {
    pub const SUCCESS: u64 = 0;
    pub const NOT_SUPPORTED: u64 = -1i64 as u64;
    pub const INVALID_PARAMETERS: u64 = -2i64 as u64;
    pub const DENIED: u64 = -3i64 as u64;
    pub const ALREADY_ON: u64 = -4i64 as u64;
    pub const ON_PENDING: u64 = -5i64 as u64;
    pub const INTERNAL_FAILURE: u64 = -6i64 as u64;
    pub const NOT_PRESENT: u64 = -7i64 as u64;
    pub const DISABLED: u64 = -8i64 as u64;
    pub const INVALID_ADDRESS: u64 = -9i64 as u64;
}

/// PSCI 1.1: major 1 in \[31:16\], minor 1 in \[15:0\] (DEN0022D, PSCI_VERSION).
pub const PSCI_VERSION_1_1: u64 = 0x0001_0001;
/// SMCCC 1.1, same layout (DEN0028, SMCCC_VERSION).
pub const SMCCC_VERSION_1_1: u64 = 0x0001_0001;
/// MIGRATE_INFO_TYPE 2: no Trusted OS, or one that needs no migration (DEN0022D, MIGRATE_INFO_TYPE).
pub const MIGRATE_INFO_TYPE_NOT_PRESENT: u64 = 2;
/// AFFINITY_INFO results (DEN0022D, AFFINITY_INFO).
pub const AFFINITY_ON: u64 = 0;
pub const AFFINITY_OFF: u64 = 1;
pub const AFFINITY_ON_PENDING: u64 = 2;

/// A vCPU's PSCI power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PowerState {
    On,
    Off,
    /// CPU_ON has been accepted but the vCPU has not started running yet.
    OnPending,
}

/// What [`handle`] needs to know about the calling VM.
pub trait VmView {
    fn vcpu_count(&self) -> usize;
    /// The vCPU whose `VMPIDR_EL2` affinity fields equal `mpidr` (which holds only the bits
    /// of [`MPIDR_AFFINITY_MASK`]); see [`crate::vcpu::index_by_mpidr`].
    fn vcpu_index_by_mpidr(&self, mpidr: u64) -> Option<usize>;
    fn vcpu_power(&self, index: usize) -> PowerState;
    /// True if `ipa` lies in the VM's RAM (a valid place to start executing).
    fn ipa_is_ram(&self, ipa: u64) -> bool;
    /// True if the system description gives the VM a watchdog (`watchdog-ms`).
    fn has_watchdog(&self) -> bool {
        false
    }
}

/// The guest's `x0..x3` at the SMC or HVC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SmcccCall {
    pub x: [u64; 4],
}

/// What the caller does with the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// Write these into `x0..x3` and return to the guest. `x1..x3` are 0 (SMCCC leaves them
    /// UNKNOWN for these calls; zero leaks nothing).
    Return([u64; 4]),
    /// Start vCPU `target` at `entry` with `x0 = context`, if it is still Off (else return
    /// `ALREADY_ON`); then return `SUCCESS` to the caller.
    CpuOn {
        target: usize,
        entry: u64,
        context: u64,
    },
    /// Power the calling vCPU off. On success the call does not return; if the caller cannot,
    /// it returns `DENIED`.
    CpuOff,
    /// Stop the whole VM.
    SystemOff,
    /// Restart the whole VM from its initial image.
    SystemReset,
    /// Return `SUCCESS` with the hypervisor's statistics in `x1` (`id::TESSERA_STATS`).
    TesseraStats,
    /// Return the RTDS accounting of the calling VM's vCPU `vcpu` (`id::TESSERA_SCHED_STATS`),
    /// already checked to be one of its vCPUs.
    SchedStats { vcpu: usize },
    /// Kick the VM's watchdog, then return `SUCCESS` (`id::TESSERA_WDOG_KICK`; only for a VM
    /// that has one).
    WatchdogKick,
}

const fn ret(x0: u64) -> Outcome {
    Outcome::Return([x0, 0, 0, 0])
}

/// Calls that PSCI_FEATURES reports as implemented.
const IMPLEMENTED: [u32; 12] = [
    id::PSCI_VERSION,
    id::CPU_SUSPEND_32,
    id::CPU_SUSPEND_64,
    id::CPU_OFF,
    id::CPU_ON_32,
    id::CPU_ON_64,
    id::AFFINITY_INFO_32,
    id::AFFINITY_INFO_64,
    id::MIGRATE_INFO_TYPE,
    id::SYSTEM_OFF,
    id::SYSTEM_RESET,
    id::PSCI_FEATURES,
];

/// SMC64 calls set bit 30 of the Function Identifier (DEN0028, "Function Identifiers").
const fn is_smc64(function: u32) -> bool {
    function & (1 << 30) != 0
}

/// Decides a PSCI or SMCCC architecture call. The Function Identifier is `w0` (DEN0028, "Function Identifiers"):
/// bits \[63:32\] of `x0` are ignored; the arguments of an SMC32 call are `w1..w3`.
pub fn handle(call: SmcccCall, vm: &impl VmView) -> Outcome {
    let [x0, x1, x2, x3] = call.x;
    let function = x0 as u32;
    let (a1, a2, a3) = if is_smc64(function) {
        (x1, x2, x3)
    } else {
        (x1 & 0xffff_ffff, x2 & 0xffff_ffff, x3 & 0xffff_ffff)
    };
    match function {
        id::PSCI_VERSION => ret(PSCI_VERSION_1_1),
        // Power states are not modelled. PSCI lets a suspend return SUCCESS early when a
        // wakeup event arrives, for power-down states too (DEN0022D, CPU_SUSPEND); returning at
        // once is that, with an immediate wakeup. The guest's idle loop simply spins.
        id::CPU_SUSPEND_32 | id::CPU_SUSPEND_64 => ret(ret::SUCCESS),
        id::CPU_OFF => Outcome::CpuOff,
        id::CPU_ON_32 | id::CPU_ON_64 => cpu_on(a1, a2, a3, vm),
        id::AFFINITY_INFO_32 | id::AFFINITY_INFO_64 => affinity_info(a1, a2, vm),
        id::MIGRATE_INFO_TYPE => ret(MIGRATE_INFO_TYPE_NOT_PRESENT),
        id::SYSTEM_OFF => Outcome::SystemOff,
        id::SYSTEM_RESET => Outcome::SystemReset,
        // PSCI_FEATURES takes a 32-bit Function Identifier. For CPU_SUSPEND the result is a
        // flags word (DEN0022D, PSCI_FEATURES): 0 = original power_state format, platform-coordinated
        // mode only, which is also SUCCESS.
        id::PSCI_FEATURES => {
            let queried = a1 as u32;
            if IMPLEMENTED.contains(&queried) || queried == id::SMCCC_VERSION {
                ret(ret::SUCCESS)
            } else {
                ret(ret::NOT_SUPPORTED)
            }
        }
        id::SMCCC_VERSION => ret(SMCCC_VERSION_1_1),
        id::TESSERA_STATS => Outcome::TesseraStats,
        id::TESSERA_SCHED_STATS => match usize::try_from(a1) {
            Ok(vcpu) if vcpu < vm.vcpu_count() => Outcome::SchedStats { vcpu },
            _ => ret(ret::INVALID_PARAMETERS),
        },
        id::TESSERA_WDOG_KICK if vm.has_watchdog() => Outcome::WatchdogKick,
        // No Arm Architecture Service workaround is offered yet (DEN0028, SMCCC_ARCH_FEATURES): a guest reads
        // NOT_SUPPORTED for WORKAROUND_1/2/3 and applies its own mitigation policy.
        id::SMCCC_ARCH_FEATURES => match a1 as u32 {
            id::SMCCC_VERSION | id::SMCCC_ARCH_FEATURES => ret(ret::SUCCESS),
            _ => ret(ret::NOT_SUPPORTED),
        },
        _ => ret(ret::NOT_SUPPORTED),
    }
}

/// The vCPU a PSCI `target_cpu`/`target_affinity` names. Bits outside the affinity fields
/// "must be zero" (DEN0022D, CPU_ON); a value that sets them names no CPU.
fn target_index(mpidr: u64, vm: &impl VmView) -> Option<usize> {
    if mpidr & !MPIDR_AFFINITY_MASK != 0 {
        return None;
    }
    vm.vcpu_index_by_mpidr(mpidr)
        .filter(|&index| index < vm.vcpu_count())
}

/// CPU_ON (DEN0022D, CPU_ON).
fn cpu_on(target_cpu: u64, entry: u64, context: u64, vm: &impl VmView) -> Outcome {
    let Some(target) = target_index(target_cpu, vm) else {
        return ret(ret::INVALID_PARAMETERS);
    };
    // An AArch64 entry point must be 4-byte aligned; a misaligned one could never run.
    if !entry.is_multiple_of(4) || !vm.ipa_is_ram(entry) {
        return ret(ret::INVALID_ADDRESS);
    }
    match vm.vcpu_power(target) {
        PowerState::On => ret(ret::ALREADY_ON),
        PowerState::OnPending => ret(ret::ON_PENDING),
        PowerState::Off => Outcome::CpuOn {
            target,
            entry,
            context,
        },
    }
}

/// AFFINITY_INFO (DEN0022D, AFFINITY_INFO). Only level 0 (a single vCPU) is answered; PSCI 1.0 made
/// the higher levels optional, and they answer INVALID_PARAMETERS.
fn affinity_info(target_affinity: u64, lowest_level: u64, vm: &impl VmView) -> Outcome {
    if lowest_level != 0 {
        return ret(ret::INVALID_PARAMETERS);
    }
    match target_index(target_affinity, vm).map(|index| vm.vcpu_power(index)) {
        None => ret(ret::INVALID_PARAMETERS),
        Some(PowerState::On) => ret(AFFINITY_ON),
        Some(PowerState::Off) => ret(AFFINITY_OFF),
        Some(PowerState::OnPending) => ret(AFFINITY_ON_PENDING),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap known-good values")]
mod tests {
    use super::*;
    use crate::vcpu::{index_by_mpidr, vmpidr};
    use proptest::prelude::*;

    const RAM: (u64, u64) = (0x4000_0000, 0x4000_0000); // 1 GiB at 1 GiB

    /// Four vCPUs: 0 On, 1 Off, 2 OnPending, 3 Off.
    struct FakeVm;

    impl VmView for FakeVm {
        fn vcpu_count(&self) -> usize {
            4
        }
        fn vcpu_index_by_mpidr(&self, mpidr: u64) -> Option<usize> {
            index_by_mpidr(mpidr, self.vcpu_count())
        }
        fn vcpu_power(&self, index: usize) -> PowerState {
            match index {
                0 => PowerState::On,
                2 => PowerState::OnPending,
                _ => PowerState::Off,
            }
        }
        fn ipa_is_ram(&self, ipa: u64) -> bool {
            ipa >= RAM.0 && ipa - RAM.0 < RAM.1
        }
    }

    /// A VM whose lookup claims an index beyond its vCPU count.
    struct LyingVm;

    /// A one-vCPU VM with a watchdog.
    struct WatchedVm;

    impl VmView for WatchedVm {
        fn vcpu_count(&self) -> usize {
            1
        }
        fn vcpu_index_by_mpidr(&self, mpidr: u64) -> Option<usize> {
            index_by_mpidr(mpidr, 1)
        }
        fn vcpu_power(&self, _: usize) -> PowerState {
            PowerState::On
        }
        fn ipa_is_ram(&self, _: u64) -> bool {
            true
        }
        fn has_watchdog(&self) -> bool {
            true
        }
    }

    #[test]
    fn watchdog_kick_only_for_a_vm_with_a_watchdog() {
        let kick = SmcccCall { x: [0xC600_0002, 0, 0, 0] };
        assert_eq!(handle(kick, &WatchedVm), Outcome::WatchdogKick);
        // The upper half of x0 is ignored, like every Function Identifier's.
        let kick_high = SmcccCall { x: [0xFFFF_FFFF_C600_0002, 0, 0, 0] };
        assert_eq!(handle(kick_high, &WatchedVm), Outcome::WatchdogKick);
        // The SMC32 twin (bit 30 clear) and an unused ID are not kicks.
        for function in [0x8600_0002u64, 0xC600_0004] {
            let other = SmcccCall { x: [function, 0, 0, 0] };
            assert_eq!(handle(other, &WatchedVm), Outcome::Return([ret::NOT_SUPPORTED, 0, 0, 0]));
        }
    }

    impl VmView for LyingVm {
        fn vcpu_count(&self) -> usize {
            1
        }
        fn vcpu_index_by_mpidr(&self, _: u64) -> Option<usize> {
            Some(7)
        }
        fn vcpu_power(&self, _: usize) -> PowerState {
            PowerState::Off
        }
        fn ipa_is_ram(&self, _: u64) -> bool {
            true
        }
    }

    fn call(x0: u64, x1: u64, x2: u64, x3: u64) -> Outcome {
        handle(
            SmcccCall {
                x: [x0, x1, x2, x3],
            },
            &FakeVm,
        )
    }

    fn x0(outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Return([x0, 0, 0, 0]) => x0,
            other => panic!("expected a return, got {other:?}"),
        }
    }

    fn mpidr(i: usize) -> u64 {
        vmpidr(i) & MPIDR_AFFINITY_MASK
    }

    #[test]
    fn versions_and_fixed_answers() {
        assert_eq!(x0(call(0x8400_0000, 0, 0, 0)), 0x10001);
        assert_eq!(x0(call(0x8000_0000, 0, 0, 0)), 0x10001);
        assert_eq!(x0(call(0x8400_0006, 0, 0, 0)), 2);
        // The upper half of x0 is not part of the Function Identifier.
        assert_eq!(x0(call(0xffff_ffff_8400_0000, 0, 0, 0)), 0x10001);
    }

    #[test]
    fn power_calls() {
        assert_eq!(call(0x8400_0002, 0, 0, 0), Outcome::CpuOff);
        assert_eq!(call(0x8400_0008, 0, 0, 0), Outcome::SystemOff);
        assert_eq!(call(0x8400_0009, 0, 0, 0), Outcome::SystemReset);
        assert_eq!(call(0xC600_0001, 0, 0, 0), Outcome::TesseraStats);
        assert_eq!(call(0xC600_0003, 0, 0, 0), Outcome::SchedStats { vcpu: 0 });
        assert_eq!(x0(call(0xC600_0003, 99, 0, 0)), ret::INVALID_PARAMETERS, "not one of its vCPUs");
        // FakeVm has no watchdog: the kick is an unknown call to it.
        assert_eq!(x0(call(0xC600_0002, 0, 0, 0)), ret::NOT_SUPPORTED);
        assert_eq!(x0(call(0x8400_0001, 0, 0, 0)), ret::SUCCESS);
        assert_eq!(
            x0(call(0xC400_0001, 0x1_0000, 0x4000_0000, 0)),
            ret::SUCCESS
        );
    }

    #[test]
    fn cpu_on() {
        let entry = 0x4008_0000;
        assert_eq!(
            call(0xC400_0003, mpidr(1), entry, 0xdead_beef_0000_1234),
            Outcome::CpuOn {
                target: 1,
                entry,
                context: 0xdead_beef_0000_1234
            }
        );
        assert_eq!(
            call(0xC400_0003, mpidr(3), entry, 7),
            Outcome::CpuOn {
                target: 3,
                entry,
                context: 7
            }
        );
        // SMC32: arguments are w1..w3.
        assert_eq!(
            call(
                0x8400_0003,
                (0xffff_ffff << 32) | mpidr(1),
                (1 << 32) | entry,
                (5 << 32) | 9
            ),
            Outcome::CpuOn {
                target: 1,
                entry,
                context: 9
            }
        );
        // The RES1 bit 31 of MPIDR is not an affinity bit: rejected as a must-be-zero bit.
        assert_eq!(
            x0(call(0xC400_0003, vmpidr(1), entry, 0)),
            ret::INVALID_PARAMETERS
        );
    }

    #[test]
    fn cpu_on_errors() {
        let entry = 0x4008_0000;
        // Unknown MPIDR: beyond the vCPU count, or an Aff0 never assigned, or Aff3 set.
        assert_eq!(
            x0(call(0xC400_0003, mpidr(4), entry, 0)),
            ret::INVALID_PARAMETERS
        );
        assert_eq!(
            x0(call(0xC400_0003, 0x10, entry, 0)),
            ret::INVALID_PARAMETERS
        );
        assert_eq!(
            x0(call(0xC400_0003, 1 << 32, entry, 0)),
            ret::INVALID_PARAMETERS
        );
        assert_eq!(
            x0(call(0xC400_0003, 1 << 40, entry, 0)),
            ret::INVALID_PARAMETERS
        );
        // Entry outside RAM, or misaligned.
        assert_eq!(
            x0(call(0xC400_0003, mpidr(1), 0x0900_0000, 0)),
            ret::INVALID_ADDRESS
        );
        assert_eq!(
            x0(call(0xC400_0003, mpidr(1), 0x8000_0000, 0)),
            ret::INVALID_ADDRESS
        );
        assert_eq!(
            x0(call(0xC400_0003, mpidr(1), entry + 2, 0)),
            ret::INVALID_ADDRESS
        );
        // SMC32 truncates a 64-bit entry: 0x1_4008_0000 becomes 0x4008_0000 (in RAM), while
        // SMC64 sees it whole (outside RAM).
        assert!(matches!(
            call(0x8400_0003, mpidr(1), 0x1_4008_0000, 0),
            Outcome::CpuOn { .. }
        ));
        assert_eq!(
            x0(call(0xC400_0003, mpidr(1), 0x1_4008_0000, 0)),
            ret::INVALID_ADDRESS
        );
        // Target state.
        assert_eq!(x0(call(0xC400_0003, mpidr(0), entry, 0)), ret::ALREADY_ON);
        assert_eq!(x0(call(0xC400_0003, mpidr(2), entry, 0)), ret::ON_PENDING);
        // A VmView that returns an out-of-range index is not believed.
        let lying = handle(
            SmcccCall {
                x: [0xC400_0003, 0, entry, 0],
            },
            &LyingVm,
        );
        assert_eq!(x0(lying), ret::INVALID_PARAMETERS);
    }

    #[test]
    fn affinity_info() {
        for id in [0x8400_0004, 0xC400_0004] {
            assert_eq!(x0(call(id, mpidr(0), 0, 0)), AFFINITY_ON);
            assert_eq!(x0(call(id, mpidr(1), 0, 0)), AFFINITY_OFF);
            assert_eq!(x0(call(id, mpidr(2), 0, 0)), AFFINITY_ON_PENDING);
            assert_eq!(x0(call(id, mpidr(4), 0, 0)), ret::INVALID_PARAMETERS);
            assert_eq!(x0(call(id, mpidr(0), 1, 0)), ret::INVALID_PARAMETERS);
            assert_eq!(x0(call(id, mpidr(0), 3, 0)), ret::INVALID_PARAMETERS);
        }
        // SMC32: the level is w2, so junk above bit 31 is ignored.
        assert_eq!(x0(call(0x8400_0004, mpidr(1), 1 << 32, 0)), AFFINITY_OFF);
        assert_eq!(
            x0(call(0xC400_0004, mpidr(1), 1 << 32, 0)),
            ret::INVALID_PARAMETERS
        );
    }

    #[test]
    fn psci_features() {
        for f in IMPLEMENTED.into_iter().chain([id::SMCCC_VERSION]) {
            assert_eq!(
                x0(call(0x8400_000A, u64::from(f), 0, 0)),
                ret::SUCCESS,
                "{f:#x}"
            );
        }
        for f in [
            id::MIGRATE_32,
            id::MIGRATE_64,
            id::SYSTEM_SUSPEND_64,
            id::SYSTEM_RESET2_64,
            0x8400_000B,
            0,
            0xffff_ffff,
        ] {
            assert_eq!(
                x0(call(0x8400_000A, u64::from(f), 0, 0)),
                ret::NOT_SUPPORTED,
                "{f:#x}"
            );
        }
    }

    #[test]
    fn smccc_arch_features() {
        for w in [
            id::SMCCC_ARCH_WORKAROUND_1,
            id::SMCCC_ARCH_WORKAROUND_2,
            id::SMCCC_ARCH_WORKAROUND_3,
        ] {
            assert_eq!(
                x0(call(0x8000_0001, u64::from(w), 0, 0)),
                ret::NOT_SUPPORTED
            );
        }
        assert_eq!(x0(call(0x8000_0001, 0x8000_0000, 0, 0)), ret::SUCCESS);
        assert_eq!(x0(call(0x8000_0001, 0x8000_0001, 0, 0)), ret::SUCCESS);
        assert_eq!(x0(call(0x8000_0001, 0x8000_0002, 0, 0)), ret::NOT_SUPPORTED);
    }

    #[test]
    fn unknown_calls() {
        for f in [
            id::MIGRATE_32,
            id::MIGRATE_64,
            0x8400_0007,
            id::SYSTEM_SUSPEND_64,
            id::SYSTEM_RESET2_64,
            0x8600_0000, // SiP service
            0xBF00_0000, // Trusted OS
            0x0000_0000,
            0xffff_ffff,
        ] {
            assert_eq!(
                x0(call(u64::from(f), 1, 2, 3)),
                ret::NOT_SUPPORTED,
                "{f:#x}"
            );
        }
        assert_eq!(ret::NOT_SUPPORTED, u64::MAX);
        assert_eq!(ret::INVALID_ADDRESS as i64, -9);
    }

    /// The only Function Identifiers (w0) the hypervisor may answer with anything but
    /// NOT_SUPPORTED (TESSERA_WDOG_KICK only for a VM with a watchdog; TESSERA_SCHED_STATS only
    /// for one of the caller's vCPUs); everything else, in every owning entity's range, is refused here and
    /// [`Outcome`] has no way to pass a call on to firmware.
    fn allowed(function: u32) -> bool {
        IMPLEMENTED.contains(&function)
            || [id::SMCCC_VERSION, id::SMCCC_ARCH_FEATURES, id::TESSERA_STATS, id::TESSERA_WDOG_KICK, id::TESSERA_SCHED_STATS]
                .contains(&function)
    }

    #[test]
    fn filter_refuses_every_other_service_fast_or_yielding_32_or_64() {
        let mut answered = 0;
        // Fast (bit 31) or yielding, SMC64 (bit 30) or SMC32, every owning entity (bits
        // 29:24: Arm architecture, CPU, SiP, OEM, standard secure, standard hypervisor, vendor
        // hypervisor, trusted applications and OSes), function numbers 0..0x120.
        for kind in [0x8000_0000u32, 0xC000_0000, 0x0000_0000, 0x4000_0000] {
            for entity in 0..64u32 {
                for number in 0..0x120u32 {
                    let function = kind | (entity << 24) | number;
                    let outcome = call(u64::from(function), 0, 0, 0);
                    if allowed(function) {
                        answered += 1;
                    } else {
                        assert_eq!(outcome, Outcome::Return([ret::NOT_SUPPORTED, 0, 0, 0]), "{function:#x}");
                    }
                }
            }
        }
        assert_eq!(answered, IMPLEMENTED.len() + 5);
    }

    proptest! {
        #[test]
        fn anything_not_allowed_is_not_supported(x0: u64, x1: u64, x2: u64, x3: u64) {
            prop_assume!(!allowed(x0 as u32));
            prop_assert_eq!(call(x0, x1, x2, x3), Outcome::Return([ret::NOT_SUPPORTED, 0, 0, 0]));
        }

        #[test]
        fn the_upper_half_of_x0_is_ignored(high: u32, index in 0usize..IMPLEMENTED.len()) {
            let function = IMPLEMENTED[index];
            let plain = call(u64::from(function), 1, 0x4020_0000, 3);
            prop_assert_eq!(call((u64::from(high) << 32) | u64::from(function), 1, 0x4020_0000, 3), plain);
        }
    }

    proptest! {
        #[test]
        fn never_panics(
            function in prop_oneof![
                any::<u64>(),
                proptest::sample::select(IMPLEMENTED.to_vec()).prop_map(u64::from),
                Just(u64::from(id::SMCCC_ARCH_FEATURES)),
            ],
            x1: u64,
            x2: u64,
            x3: u64,
        ) {
            match handle(SmcccCall { x: [function, x1, x2, x3] }, &FakeVm) {
                Outcome::Return([_, 0, 0, 0]) => {}
                Outcome::Return(other) => prop_assert!(false, "x1..x3 not zero: {:?}", other),
                Outcome::CpuOn { target, entry, .. } => {
                    prop_assert!(target == 1 || target == 3);
                    prop_assert!(FakeVm.ipa_is_ram(entry));
                }
                _ => {}
            }
        }

        /// `x0[63:32]`, and for an SMC32 call `x1..x3[63:32]`, never change the outcome; an
        /// SMC32 CPU_ON starts at a 32-bit entry with a 32-bit context (fuzz/src/psci.rs
        /// checks the same under libFuzzer).
        #[test]
        fn ignored_bits_are_ignored(
            function in proptest::sample::select(IMPLEMENTED.to_vec()),
            high: [u32; 4],
            x1: u64,
            entry in 0x4000_0000u64..0x8000_0000,
            x3: u64,
        ) {
            let x2 = entry & !3;
            let outcome = handle(SmcccCall { x: [u64::from(function), x1, x2, x3] }, &FakeVm);
            let mut noisy = [u64::from(function) | (u64::from(high[0]) << 32), x1, x2, x3];
            if !is_smc64(function) {
                for (x, h) in noisy[1..].iter_mut().zip(&high[1..]) {
                    *x ^= u64::from(*h) << 32;
                }
            }
            prop_assert_eq!(handle(SmcccCall { x: noisy }, &FakeVm), outcome);
            if let Outcome::CpuOn { entry, context, .. } = outcome
                && function == id::CPU_ON_32
            {
                prop_assert!(entry <= u64::from(u32::MAX) && context <= u64::from(u32::MAX));
            }
        }
    }
}
