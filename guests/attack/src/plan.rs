//! Where the `mem` class aims, in order, each address once:
//!
//! 1. **sweep**: every 2 MiB from 0 up to 4 GiB or the end of the highest target, whichever is
//!    higher (the board's devices, its RAM, the hypervisor and every other VM lie there on
//!    qemu-virt);
//! 2. **edges**: each target's first and last page and the pages just outside it
//!    (base − 4 KiB, base, end − 4 KiB, end), named after the target;
//! 3. **high**: every 1 GiB from the sweep's end to 1 TiB (across Tessera's 39-bit IPA limit),
//!    then each power of two and the page below it up to the CPU's physical address size.
//!
//! Addresses inside the VM's own RAM and its emulated frames (console, vGIC) are skipped:
//! those are its own. So are addresses at or above the physical address size, which the CPU
//! refuses at stage 1 before the hypervisor sees them.

/// A byte range `[base, base + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub base: u64,
    pub size: u64,
}

impl Range {
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// One past the last byte, saturating.
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    pub const fn contains(&self, address: u64) -> bool {
        address >= self.base && address < self.end()
    }
}

pub const PAGE: u64 = 0x1000;
pub const SWEEP_STRIDE: u64 = 2 << 20;
pub const SWEEP_MIN_END: u64 = 1 << 32;
pub const HIGH_STRIDE: u64 = 1 << 30;
pub const HIGH_STRIDE_END: u64 = 1 << 40;

/// Why an address is probed: printed after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'a> {
    Sweep,
    /// At or next to the edge of this target.
    Edge(&'a str),
    High,
}

impl core::fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Reason::Sweep => f.write_str("sweep"),
            Reason::Edge(name) => f.write_str(name),
            Reason::High => f.write_str("high"),
        }
    }
}

/// `ID_AA64MMFR0_EL1.PARange` (bits 3:0) as a number of address bits (DDI 0487
/// D19.2.64); reserved values count as 48.
pub const fn pa_bits(parange: u64) -> u32 {
    match parange & 0xf {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        6 => 52,
        _ => 48,
    }
}

/// The `mem` class's addresses.
#[derive(Debug, Clone, Copy)]
pub struct MemoryPlan<'a> {
    /// The VM's own RAM and emulated frames, at their IPAs.
    pub own: &'a [Range],
    /// Named host-physical ranges (`crate::targets`).
    pub targets: &'a [crate::targets::Target<'a>],
    /// The CPU's physical address size in bits.
    pub pa_bits: u32,
}

impl<'a> MemoryPlan<'a> {
    fn limit(&self) -> u64 {
        1u64.checked_shl(self.pa_bits).unwrap_or(u64::MAX)
    }

    fn sweep_end(&self) -> u64 {
        let highest = self.targets.iter().map(|t| t.range.end()).max().unwrap_or(0);
        highest.next_multiple_of(SWEEP_STRIDE).max(SWEEP_MIN_END).min(self.limit())
    }

    fn own(&self, address: u64) -> bool {
        self.own.iter().any(|r| r.contains(address))
    }

    fn in_sweep(&self, address: u64) -> bool {
        address < self.sweep_end() && address.is_multiple_of(SWEEP_STRIDE)
    }

    fn in_high_stride(&self, address: u64) -> bool {
        address >= self.sweep_end() && address < HIGH_STRIDE_END && address.is_multiple_of(HIGH_STRIDE)
    }

    /// The four edge probes of target `index`.
    fn edges(&self, index: usize) -> [u64; 4] {
        let range = self.targets[index].range;
        let last = range.end().saturating_sub(PAGE);
        [range.base.wrapping_sub(PAGE), range.base, last, range.end()]
    }

    /// Calls `probe` with each address, in the order above, skipping the VM's own ranges and
    /// addresses beyond the physical address size.
    pub fn for_each(&self, mut probe: impl FnMut(u64, Reason<'a>)) {
        let limit = self.limit();
        let sweep_end = self.sweep_end();
        let mut address = 0;
        while address < sweep_end {
            if !self.own(address) {
                probe(address, Reason::Sweep);
            }
            address += SWEEP_STRIDE;
        }
        for (index, target) in self.targets.iter().enumerate() {
            if target.range.size == 0 {
                continue;
            }
            for (slot, &edge) in self.edges(index).iter().enumerate() {
                let seen = (0..index).any(|earlier| self.targets[earlier].range.size != 0 && self.edges(earlier).contains(&edge))
                    || self.edges(index)[..slot].contains(&edge);
                let underflow = slot == 0 && target.range.base < PAGE;
                if !seen && !underflow && edge < limit && !self.own(edge) && !self.in_sweep(edge) {
                    probe(edge, Reason::Edge(target.name));
                }
            }
        }
        let mut address = sweep_end;
        while address < HIGH_STRIDE_END.min(limit) {
            if !self.own(address) {
                probe(address, Reason::High);
            }
            address += HIGH_STRIDE;
        }
        for bit in 32..=self.pa_bits.min(63) {
            let power = 1u64 << bit;
            for candidate in [power - PAGE, power] {
                let covered = self.in_high_stride(candidate) || self.in_sweep(candidate);
                if candidate < limit && !covered && !self.own(candidate) {
                    probe(candidate, Reason::High);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::Target;

    const OWN: [Range; 3] = [
        Range::new(0xc000_0000, 0x200_0000),  // RAM
        Range::new(0x1c09_0000, 0x1000),      // console
        Range::new(0x0800_0000, 0x1_0000),    // GICD
    ];

    fn collect(plan: &MemoryPlan<'_>) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        plan.for_each(|address, reason| out.push((address, reason.to_string())));
        out
    }

    #[test]
    fn sweeps_every_2_mib_outside_its_own_ranges() {
        let targets = [Target { name: "hypervisor", range: Range::new(0x4000_0000, 0x160_0000) }];
        let plan = MemoryPlan { own: &OWN, targets: &targets, pa_bits: 44 };
        let probes = collect(&plan);
        let sweep: Vec<u64> = probes.iter().filter(|(_, r)| r == "sweep").map(|(a, _)| *a).collect();
        assert_eq!(sweep.first(), Some(&0));
        assert_eq!(sweep.last(), Some(&(SWEEP_MIN_END - SWEEP_STRIDE)));
        assert!(sweep.windows(2).all(|w| w[1] > w[0]));
        // 2048 blocks below 4 GiB, less the GICD's block and the 16 of the VM's own RAM.
        assert_eq!(sweep.len(), 2048 - 1 - 16);
        assert!(!sweep.contains(&0x0800_0000) && !sweep.contains(&0xc000_0000));
        assert!(sweep.contains(&0x4000_0000) && sweep.contains(&0xc200_0000));
    }

    #[test]
    fn every_edge_once_named_after_its_target() {
        let targets = [
            Target { name: "hypervisor", range: Range::new(0x4000_0000, 0x160_0000) },
            Target { name: "victim", range: Range::new(0x4160_0000, 0x200_0000) },
            Target { name: "empty", range: Range::new(0x5000_0000, 0) },
        ];
        let plan = MemoryPlan { own: &OWN, targets: &targets, pa_bits: 44 };
        let edges: Vec<(u64, String)> = collect(&plan).into_iter().filter(|(_, r)| r != "sweep" && r != "high").collect();
        // The hypervisor's base and end and the victim's base and end are 2 MiB blocks (swept);
        // the page below the victim is the hypervisor's last page (already probed).
        let expected = [
            (0x3fff_f000, "hypervisor"),
            (0x415f_f000, "hypervisor"),
            (0x435f_f000, "victim"),
        ];
        let expected: Vec<(u64, String)> = expected.iter().map(|(a, n)| (*a, n.to_string())).collect();
        assert_eq!(edges, expected);
    }

    #[test]
    fn high_probes_stop_below_the_physical_address_size() {
        let plan = MemoryPlan { own: &OWN, targets: &[], pa_bits: 44 };
        let probes = collect(&plan);
        let high: Vec<u64> = probes.iter().filter(|(_, r)| r == "high").map(|(a, _)| *a).collect();
        assert!(high.iter().all(|&a| a < 1 << 44));
        // 1 GiB steps from 4 GiB to 1 TiB, then 2^40 − 4K .. 2^43 and the pages below them.
        assert!(high.contains(&(1 << 32)) && high.contains(&((1 << 40) - (1 << 30))));
        assert!(high.contains(&((1 << 39) - PAGE)) && high.contains(&(1 << 39)));
        assert!(high.contains(&((1 << 44) - PAGE)) && high.contains(&(1 << 43)));
        assert!(high.contains(&((1 << 32) - PAGE)) && !high.contains(&0));
        assert!(!high.contains(&(1 << 44)));
        let mut sorted = high.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), high.len(), "no address twice");
        assert_eq!(pa_bits(4), 44);
        assert_eq!(pa_bits(5), 48);
    }
}
