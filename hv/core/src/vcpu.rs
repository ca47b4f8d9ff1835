//! A vCPU's identity (`VMPIDR_EL2`) and its architectural reset state.

/// `MPIDR_EL1` bit 31 is RES1 (DDI 0487, `MPIDR_EL1`).
const MPIDR_RES1: u64 = 1 << 31;

/// The affinity fields of `MPIDR_EL1`: Aff3\[39:32\], Aff2\[23:16\], Aff1\[15:8\], Aff0\[7:0\]. PSCI
/// `target_cpu` arguments carry exactly these bits (DEN0022D, CPU_ON); [`crate::psci::VmView`]
/// lookups are by `vmpidr(i) & MPIDR_AFFINITY_MASK`.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// vCPUs per Aff0 cluster. A GICv3 SGI (`ICC_SGI1R_EL1.TargetList`, IHI 0069) names its
/// targets with a 16-bit mask of Aff0 values 0..=15; Aff0 above 15 needs the Range Selector
/// extension (`ICC_CTLR_EL1.RSS`), which not every guest uses. So, as KVM does, Aff0 counts
/// 0..=15 and Aff1 counts clusters of 16.
pub const VCPUS_PER_CLUSTER: usize = 16;

/// The `VMPIDR_EL2` value for vCPU `vcpu_index`: Aff0 = index % 16, Aff1 = index / 16 (up to
/// 4096 vCPUs; higher indices continue into Aff2 and Aff3), bit 31 RES1, U = 0, MT = 0.
///
/// Injective for every index below 2^28 (16 × 2^24 clusters), far more than any static
/// configuration; above that the affinity fields wrap.
pub const fn vmpidr(vcpu_index: usize) -> u64 {
    let index = vcpu_index as u64;
    let aff0 = index % VCPUS_PER_CLUSTER as u64;
    let cluster = index / VCPUS_PER_CLUSTER as u64;
    let aff1 = cluster & 0xff;
    let aff2 = (cluster >> 8) & 0xff;
    let aff3 = (cluster >> 16) & 0xff;
    MPIDR_RES1 | (aff3 << 32) | (aff2 << 16) | (aff1 << 8) | aff0
}

/// The vCPU index whose [`vmpidr`] has these affinity bits (bits outside
/// [`MPIDR_AFFINITY_MASK`] are ignored), if it is below `vcpu_count`.
pub fn index_by_mpidr(mpidr: u64, vcpu_count: usize) -> Option<usize> {
    let aff0 = mpidr & 0xff;
    if aff0 >= VCPUS_PER_CLUSTER as u64 {
        return None;
    }
    let cluster =
        ((mpidr >> 8) & 0xff) | (((mpidr >> 16) & 0xff) << 8) | (((mpidr >> 32) & 0xff) << 16);
    let index = cluster
        .checked_mul(VCPUS_PER_CLUSTER as u64)?
        .checked_add(aff0)?;
    let index = usize::try_from(index).ok()?;
    (index < vcpu_count).then_some(index)
}

/// `SPSR_ELx.M` for EL1 using `SP_EL1` (EL1h) (DDI 0487, `SPSR_EL2`).
pub const SPSR_EL1H: u64 = 0b0101;
/// `SPSR_ELx` D, A, I, F (bits 9..6) set: all asynchronous exceptions and debug masked.
pub const SPSR_MASK_DAIF: u64 = 0b1111 << 6;
/// A vCPU's PSTATE on its first entry, as on a PE reset into EL1: EL1h, DAIF masked (0x3c5).
pub const RESET_SPSR_EL2: u64 = SPSR_MASK_DAIF | SPSR_EL1H;

/// `SCTLR_EL1` at reset: MMU, caches and alignment checks off (M, C, I, A = 0), with the bits
/// that are RES1 in Armv8.0 set: EOS\[11\], TSCXT\[20\], EIS\[22\], SPAN\[23\], nTLSMD\[28\] and
/// LSMAOE\[29\] (DDI 0487, `SCTLR_EL1`). EE = 0: little-endian.
pub const RESET_SCTLR_EL1: u64 =
    (1 << 29) | (1 << 28) | (1 << 23) | (1 << 22) | (1 << 20) | (1 << 11);

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap known-good values")]
mod tests {
    use super::*;

    #[test]
    fn reset_constants() {
        assert_eq!(RESET_SPSR_EL2, 0x3c5);
        assert_eq!(RESET_SCTLR_EL1, 0x30d0_0800);
    }

    #[test]
    fn mpidr_layout() {
        assert_eq!(vmpidr(0), 0x8000_0000);
        assert_eq!(vmpidr(1), 0x8000_0001);
        assert_eq!(vmpidr(15), 0x8000_000f);
        assert_eq!(vmpidr(16), 0x8000_0100);
        assert_eq!(vmpidr(17), 0x8000_0101);
        assert_eq!(vmpidr(16 * 256), 0x8001_0000);
        assert_eq!(vmpidr(16 * 256 * 256), 0x1_8000_0000);
    }

    #[test]
    fn mpidr_round_trips() {
        for i in (0..5000).chain([1 << 20, (1 << 28) - 1]) {
            assert_eq!(index_by_mpidr(vmpidr(i), usize::MAX), Some(i), "{i}");
            assert_eq!(
                index_by_mpidr(vmpidr(i) & MPIDR_AFFINITY_MASK, i + 1),
                Some(i)
            );
            assert_eq!(index_by_mpidr(vmpidr(i), i), None);
        }
        assert_eq!(index_by_mpidr(0x10, 100), None); // Aff0 = 16 is never assigned
    }
}
