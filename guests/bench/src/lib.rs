//! The host-testable half of the benchmark guest: its bootargs, the statistics it reports,
//! the ICC_SGI1R_EL1 value it writes and the report line format. The EL1 binary (`main.rs`)
//! adds the measurements; the output protocol is in `../README.md`, and `cargo xtask bench`
//! (`scripts/xtask/src/bench.rs`) parses it.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod args;
pub mod stats;

/// ICC_SGI1R_EL1 (IHI 0069H §12.2.22) for SGI `intid` to the one CPU with affinity `mpidr`:
/// TargetList bit Aff0 % 16 (bits 15:0), Aff1 (23:16), INTID (27:24), Aff2 (39:32),
/// RS = Aff0 / 16 (47:44), Aff3 (55:48); IRM (bit 40) = 0.
pub const fn sgi1r_value(mpidr: u64, intid: u32) -> u64 {
    let aff0 = mpidr & 0xff;
    let aff1 = (mpidr >> 8) & 0xff;
    let aff2 = (mpidr >> 16) & 0xff;
    let aff3 = (mpidr >> 32) & 0xff;
    (1 << (aff0 % 16))
        | (aff1 << 16)
        | (((intid & 0xf) as u64) << 24)
        | (aff2 << 32)
        | ((aff0 / 16) << 44)
        | (aff3 << 48)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgi1r_targets_one_cpu() {
        assert_eq!(sgi1r_value(0, 1), 1 | (1 << 24));
        assert_eq!(sgi1r_value(1, 2), (1 << 1) | (2 << 24));
        assert_eq!(sgi1r_value(0x01_0002_0311, 15), (1 << 1) | (3 << 16) | (15 << 24) | (2 << 32) | (1 << 44) | (1 << 48));
    }
}
