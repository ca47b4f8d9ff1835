//! Tessera's build tool as a library: `cargo xtask` is a thin front end over it, and the HIL
//! harness uses it to build systems, start QEMU and decode the hypervisor's log.
//!
//! The pipeline (see [`pipeline::build`]): a system description (`dts/systems/<board>/*.dts`,
//! binding in `dts/bindings/tessera-system.md`) is compiled by `dtc` and parsed strictly
//! ([`dts`]); guest images are built or read ([`image`]); everything is placed ([`layout`]),
//! given its device tree ([`guest_dtb`]), checked by the validator the hypervisor also links,
//! and emitted as Rust statics ([`tables`]) that the platform crate compiles in.
#![forbid(unsafe_code)]

pub mod bench;
pub mod bench_rtds;
pub mod defmt_log;
pub mod devices;
pub mod dts;
pub mod error;
pub mod guest_dtb;
pub mod image;
pub mod layout;
pub mod pipeline;
pub mod qemu;
pub mod tables;

pub use error::{Error, Result};
pub use pipeline::{Built, Workspace, build, check, check_blob};
