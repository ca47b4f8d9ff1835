//! vCPU schedulers for CPUs in an RTDS pool (null-pool CPUs have none: one vCPU, no tick).
//!
//! [`rtds::RtdsCpu`] is one physical CPU's run queue under partitioned EDF: pure, driven by
//! counter timestamps the kernel passes in, host-tested (`rtds/tests.rs`).

pub mod rtds;
