//! Fuzz target: the vGIC Redistributor and SGI frames (with lines, arrivals, SGIs and vCPU runs); see `tessera_fuzz::vgic`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz::vgic::run(
    data,
    tessera_fuzz::vgic::Frames::Redistributor
));
