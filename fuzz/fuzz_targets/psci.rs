//! Fuzz target: PSCI/SMCCC call handling; see `tessera_fuzz::psci`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz::psci::run(data));
