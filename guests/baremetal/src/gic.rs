//! The pure half of the guest's GICv3 driver: device-tree interrupt specifiers, the
//! redistributor search, and the register field values. The MMIO and ICC_* accesses live in
//! the EL1 binary (`src/gic.rs` of the bin, `src/arch.rs`).
//!
//! Register layouts cite the GICv3/v4 architecture specification (IHI 0069H); specifier
//! cells follow the Linux binding `interrupt-controller/arm,gic-v3.yaml`.

/// INTID ranges (IHI 0069H §2.2): SGIs 0–15, PPIs 16–31, SPIs 32–1019.
pub const FIRST_PPI: u32 = 16;
pub const FIRST_SPI: u32 = 32;
pub const LAST_SPI: u32 = 1019;
/// ICC_IAR1_EL1 values of 1020 and above are special (1023: spurious; §2.2.1).
pub const FIRST_SPECIAL_INTID: u32 = 1020;

/// The virtual timer's PPI when the device tree has no `timer` node: BSA (DEN 0094) §3.8
/// recommends INTID 27, and QEMU `virt` uses it.
pub const DEFAULT_VIRTUAL_TIMER_INTID: u32 = 27;

/// The priority the guest gives every interrupt it enables (all equal: it never nests).
/// Any value below the PMR (0xff) is signalled.
pub const PRIORITY: u8 = 0x80;

/// How an interrupt is signalled (GICD_ICFGR / GICR_ICFGR, IHI 0069H §12.9.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Level,
    Edge,
}

impl Trigger {
    /// The two-bit Int_config field for this trigger: 0b00 level, 0b10 edge.
    pub const fn icfgr_field(self) -> u32 {
        match self {
            Trigger::Level => 0b00,
            Trigger::Edge => 0b10,
        }
    }
}

/// One interrupt as the device tree describes it, resolved to a GIC INTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupt {
    pub intid: u32,
    pub trigger: Trigger,
}

impl Interrupt {
    pub const fn is_ppi(self) -> bool {
        self.intid >= FIRST_PPI && self.intid < FIRST_SPI
    }

    pub const fn is_spi(self) -> bool {
        self.intid >= FIRST_SPI && self.intid <= LAST_SPI
    }

    /// Decodes one GIC specifier: cell 0 is the type (0 SPI, 1 PPI; the extended ranges 2
    /// and 3 are not supported), cell 1 the number within that type, cell 2 the flags, whose
    /// bits 3:0 are the trigger (1/2 edge, 4/8 level). Further cells (the PPI partition) are
    /// ignored. `None` for anything out of range.
    pub fn from_specifier(cells: &[u32]) -> Option<Self> {
        let (&kind, &number, &flags) = match cells {
            [kind, number, flags, ..] => (kind, number, flags),
            _ => return None,
        };
        let intid = match kind {
            0 if number <= LAST_SPI - FIRST_SPI => FIRST_SPI + number,
            1 if number < FIRST_SPI - FIRST_PPI => FIRST_PPI + number,
            _ => return None,
        };
        let trigger = match flags & 0xf {
            1 | 2 => Trigger::Edge,
            // Level (4, 8) and "unspecified" (0, which Linux treats as level for these nodes).
            0 | 4 | 8 => Trigger::Level,
            _ => return None,
        };
        Some(Self { intid, trigger })
    }
}

/// The `reg` of an `arm,gic-v3` node: the distributor and the first redistributor region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GicRegions {
    pub distributor: (u64, u64),
    pub redistributors: (u64, u64),
}

/// What can stop the guest from taking interrupts through the GIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicError {
    /// GICD_PIDR2.ArchRev is not 3 or 4: no GICv3 distributor answers at the DT's address
    /// (for instance a hypervisor that does not emulate it yet: the read aborts, the guest's
    /// handler skips it, and the register keeps whatever it held).
    NotGicV3 { arch_rev: u32 },
    /// No redistributor in the region has this CPU's affinity (GICR_TYPER.Affinity_Value).
    NoRedistributor { mpidr: u64 },
    /// GICR_WAKER.ChildrenAsleep stayed 1 after ProcessorSleep was cleared.
    RedistributorAsleep,
    /// GICD_CTLR.RWP stayed 1.
    RegisterWritePending,
    /// ICC_SRE_EL1.SRE reads 0 after writing 1: the system-register interface is not
    /// available (a higher EL keeps it off).
    NoSystemRegisterInterface,
    /// An interrupt from the device tree is not of the kind it is used as (a timer that is
    /// not a PPI, a UART interrupt that is not an SPI).
    UnusableInterrupt { intid: u32 },
}

impl core::fmt::Display for GicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GicError::NotGicV3 { arch_rev } => {
                write!(f, "GICD_PIDR2.ArchRev is {arch_rev}, not a GICv3")
            }
            GicError::NoRedistributor { mpidr } => {
                write!(f, "no redistributor for mpidr {mpidr:#x}")
            }
            GicError::RedistributorAsleep => write!(f, "redistributor did not wake"),
            GicError::RegisterWritePending => write!(f, "GICD_CTLR.RWP stuck"),
            GicError::NoSystemRegisterInterface => write!(f, "ICC_SRE_EL1.SRE is 0"),
            GicError::UnusableInterrupt { intid } => write!(f, "unusable interrupt {intid}"),
        }
    }
}

/// GICD_PIDR2.ArchRev (bits 7:4; IHI 0069H §12.9.27): 3 for GICv3, 4 for GICv4.
pub const fn gicd_pidr2_arch_rev(pidr2: u32) -> u32 {
    (pidr2 >> 4) & 0xf
}

/// Checks the distributor's identification before anything is programmed (as Linux's
/// `gic_validate_dist_version` does).
pub const fn check_arch_rev(pidr2: u32) -> Result<(), GicError> {
    match gicd_pidr2_arch_rev(pidr2) {
        3 | 4 => Ok(()),
        arch_rev => Err(GicError::NotGicV3 { arch_rev }),
    }
}

/// GICR_TYPER fields (IHI 0069H §12.10.22).
pub mod gicr_typer {
    /// VLPIS, bit 1: the redistributor has the GICv4 VLPI frames (4 × 64 KiB instead of 2).
    pub const VLPIS: u64 = 1 << 1;
    /// Last, bit 4: the last redistributor in its region.
    pub const LAST: u64 = 1 << 4;
    /// Affinity_Value, bits 63:32: Aff3.Aff2.Aff1.Aff0.
    pub const AFFINITY_SHIFT: u32 = 32;
}

/// The size of one redistributor's frames (RD_base, SGI_base, and with VLPIS the two VLPI
/// frames), IHI 0069H §12.10.
pub const fn redistributor_stride(typer: u64) -> u64 {
    if typer & gicr_typer::VLPIS != 0 {
        0x4_0000
    } else {
        0x2_0000
    }
}

/// MPIDR_EL1 packed as GICR_TYPER.Affinity_Value holds it: Aff3 (MPIDR bits 39:32) on top
/// of Aff2.Aff1.Aff0 (bits 23:0).
pub const fn mpidr_to_gic_affinity(mpidr: u64) -> u32 {
    ((((mpidr >> 32) & 0xff) << 24) | (mpidr & 0xff_ffff)) as u32
}

/// Walks a redistributor region of `region_size` bytes, reading each frame's GICR_TYPER
/// through `read_typer(offset)`, and returns the offset of the one whose affinity is
/// `mpidr`'s. Stops at GICR_TYPER.Last or the end of the region, so it is bounded.
pub fn find_redistributor(
    region_size: u64,
    mpidr: u64,
    mut read_typer: impl FnMut(u64) -> u64,
) -> Result<u64, GicError> {
    let wanted = mpidr_to_gic_affinity(mpidr);
    let mut offset = 0u64;
    while offset
        .checked_add(redistributor_stride(0))
        .is_some_and(|end| end <= region_size)
    {
        let typer = read_typer(offset);
        if (typer >> gicr_typer::AFFINITY_SHIFT) as u32 == wanted {
            return Ok(offset);
        }
        if typer & gicr_typer::LAST != 0 {
            break;
        }
        match offset.checked_add(redistributor_stride(typer)) {
            Some(next) => offset = next,
            None => break,
        }
    }
    Err(GicError::NoRedistributor { mpidr })
}

/// ICC_IAR1_EL1.INTID (bits 23:0).
pub const fn iar_intid(iar: u64) -> u32 {
    (iar & 0xff_ffff) as u32
}

/// GICD_IROUTER for a 1-of-N route to `mpidr` (IHI 0069H §12.9.22: Aff3 at bits 39:32,
/// Aff2.Aff1.Aff0 at bits 23:0, Interrupt_Routing_Mode bit 31 = 0).
pub const fn irouter_value(mpidr: u64) -> u64 {
    mpidr & 0xff_00ff_ffff
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn specifiers() {
        // QEMU virt: the pl011 is SPI 1 level-high, the virtual timer PPI 11.
        assert_eq!(
            Interrupt::from_specifier(&[0, 1, 4]),
            Some(Interrupt {
                intid: 33,
                trigger: Trigger::Level
            })
        );
        let timer = Interrupt::from_specifier(&[1, 11, 0x304]).unwrap();
        assert_eq!(
            timer,
            Interrupt {
                intid: 27,
                trigger: Trigger::Level
            }
        );
        assert!(timer.is_ppi() && !timer.is_spi());
        assert_eq!(
            Interrupt::from_specifier(&[0, 987, 1, 0x8003]),
            Some(Interrupt {
                intid: 1019,
                trigger: Trigger::Edge
            })
        );
        assert_eq!(Interrupt::from_specifier(&[0, 988, 4]), None);
        assert_eq!(Interrupt::from_specifier(&[1, 16, 4]), None);
        assert_eq!(Interrupt::from_specifier(&[2, 0, 4]), None, "extended SPI");
        assert_eq!(Interrupt::from_specifier(&[0, 1, 3]), None, "both edges");
        assert_eq!(Interrupt::from_specifier(&[0, 1]), None);
    }

    #[test]
    fn trigger_fields() {
        assert_eq!(Trigger::Level.icfgr_field(), 0);
        assert_eq!(Trigger::Edge.icfgr_field(), 2);
    }

    #[test]
    fn affinity_packing() {
        assert_eq!(mpidr_to_gic_affinity(0x8000_0001), 1);
        assert_eq!(mpidr_to_gic_affinity(0x12_8003_0201), 0x1203_0201);
        assert_eq!(irouter_value(0x12_c003_0201), 0x12_0003_0201);
        assert_eq!(iar_intid(0xff00_03ff), 1023);
    }

    /// A fake redistributor region: one GICR_TYPER per frame, `Last` on the final one.
    fn region(affinities: &[u32], vlpis: bool) -> (u64, impl FnMut(u64) -> u64) {
        let stride = if vlpis { 0x4_0000 } else { 0x2_0000 };
        let typers: Vec<u64> = affinities
            .iter()
            .enumerate()
            .map(|(i, &affinity)| {
                let mut typer =
                    u64::from(affinity) << 32 | if vlpis { gicr_typer::VLPIS } else { 0 };
                if i + 1 == affinities.len() {
                    typer |= gicr_typer::LAST;
                }
                typer
            })
            .collect();
        let size = stride * affinities.len() as u64;
        (size, move |offset: u64| {
            assert_eq!(offset % stride, 0, "read between frames at {offset:#x}");
            typers[(offset / stride) as usize]
        })
    }

    #[test]
    fn finds_own_redistributor() {
        let (size, read) = region(&[0, 1, 2, 3], false);
        assert_eq!(find_redistributor(size, 0x8000_0002, read), Ok(0x4_0000));
        let (size, read) = region(&[0, 0x100], true);
        assert_eq!(find_redistributor(size, 0x100, read), Ok(0x4_0000));
    }

    #[test]
    fn no_redistributor_stops_at_last_or_region_end() {
        let (size, read) = region(&[0, 1], false);
        assert_eq!(
            find_redistributor(size, 5, read),
            Err(GicError::NoRedistributor { mpidr: 5 })
        );
        // No Last bit anywhere (a broken GIC): the region size bounds the walk.
        let mut reads = 0;
        let result = find_redistributor(0x6_0000, 9, |_| {
            reads += 1;
            0
        });
        assert_eq!(result, Err(GicError::NoRedistributor { mpidr: 9 }));
        assert_eq!(reads, 3);
        // A region too small for even one redistributor is never read.
        assert!(find_redistributor(0x1_0000, 0, |_| unreachable!()).is_err());
    }

    #[test]
    fn distributor_identification() {
        // QEMU's GICv3 reads 0x3b; an unmapped frame read through an abort reads 0.
        assert_eq!(check_arch_rev(0x3b), Ok(()));
        assert_eq!(check_arch_rev(0x4b), Ok(()));
        assert_eq!(check_arch_rev(0), Err(GicError::NotGicV3 { arch_rev: 0 }));
        assert_eq!(
            check_arch_rev(0x2b),
            Err(GicError::NotGicV3 { arch_rev: 2 })
        );
        assert_eq!(
            GicError::NotGicV3 { arch_rev: 0 }.to_string(),
            "GICD_PIDR2.ArchRev is 0, not a GICv3"
        );
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            GicError::NoRedistributor { mpidr: 3 }.to_string(),
            "no redistributor for mpidr 0x3"
        );
        for error in [
            GicError::RedistributorAsleep,
            GicError::RegisterWritePending,
            GicError::NoSystemRegisterInterface,
            GicError::UnusableInterrupt { intid: 5 },
        ] {
            assert!(!error.to_string().is_empty());
        }
    }
}
