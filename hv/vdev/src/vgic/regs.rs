//! GICv3 register offsets, fields and the identification values the virtual GIC presents.
//!
//! Offsets and layouts are from the GICv3/v4 architecture specification, Arm IHI 0069,
//! chapter 12 ("Programmers' model"): the Distributor register map (`GICD_*`), the
//! Redistributor register maps (`GICR_*`, `RD_base` and `SGI_base` frames) and the
//! descriptions of each register named below; `ICH_LR<n>_EL2` and `ICC_SGI1R_EL1` are also in
//! the Arm ARM system-register descriptions (DDI 0487 / DDI 0601).

/// The Distributor register frame: 64 KiB (IHI 0069 chapter 12).
pub const DIST_FRAME_SIZE: u64 = 0x1_0000;

/// One Redistributor's frames: `RD_base` then `SGI_base`, 64 KiB each (IHI 0069 chapter 12). No
/// `VLPI_base` frames: `GICR_TYPER.VLPIS` reads 0.
pub const REDIST_FRAME_PAIR_SIZE: u64 = 0x2_0000;

/// Where the `SGI_base` frame starts inside a Redistributor's frame pair.
pub const SGI_BASE: u64 = 0x1_0000;

/// Distributor register offsets (IHI 0069 chapter 12).
pub mod gicd {
    /// `GICD_CTLR`.
    pub const CTLR: u64 = 0x0000;
    /// `GICD_TYPER`.
    pub const TYPER: u64 = 0x0004;
    /// `GICD_IIDR`.
    pub const IIDR: u64 = 0x0008;
    /// `GICD_TYPER2` (GICv4.1; RAZ here).
    pub const TYPER2: u64 = 0x000C;
    /// `GICD_IGROUPR<n>`.
    pub const IGROUPR: u64 = 0x0080;
    /// `GICD_ISENABLER<n>`.
    pub const ISENABLER: u64 = 0x0100;
    /// `GICD_ICENABLER<n>`.
    pub const ICENABLER: u64 = 0x0180;
    /// `GICD_ISPENDR<n>`.
    pub const ISPENDR: u64 = 0x0200;
    /// `GICD_ICPENDR<n>`.
    pub const ICPENDR: u64 = 0x0280;
    /// `GICD_ISACTIVER<n>`.
    pub const ISACTIVER: u64 = 0x0300;
    /// `GICD_ICACTIVER<n>`.
    pub const ICACTIVER: u64 = 0x0380;
    /// `GICD_IPRIORITYR<n>`: one byte per INTID, 0x400 + INTID.
    pub const IPRIORITYR: u64 = 0x0400;
    /// `GICD_ITARGETSR<n>`: RES0 when affinity routing is enabled.
    pub const ITARGETSR: u64 = 0x0800;
    /// `GICD_ICFGR<n>`: two bits per INTID.
    pub const ICFGR: u64 = 0x0C00;
    /// `GICD_IGRPMODR<n>`: RAZ/WI when `GICD_CTLR.DS` is 1.
    pub const IGRPMODR: u64 = 0x0D00;
    /// `GICD_NSACR<n>`: RAZ/WI when `GICD_CTLR.DS` is 1.
    pub const NSACR: u64 = 0x0E00;
    /// `GICD_SGIR`: RES0 when affinity routing is enabled.
    pub const SGIR: u64 = 0x0F00;
    /// `GICD_CPENDSGIR<n>`: RES0 when affinity routing is enabled.
    pub const CPENDSGIR: u64 = 0x0F10;
    /// `GICD_SPENDSGIR<n>`: RES0 when affinity routing is enabled.
    pub const SPENDSGIR: u64 = 0x0F20;
    /// `GICD_IROUTER<n>`: 64 bits per INTID, 0x6000 + 8 × INTID (INTID 32..=1019).
    pub const IROUTER: u64 = 0x6000;
    /// One past the last `GICD_IROUTER<n>` (n = 1019 at 0x7FD8).
    pub const IROUTER_END: u64 = 0x7FE0;
    /// `GICD_PIDR4`, the first identification register.
    pub const ID_BASE: u64 = 0xFFD0;
    /// `GICD_PIDR2`.
    pub const PIDR2: u64 = 0xFFE8;
}

/// `GICD_CTLR` bits when `GICD_CTLR.DS` is 1 (IHI 0069).
pub mod ctlr {
    /// `EnableGrp0`.
    pub const ENABLE_GRP0: u32 = 1 << 0;
    /// `EnableGrp1`.
    pub const ENABLE_GRP1: u32 = 1 << 1;
    /// `ARE`: affinity routing enabled (RAO/WI here).
    pub const ARE: u32 = 1 << 4;
    /// `DS`: disable security, a single Security state (RAO/WI here).
    pub const DS: u32 = 1 << 6;
    /// `RWP`: register write pending (always reads 0: writes take effect at once).
    pub const RWP: u32 = 1 << 31;
}

/// `GICD_TYPER` fields (IHI 0069).
pub mod typer {
    /// `ITLinesNumber`, bits \[4:0\]: the highest SPI INTID is `32 × (N + 1) − 1`.
    pub const IT_LINES_NUMBER_MASK: u32 = 0x1F;
    /// `IDbits`, bits \[23:19\]: INTID bits minus one.
    pub const IDBITS_SHIFT: u32 = 19;
    /// 16 INTID bits (`IDbits` = 0b01111), the minimum for GICv3 with no LPIs.
    pub const IDBITS_16: u32 = 0b01111;
    /// `A3V`, bit 24: Affinity 3 values other than 0 are supported.
    pub const A3V: u32 = 1 << 24;
    /// `RSS`, bit 26: SGI target lists cover Affinity 0 values 0..=255 (`ICC_SGI1R_EL1.RS`).
    pub const RSS: u32 = 1 << 26;
}

/// Redistributor `RD_base` offsets (IHI 0069 chapter 12).
pub mod gicr {
    /// `GICR_CTLR`.
    pub const CTLR: u64 = 0x0000;
    /// `GICR_IIDR`.
    pub const IIDR: u64 = 0x0004;
    /// `GICR_TYPER` (64 bits).
    pub const TYPER: u64 = 0x0008;
    /// `GICR_STATUSR`.
    pub const STATUSR: u64 = 0x0010;
    /// `GICR_WAKER`.
    pub const WAKER: u64 = 0x0014;
    /// `GICR_SETLPIR` (64 bits); with the other LPI registers below, RAZ/WI (`PLPIS` = 0).
    pub const SETLPIR: u64 = 0x0040;
    /// `GICR_CLRLPIR` (64 bits).
    pub const CLRLPIR: u64 = 0x0048;
    /// `GICR_PROPBASER` (64 bits).
    pub const PROPBASER: u64 = 0x0070;
    /// `GICR_PENDBASER` (64 bits).
    pub const PENDBASER: u64 = 0x0078;
    /// `GICR_INVLPIR` (64 bits).
    pub const INVLPIR: u64 = 0x00A0;
    /// `GICR_INVALLR` (64 bits).
    pub const INVALLR: u64 = 0x00B0;
    /// `GICR_PIDR4`, the first identification register.
    pub const ID_BASE: u64 = 0xFFD0;
    /// `GICR_PIDR2`.
    pub const PIDR2: u64 = 0xFFE8;
}

/// Redistributor `SGI_base` offsets, relative to [`SGI_BASE`]
/// (IHI 0069 chapter 12).
pub mod gicr_sgi {
    /// `GICR_IGROUPR0`.
    pub const IGROUPR0: u64 = 0x0080;
    /// `GICR_ISENABLER0`.
    pub const ISENABLER0: u64 = 0x0100;
    /// `GICR_ICENABLER0`.
    pub const ICENABLER0: u64 = 0x0180;
    /// `GICR_ISPENDR0`.
    pub const ISPENDR0: u64 = 0x0200;
    /// `GICR_ICPENDR0`.
    pub const ICPENDR0: u64 = 0x0280;
    /// `GICR_ISACTIVER0`.
    pub const ISACTIVER0: u64 = 0x0300;
    /// `GICR_ICACTIVER0`.
    pub const ICACTIVER0: u64 = 0x0380;
    /// `GICR_IPRIORITYR<n>`, n = 0..=7.
    pub const IPRIORITYR: u64 = 0x0400;
    /// `GICR_ICFGR0` (SGIs, read-only edge).
    pub const ICFGR0: u64 = 0x0C00;
    /// `GICR_ICFGR1` (PPIs).
    pub const ICFGR1: u64 = 0x0C04;
    /// `GICR_IGRPMODR0`: RAZ/WI when `GICD_CTLR.DS` is 1.
    pub const IGRPMODR0: u64 = 0x0D00;
    /// `GICR_NSACR`: RAZ/WI when `GICD_CTLR.DS` is 1.
    pub const NSACR: u64 = 0x0E00;
}

/// `GICR_TYPER` fields (IHI 0069).
pub mod gicr_typer {
    /// `Last`, bit 4: this is the last Redistributor of the region.
    pub const LAST: u64 = 1 << 4;
    /// `Processor_Number`, bits \[23:8\].
    pub const PROCESSOR_NUMBER_SHIFT: u32 = 8;
    /// `Affinity_Value`, bits \[63:32\]: `Aff3.Aff2.Aff1.Aff0` of the PE.
    pub const AFFINITY_SHIFT: u32 = 32;
}

/// `GICR_WAKER` bits (IHI 0069).
pub mod waker {
    /// `ProcessorSleep`, bit 1.
    pub const PROCESSOR_SLEEP: u32 = 1 << 1;
    /// `ChildrenAsleep`, bit 2 (read-only).
    pub const CHILDREN_ASLEEP: u32 = 1 << 2;
}

/// `GICD_IROUTER<n>` fields (IHI 0069).
pub mod irouter {
    /// `Interrupt_Routing_Mode`, bit 31: 1 = any participating PE ("1 of N").
    pub const IRM: u64 = 1 << 31;
    /// The bits that hold state: Aff0..Aff2 \[23:0\], IRM \[31\], Aff3 \[39:32\]. The rest is RES0.
    pub const WRITABLE: u64 = 0x0000_00FF_80FF_FFFF;
}

/// `ICC_SGI1R_EL1` fields (IHI 0069; DDI 0487).
pub mod sgi1r {
    /// `TargetList`, bits \[15:0\].
    pub const TARGET_LIST_MASK: u64 = 0xFFFF;
    /// `Aff1`, bits \[23:16\].
    pub const AFF1_SHIFT: u32 = 16;
    /// `INTID`, bits \[27:24\].
    pub const INTID_SHIFT: u32 = 24;
    /// `Aff2`, bits \[39:32\].
    pub const AFF2_SHIFT: u32 = 32;
    /// `IRM`, bit 40: 1 = every PE except the sender.
    pub const IRM: u64 = 1 << 40;
    /// `RS`, bits \[47:44\]: Affinity 0 = 16 × RS + target-list bit.
    pub const RS_SHIFT: u32 = 44;
    /// `Aff3`, bits \[55:48\].
    pub const AFF3_SHIFT: u32 = 48;
}

/// `ICH_LR<n>_EL2` fields (IHI 0069; DDI 0487 `ICH_LR<n>_EL2`).
pub mod lr {
    /// `vINTID`, bits \[31:0\].
    pub const VINTID_MASK: u64 = 0xFFFF_FFFF;
    /// `pINTID`, bits \[44:32\], when `HW` is 1 (a physical SPI or PPI INTID, < 1020).
    pub const PINTID_SHIFT: u32 = 32;
    /// `pINTID` mask.
    pub const PINTID_MASK: u64 = 0x1FFF << PINTID_SHIFT;
    /// `EOI`, bit 41, when `HW` is 0: a maintenance interrupt when the guest deactivates it.
    pub const EOI: u64 = 1 << 41;
    /// `Priority`, bits \[55:48\].
    pub const PRIORITY_SHIFT: u32 = 48;
    /// `Group`, bit 60: 1 = Group 1.
    pub const GROUP1: u64 = 1 << 60;
    /// `HW`, bit 61: the virtual interrupt is linked to physical `pINTID`.
    pub const HW: u64 = 1 << 61;
    /// `State`, bits \[63:62\]: 0b01 pending, 0b10 active, 0b11 pending and active.
    pub const STATE_SHIFT: u32 = 62;
    /// `State` pending bit.
    pub const PENDING: u64 = 1 << 62;
    /// `State` active bit.
    pub const ACTIVE: u64 = 1 << 63;
}

/// `GICD_IIDR` / `GICR_IIDR`: ProductID 0x54 ('T', Tessera) \[31:24\], Variant 0, Revision 0,
/// Implementer 0x43B (the JEP106 code of Arm, as KVM's virtual GIC also reports). No Linux
/// erratum workaround matches this ProductID.
pub const IIDR: u32 = 0x5400_043B;

/// `GICD_PIDR2`/`GICR_PIDR2`: `ArchRev` \[7:4\] = 3 (GICv3), JEDEC bit and `DES_1` = 0xB, the
/// value Linux's `gic_validate_dist_version` and redistributor walk check (IHI 0069).
pub const PIDR2: u32 = 0x3B;

/// The identification block at 0xFFD0..=0xFFFC of both frames, one word each:
/// `PIDR4..PIDR7, PIDR0..PIDR3, CIDR0..CIDR3` (IHI 0069). Only `PIDR2` is
/// architecturally meaningful; the component IDs are the standard CoreSight preamble.
pub const ID_REGISTERS: [u32; 12] = [0, 0, 0, 0, 0, 0, PIDR2, 0, 0x0D, 0xF0, 0x05, 0xB1];
