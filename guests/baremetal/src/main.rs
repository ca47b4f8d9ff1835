//! The bare-metal EL1 test guest. Boots from an arm64 Image header (natively under QEMU, or
//! as a Tessera VM), reads its device tree, prints a hello line, then runs a console with an
//! optional heartbeat: polled, or with `rt=1` driven by GICv3 interrupts. The contract the HIL tests rely on is in `../README.md`.
//!
//! On the host this builds as an empty program so that `cargo build/test --workspace` work.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod gicv3;
#[cfg(target_os = "none")]
mod guest;
#[cfg(target_os = "none")]
mod uart;

#[cfg(target_os = "none")]
pub(crate) use guest::{exception, interrupt};

#[cfg(not(target_os = "none"))]
fn main() {}
