//! The hypervisor's own (EL2 stage-1) translation, identity mapped, with W^X:
//!
//! - the image with 4 KiB pages where its sections need them: `.text` read + execute, the
//!   read-only data (and the guest payload) read-only execute-never, `.data`, `.bss` and the
//!   stacks read/write execute-never; one unmapped guard page below every stack;
//! - the rest of RAM (guest memory, which the hypervisor writes to load and scrub VMs)
//!   read/write execute-never, 2 MiB or 1 GiB blocks where aligned;
//! - the first 4 GiB outside RAM (where SoCs put their peripherals) Device-nGnRE,
//!   execute-never; nothing else.
//!
//! SCTLR_EL2.WXN makes any writable page execute-never on top of that, so nothing but
//! `.text` can ever be executed at EL2.
//!
//! It is switched on by the primary CPU before any lock or atomic is used (exclusives on
//! Device memory are not guaranteed to work, DDI 0487 B2.9.5), and published for the
//! secondary CPUs, whose boot code turns it on in assembly. The builder ([`Mapper`]) is pure
//! and host-tested; only [`enable_primary`] touches the CPU.

const KIB4: u64 = 4096;
const MIB2: u64 = 2 << 20;
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

/// Descriptor bits (DDI 0487 D8.3): valid, table (levels 1-2) or page (level 3), AP[2:1]
/// at \[7:6\] (AP\[1\] is RES1 in the one-Exception-level EL2 regime, AP\[2\] = read-only),
/// shareability, access flag, XN at bit 54 (the EL2 regime has no PXN).
const DESC_VALID: u64 = 1 << 0;
const DESC_TABLE_OR_PAGE: u64 = 1 << 1;
const DESC_AP1: u64 = 1 << 6;
const DESC_RO: u64 = 1 << 7;
const DESC_SH_INNER: u64 = 3 << 8;
const DESC_AF: u64 = 1 << 10;
const DESC_XN: u64 = 1 << 54;
const DESC_ADDR: u64 = 0x0000_ffff_ffff_f000;

/// SCTLR_EL2 (DDI 0487 D23.2.119): M, C, SA, I, WXN on top of the RES1 bits.
const SCTLR_RES1: u64 = 0x30c5_0830;
const SCTLR_M: u64 = 1 << 0;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_SA: u64 = 1 << 3;
const SCTLR_I: u64 = 1 << 12;
pub(crate) const SCTLR_WXN: u64 = 1 << 19;

/// What EL2 may do with a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    /// `.text`: read and execute, never written.
    Text,
    /// Read-only data and the guest payload: read only, execute-never.
    ReadOnly,
    /// `.data`, `.bss`, stacks, guest RAM: read/write, execute-never.
    ReadWrite,
    /// Device-nGnRE, read/write, execute-never.
    Device,
}

impl Perm {
    const fn bits(self) -> u64 {
        let normal = ATTR_NORMAL | DESC_SH_INNER | DESC_AF | DESC_AP1;
        match self {
            Perm::Text => normal | DESC_RO,
            Perm::ReadOnly => normal | DESC_RO | DESC_XN,
            Perm::ReadWrite => normal | DESC_XN,
            Perm::Device => ATTR_DEVICE | DESC_AF | DESC_AP1 | DESC_XN,
        }
    }
}

/// Why the EL2 map could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// Not 4 KiB aligned, empty, or above the 39-bit VA space.
    BadRange,
    /// The range is already (partly) mapped.
    Overlap,
    /// The table pool is exhausted.
    OutOfTables,
}

/// One translation table.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(4096))]
pub struct Table(pub [u64; ENTRIES]);

/// Builds identity-mapped EL2 tables in a pool whose table `i` is at `pool_pa + i * 4096`;
/// table 0 is the level-1 root.
pub struct Mapper<'t> {
    pool: &'t mut [Table],
    pool_pa: u64,
    used: usize,
}

impl<'t> Mapper<'t> {
    /// Takes `pool` (at least one table) and clears its root.
    pub fn new(pool: &'t mut [Table], pool_pa: u64) -> Result<Self, MapError> {
        let root = pool.first_mut().ok_or(MapError::OutOfTables)?;
        root.0 = [0; ENTRIES];
        Ok(Self { pool, pool_pa, used: 1 })
    }

    /// Maps `[start, end)` to itself with `perm`, with the largest blocks alignment allows.
    pub fn map(&mut self, start: u64, end: u64, perm: Perm) -> Result<(), MapError> {
        if start >= end || !start.is_multiple_of(KIB4) || !end.is_multiple_of(KIB4) || end > 1 << 39 {
            return Err(MapError::BadRange);
        }
        let mut at = start;
        while at < end {
            let (size, level) = if at.is_multiple_of(GIB) && end - at >= GIB {
                (GIB, 1)
            } else if at.is_multiple_of(MIB2) && end - at >= MIB2 {
                (MIB2, 2)
            } else {
                (KIB4, 3)
            };
            let mut table = 0;
            for walk in 1..level {
                table = self.next_table(table, index(at, walk))?;
            }
            let slot = &mut self.pool[table].0[index(at, level)];
            if *slot & DESC_VALID != 0 {
                return Err(MapError::Overlap);
            }
            let kind = if level == 3 { DESC_VALID | DESC_TABLE_OR_PAGE } else { DESC_VALID };
            *slot = at | perm.bits() | kind;
            at += size;
        }
        Ok(())
    }

    /// The table under entry `i` of table `t`, allocated if the entry is empty.
    fn next_table(&mut self, t: usize, i: usize) -> Result<usize, MapError> {
        let desc = self.pool[t].0[i];
        if desc & DESC_VALID == 0 {
            let next = self.used;
            let table = self.pool.get_mut(next).ok_or(MapError::OutOfTables)?;
            table.0 = [0; ENTRIES];
            self.used += 1;
            self.pool[t].0[i] = (self.pool_pa + next as u64 * KIB4) | DESC_VALID | DESC_TABLE_OR_PAGE;
            return Ok(next);
        }
        if desc & DESC_TABLE_OR_PAGE == 0 {
            return Err(MapError::Overlap); // a block already covers it
        }
        Ok((((desc & DESC_ADDR) - self.pool_pa) / KIB4) as usize)
    }

    /// The permission `va` is mapped with, if any (walks like the MMU).
    pub fn lookup(&self, va: u64) -> Option<Perm> {
        let mut table = 0;
        for level in 1..=3 {
            let desc = self.pool[table].0[index(va, level)];
            if desc & DESC_VALID == 0 {
                return None;
            }
            if level == 3 || desc & DESC_TABLE_OR_PAGE == 0 {
                let attrs = desc & !(DESC_ADDR | DESC_VALID | DESC_TABLE_OR_PAGE);
                return [Perm::Text, Perm::ReadOnly, Perm::ReadWrite, Perm::Device]
                    .into_iter()
                    .find(|perm| perm.bits() == attrs);
            }
            table = (((desc & DESC_ADDR) - self.pool_pa) / KIB4) as usize;
        }
        None
    }
}

const fn index(va: u64, level: u32) -> usize {
    ((va >> (39 - 9 * level)) & (ENTRIES as u64 - 1)) as usize
}

/// Where the linker put the image's parts (all page aligned; see `link.ld`).
#[derive(Debug, Clone, Copy)]
pub struct ImageLayout {
    pub start: u64,
    pub text_end: u64,
    /// End of the read-only data (start of `.data`).
    pub ro_end: u64,
    /// End of `.data` (start of the read-only guest payload).
    pub data_end: u64,
    /// End of the payload (start of `.bss`).
    pub payload_end: u64,
    /// End of `.bss` (start of the stacks).
    pub bss_end: u64,
    /// One past the last stack; the image may end later (2 MiB padding, unmapped).
    pub stacks_end: u64,
    pub end: u64,
}

/// The guard page of stack slot `slot` in the stacks area that starts at `stacks_start`:
/// `MAX_CPUS` run-time stacks, then `MAX_CPUS` emergency stacks (the fatal-fault path), each
/// a guard page followed by the stack. `boot.S` computes the same addresses.
pub const fn stack_guard(stacks_start: u64, slot: usize) -> u64 {
    let run_slot = KIB4 + crate::STACK_SIZE as u64;
    if slot < crate::MAX_CPUS {
        stacks_start + slot as u64 * run_slot
    } else {
        let emergency = stacks_start + crate::MAX_CPUS as u64 * run_slot;
        emergency + (slot - crate::MAX_CPUS) as u64 * (KIB4 + crate::EMERGENCY_STACK_SIZE as u64)
    }
}

const fn stack_size(slot: usize) -> u64 {
    if slot < crate::MAX_CPUS { crate::STACK_SIZE as u64 } else { crate::EMERGENCY_STACK_SIZE as u64 }
}

/// True if `address` is in one of the stack guard pages.
pub fn in_stack_guard(layout: &ImageLayout, address: u64) -> bool {
    (0..2 * crate::MAX_CPUS).any(|slot| {
        let guard = stack_guard(layout.bss_end, slot);
        (guard..guard + KIB4).contains(&address)
    })
}

/// Maps everything EL2 needs (see the module doc) into `mapper`.
pub fn build(mapper: &mut Mapper<'_>, ram: &[(u64, u64)], image: &ImageLayout) -> Result<(), MapError> {
    let l = image;
    let sections = [
        (l.start, l.text_end, Perm::Text),
        (l.text_end, l.ro_end, Perm::ReadOnly),
        (l.ro_end, l.data_end, Perm::ReadWrite),
        (l.data_end, l.payload_end, Perm::ReadOnly),
        (l.payload_end, l.bss_end, Perm::ReadWrite),
    ];
    for (start, end, perm) in sections.into_iter().filter(|&(start, end, _)| start < end) {
        mapper.map(start, end, perm)?;
    }
    for slot in 0..2 * crate::MAX_CPUS {
        let stack = stack_guard(l.bss_end, slot) + KIB4;
        mapper.map(stack, stack + stack_size(slot), Perm::ReadWrite)?;
    }
    // RAM outside the image, then the low 4 GiB outside RAM.
    for &(base, size) in ram {
        let end = base.saturating_add(size);
        for (from, to) in [(base, end.min(l.start)), (base.max(l.end), end)] {
            if from < to {
                mapper.map(from, to, Perm::ReadWrite)?;
            }
        }
    }
    let mut at = 0;
    while at < 4 * GIB {
        // The next RAM bank at or after `at`, or the 4 GiB limit.
        let next_ram =
            ram.iter().filter(|&&(b, s)| s > 0 && b.saturating_add(s) > at).map(|&(b, _)| b).min().unwrap_or(u64::MAX);
        let gap_end = next_ram.min(4 * GIB);
        if at < gap_end {
            mapper.map(at, gap_end, Perm::Device)?;
        }
        at = ram
            .iter()
            .filter(|&&(b, s)| b <= gap_end && gap_end < b.saturating_add(s))
            .map(|&(b, s)| b.saturating_add(s))
            .max()
            .unwrap_or(4 * GIB)
            .max(gap_end);
    }
    Ok(())
}

/// Tables for the EL2 map: the root, a level-2 table per GiB that is not one block, a level-3
/// table per 2 MiB that is not one block (the image's first and last few, unaligned RAM or
/// device edges). 24 covers four RAM banks with unaligned edges and a multi-GiB image.
const POOL_TABLES: usize = 24;
static mut EL2_TABLES: [Table; POOL_TABLES] = [Table([0; ENTRIES]); POOL_TABLES];

/// The values secondary CPUs load in `tessera_secondary_entry`: MAIR, TCR, TTBR0, SCTLR.
#[unsafe(no_mangle)]
static mut TESSERA_MMU_BOOT: [u64; 4] = [0; 4];

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn image_layout() -> ImageLayout {
    unsafe extern "C" {
        static __image_start: u8;
        static __text_end: u8;
        static __ro_end: u8;
        static __payload_start: u8;
        static __payload_end: u8;
        static __stacks_start: u8;
        static __stacks_end: u8;
        static __image_end: u8;
    }
    let at = |symbol: *const u8| symbol as u64;
    ImageLayout {
        start: at(core::ptr::addr_of!(__image_start)),
        text_end: at(core::ptr::addr_of!(__text_end)),
        ro_end: at(core::ptr::addr_of!(__ro_end)),
        data_end: at(core::ptr::addr_of!(__payload_start)),
        payload_end: at(core::ptr::addr_of!(__payload_end)),
        bss_end: at(core::ptr::addr_of!(__stacks_start)),
        stacks_end: at(core::ptr::addr_of!(__stacks_end)),
        end: at(core::ptr::addr_of!(__image_end)),
    }
}

/// The running image's layout (for the fatal-fault report: is FAR in a guard page?).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn layout() -> ImageLayout {
    image_layout()
}

/// Builds the EL2 tables for `ram` (base, size pairs) and turns the MMU and caches on.
/// Must be the first thing the primary CPU does in Rust, and runs only once. If the tables
/// cannot be built (a board this pool is too small for) the CPU halts: nothing can be
/// logged before the MMU is on.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn enable_primary(ram: &[(u64, u64)]) {
    use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, MAIR_EL2, Readable, SCTLR_EL2, TCR_EL2, TTBR0_EL2, Writeable};

    let tables = core::ptr::addr_of_mut!(EL2_TABLES);
    let ttbr = tables as u64;
    // SAFETY: only the primary CPU runs, once, before any other code touches EL2_TABLES, so
    // this is the only reference to the static.
    let pool = unsafe { &mut *tables };
    let built = Mapper::new(pool, ttbr).and_then(|mut mapper| build(&mut mapper, ram, &image_layout()));
    if built.is_err() {
        crate::cpu::halt();
    }
    let parange = (ID_AA64MMFR0_EL1.get() & 0xf).min(5);
    let tcr = TCR_T0SZ | TCR_IRGN0_WBWA | TCR_ORGN0_WBWA | TCR_SH0_INNER | TCR_RES1 | (parange << TCR_PS_SHIFT);
    let sctlr = SCTLR_RES1 | SCTLR_M | SCTLR_C | SCTLR_SA | SCTLR_I | SCTLR_WXN;

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
    // Secondaries read the block and the tables with their MMU (and so their caches) off.
    crate::cache::clean_dcache_range(boot as u64, core::mem::size_of::<[u64; 4]>() as u64);
    crate::cache::clean_dcache_range(ttbr, core::mem::size_of::<[Table; POOL_TABLES]>() as u64);
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn enable_primary(_ram: &[(u64, u64)]) {
    unimplemented!("host build")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: [(u64, u64); 1] = [(0x4000_0000, 0x8000_0000)];

    /// A layout like the linker's: image at RAM + 2 MiB with a 40 MiB payload.
    fn layout() -> ImageLayout {
        let start = 0x4020_0000;
        let bss_end = start + 0x0289_0000;
        let last = 2 * crate::MAX_CPUS - 1;
        let stacks_end = stack_guard(bss_end, last) + KIB4 + stack_size(last);
        ImageLayout {
            start,
            text_end: start + 0xd000,
            ro_end: start + 0xf000,
            data_end: start + 0x1_0000,
            payload_end: start + 0x0281_0000,
            bss_end,
            stacks_end,
            end: stacks_end.next_multiple_of(MIB2),
        }
    }

    fn built() -> (Vec<Table>, u64) {
        let mut pool = vec![Table([0; ENTRIES]); POOL_TABLES];
        let pool_pa = 0x4100_0000;
        let mut mapper = Mapper::new(&mut pool, pool_pa).unwrap();
        build(&mut mapper, &RAM, &layout()).unwrap();
        (pool, pool_pa)
    }

    fn perm(va: u64) -> Option<Perm> {
        let (mut pool, pool_pa) = built();
        Mapper { pool: &mut pool, pool_pa, used: POOL_TABLES }.lookup(va)
    }

    #[test]
    fn only_text_is_executable_and_nothing_executable_is_writable() {
        let l = layout();
        let (mut pool, pool_pa) = built();
        let mapper = Mapper { pool: &mut pool, pool_pa, used: POOL_TABLES };
        // Every 4 KiB page of the low 4 GiB and all RAM: executable only inside .text.
        let mut va = 0;
        while va < RAM[0].0 + RAM[0].1 {
            let p = mapper.lookup(va);
            assert_eq!(p == Some(Perm::Text), (l.start..l.text_end).contains(&va), "page {va:#x}: {p:?}");
            va += KIB4;
        }
        assert_eq!(Perm::Text.bits() & DESC_RO, DESC_RO);
        for writable in [Perm::ReadWrite, Perm::Device] {
            assert_eq!(writable.bits() & (DESC_XN | DESC_RO), DESC_XN);
        }
    }

    #[test]
    fn sections_get_their_permissions() {
        let l = layout();
        assert_eq!(perm(l.start), Some(Perm::Text));
        assert_eq!(perm(l.text_end), Some(Perm::ReadOnly));
        assert_eq!(perm(l.ro_end), Some(Perm::ReadWrite));
        assert_eq!(perm(l.data_end + 0x20_0000), Some(Perm::ReadOnly)); // payload
        assert_eq!(perm(l.payload_end), Some(Perm::ReadWrite)); // .bss
        assert_eq!(perm(RAM[0].0), Some(Perm::ReadWrite)); // RAM below the image
        assert_eq!(perm(l.end), Some(Perm::ReadWrite)); // guest RAM after it
        assert_eq!(perm(0x0900_0000), Some(Perm::Device)); // the PL011
        assert_eq!(perm(4 * GIB), None); // above the RAM bank and the device window
        assert_eq!(perm(l.stacks_end), None); // the 2 MiB padding is not mapped
    }

    #[test]
    fn every_stack_has_an_unmapped_guard_page_below_it() {
        let l = layout();
        for slot in 0..2 * crate::MAX_CPUS {
            let guard = stack_guard(l.bss_end, slot);
            assert_eq!(perm(guard), None, "guard of slot {slot}");
            assert_eq!(perm(guard + KIB4 - 1), None);
            assert_eq!(perm(guard - 1), Some(Perm::ReadWrite), "below the guard of slot {slot}");
            assert_eq!(perm(guard + KIB4), Some(Perm::ReadWrite), "stack of slot {slot}");
            assert!(in_stack_guard(&l, guard + 8));
            assert!(!in_stack_guard(&l, guard + KIB4));
        }
    }

    #[test]
    fn device_gaps_around_unaligned_ram_and_errors() {
        let ram = [(0x4000_0000, 0x1000_0000), (0x8020_0000, 0x20_0000)];
        let l = layout();
        let mut pool = vec![Table([0; ENTRIES]); POOL_TABLES];
        let mut mapper = Mapper::new(&mut pool, 0x4100_0000).unwrap();
        build(&mut mapper, &ram, &l).unwrap();
        assert_eq!(mapper.lookup(0x5000_0000), Some(Perm::Device));
        assert_eq!(mapper.lookup(0x801f_f000), Some(Perm::Device));
        assert_eq!(mapper.lookup(0x8020_0000), Some(Perm::ReadWrite));
        assert_eq!(mapper.lookup(0x8040_0000), Some(Perm::Device));
        assert_eq!(mapper.map(0x4000_0000, 0x4000_1000, Perm::Text), Err(MapError::Overlap));
        assert_eq!(mapper.map(0x1001, 0x2000, Perm::Text), Err(MapError::BadRange));
        let mut tiny = vec![Table([0; ENTRIES]); 2];
        let mut mapper = Mapper::new(&mut tiny, 0).unwrap();
        assert_eq!(build(&mut mapper, &ram, &l), Err(MapError::OutOfTables));
    }
}
