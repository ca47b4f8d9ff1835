//! Fuzz target: the console mux's input path and output format; see `tessera_fuzz::console_mux`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz::console_mux::run(data));
