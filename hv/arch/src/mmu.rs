//! The hypervisor's own (EL2 stage-1) translation: RAM 1:1 as Normal write-back memory,
//! the first 4 GiB outside RAM 1:1 as Device-nGnRE, nothing else.
//!
//! It is switched on by the primary CPU before any lock or atomic is used (exclusives on
//! Device memory are not guaranteed to work, DDI 0487 B2.9.5), and published for the
//! secondary CPUs, whose boot code turns it on in assembly.

const GIB: u64 = 1 << 30;
const ENTRIES: usize = 512;

/// TCR_EL2 (DDI 0487 D23.2.167): T0SZ = 25 (39-bit VA, walks start at level 1), inner and
/// outer write-back write-allocate, inner shareable, 4 KiB granule; PS is filled in at run time.
const TCR_T0SZ: u64 = 25;
const TCR_IRGN0_WBWA: u64 = 1 << 8;
const TCR_ORGN0_WBWA: u64 = 1 << 10;
const TCR_SH0_INNER: u64 = 3 << 12;
const TCR_RES1: u64 = (1 << 31) | (1 << 23);
const TCR_PS_SHIFT: u64 = 16;

/// MAIR_EL2 attribute 0 = Device-nGnRE, attribute 1 = Normal inner/outer write-back RWA.
const MAIR: u64 = 0x04 | (0xff << 8);
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;

/// Block descriptor bits (DDI 0487 D8.3): valid block, access flag, shareability, XN.
const DESC_BLOCK: u64 = 0b01;
const DESC_AF: u64 = 1 << 10;
const DESC_SH_INNER: u64 = 3 << 8;
const DESC_XN: u64 = 1 << 54;

/// SCTLR_EL2 (DDI 0487 D23.2.119): M, C, SA, I on top of the RES1 bits.
const SCTLR_RES1: u64 = 0x30c5_0830;
const SCTLR_M: u64 = 1 << 0;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_SA: u64 = 1 << 3;
const SCTLR_I: u64 = 1 << 12;

#[repr(C, align(4096))]
struct Table([u64; ENTRIES]);

static mut EL2_L1: Table = Table([0; ENTRIES]);

/// The values secondary CPUs load in `tessera_secondary_entry`: MAIR, TCR, TTBR0, SCTLR.
#[unsafe(no_mangle)]
static mut TESSERA_MMU_BOOT: [u64; 4] = [0; 4];

/// The level-1 descriptor for the GiB at `index`: Normal if it holds RAM, Device if it is in
/// the first 4 GiB (where SoCs put their peripherals), otherwise invalid.
fn l1_entry(index: u64, ram: &[(u64, u64)]) -> u64 {
    let base = index * GIB;
    let is_ram = ram.iter().any(|&(start, size)| start < base + GIB && base < start.saturating_add(size));
    if is_ram {
        base | DESC_BLOCK | DESC_AF | DESC_SH_INNER | ATTR_NORMAL
    } else if base < 4 * GIB {
        base | DESC_BLOCK | DESC_AF | ATTR_DEVICE | DESC_XN
    } else {
        0
    }
}

/// Builds the EL2 tables for `ram` (base, size pairs) and turns the MMU and caches on.
/// Must be the first thing the primary CPU does in Rust, and runs only once.
#[cfg(target_arch = "aarch64")]
pub fn enable_primary(ram: &[(u64, u64)]) {
    use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, MAIR_EL2, Readable, SCTLR_EL2, TCR_EL2, TTBR0_EL2, Writeable};

    let table = core::ptr::addr_of_mut!(EL2_L1);
    for index in 0..ENTRIES {
        let entry = l1_entry(index as u64, ram);
        // SAFETY: only the primary CPU runs, once, before any other code touches EL2_L1; the
        // pointer comes from the static itself and `index` is in bounds.
        unsafe { (*table).0[index] = entry };
    }
    let parange = (ID_AA64MMFR0_EL1.get() & 0xf).min(5);
    let tcr = TCR_T0SZ | TCR_IRGN0_WBWA | TCR_ORGN0_WBWA | TCR_SH0_INNER | TCR_RES1 | (parange << TCR_PS_SHIFT);
    let sctlr = SCTLR_RES1 | SCTLR_M | SCTLR_C | SCTLR_SA | SCTLR_I;
    let ttbr = table as u64;

    MAIR_EL2.set(MAIR);
    TCR_EL2.set(tcr);
    TTBR0_EL2.set(ttbr);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    crate::cache::invalidate_el2_tlb();
    SCTLR_EL2.set(sctlr);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);

    let boot = core::ptr::addr_of_mut!(TESSERA_MMU_BOOT);
    // SAFETY: no secondary CPU runs yet; they read this block only after the primary's
    // PSCI CPU_ON, which follows the clean to the point of coherency below.
    unsafe { *boot = [MAIR, tcr, ttbr, sctlr] };
    // Secondaries read the block and the table with their MMU (and so their caches) off.
    crate::cache::clean_dcache_range(boot as u64, core::mem::size_of::<[u64; 4]>() as u64);
    crate::cache::clean_dcache_range(ttbr, core::mem::size_of::<Table>() as u64);
}

#[cfg(not(target_arch = "aarch64"))]
pub fn enable_primary(_ram: &[(u64, u64)]) {
    unimplemented!("host build")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_is_normal_devices_are_device_rest_is_unmapped() {
        let ram = [(0x4000_0000, 0x4000_0000)];
        assert_eq!(l1_entry(1, &ram) & 0b11111, ATTR_NORMAL | DESC_BLOCK);
        assert_eq!(l1_entry(0, &ram) & DESC_XN, DESC_XN);
        assert_eq!(l1_entry(0, &ram) & 0b11111, ATTR_DEVICE | DESC_BLOCK);
        assert_eq!(l1_entry(4, &ram), 0);
    }
}
