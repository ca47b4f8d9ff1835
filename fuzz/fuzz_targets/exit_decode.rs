//! Fuzz target: the exception-syndrome decoder and the MMIO load/store value helpers; see `tessera_fuzz::exit_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz::exit_decode::run(data));
