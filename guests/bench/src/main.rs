//! The benchmark guest (EL1). Boots like the bare-metal test guest (it reuses that guest's
//! entry, vectors, GICv3 driver and UART by including their files), stamps CNTPCT_EL0 at its
//! first instruction, then measures virtual-timer latency (WFI and spinning), the round trips
//! of a trapped MMIO write, of an HVC and of an SGI between two vCPUs, and the hypervisor's
//! EL2 instructions per interrupt; it prints `bench: …` lines (`../README.md`) and powers off.
//!
//! On the host this builds as an empty program so that `cargo build/test --workspace` work.
#![cfg_attr(target_os = "none", no_std, no_main)]

// The bare-metal guest's hardware layer, shared file by file: those are binary modules of
// that crate, not part of its library. Not everything in them is used here.
#[cfg(target_os = "none")]
#[allow(dead_code, reason = "shared with guests/baremetal, which uses the rest")]
#[path = "../../baremetal/src/arch.rs"]
mod arch;
#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
#[allow(dead_code, reason = "shared with guests/baremetal, which uses the rest")]
#[path = "../../baremetal/src/gicv3.rs"]
mod gicv3;
#[cfg(target_os = "none")]
#[allow(dead_code, reason = "shared with guests/baremetal, which uses the rest")]
#[path = "../../baremetal/src/uart.rs"]
mod uart;

#[cfg(target_os = "none")]
pub(crate) use bench::{exception, interrupt};

#[cfg(not(target_os = "none"))]
fn main() {}
