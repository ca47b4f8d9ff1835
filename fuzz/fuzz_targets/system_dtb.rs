//! Fuzz target: the build tool's system-description path (FDT reader, parser, devices, placement, validator); see `tessera_fuzz::system_dtb`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz::system_dtb::run(data));
