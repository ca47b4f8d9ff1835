//! What a direct-interrupt VM (`interrupt-mode = "direct"`) needs from the system and the
//! board, checked at build time. `docs/direct-mode.md` gives the reason for each rule.

use crate::{Board, ConfigError, GicVersion, InterruptMode, Scheduler, System, Vm, WfiPolicy};

/// SGIs the hypervisor keeps for itself on a direct VM's CPUs (bit n = SGI n): the kick
/// (SGI 0) and the fail-stop halt (SGI 15), both Group 0 there. A direct guest's own SGIs
/// with these INTIDs are dropped.
pub const DIRECT_RESERVED_SGIS: u16 = (1 << 0) | (1 << 15);

/// A direct VM: owns each of its CPUs alone (a null pool), runs WFI natively, stays off the
/// console UART's CPU, has no watchdog, and the board's GIC lets the hypervisor keep Group 0.
pub(crate) fn check_direct<'a>(board: &Board<'a>, system: &System<'a>, vm: &Vm<'a>) -> Result<(), ConfigError<'a>> {
    if vm.interrupt_mode != InterruptMode::Direct {
        return Ok(());
    }
    if board.gic.version != GicVersion::V3 || !board.gic.group0_nonsecure {
        return Err(ConfigError::DirectNeedsGroup0 { vm: vm.name });
    }
    if let Some(&cpu) = vm.cpus.iter().find(|&&cpu| system.scheduler_of(cpu) != Scheduler::Null) {
        return Err(ConfigError::DirectCpuShared { vm: vm.name, cpu });
    }
    if vm.cpus.contains(&crate::CONSOLE_CPU) {
        return Err(ConfigError::DirectOnConsoleCpu { vm: vm.name, cpu: crate::CONSOLE_CPU });
    }
    if vm.wfi == WfiPolicy::Trap {
        return Err(ConfigError::DirectTrapsWfi { vm: vm.name });
    }
    if vm.watchdog.is_some() {
        return Err(ConfigError::DirectWithWatchdog { vm: vm.name });
    }
    Ok(())
}
