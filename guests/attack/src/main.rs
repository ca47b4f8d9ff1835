//! The attack guest (EL1). Boots like the bare-metal test guest (it reuses that guest's entry,
//! vectors and UART by including their files), reads its device tree and its probe targets,
//! then runs classes of probes from console commands (`attack all`, `attack <class>`) and
//! reports each one: `probe <class> <what> denied|ESCAPE`, then `probes=N escapes=E`.
//! Contract: `../README.md`.
//!
//! On the host this builds as an empty program so that `cargo build/test --workspace` work.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
#[allow(dead_code, reason = "shared with guests/baremetal, which uses the rest")]
#[path = "../../baremetal/src/arch.rs"]
mod arch;
#[cfg(target_os = "none")]
mod attack;
#[cfg(target_os = "none")]
mod probe;
#[cfg(target_os = "none")]
#[allow(dead_code, reason = "shared with guests/baremetal, which uses the rest")]
#[path = "../../baremetal/src/uart.rs"]
mod uart;

#[cfg(target_os = "none")]
pub(crate) use attack::{exception, interrupt};

#[cfg(not(target_os = "none"))]
fn main() {}
