//! The host-testable half of the bare-metal test guest: bootargs, console commands, the line
//! editor, the device-tree reader, and for `rt=1` the GIC decisions, heartbeat timing and
//! jitter statistics, and the receive queue. The EL1 binary (`main.rs`) adds only the hardware.
//!
//! The guest's contract with the HIL tests (console lines, bootargs, commands) is written down
//! in `guests/baremetal/README.md`; keep the two in step.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)] // one audited exception: `dt::open`

pub mod bootargs;
pub mod canary;
pub mod command;
pub mod dt;
pub mod gic;
pub mod hex;
pub mod jitter;
pub mod line;
pub mod rx;
pub mod share;
pub mod spray;

/// The name the guest uses when the device tree's `model` is not `"tessera,<vm>"`.
pub const NATIVE_NAME: &str = "native";
