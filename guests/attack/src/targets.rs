//! What the attacker is told to aim at: `/chosen/tessera,probe-targets` (64-bit `<base size>`
//! pairs) and `/chosen/tessera,probe-target-names` (one string per pair), which the build tool
//! writes for a VM with `test-probe-targets;` (`dts/bindings/tessera-system.md`): the
//! hypervisor's region, the other VMs' RAM and its own at their host-physical addresses, the
//! board's RAM banks, and the devices the hypervisor keeps (UART, GICD, GICR, ITS).

use fdt_rs::base::DevTree;
use fdt_rs::prelude::{FallibleIterator, PropReader};
use tessera_guest_baremetal::dt::DtError;

use crate::plan::Range;

/// The most targets kept; more are ignored (and counted in [`Targets::dropped`]).
pub const MAX_TARGETS: usize = 32;

/// One named host-physical range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'dt> {
    pub name: &'dt str,
    pub range: Range,
}

#[derive(Debug, Clone, Copy)]
pub struct Targets<'dt> {
    items: [Target<'dt>; MAX_TARGETS],
    count: usize,
    /// Pairs beyond [`MAX_TARGETS`], or without a name.
    pub dropped: usize,
}

impl<'dt> Targets<'dt> {
    pub const fn new() -> Self {
        Self {
            items: [Target { name: "", range: Range::new(0, 0) }; MAX_TARGETS],
            count: 0,
            dropped: 0,
        }
    }

    /// Pairs `cells` (big-endian 64-bit base, size, …) with `names` (NUL-separated). A pair
    /// without a name is named `?`; a trailing odd cell is ignored.
    pub fn from_properties(cells: &'dt [u8], names: &'dt [u8]) -> Self {
        let mut targets = Self::new();
        let mut names = names.split(|&b| b == 0).map(|n| core::str::from_utf8(n).unwrap_or("?"));
        for pair in cells.chunks_exact(16) {
            let (base, size) = pair.split_at(8);
            let (Ok(base), Ok(size)) = (<[u8; 8]>::try_from(base), <[u8; 8]>::try_from(size)) else {
                continue;
            };
            let name = match names.next() {
                Some(name) if !name.is_empty() => name,
                _ => "?",
            };
            targets.push(Target { name, range: Range::new(u64::from_be_bytes(base), u64::from_be_bytes(size)) });
        }
        targets
    }

    fn push(&mut self, target: Target<'dt>) {
        match self.items.get_mut(self.count) {
            Some(slot) => {
                *slot = target;
                self.count += 1;
            }
            None => self.dropped += 1,
        }
    }

    pub fn as_slice(&self) -> &[Target<'dt>] {
        &self.items[..self.count]
    }
}

impl Default for Targets<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads the targets from a device tree (empty if `/chosen` has none).
pub fn scan<'dt>(tree: &DevTree<'dt>) -> Result<Targets<'dt>, DtError> {
    let (mut cells, mut names): (&[u8], &[u8]) = (&[], &[]);
    let mut properties = tree.props();
    while let Some(property) = properties.next().map_err(|_| DtError::Parse)? {
        if property.node().name().map_err(|_| DtError::Parse)? != "chosen" {
            continue;
        }
        match property.name().map_err(|_| DtError::Parse)? {
            "tessera,probe-targets" => cells = property.raw(),
            "tessera,probe-target-names" => names = property.raw(),
            _ => {}
        }
    }
    Ok(Targets::from_properties(cells, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(pairs: &[(u64, u64)]) -> Vec<u8> {
        pairs.iter().flat_map(|(b, s)| b.to_be_bytes().into_iter().chain(s.to_be_bytes())).collect()
    }

    #[test]
    fn pairs_get_their_names() {
        let raw = cells(&[(0x4000_0000, 0x160_0000), (0x4160_0000, 0x200_0000)]);
        let targets = Targets::from_properties(&raw, b"hypervisor\0victim\0");
        assert_eq!(
            targets.as_slice(),
            [
                Target { name: "hypervisor", range: Range::new(0x4000_0000, 0x160_0000) },
                Target { name: "victim", range: Range::new(0x4160_0000, 0x200_0000) },
            ]
        );
        assert_eq!(targets.dropped, 0);
    }

    #[test]
    fn missing_names_odd_cells_and_overflow() {
        let mut raw = cells(&[(1, 2), (3, 4)]);
        raw.extend_from_slice(&[0; 8]); // half a pair
        let targets = Targets::from_properties(&raw, b"one\0");
        assert_eq!(targets.as_slice().len(), 2);
        assert_eq!(targets.as_slice()[1].name, "?");

        let many: Vec<(u64, u64)> = (0..MAX_TARGETS as u64 + 3).map(|i| (i << 21, 1 << 21)).collect();
        let raw = cells(&many);
        let targets = Targets::from_properties(&raw, b"");
        assert_eq!(targets.as_slice().len(), MAX_TARGETS);
        assert_eq!(targets.dropped, 3);
    }
}
