//! What the fuzz targets run: each takes the fuzzer's bytes, drives one parser or device model
//! with them, and asserts that model's invariants after every step (a violated invariant
//! panics, which libFuzzer reports as a crash with the input that caused it).
//!
//! Targets are thin wrappers (`fuzz_targets/*.rs`) so that a finding can be replayed from a
//! unit test by calling the function here with the crash file's bytes.
#![forbid(unsafe_code)]

pub mod console_mux;
pub mod exit_decode;
pub mod psci;
pub mod sbsa_uart;
pub mod system_dtb;
pub mod vgic;

use arbitrary::{Arbitrary, Unstructured};
use tessera_vdev::mmio::Width;

/// An access width, as the syndrome's `SAS` gives it.
pub fn width(u: &mut Unstructured<'_>) -> arbitrary::Result<Width> {
    Ok(match u8::arbitrary(u)? & 3 {
        0 => Width::Byte,
        1 => Width::Half,
        2 => Width::Word,
        _ => Width::Double,
    })
}

/// An offset that hits the frame's registers often (below `frame`, aligned half the time)
/// and anything at all sometimes.
pub fn offset(u: &mut Unstructured<'_>, frame: u64) -> arbitrary::Result<u64> {
    Ok(match u8::arbitrary(u)? % 8 {
        0 => u64::arbitrary(u)?,
        1..=3 => u64::arbitrary(u)? % (frame + 0x100),
        _ => (u64::arbitrary(u)? % frame) & !3,
    })
}
