//! Address ranges with checked arithmetic: a range whose end overflows is not a range.

/// The translation granule every region is aligned to (4 KiB, DDI 0487 D8.1).
pub const PAGE_SIZE: u64 = 4096;

/// `[base, base + size)` in one address space (host-physical or guest-physical).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MemRange {
    pub base: u64,
    pub size: u64,
}

impl MemRange {
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// One past the last byte, or `None` if that does not fit in 64 bits.
    pub const fn end(&self) -> Option<u64> {
        self.base.checked_add(self.size)
    }

    /// True if the two ranges share a byte. A range whose end overflows overlaps everything
    /// above its base, so an overflowing range can never slip past this check.
    pub fn overlaps(&self, other: &MemRange) -> bool {
        if self.size == 0 || other.size == 0 {
            return false;
        }
        let a_end = self.end().unwrap_or(u64::MAX);
        let b_end = other.end().unwrap_or(u64::MAX);
        self.base < b_end && other.base < a_end
    }

    /// True if `other` lies entirely inside `self`.
    pub fn contains_range(&self, other: &MemRange) -> bool {
        match (self.end(), other.end()) {
            (Some(a_end), Some(b_end)) => other.base >= self.base && b_end <= a_end,
            _ => false,
        }
    }

    /// True if `addr` lies inside the range.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && self.end().is_none_or(|end| addr < end)
    }

    pub const fn is_page_aligned(&self) -> bool {
        self.base.is_multiple_of(PAGE_SIZE) && self.size.is_multiple_of(PAGE_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_symmetric_and_exclusive_at_the_end() {
        let a = MemRange::new(0x1000, 0x1000);
        let b = MemRange::new(0x2000, 0x1000);
        assert!(!a.overlaps(&b));
        assert!(!b.overlaps(&a));
        let c = MemRange::new(0x1fff, 2);
        assert!(a.overlaps(&c) && c.overlaps(&a) && b.overlaps(&c));
    }

    #[test]
    fn overflowing_range_overlaps_everything_above_its_base() {
        let huge = MemRange::new(u64::MAX - 0xfff, 0x2000);
        assert_eq!(huge.end(), None);
        assert!(huge.overlaps(&MemRange::new(u64::MAX - 1, 1)));
        assert!(!MemRange::new(0, 0x1_0000).contains_range(&huge));
    }
}
