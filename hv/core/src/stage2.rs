//! Per-VM stage-2 translation tables: 4 KiB granule, 39-bit IPA space, walk starting at level 1.
//!
//! [`Stage2`] builds tables into a caller-provided pool of [`Table`]s whose physical base is
//! known (`pool[i]` is at `pool_pa + i * 4096`), so the same code runs on the host (tests, a
//! build-time image) and at EL2 (the pool is a `static`). It maps with 2 MiB level-2 blocks
//! wherever the IPA, the PA and the remaining size allow, and 4 KiB level-3 pages otherwise.
//!
//! [`Stage2::map`] is all-or-nothing: it checks the whole request (alignment, arithmetic,
//! overlap, table budget) before writing a descriptor, so a failed map leaves the tables as
//! they were. Nothing here panics on any input.
//!
//! Layouts: DDI 0487 D8.3 (descriptor formats), D8.5 (stage-2 memory attributes and
//! permissions), `VTCR_EL2` and `VTTBR_EL2`. The tables are not live while they are built:
//! the arch layer installs [`Stage2::root_pa`] with [`vttbr_el2`] only after building (break-
//! before-make and TLB maintenance are its concern if it ever changes a live table).

/// The translation granule (DDI 0487 D8.1): 4 KiB.
pub const PAGE_SIZE: u64 = 4096;
/// A level-2 block with the 4 KiB granule: 2 MiB.
pub const BLOCK_SIZE: u64 = 2 << 20;
/// IPA bits: `VTCR_EL2.T0SZ` = 64 - 39 = 25.
pub const IPA_BITS: u32 = 39;
/// One past the highest IPA the tables can map.
pub const IPA_LIMIT: u64 = 1 << IPA_BITS;
/// One past the highest PA a descriptor can hold: the output address is OA\[47:12\] without
/// FEAT_LPA2 (DDI 0487 D8.3.1).
pub const PA_LIMIT: u64 = 1 << 48;

const ENTRIES: usize = 512;
const LEVEL1_SHIFT: u32 = 30;
const LEVEL2_SHIFT: u32 = 21;
const LEVEL3_SHIFT: u32 = 12;

// Descriptor bits (DDI 0487 D8.3.1, D8.3.2 for the stage-2 attribute fields).
const DESC_VALID: u64 = 1 << 0;
/// Bit 1: at levels 1-2, 1 = table and 0 = block; at level 3, 1 = page (0 is reserved).
const DESC_TABLE_OR_PAGE: u64 = 1 << 1;
/// OA / next-level table address, bits \[47:12\].
const DESC_ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;
const MEMATTR_SHIFT: u32 = 2;
const S2AP_SHIFT: u32 = 6;
const SH_SHIFT: u32 = 8;
const DESC_AF: u64 = 1 << 10;
/// XN\[1:0\] at bits \[54:53\]: 0b10 = execute-never at EL1 and EL0 (D8.5, with or without
/// FEAT_XNX).
const DESC_XN: u64 = 0b10 << 53;

/// Stage-2 MemAttr\[3:0\] with `HCR_EL2.FWB` = 0 (DDI 0487 D8.5): \[3:2\] outer, \[1:0\] inner;
/// 0b11 write-back for both.
const MEMATTR_NORMAL_WB: u64 = 0b1111;
/// Stage-2 MemAttr 0b0001: Device-nGnRE.
const MEMATTR_DEVICE_NGNRE: u64 = 0b0001;
/// S2AP (DDI 0487 D8.5): 0b01 read-only, 0b11 read/write.
const S2AP_RO: u64 = 0b01;
const S2AP_RW: u64 = 0b11;
/// SH 0b11: Inner Shareable. Device memory is always Outer Shareable, so SH is 0 for it.
const SH_INNER: u64 = 0b11;
const SH_NONE: u64 = 0b00;

/// The attribute bits [`S2Attrs`] sets; everything else in a leaf is address or type.
const ATTR_MASK: u64 =
    (0b1111 << MEMATTR_SHIFT) | (0b11 << S2AP_SHIFT) | (0b11 << SH_SHIFT) | DESC_AF | (0b11 << 53);

/// One translation table: 512 eight-byte descriptors, naturally aligned.
#[repr(C, align(4096))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table(pub [u64; ENTRIES]);

impl Table {
    /// An all-invalid table, for initializing a `static` pool.
    pub const ZERO: Table = Table([0; ENTRIES]);
}

/// What the guest may do with a mapping, and with which memory type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum S2Attrs {
    /// Normal write-back, inner shareable; read, write, execute. Guest RAM.
    NormalRwx,
    /// Normal write-back; read and write, execute-never. Shared-memory windows.
    NormalRw,
    /// Normal write-back; read and execute, no write.
    NormalRx,
    /// Normal write-back; read only, execute-never.
    NormalRo,
    /// Device-nGnRE; read and write, execute-never. Passed-through device frames.
    DeviceRw,
}

impl S2Attrs {
    const ALL: [S2Attrs; 5] = [
        S2Attrs::NormalRwx,
        S2Attrs::NormalRw,
        S2Attrs::NormalRx,
        S2Attrs::NormalRo,
        S2Attrs::DeviceRw,
    ];

    /// The leaf descriptor bits for these attributes, with AF set (an access-flag fault
    /// would be taken to EL2 for nothing: the hypervisor does not track access).
    const fn bits(self) -> u64 {
        let (memattr, s2ap, sh, xn) = match self {
            S2Attrs::NormalRwx => (MEMATTR_NORMAL_WB, S2AP_RW, SH_INNER, 0),
            S2Attrs::NormalRw => (MEMATTR_NORMAL_WB, S2AP_RW, SH_INNER, DESC_XN),
            S2Attrs::NormalRx => (MEMATTR_NORMAL_WB, S2AP_RO, SH_INNER, 0),
            S2Attrs::NormalRo => (MEMATTR_NORMAL_WB, S2AP_RO, SH_INNER, DESC_XN),
            S2Attrs::DeviceRw => (MEMATTR_DEVICE_NGNRE, S2AP_RW, SH_NONE, DESC_XN),
        };
        (memattr << MEMATTR_SHIFT) | (s2ap << S2AP_SHIFT) | (sh << SH_SHIFT) | DESC_AF | xn
    }

    /// The attributes a leaf descriptor was written with, if it is one of ours.
    fn from_bits(desc: u64) -> Option<S2Attrs> {
        let attrs = desc & ATTR_MASK;
        Self::ALL.into_iter().find(|a| a.bits() == attrs)
    }
}

/// Why a stage-2 operation failed. A failed [`Stage2::map`] changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Stage2Error {
    /// The pool has no table for the root.
    PoolEmpty,
    /// The pool's physical base is not 4 KiB aligned.
    PoolMisaligned { pool_pa: u64 },
    /// The pool's physical range overflows or lies above [`PA_LIMIT`].
    PoolOutOfRange { pool_pa: u64 },
    /// The mapping needs at least `needed` more tables (counting stops at the first one over
    /// budget); only `available` are left.
    OutOfTables { needed: usize, available: usize },
    /// An IPA, PA or size that is not a multiple of [`PAGE_SIZE`].
    Misaligned { ipa: u64, pa: u64, size: u64 },
    /// A zero-sized mapping: always a caller bug.
    EmptyRange,
    /// `ipa + size` overflows.
    IpaOverflow { ipa: u64, size: u64 },
    /// `pa + size` overflows.
    PaOverflow { pa: u64, size: u64 },
    /// The range ends above the 39-bit IPA space.
    IpaOutOfRange { ipa: u64, size: u64 },
    /// The range ends above the 48-bit output address space.
    PaOutOfRange { pa: u64, size: u64 },
    /// `ipa` is already mapped (the first conflicting page or block found).
    Overlap { ipa: u64 },
}

/// One VM's stage-2 tables, built in a borrowed pool.
#[derive(Debug)]
pub struct Stage2<'t> {
    pool: &'t mut [Table],
    pool_pa: u64,
    used: usize,
}

/// What sits under a level-1 slot while a map is planned.
#[derive(Clone, Copy)]
enum Level2 {
    /// Would be allocated by this map.
    Fresh,
    /// An existing table, by pool index.
    Table(usize),
}

/// The largest step from `ipa`/`pa` with `remaining` bytes left: a 2 MiB block if both are
/// block-aligned and a whole block remains, else the pages up to the next 2 MiB IPA boundary.
/// Returns (bytes, is_block).
fn next_chunk(ipa: u64, pa: u64, remaining: u64) -> (u64, bool) {
    if ipa.is_multiple_of(BLOCK_SIZE) && pa.is_multiple_of(BLOCK_SIZE) && remaining >= BLOCK_SIZE {
        (BLOCK_SIZE, true)
    } else {
        (remaining.min(BLOCK_SIZE - ipa % BLOCK_SIZE), false)
    }
}

const fn index(ipa: u64, shift: u32) -> usize {
    ((ipa >> shift) as usize) & (ENTRIES - 1)
}

const fn is_valid(desc: u64) -> bool {
    desc & DESC_VALID != 0
}

const fn is_table(desc: u64) -> bool {
    desc & (DESC_VALID | DESC_TABLE_OR_PAGE) == DESC_VALID | DESC_TABLE_OR_PAGE
}

impl<'t> Stage2<'t> {
    /// Takes `pool` (whose first table is at physical `pool_pa`) and makes `pool[0]` an empty
    /// root. The other tables are zeroed as they are allocated.
    pub fn new(pool: &'t mut [Table], pool_pa: u64) -> Result<Self, Stage2Error> {
        if !pool_pa.is_multiple_of(PAGE_SIZE) {
            return Err(Stage2Error::PoolMisaligned { pool_pa });
        }
        let pool_end = u64::try_from(pool.len())
            .ok()
            .and_then(|n| n.checked_mul(PAGE_SIZE))
            .and_then(|bytes| pool_pa.checked_add(bytes));
        if pool_end.is_none_or(|end| end > PA_LIMIT) {
            return Err(Stage2Error::PoolOutOfRange { pool_pa });
        }
        let root = pool.first_mut().ok_or(Stage2Error::PoolEmpty)?;
        *root = Table::ZERO;
        Ok(Self {
            pool,
            pool_pa,
            used: 1,
        })
    }

    /// The physical address of the level-1 root table, for [`vttbr_el2`].
    pub fn root_pa(&self) -> u64 {
        self.pool_pa
    }

    /// How many of the pool's tables hold descriptors (the root included).
    pub fn tables_used(&self) -> usize {
        self.used
    }

    /// Maps `[ipa, ipa + size)` to `[pa, pa + size)` with `attrs`. All three must be page
    /// aligned, the range non-empty, inside the 39-bit IPA and 48-bit PA spaces, and not
    /// overlapping any existing mapping. On error nothing is changed.
    pub fn map(&mut self, ipa: u64, pa: u64, size: u64, attrs: S2Attrs) -> Result<(), Stage2Error> {
        if size == 0 {
            return Err(Stage2Error::EmptyRange);
        }
        if !(ipa | pa | size).is_multiple_of(PAGE_SIZE) {
            return Err(Stage2Error::Misaligned { ipa, pa, size });
        }
        let ipa_end = ipa
            .checked_add(size)
            .ok_or(Stage2Error::IpaOverflow { ipa, size })?;
        let pa_end = pa
            .checked_add(size)
            .ok_or(Stage2Error::PaOverflow { pa, size })?;
        if ipa_end > IPA_LIMIT {
            return Err(Stage2Error::IpaOutOfRange { ipa, size });
        }
        if pa_end > PA_LIMIT {
            return Err(Stage2Error::PaOutOfRange { pa, size });
        }
        self.plan(ipa, pa, size)?;
        self.commit(ipa, pa, size, attrs)
    }

    /// Checks that the range is unmapped and that the pool holds the tables mapping it would
    /// allocate. Stops at the first table over budget, so its time is bounded by the pool size
    /// plus one step per 2 MiB of IPA space, whatever `size` is.
    fn plan(&self, ipa: u64, pa: u64, size: u64) -> Result<(), Stage2Error> {
        let available = self.pool.len().saturating_sub(self.used);
        let mut needed = 0usize;
        let mut fresh_level1: Option<usize> = None;
        let mut done = 0u64;
        while done < size {
            let (cur_ipa, cur_pa) = (ipa + done, pa + done);
            let (chunk, block) = next_chunk(cur_ipa, cur_pa, size - done);
            let l1 = index(cur_ipa, LEVEL1_SHIFT);
            let level2 = match self.entry(0, l1) {
                0 => {
                    if fresh_level1 != Some(l1) {
                        fresh_level1 = Some(l1);
                        needed += 1;
                    }
                    Level2::Fresh
                }
                desc => Level2::Table(
                    self.next_table(desc)
                        .ok_or(Stage2Error::Overlap { ipa: cur_ipa })?,
                ),
            };
            match level2 {
                // Every 2 MiB slot is visited once, so a fresh level-2 table means one fresh
                // level-3 table per page chunk.
                Level2::Fresh => needed += usize::from(!block),
                Level2::Table(t2) => match self.entry(t2, index(cur_ipa, LEVEL2_SHIFT)) {
                    0 => needed += usize::from(!block),
                    _ if block => return Err(Stage2Error::Overlap { ipa: cur_ipa }),
                    desc => {
                        let t3 = self
                            .next_table(desc)
                            .ok_or(Stage2Error::Overlap { ipa: cur_ipa })?;
                        let mut page = 0;
                        while page < chunk {
                            let at = cur_ipa + page;
                            if self.entry(t3, index(at, LEVEL3_SHIFT)) != 0 {
                                return Err(Stage2Error::Overlap { ipa: at });
                            }
                            page += PAGE_SIZE;
                        }
                    }
                },
            }
            if needed > available {
                return Err(Stage2Error::OutOfTables { needed, available });
            }
            done += chunk;
        }
        Ok(())
    }

    /// Writes the descriptors; [`Self::plan`] has checked everything that can fail.
    fn commit(&mut self, ipa: u64, pa: u64, size: u64, attrs: S2Attrs) -> Result<(), Stage2Error> {
        let leaf = attrs.bits();
        let mut done = 0u64;
        while done < size {
            let (cur_ipa, cur_pa) = (ipa + done, pa + done);
            let (chunk, block) = next_chunk(cur_ipa, cur_pa, size - done);
            let t2 = self.table_at(0, index(cur_ipa, LEVEL1_SHIFT))?;
            let l2 = index(cur_ipa, LEVEL2_SHIFT);
            if block {
                self.set_entry(t2, l2, cur_pa | leaf | DESC_VALID, cur_ipa)?;
            } else {
                let t3 = self.table_at(t2, l2)?;
                let mut page = 0;
                while page < chunk {
                    let l3 = index(cur_ipa + page, LEVEL3_SHIFT);
                    let desc = (cur_pa + page) | leaf | DESC_TABLE_OR_PAGE | DESC_VALID;
                    self.set_entry(t3, l3, desc, cur_ipa + page)?;
                    page += PAGE_SIZE;
                }
            }
            done += chunk;
        }
        Ok(())
    }

    /// The translation of `ipa`: the PA and the attributes of the page or block holding it.
    pub fn translate(&self, ipa: u64) -> Option<(u64, S2Attrs)> {
        if ipa >= IPA_LIMIT {
            return None;
        }
        let l1 = self.entry(0, index(ipa, LEVEL1_SHIFT));
        // Tessera never writes level-1 blocks.
        let t2 = self.next_table(l1)?;
        let l2 = self.entry(t2, index(ipa, LEVEL2_SHIFT));
        let (leaf, offset_mask) = if is_table(l2) {
            let t3 = self.next_table(l2)?;
            let l3 = self.entry(t3, index(ipa, LEVEL3_SHIFT));
            if !is_table(l3) {
                return None; // invalid, or the reserved level-3 encoding 0b01
            }
            (l3, PAGE_SIZE - 1)
        } else if is_valid(l2) {
            (l2, BLOCK_SIZE - 1)
        } else {
            return None;
        };
        let attrs = S2Attrs::from_bits(leaf)?;
        Some((
            (leaf & DESC_ADDR_MASK & !offset_mask) | (ipa & offset_mask),
            attrs,
        ))
    }

    /// Walks the tables as the MMU would and returns the first IPA whose translation reaches
    /// into the physical range `[start, end)`, or whose table descriptor points outside this
    /// pool (a table the MMU would walk but this builder does not own). `None` proves that
    /// the VM can reach no byte of the range. The boot code runs it with the hypervisor's
    /// own memory (image, stacks, this pool) after building each VM's tables.
    pub fn first_mapping_into(&self, start: u64, end: u64) -> Option<u64> {
        let hits = |desc: u64, size: u64| {
            let pa = desc & DESC_ADDR_MASK & !(size - 1);
            pa < end && start < pa.saturating_add(size)
        };
        for i1 in 0..ENTRIES {
            let (d1, ipa1) = (self.entry(0, i1), (i1 as u64) << LEVEL1_SHIFT);
            if !is_valid(d1) {
                continue;
            }
            if !is_table(d1) {
                if hits(d1, 1 << LEVEL1_SHIFT) {
                    return Some(ipa1);
                }
                continue;
            }
            let Some(t2) = self.next_table(d1) else { return Some(ipa1) };
            for i2 in 0..ENTRIES {
                let (d2, ipa2) = (self.entry(t2, i2), ipa1 | (i2 as u64) << LEVEL2_SHIFT);
                if !is_valid(d2) {
                    continue;
                }
                if !is_table(d2) {
                    if hits(d2, BLOCK_SIZE) {
                        return Some(ipa2);
                    }
                    continue;
                }
                let Some(t3) = self.next_table(d2) else { return Some(ipa2) };
                for i3 in 0..ENTRIES {
                    let d3 = self.entry(t3, i3);
                    // Level 3: 0b11 is a page; 0b01 is reserved (invalid).
                    if is_table(d3) && hits(d3, PAGE_SIZE) {
                        return Some(ipa2 | (i3 as u64) << LEVEL3_SHIFT);
                    }
                }
            }
        }
        None
    }

    /// Descriptor `i` of pool table `t`; 0 (invalid) if `t` is not an allocated table.
    fn entry(&self, t: usize, i: usize) -> u64 {
        self.pool
            .get(t)
            .filter(|_| t < self.used)
            .and_then(|table| table.0.get(i))
            .copied()
            .unwrap_or(0)
    }

    fn set_entry(&mut self, t: usize, i: usize, desc: u64, ipa: u64) -> Result<(), Stage2Error> {
        let slot = self
            .pool
            .get_mut(t)
            .and_then(|table| table.0.get_mut(i))
            .ok_or(Stage2Error::Overlap { ipa })?;
        if *slot != 0 {
            return Err(Stage2Error::Overlap { ipa });
        }
        *slot = desc;
        Ok(())
    }

    /// The pool index of the table a table descriptor points to, if it is one of ours.
    fn next_table(&self, desc: u64) -> Option<usize> {
        if !is_table(desc) {
            return None;
        }
        let offset = (desc & DESC_ADDR_MASK).checked_sub(self.pool_pa)?;
        let t = usize::try_from(offset / PAGE_SIZE).ok()?;
        (t < self.used).then_some(t)
    }

    /// The table under entry `i` of table `t`, allocating (zeroed) and linking one if the entry
    /// is invalid.
    fn table_at(&mut self, t: usize, i: usize) -> Result<usize, Stage2Error> {
        match self.entry(t, i) {
            0 => {
                let new = self.used;
                let table = self.pool.get_mut(new).ok_or(Stage2Error::OutOfTables {
                    needed: 1,
                    available: 0,
                })?;
                *table = Table::ZERO;
                self.used += 1;
                // `new < pool.len()`, and `new()` checked the pool's range fits below PA_LIMIT.
                let table_pa = self.pool_pa + new as u64 * PAGE_SIZE;
                self.set_entry(t, i, table_pa | DESC_TABLE_OR_PAGE | DESC_VALID, 0)?;
                Ok(new)
            }
            desc => self.next_table(desc).ok_or(Stage2Error::Overlap { ipa: 0 }),
        }
    }
}

/// Demand-populated RAM: a 2 MiB block that [`Stage2::map`] wrote can be *parked*: its
/// descriptor keeps the output address and attributes with the valid bit clear, so the
/// guest's first access takes a stage-2 translation fault (the hypervisor scrubs the block
/// then, and unparks it). An invalid descriptor is never cached in a TLB (DDI 0487 D8.16),
/// so unparking needs no TLB maintenance; parking a live block does (the caller's concern).
///
/// `tables` are one VM's tables as [`Stage2`] built them (root first), `tables[0]` at
/// physical `pool_pa`. Returns the block's PA and whether it was parked before, or `None`
/// when `ipa` is not in a 2 MiB block (unmapped, page-mapped, or outside the tables).
pub fn set_block_parked(tables: &mut [Table], pool_pa: u64, ipa: u64, parked: bool) -> Option<(u64, bool)> {
    let (t2, l2) = block_slot(tables, pool_pa, ipa)?;
    let slot = &mut tables[t2].0[l2];
    let desc = *slot;
    *slot = if parked { desc & !DESC_VALID } else { desc | DESC_VALID };
    Some((desc & DESC_ADDR_MASK, !is_valid(desc)))
}

/// Like [`set_block_parked`], without changing anything: the block's PA and whether it is
/// parked.
pub fn block_parked(tables: &[Table], pool_pa: u64, ipa: u64) -> Option<(u64, bool)> {
    let (t2, l2) = block_slot(tables, pool_pa, ipa)?;
    let desc = tables[t2].0[l2];
    Some((desc & DESC_ADDR_MASK, !is_valid(desc)))
}

/// Where the level-2 block descriptor (valid or parked) for `ipa` is: (table, index), both
/// in range of `tables`.
fn block_slot(tables: &[Table], pool_pa: u64, ipa: u64) -> Option<(usize, usize)> {
    if ipa >= IPA_LIMIT {
        return None;
    }
    let table_index = |desc: u64| -> Option<usize> {
        if !is_table(desc) {
            return None;
        }
        let offset = (desc & DESC_ADDR_MASK).checked_sub(pool_pa)?;
        usize::try_from(offset / PAGE_SIZE).ok()
    };
    let l1 = *tables.first()?.0.get(index(ipa, LEVEL1_SHIFT))?;
    let t2 = table_index(l1)?;
    let l2 = index(ipa, LEVEL2_SHIFT);
    let desc = *tables.get(t2)?.0.get(l2)?;
    // A block (valid or parked) has bit 1 clear and its attributes (AF at least) set.
    if desc & DESC_TABLE_OR_PAGE != 0 || desc == 0 {
        return None;
    }
    Some((t2, l2))
}

// VTCR_EL2 fields (DDI 0487, `VTCR_EL2`).
const VTCR_T0SZ: u64 = 64 - IPA_BITS as u64; // [5:0]
const VTCR_SL0_LEVEL1: u64 = 0b01 << 6; // [7:6]: with TG0 = 4K, 0b01 starts at level 1
const VTCR_IRGN0_WBWA: u64 = 0b01 << 8; // [9:8]
const VTCR_ORGN0_WBWA: u64 = 0b01 << 10; // [11:10]
const VTCR_SH0_INNER: u64 = 0b11 << 12; // [13:12]
const VTCR_TG0_4K: u64 = 0b00 << 14; // [15:14]
const VTCR_PS_SHIFT: u32 = 16; // [18:16]
const VTCR_RES1: u64 = 1 << 31;
/// `ID_AA64MMFR0_EL1.PARange` / `VTCR_EL2.PS` 0b101: 48 bits, the most a descriptor holds
/// without FEAT_LPA2.
const PS_48_BITS: u8 = 0b101;

/// `VTCR_EL2` for tables built by [`Stage2`]: 39-bit IPA (T0SZ = 25), starting at level 1
/// (SL0 = 0b01), 4 KiB granule, inner shareable, write-back write-allocate inner and outer
/// walks, PS = min(`parange`, 48 bits), VS = 0 (8-bit VMID), bit 31 RES1.
///
/// `parange` is `ID_AA64MMFR0_EL1.PARange`. On a PE with fewer than 40 PA bits (PARange
/// 0b000 or 0b001) the 39-bit IPA space exceeds the PA size; the caller must then keep every
/// mapping below the PA size (DDI 0487: an IPA above it may fault at stage 2).
pub fn vtcr_el2(parange: u8) -> u64 {
    let ps = u64::from(parange.min(PS_48_BITS));
    VTCR_RES1
        | (ps << VTCR_PS_SHIFT)
        | VTCR_TG0_4K
        | VTCR_SH0_INNER
        | VTCR_ORGN0_WBWA
        | VTCR_IRGN0_WBWA
        | VTCR_SL0_LEVEL1
        | VTCR_T0SZ
}

/// `VTTBR_EL2`: VMID\[55:48\] (8 bits, as `VTCR_EL2.VS` = 0), BADDR\[47:1\] = the root table,
/// CnP\[0\] = 0.
///
/// `vmid` is a `u8` because with VS = 0 VMID\[15:8\] are RES0: a wider type would let two VMs
/// that differ only above bit 7 share TLB entries.
pub fn vttbr_el2(root_pa: u64, vmid: u8) -> u64 {
    (u64::from(vmid) << 48) | (root_pa & DESC_ADDR_MASK)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::drop_non_drop,
    reason = "tests unwrap known-good values; drop() ends the pool borrow before the tables are inspected"
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;
    const POOL_PA: u64 = 0x4_0000_0000;

    fn pool(n: usize) -> Vec<Table> {
        vec![Table::ZERO; n]
    }

    #[test]
    fn blocks_park_and_unpark() {
        let mut tables = pool(4);
        let mut s2 = Stage2::new(&mut tables, POOL_PA).unwrap();
        // 4 MiB of blocks at IPA 1 GiB, then 8 KiB of pages right after.
        s2.map(0x4000_0000, 0x8000_0000, 4 * MIB, S2Attrs::NormalRwx).unwrap();
        s2.map(0x4040_0000, 0x9000_0000, 0x2000, S2Attrs::NormalRwx).unwrap();
        let second = 0x4020_0000 + 0x1234;
        assert_eq!(set_block_parked(&mut tables, POOL_PA, second, true), Some((0x8020_0000, false)));
        // Parked: the walk fails (the guest faults), the other block still translates.
        let s2 = Stage2 { pool: &mut tables, pool_pa: POOL_PA, used: 3 };
        assert_eq!(s2.translate(second), None);
        assert_eq!(s2.translate(0x4000_0010), Some((0x8000_0010, S2Attrs::NormalRwx)));
        assert_eq!(block_parked(&tables, POOL_PA, second), Some((0x8020_0000, true)));
        assert_eq!(block_parked(&tables, POOL_PA, 0x4000_0000), Some((0x8000_0000, false)));
        assert_eq!(block_parked(&tables, POOL_PA, 0x4040_0000), None);
        // Parking twice reports it; unparking restores the same translation.
        assert_eq!(set_block_parked(&mut tables, POOL_PA, second, true), Some((0x8020_0000, true)));
        assert_eq!(set_block_parked(&mut tables, POOL_PA, second, false), Some((0x8020_0000, true)));
        assert_eq!(set_block_parked(&mut tables, POOL_PA, second, false), Some((0x8020_0000, false)));
        let s2 = Stage2 { pool: &mut tables, pool_pa: POOL_PA, used: 3 };
        assert_eq!(s2.translate(second), Some((0x8020_1234, S2Attrs::NormalRwx)));
        // Pages, unmapped IPAs and IPAs past the space are not blocks.
        assert_eq!(set_block_parked(&mut tables, POOL_PA, 0x4040_0000, true), None);
        assert_eq!(set_block_parked(&mut tables, POOL_PA, 0x4060_0000, true), None);
        assert_eq!(set_block_parked(&mut tables, POOL_PA, 0x8000_0000, true), None);
        assert_eq!(set_block_parked(&mut tables, POOL_PA, IPA_LIMIT, true), None);
        // Tables from another pool address are not followed.
        assert_eq!(set_block_parked(&mut tables, POOL_PA + 0x10_0000, second, true), None);
        assert_eq!(set_block_parked(&mut [], POOL_PA, second, true), None);
    }

    #[test]
    fn aligned_region_uses_blocks() {
        let mut p = pool(8);
        let mut s2 = Stage2::new(&mut p, POOL_PA).unwrap();
        s2.map(0x4000_0000, 0x8000_0000, 32 * MIB, S2Attrs::NormalRwx)
            .unwrap();
        assert_eq!(s2.tables_used(), 2); // root + one level-2 table
        assert_eq!(s2.root_pa(), POOL_PA);
        drop(s2);
        // Exactly 16 block descriptors in the level-2 table, and root[1] points at it.
        assert_eq!(p[0].0[1], (POOL_PA + 4096) | 0b11);
        let blocks: Vec<_> = p[1].0.iter().filter(|d| **d != 0).collect();
        assert_eq!(blocks.len(), 16);
        assert!(blocks.iter().all(|d| *d & 0b11 == 0b01));
        // The first block: PA | AF | SH=11 | S2AP=11 | MemAttr=1111 | valid.
        assert_eq!(
            p[1].0[0],
            0x8000_0000 | (1 << 10) | (0b11 << 8) | (0b11 << 6) | (0b1111 << 2) | 1
        );
    }

    #[test]
    fn unaligned_region_uses_pages() {
        let mut p = pool(8);
        let mut s2 = Stage2::new(&mut p, POOL_PA).unwrap();
        // IPA 2 MiB-aligned but PA only page-aligned: pages all the way.
        s2.map(0x4000_0000, 0x8000_1000, 4 * MIB, S2Attrs::NormalRwx)
            .unwrap();
        assert_eq!(s2.tables_used(), 1 + 1 + 2); // root, level 2, two level-3 tables
        assert_eq!(
            s2.translate(0x4000_0000),
            Some((0x8000_1000, S2Attrs::NormalRwx))
        );
        assert_eq!(
            s2.translate(0x403f_fffc),
            Some((0x8040_0ffc, S2Attrs::NormalRwx))
        );
        assert_eq!(s2.translate(0x4040_0000), None);
        drop(s2);
        assert_eq!(p[2].0[0] & 0b11, 0b11); // a level-3 page descriptor
    }

    #[test]
    fn mixed_region_uses_pages_then_blocks_then_pages() {
        let mut p = pool(8);
        let mut s2 = Stage2::new(&mut p, POOL_PA).unwrap();
        // Starts 4 KiB before a 2 MiB boundary and ends 8 KiB after the next-but-one.
        let ipa = 0x4000_0000 + 2 * MIB - 4096;
        let pa = 0x9000_0000 + 2 * MIB - 4096;
        let size = 4096 + 4 * MIB + 8192;
        s2.map(ipa, pa, size, S2Attrs::DeviceRw).unwrap();
        assert_eq!(s2.tables_used(), 1 + 1 + 2); // two level-3 tables for the ragged ends
        for off in (0..size).step_by(4096) {
            assert_eq!(
                s2.translate(ipa + off),
                Some((pa + off, S2Attrs::DeviceRw)),
                "{off:#x}"
            );
        }
        assert_eq!(s2.translate(ipa - 4096), None);
        assert_eq!(s2.translate(ipa + size), None);
        drop(s2);
        let blocks = p[1].0.iter().filter(|d| **d & 0b11 == 0b01).count();
        assert_eq!(blocks, 2);
    }

    #[test]
    fn region_crossing_a_gib_boundary_gets_two_level2_tables() {
        let mut p = pool(8);
        let mut s2 = Stage2::new(&mut p, POOL_PA).unwrap();
        s2.map((1 << 30) - 2 * MIB, 0x8000_0000, 4 * MIB, S2Attrs::NormalRw)
            .unwrap();
        assert_eq!(s2.tables_used(), 3);
        assert_eq!(
            s2.translate(1 << 30),
            Some((0x8000_0000 + 2 * MIB, S2Attrs::NormalRw))
        );
    }

    #[test]
    fn attributes_round_trip_and_encode() {
        let mut p = pool(8);
        let mut s2 = Stage2::new(&mut p, POOL_PA).unwrap();
        for (i, attrs) in S2Attrs::ALL.into_iter().enumerate() {
            let ipa = 0x1000_0000 + i as u64 * 0x1000;
            s2.map(ipa, ipa, 0x1000, attrs).unwrap();
            assert_eq!(s2.translate(ipa + 0x123), Some((ipa + 0x123, attrs)));
        }
        assert_eq!(s2.translate(IPA_LIMIT), None);
        assert_eq!(s2.translate(u64::MAX), None);
        // Device-nGnRE: MemAttr 0b0001, S2AP RW, XN 0b10, AF.
        assert_eq!(
            S2Attrs::DeviceRw.bits(),
            (1 << 54) | (1 << 10) | (0b11 << 6) | (0b0001 << 2)
        );
        assert_eq!(S2Attrs::NormalRo.bits() & (0b11 << 6), 0b01 << 6);
    }

    #[test]
    fn separate_maps_share_tables() {
        let mut p = pool(8);
        let mut s2 = Stage2::new(&mut p, POOL_PA).unwrap();
        s2.map(0x4000_0000, 0x4000_0000, 0x1000, S2Attrs::NormalRwx)
            .unwrap();
        s2.map(0x4000_2000, 0x4000_2000, 0x1000, S2Attrs::NormalRwx)
            .unwrap();
        s2.map(0x4020_0000, 0x4020_0000, 2 * MIB, S2Attrs::NormalRwx)
            .unwrap();
        assert_eq!(s2.tables_used(), 3);
        // Filling the gap page is fine; remapping any used page is not.
        s2.map(0x4000_1000, 0x5000_0000, 0x1000, S2Attrs::NormalRo)
            .unwrap();
        assert_eq!(
            s2.translate(0x4000_1800),
            Some((0x5000_0800, S2Attrs::NormalRo))
        );
    }

    #[test]
    fn errors() {
        let mut p = pool(3);
        let mut s2 = Stage2::new(&mut p, POOL_PA).unwrap();
        let a = S2Attrs::NormalRwx;
        assert_eq!(s2.map(0, 0, 0, a), Err(Stage2Error::EmptyRange));
        assert_eq!(
            s2.map(0x800, 0, 0x1000, a),
            Err(Stage2Error::Misaligned {
                ipa: 0x800,
                pa: 0,
                size: 0x1000
            })
        );
        assert!(matches!(
            s2.map(0, 0x10, 0x1000, a),
            Err(Stage2Error::Misaligned { .. })
        ));
        assert!(matches!(
            s2.map(0, 0, 0x1001, a),
            Err(Stage2Error::Misaligned { .. })
        ));
        assert_eq!(
            s2.map(!0xfffu64, 0, 0x1000, a),
            Err(Stage2Error::IpaOverflow {
                ipa: !0xfffu64,
                size: 0x1000
            })
        );
        assert_eq!(
            s2.map(0, !0xfffu64, 0x1000, a),
            Err(Stage2Error::PaOverflow {
                pa: !0xfffu64,
                size: 0x1000
            })
        );
        assert_eq!(
            s2.map(IPA_LIMIT - 0x1000, 0, 0x2000, a),
            Err(Stage2Error::IpaOutOfRange {
                ipa: IPA_LIMIT - 0x1000,
                size: 0x2000
            })
        );
        assert_eq!(
            s2.map(0, PA_LIMIT, 0x1000, a),
            Err(Stage2Error::PaOutOfRange {
                pa: PA_LIMIT,
                size: 0x1000
            })
        );
        // The last page of each space is fine.
        s2.map(IPA_LIMIT - 0x1000, PA_LIMIT - 0x1000, 0x1000, a)
            .unwrap();
        assert_eq!(s2.translate(IPA_LIMIT - 1), Some((PA_LIMIT - 1, a)));
        assert_eq!(s2.tables_used(), 3);
        // Pool exhausted: a page elsewhere needs two more tables; nothing is written.
        assert_eq!(
            s2.map(0, 0, 0x1000, a),
            Err(Stage2Error::OutOfTables {
                needed: 2,
                available: 0
            })
        );
        assert_eq!(s2.translate(0), None);
        assert_eq!(s2.tables_used(), 3);
        // Overlap with a page, at the first conflicting IPA.
        assert_eq!(
            s2.map(IPA_LIMIT - 0x3000, 0, 0x3000, a),
            Err(Stage2Error::Overlap {
                ipa: IPA_LIMIT - 0x1000
            })
        );
        // Nothing from the failed map was written.
        assert_eq!(s2.translate(IPA_LIMIT - 0x3000), None);
    }

    #[test]
    fn overlap_with_blocks_both_ways() {
        let mut p = pool(8);
        let mut s2 = Stage2::new(&mut p, POOL_PA).unwrap();
        let a = S2Attrs::NormalRwx;
        s2.map(0x4000_0000, 0x4000_0000, 2 * MIB, a).unwrap();
        // A page inside an existing block.
        assert_eq!(
            s2.map(0x4000_3000, 0, 0x1000, a),
            Err(Stage2Error::Overlap { ipa: 0x4000_3000 })
        );
        // A block over existing pages.
        s2.map(0x4060_5000, 0, 0x1000, a).unwrap();
        assert_eq!(
            s2.map(0x4060_0000, 0x4060_0000, 2 * MIB, a),
            Err(Stage2Error::Overlap { ipa: 0x4060_0000 })
        );
        // A block over an existing block.
        assert_eq!(
            s2.map(0x4000_0000, 0x8000_0000, 2 * MIB, a),
            Err(Stage2Error::Overlap { ipa: 0x4000_0000 })
        );
        assert_eq!(s2.tables_used(), 3);
    }

    #[test]
    fn pool_errors() {
        assert_eq!(
            Stage2::new(&mut [], POOL_PA).err(),
            Some(Stage2Error::PoolEmpty)
        );
        let mut p = pool(2);
        assert_eq!(
            Stage2::new(&mut p, POOL_PA + 8).err(),
            Some(Stage2Error::PoolMisaligned {
                pool_pa: POOL_PA + 8
            })
        );
        assert_eq!(
            Stage2::new(&mut p, PA_LIMIT - 4096).err(),
            Some(Stage2Error::PoolOutOfRange {
                pool_pa: PA_LIMIT - 4096
            })
        );
        assert_eq!(
            Stage2::new(&mut p, !0xfffu64).err(),
            Some(Stage2Error::PoolOutOfRange { pool_pa: !0xfffu64 })
        );
        // The root is zeroed even if the pool held garbage.
        p[0].0[7] = 0xdead_beef;
        let s2 = Stage2::new(&mut p, POOL_PA).unwrap();
        assert_eq!(s2.translate(7 << 30), None);
        drop(s2);
        assert_eq!(p[0], Table::ZERO);
    }

    #[test]
    fn register_values() {
        // T0SZ 25, SL0 01, IRGN0 01, ORGN0 01, SH0 11, TG0 00, PS, RES1 bit 31.
        assert_eq!(vtcr_el2(0b010), 0x8002_3559);
        assert_eq!(vtcr_el2(0b101), 0x8005_3559);
        assert_eq!(vtcr_el2(0b110), 0x8005_3559); // 52-bit PA capped at 48
        assert_eq!(vtcr_el2(0xff), 0x8005_3559);
        assert_eq!(vttbr_el2(0x4_0000_0000, 3), 0x0003_0004_0000_0000);
        assert_eq!(vttbr_el2(0x4_0000_0fff, 0xff), 0x00ff_0004_0000_0000);
    }

    #[test]
    fn table_alignment() {
        assert_eq!(core::mem::align_of::<Table>(), 4096);
        assert_eq!(core::mem::size_of::<Table>(), 4096);
    }

    /// A request: (ipa page, pa page, pages, attrs index); pages up to 2048 (8 MiB).
    fn request() -> impl Strategy<Value = (u64, u64, u64, usize)> {
        // Bias towards 2 MiB alignment so blocks appear.
        let page = prop_oneof![0u64..(1 << 18), (0u64..(1 << 9)).prop_map(|b| b << 9)];
        (page.clone(), page, 1u64..2048, 0usize..5)
    }

    #[test]
    fn no_mapping_reaches_an_excluded_range() {
        let mut tables = pool(8);
        let pool_pa = 0x4010_0000;
        let mut s2 = Stage2::new(&mut tables, pool_pa).unwrap();
        // RAM: an unaligned piece (pages) then blocks; a device page elsewhere.
        s2.map(0x4000_0000, 0x4100_0000, 0x0100_0000 + 0x20_0000, S2Attrs::NormalRwx).unwrap();
        s2.map(0x0900_0000, 0x0a00_0000, PAGE_SIZE, S2Attrs::DeviceRw).unwrap();
        // The hypervisor below the VM's RAM, the pool inside it: nothing maps them.
        assert_eq!(s2.first_mapping_into(0x4000_0000, 0x4100_0000), None);
        assert_eq!(s2.first_mapping_into(pool_pa, pool_pa + 8 * PAGE_SIZE), None);
        assert_eq!(s2.first_mapping_into(0x0a00_1000, 0x0b00_0000), None);
        // One byte of a mapped page, of a block, of the device page: found, with its IPA.
        assert_eq!(s2.first_mapping_into(0x4100_0fff, 0x4100_1000), Some(0x4000_0000));
        assert_eq!(s2.first_mapping_into(0x4150_0000, 0x4150_0001), Some(0x4040_0000));
        assert_eq!(s2.first_mapping_into(0x0a00_0000, 0x0a00_0001), Some(0x0900_0000));
        assert_eq!(s2.first_mapping_into(0, u64::MAX), Some(0x0900_0000));
    }

    #[test]
    fn a_table_descriptor_outside_the_pool_is_reported() {
        let mut tables = pool(4);
        tables[0].0[1] = 0x8000_0000 | DESC_VALID | DESC_TABLE_OR_PAGE; // not one of ours
        let s2 = Stage2 { pool: &mut tables, pool_pa: 0x4010_0000, used: 1 };
        assert_eq!(s2.first_mapping_into(0, 1), Some(1 << LEVEL1_SHIFT));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_maps_translate_back(requests in proptest::collection::vec(request(), 1..8)) {
            let mut p = pool(64);
            let mut s2 = Stage2::new(&mut p, POOL_PA).unwrap();
            // The model: accepted ranges (ipa, pa, size, attrs).
            let mut accepted: Vec<(u64, u64, u64, S2Attrs)> = Vec::new();
            for (ipa_page, pa_page, pages, attrs) in requests {
                let (ipa, pa, size) = (ipa_page * 4096, pa_page * 4096, pages * 4096);
                let attrs = S2Attrs::ALL[attrs];
                let overlaps = accepted.iter().any(|&(i, _, s, _)| ipa < i + s && i < ipa + size);
                let before = s2.tables_used();
                match s2.map(ipa, pa, size, attrs) {
                    Ok(()) => {
                        prop_assert!(!overlaps);
                        accepted.push((ipa, pa, size, attrs));
                    }
                    Err(Stage2Error::Overlap { ipa: at }) => {
                        prop_assert!(overlaps);
                        prop_assert!(at >= ipa && at < ipa + size);
                        prop_assert_eq!(s2.tables_used(), before);
                    }
                    Err(Stage2Error::OutOfTables { .. }) => {
                        prop_assert_eq!(s2.tables_used(), before);
                    }
                    Err(e) => prop_assert!(false, "unexpected {:?}", e),
                }
            }
            for &(ipa, pa, size, attrs) in &accepted {
                let mut off = 0;
                while off < size {
                    prop_assert_eq!(s2.translate(ipa + off + 8), Some((pa + off + 8, attrs)));
                    off += 4096;
                }
                if !accepted.iter().any(|&(i, _, s, _)| ipa + size >= i && ipa + size < i + s) {
                    prop_assert_eq!(s2.translate(ipa + size), None);
                }
            }
        }

        #[test]
        fn exclusion_check_agrees_with_the_accepted_maps(
            requests in proptest::collection::vec(request(), 1..6),
            excluded_page in 0u64..(1 << 18),
            excluded_pages in 1u64..4096,
        ) {
            let mut p = pool(64);
            let mut s2 = Stage2::new(&mut p, POOL_PA).unwrap();
            let mut accepted: Vec<(u64, u64, u64)> = Vec::new();
            for (ipa_page, pa_page, pages, attrs) in requests {
                let (ipa, pa, size) = (ipa_page * 4096, pa_page * 4096, pages * 4096);
                if s2.map(ipa, pa, size, S2Attrs::ALL[attrs]).is_ok() {
                    accepted.push((ipa, pa, size));
                }
            }
            let (start, end) = (excluded_page * 4096, (excluded_page + excluded_pages) * 4096);
            let reaches = accepted.iter().any(|&(_, pa, size)| pa < end && start < pa + size);
            match s2.first_mapping_into(start, end) {
                None => prop_assert!(!reaches, "a mapping reaches {:#x}..{:#x}", start, end),
                Some(ipa) => {
                    let (pa, _) = s2.translate(ipa).unwrap();
                    prop_assert!(reaches);
                    prop_assert!(accepted.iter().any(|&(i, p, s)| (i..i + s).contains(&ipa) && (p..p + s).contains(&pa)));
                }
            }
        }

        #[test]
        fn map_never_panics(ipa: u64, pa: u64, size: u64, attrs in 0usize..5, pool_pa: u64) {
            let mut p = pool(4);
            if let Ok(mut s2) = Stage2::new(&mut p, pool_pa) {
                // Keep the work bounded: a huge valid range just runs out of tables.
                let _ = s2.map(ipa, pa, size, S2Attrs::ALL[attrs]);
                let _ = s2.translate(ipa);
                prop_assert!(s2.tables_used() <= 4);
            }
        }
    }
}
