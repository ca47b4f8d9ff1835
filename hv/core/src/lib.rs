//! Tessera's pure hypervisor logic: everything EL2 decides, with no hardware access.
//!
//! The arch layer (`tessera-arch`) captures the registers once on each exit and calls into
//! this crate; this crate only computes. That split keeps every decision host-testable:
//!
//! - [`exit`]: decode `ESR_EL2`/`FAR_EL2`/`HPFAR_EL2` into an [`exit::Exit`], and the MMIO
//!   load/store value helpers.
//! - [`inject`]: the register values that hand a synchronous external abort to the guest.
//! - [`stage2`]: a per-VM stage-2 translation table builder (4 KiB granule, 39-bit IPA), plus
//!   the `VTCR_EL2`/`VTTBR_EL2` values that go with it.
//! - [`psci`]: the guest-facing PSCI 1.1 / SMCCC 1.1 decisions.
//! - [`vcpu`]: a vCPU's `VMPIDR_EL2` and its architectural reset state.
//! - [`watchdog`]: a VM watchdog's deadlines and expiry decision.
//! - [`direct`]: what a direct-interrupt VM's trapped SGI writes may send, and the physical
//!   priorities its interrupts get.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod direct;
pub mod exit;
pub mod inject;
pub mod psci;
pub mod sched;
pub mod stage2;
pub mod vcpu;
pub mod watchdog;
