//! Calls from the hypervisor to firmware through the SMC Calling Convention (DEN0028):
//! PSCI CPU_ON to start secondary CPUs and SYSTEM_OFF when every VM has stopped.

/// PSCI function IDs (DEN0022 5.1).
const PSCI_CPU_ON_64: u64 = 0xc400_0003;
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

/// How firmware is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduit {
    Smc,
    Hvc,
}

#[cfg(target_arch = "aarch64")]
fn call(conduit: Conduit, function: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let mut x0 = function;
    match conduit {
        // SAFETY: an SMCCC call to firmware; per DEN0028 it clobbers at most x0-x17, which
        // are declared clobbered, and it does not touch our memory.
        Conduit::Smc => unsafe {
            core::arch::asm!("smc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _,
                inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
                out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack))
        },
        // SAFETY: as above, through EL2's own HVC (only when the hypervisor itself runs
        // under another one).
        Conduit::Hvc => unsafe {
            core::arch::asm!("hvc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _,
                inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
                out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack))
        },
    }
    x0
}

/// Starts physical CPU `mpidr` at the hypervisor's secondary entry with `cpu_index` in x0.
/// Returns the PSCI status (0 = success).
#[cfg(target_arch = "aarch64")]
pub fn cpu_on(conduit: Conduit, mpidr: u64, cpu_index: usize) -> i64 {
    unsafe extern "C" {
        fn tessera_secondary_entry();
    }
    let entry = tessera_secondary_entry as *const () as u64;
    call(conduit, PSCI_CPU_ON_64, mpidr, entry, cpu_index as u64) as i64
}

/// Powers the machine off. If firmware returns, halts this CPU.
#[cfg(target_arch = "aarch64")]
pub fn system_off(conduit: Conduit) -> ! {
    call(conduit, PSCI_SYSTEM_OFF, 0, 0, 0);
    crate::cpu::halt()
}

#[cfg(not(target_arch = "aarch64"))]
mod host {
    use super::Conduit;
    pub fn cpu_on(_: Conduit, _: u64, _: usize) -> i64 { unimplemented!("host build") }
    pub fn system_off(_: Conduit) -> ! { unimplemented!("host build") }
}
#[cfg(not(target_arch = "aarch64"))]
pub use host::*;
