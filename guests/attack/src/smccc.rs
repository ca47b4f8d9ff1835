//! The `smccc` class's function IDs: ones Tessera does not implement, so each must come back
//! `NOT_SUPPORTED` (-1) from the hypervisor and never reach firmware.
//!
//! Function ID layout (SMCCC, DEN 0028, "Function Identifier"): bit 31 fast call, bit 30
//! SMC64, bits 29:24 the owning entity (0..63), bits 15:0 the function number.

/// What Tessera answers (`hv/core/src/psci.rs` `id`, `docs/hvcall.md`): PSCI 1.1, SMCCC 1.1
/// and its architecture workarounds, `TESSERA_STATS`, `TESSERA_WDOG_KICK` and
/// `TESSERA_SCHED_STATS`. Never probed.
pub const IMPLEMENTED: &[u32] = &[
    0x8400_0000, 0x8400_0001, 0xC400_0001, 0x8400_0002, 0x8400_0003, 0xC400_0003, 0x8400_0004,
    0xC400_0004, 0x8400_0005, 0xC400_0005, 0x8400_0006, 0x8400_0008, 0x8400_0009, 0x8400_000A,
    0xC400_000E, 0xC400_0012, 0x8000_0000, 0x8000_0001, 0x8000_8000, 0x8000_7FFF, 0x8000_3FFF,
    0xC600_0001, 0xC600_0002, 0xC600_0003,
];

/// NOT_SUPPORTED as a 64-bit x0 (DEN 0028: -1).
pub const NOT_SUPPORTED: u64 = u64::MAX;

const FAST: u32 = 1 << 31;
const SMC64: u32 = 1 << 30;

/// Edge IDs: yielding calls, the ends of the PSCI and Tessera ranges, the SMC32 twin of
/// TESSERA_STATS, the first unassigned Tessera call, all ones.
const EDGES: [u32; 12] = [
    0x0000_0000, 0x0100_0000, 0x3f00_ffff, 0x4000_0000, 0x8400_001f, 0x8400_0020, 0xc400_0020,
    0x8400_ffff, 0xc600_0000, 0xc600_0004, 0x8600_0001, 0xffff_ffff,
];

/// Pseudo-random IDs after the edges (a fixed LCG, so every run probes the same ones).
pub const RANDOM_COUNT: u32 = 32;

/// Calls `probe` with every function ID to try, each once, none of them [`IMPLEMENTED`]:
/// for each owner 0..63, fast SMC32 and SMC64 calls to functions 0x0000, 0x0001 and 0xffff;
/// then the edges; then [`RANDOM_COUNT`] pseudo-random IDs.
pub fn for_each_id(mut probe: impl FnMut(u32)) {
    let mut emit = |id: u32, seen: &dyn Fn(u32) -> bool| {
        if !IMPLEMENTED.contains(&id) && !seen(id) {
            probe(id);
        }
    };
    for owner in 0..64u32 {
        for convention in [FAST, FAST | SMC64] {
            for function in [0x0000, 0x0001, 0xffff] {
                emit(convention | (owner << 24) | function, &|_| false);
            }
        }
    }
    let structured = |id: u32| id & FAST != 0 && matches!(id & 0xffff, 0x0000 | 0x0001 | 0xffff) && id & 0x00ff_0000 == 0;
    for id in EDGES {
        emit(id, &structured);
    }
    let mut state: u32 = 0x7e55_e7a0;
    for _ in 0..RANDOM_COUNT {
        // Numerical Recipes' 32-bit LCG.
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let id = state;
        emit(id, &|id| structured(id) || EDGES.contains(&id));
    }
}

/// True if `x0` is NOT_SUPPORTED, as a 64-bit or (for an SMC32 ID) a 32-bit -1.
pub const fn is_not_supported(x0: u64) -> bool {
    x0 == NOT_SUPPORTED || x0 == 0xffff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_never_implemented() {
        let mut ids = Vec::new();
        for_each_id(|id| ids.push(id));
        assert!(ids.iter().all(|id| !IMPLEMENTED.contains(id)));
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        // Every owner appears with both conventions.
        for owner in 0..64u32 {
            assert!(ids.contains(&(FAST | (owner << 24) | 0xffff)));
            assert!(ids.contains(&(FAST | SMC64 | (owner << 24) | 0xffff)));
        }
        // SMCCC_VERSION and PSCI_VERSION are owner 0 and 4, function 0: skipped.
        assert!(!ids.contains(&0x8000_0000) && !ids.contains(&0x8400_0000));
        assert!(ids.contains(&0x8600_0001) && ids.contains(&0xffff_ffff));
        // 384 structured IDs less the 6 implemented ones (owner 0 functions 0 and 1; owner 4
        // functions 0 and 1 in SMC32 and 1 in SMC64; owner 6 function 1 in SMC64), the 12
        // edges less the 3 that are structured (0x8400ffff, 0xc6000000, 0x86000001), and the
        // random ones (none collides with this seed).
        assert_eq!(ids.len(), 64 * 6 - 6 + 12 - 3 + RANDOM_COUNT as usize);
    }

    #[test]
    fn not_supported_in_both_widths() {
        assert!(is_not_supported(u64::MAX));
        assert!(is_not_supported(0xffff_ffff));
        assert!(!is_not_supported(0));
        assert!(!is_not_supported(0xffff_fffe));
    }
}
