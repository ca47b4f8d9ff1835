//! Fuzz target: the SBSA UART model against its reference; see `tessera_fuzz::sbsa_uart`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz::sbsa_uart::run(data));
