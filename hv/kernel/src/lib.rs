//! The hypervisor proper: the boot flow, each CPU's run loop, exit dispatch, the VMs'
//! lifecycle and the console. Everything here is safe Rust over `tessera-arch` and
//! `tessera-drivers`; the decisions (decoding, PSCI, stage 2, device models) live in the
//! host-tested `tessera-core` and `tessera-vdev`.
//!
//! Lock order (take left before right, never the reverse):
//! `VmRuntime::uart` → `console::CONSOLE`; `VmRuntime::uart` → `vgic::VGICS[vm]` → `vgic::GICD`.
//! `CONSOLE` and a vGIC are never held together. `run::STAGE2_POOL` (taken by `scrub`) is
//! held alone. The `defmt` logger's critical section is
//! innermost.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod console;
mod direct;
#[cfg(feature = "rtds")]
mod rtds;
mod run;
mod scrub;
mod vgic;
mod vm;
mod watchdog;

use tessera_arch::BootInfo;
use tessera_config::{Board, System};
use tessera_drivers::gicv3::{Distributor, GicError, Redistributor};
use tessera_drivers::pl011::Pl011;

pub use tessera_arch::log::Sink as LogSink;

/// What a platform binary hands the hypervisor: its board, the system built for it, and the
/// drivers bound to the board's addresses.
pub struct Platform {
    pub board: &'static Board<'static>,
    pub system: &'static System<'static>,
    pub uart: Pl011,
    pub gicd: Distributor,
    /// Finds the redistributor of the CPU with this MPIDR affinity.
    pub redistributor: fn(u64) -> Result<Redistributor, GicError>,
    pub log_sink: LogSink,
}

static PLATFORM: spin::Once<Platform> = spin::Once::new();

/// SGI the hypervisor sends to make another CPU leave its guest and look at its vCPU state.
pub(crate) const KICK_SGI: u32 = 0;

/// The primary CPU's entry from the platform binary, with the MMU still off.
/// `board` must be the same board `make_platform` describes.
pub fn primary(board: &'static Board<'static>, make_platform: fn() -> Platform, boot: BootInfo) -> ! {
    // Nothing may take a lock or use an atomic before this (Device memory).
    let ram = board.ram;
    let mut banks = [(0u64, 0u64); 4];
    for (slot, bank) in banks.iter_mut().zip(ram.iter()) {
        *slot = (bank.base, bank.size);
    }
    tessera_arch::mmu::enable_primary(&banks[..ram.len().min(4)]);

    let platform = PLATFORM.call_once(make_platform);
    tessera_arch::log::init(platform.log_sink);
    defmt::info!(
        "Tessera on {=str}: loaded at {=u64:#x}..{=u64:#x}, {=usize} VM(s)",
        platform.board.name,
        boot.load_base,
        boot.image_end,
        platform.system.vms.len()
    );
    run::boot_primary(platform, boot)
}

/// A secondary CPU's entry from the platform binary, MMU on.
pub fn secondary(cpu: usize) -> ! {
    match PLATFORM.get() {
        Some(platform) => run::cpu_main(platform, cpu),
        None => tessera_arch::cpu::halt(),
    }
}
