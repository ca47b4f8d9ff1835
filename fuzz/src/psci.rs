//! PSCI and the SMCCC architecture calls (`tessera_core::psci::handle`): any `x0..x3`, from a
//! VM of 1..=8 vCPUs in any power states, whose MPIDR lookup may even lie (claim an index
//! past its vCPU count).
//!
//! Invariants checked (DEN0022D PSCI, DEN0028 SMCCC):
//! - a returned call sets `x1..x3` to 0;
//! - `CpuOn` names an existing vCPU that is Off, with a 4-byte aligned entry point in RAM, and
//!   only for CPU_ON; an SMC32 CPU_ON's entry and context fit 32 bits;
//! - CPU_OFF, SYSTEM_OFF, SYSTEM_RESET and the Tessera calls map to their outcomes only, the
//!   watchdog kick only for a VM that has a watchdog;
//! - `x0[63:32]`, and for SMC32 calls `x1..x3[63:32]`, never change the outcome;
//! - an unknown Function Identifier returns NOT_SUPPORTED.

use arbitrary::{Arbitrary, Unstructured};
use tessera_core::psci::{Outcome, PowerState, SmcccCall, VmView, handle, id, ret};
use tessera_core::vcpu::index_by_mpidr;

struct FuzzVm {
    count: usize,
    power: [PowerState; 8],
    /// `Some(i)`: the lookup answers `i` for every MPIDR.
    lie: Option<usize>,
    ram: (u64, u64),
    watchdog: bool,
}

impl VmView for FuzzVm {
    fn vcpu_count(&self) -> usize {
        self.count
    }
    fn vcpu_index_by_mpidr(&self, mpidr: u64) -> Option<usize> {
        self.lie.or_else(|| index_by_mpidr(mpidr, self.count))
    }
    fn vcpu_power(&self, index: usize) -> PowerState {
        // `handle` must only ask about vCPUs that exist.
        assert!(
            index < self.count,
            "power of vCPU {index} of {}",
            self.count
        );
        self.power[index]
    }
    fn ipa_is_ram(&self, ipa: u64) -> bool {
        ipa >= self.ram.0 && ipa - self.ram.0 < self.ram.1
    }
    fn has_watchdog(&self) -> bool {
        self.watchdog
    }
}

const KNOWN: [u32; 24] = [
    id::PSCI_VERSION,
    id::CPU_SUSPEND_32,
    id::CPU_SUSPEND_64,
    id::CPU_OFF,
    id::CPU_ON_32,
    id::CPU_ON_64,
    id::AFFINITY_INFO_32,
    id::AFFINITY_INFO_64,
    id::MIGRATE_32,
    id::MIGRATE_64,
    id::MIGRATE_INFO_TYPE,
    id::SYSTEM_OFF,
    id::SYSTEM_RESET,
    id::PSCI_FEATURES,
    id::SYSTEM_SUSPEND_64,
    id::SYSTEM_RESET2_64,
    id::SMCCC_VERSION,
    id::SMCCC_ARCH_FEATURES,
    id::SMCCC_ARCH_WORKAROUND_1,
    id::SMCCC_ARCH_WORKAROUND_2,
    id::SMCCC_ARCH_WORKAROUND_3,
    id::TESSERA_STATS,
    id::TESSERA_WDOG_KICK,
    id::TESSERA_SCHED_STATS,
];

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(vm) = vm(&mut u) else { return };
    // Unstructured yields zeros once the data runs out: stop there, not at an error.
    while !u.is_empty() {
        let Ok(call) = call(&mut u) else { break };
        check(call, &vm);
    }
}

fn vm(u: &mut Unstructured<'_>) -> arbitrary::Result<FuzzVm> {
    let count = 1 + usize::from(u8::arbitrary(u)? % 8);
    let mut power = [PowerState::Off; 8];
    for state in &mut power {
        *state = *u.choose(&[PowerState::On, PowerState::Off, PowerState::OnPending])?;
    }
    let lie = if bool::arbitrary(u)? {
        Some(usize::from(u8::arbitrary(u)? % 16))
    } else {
        None
    };
    Ok(FuzzVm {
        count,
        power,
        lie,
        ram: (u64::arbitrary(u)?, u64::arbitrary(u)?),
        watchdog: bool::arbitrary(u)?,
    })
}

fn call(u: &mut Unstructured<'_>) -> arbitrary::Result<SmcccCall> {
    let function = match u8::arbitrary(u)? % 4 {
        0 => u64::arbitrary(u)?,
        _ => u64::from(*u.choose(&KNOWN)?) | (u64::from(u32::arbitrary(u)?) << 32),
    };
    let mut x = [
        function,
        u64::arbitrary(u)?,
        u64::arbitrary(u)?,
        u64::arbitrary(u)?,
    ];
    if bool::arbitrary(u)? {
        // Point CPU_ON at the VM's RAM now and then.
        x[2] = (x[2] & 0xffff) << 2;
    }
    Ok(SmcccCall { x })
}

fn check(call: SmcccCall, vm: &FuzzVm) {
    let outcome = handle(call, vm);
    let function = call.x[0] as u32;
    let smc64 = function & (1 << 30) != 0;
    // The upper halves that must not matter.
    let mut other = call;
    other.x[0] ^= 0xdead_beef << 32;
    if !smc64 {
        for x in &mut other.x[1..] {
            *x ^= 0x5a5a_5a5a << 32;
        }
    }
    assert_eq!(handle(other, vm), outcome, "ignored bits changed {call:x?}");
    match outcome {
        Outcome::Return([_, x1, x2, x3]) => assert_eq!((x1, x2, x3), (0, 0, 0), "{call:x?}"),
        Outcome::CpuOn {
            target,
            entry,
            context,
        } => {
            assert!(
                function == id::CPU_ON_32 || function == id::CPU_ON_64,
                "{call:x?}"
            );
            assert!(
                target < vm.count && vm.power[target] == PowerState::Off,
                "CPU_ON of vCPU {target}"
            );
            assert!(
                entry % 4 == 0 && vm.ipa_is_ram(entry),
                "CPU_ON entry {entry:#x}"
            );
            if !smc64 {
                assert!(
                    entry <= u64::from(u32::MAX) && context <= u64::from(u32::MAX),
                    "SMC32 CPU_ON"
                );
            }
        }
        Outcome::CpuOff => assert_eq!(function, id::CPU_OFF),
        Outcome::SystemOff => assert_eq!(function, id::SYSTEM_OFF),
        Outcome::SystemReset => assert_eq!(function, id::SYSTEM_RESET),
        Outcome::TesseraStats => assert_eq!(function, id::TESSERA_STATS),
        Outcome::SchedStats { vcpu } => {
            assert!(function == id::TESSERA_SCHED_STATS && vcpu < vm.count, "stats of vCPU {vcpu}: {call:x?}");
        }
        Outcome::WatchdogKick => {
            assert!(function == id::TESSERA_WDOG_KICK && vm.watchdog, "a kick without a watchdog: {call:x?}");
        }
    }
    if !KNOWN.contains(&function) {
        assert_eq!(
            outcome,
            Outcome::Return([ret::NOT_SUPPORTED, 0, 0, 0]),
            "{call:x?}"
        );
    }
}
