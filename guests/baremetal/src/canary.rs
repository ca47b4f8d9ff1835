//! Victim mode (`canary=1`): the pattern the guest fills its free RAM with, and the checksum
//! `status` reports over its RAM, so an isolation test can tell whether anyone else wrote to
//! it. Pure: the EL1 side (`guest.rs`) does the loads and stores.

/// The 64-bit word written at byte offset `offset` of the RAM: distinct per word, so a moved
/// or duplicated block shows up as well as an overwritten one.
pub const fn pattern(offset: u64) -> u64 {
    (offset ^ 0x5a5a_5a5a_5a5a_5a5a).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// FNV-1a over 64-bit words (offset basis and prime from the FNV reference, 64-bit variant,
/// applied per word rather than per byte: enough to detect any change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum(u64);

impl Checksum {
    pub const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(0x0000_0100_0000_01b3);
    }

    pub const fn value(self) -> u64 {
        self.0
    }
}

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

/// A RAM layout for victim mode: `[base, base + size)` is the RAM; `skip` ranges (the image's
/// writable part: data, BSS, stacks) are neither filled nor checksummed; `keep` (the device
/// tree) is checksummed but not filled.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub base: u64,
    pub size: u64,
    pub skip: (u64, u64),
    pub keep: (u64, u64),
}

impl Layout {
    fn inside(range: (u64, u64), address: u64) -> bool {
        address >= range.0 && address < range.1
    }

    /// Calls `f(address, fill)` for every 8-byte word to checksum, in order; `fill` says
    /// whether the word is free RAM (to be filled with [`pattern`] at boot).
    pub fn for_each_word(&self, mut f: impl FnMut(u64, bool)) {
        let end = self.base.saturating_add(self.size);
        let mut address = self.base;
        while address < end {
            if Self::inside(self.skip, address) {
                address = self.skip.1.next_multiple_of(8);
                continue;
            }
            f(address, !Self::inside(self.keep, address));
            address += 8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_skips_the_writable_image_and_keeps_the_tree() {
        let layout = Layout { base: 0x1000, size: 0x100, skip: (0x1040, 0x1080), keep: (0x10c0, 0x10d0) };
        let mut words = Vec::new();
        layout.for_each_word(|address, fill| words.push((address, fill)));
        assert_eq!(words.len(), (0x100 - 0x40) / 8);
        assert!(words.iter().all(|(a, _)| !(0x1040..0x1080).contains(a)));
        assert_eq!(words.iter().filter(|(_, fill)| !fill).count(), 2);
        assert_eq!(words.first(), Some(&(0x1000, true)));
        assert_eq!(words.last(), Some(&(0x10f8, true)));
    }

    #[test]
    fn checksum_sees_any_change() {
        let sum = |words: &[u64]| {
            let mut checksum = Checksum::new();
            words.iter().for_each(|&w| checksum.add(w));
            checksum.value()
        };
        let words: Vec<u64> = (0..64).map(|i| pattern(i * 8)).collect();
        let mut changed = words.clone();
        changed[10] ^= 1;
        let mut swapped = words.clone();
        swapped.swap(3, 4);
        assert_ne!(sum(&words), sum(&changed));
        assert_ne!(sum(&words), sum(&swapped));
        assert_ne!(pattern(0), pattern(8));
    }
}
