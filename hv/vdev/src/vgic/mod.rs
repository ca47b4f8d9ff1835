//! A virtual GICv3 for one VM: Distributor, one Redistributor per vCPU, and the
//! `ICH_LR<n>_EL2` values that deliver the VM's interrupts, as a pure state machine.
//!
//! The hypervisor traps the guest's accesses to the `GICD_*` frame and to the `GICR_*` frame
//! pairs and hands them to [`Vgic::dist_read`]/[`Vgic::dist_write`] and
//! [`Vgic::redist_read`]/[`Vgic::redist_write`]. The guest's CPU interface is the hardware's
//! virtual CPU interface (`ICV_*` registers); this model computes what the hypervisor loads
//! into the List Registers and reads back what the guest did with them.
//!
//! # What the guest sees (Arm IHI 0069, chapter 12)
//!
//! - A GICv3 with one Security state (`GICD_CTLR.DS` = 1) and affinity routing always on
//!   (`GICD_CTLR.ARE` = 1, RAO/WI). No LPIs, no ITS, no message-based SPIs, no extended
//!   SPI/PPI ranges, no NMIs. `GICD_TYPER.IDbits` = 16 bits; `ITLinesNumber` covers the
//!   highest SPI the VM owns; `A3V` and `RSS` are 1 (the model decodes Aff3 and the SGI range
//!   selector). `GICD_CTLR.RWP` and `GICR_CTLR.RWP` always read 0.
//! - Every interrupt is Group 1: `GICD_IGROUPR<n>`/`GICR_IGROUPR0` read 1 for owned
//!   interrupts (RAO/WI); `GICD_IGRPMODR<n>`, `GICR_IGRPMODR0` and the `NSACR`s are RAZ/WI.
//!   `GICD_CTLR.EnableGrp0` is stored but gates nothing (there is no Group 0 interrupt);
//!   `EnableGrp1` gates the forwarding of every interrupt, SGIs and PPIs included.
//! - Redistributor `n` is vCPU `n`: `GICR_TYPER.Affinity_Value` is that vCPU's MPIDR
//!   affinity, `Processor_Number` = `n`, `Last` is set on the final vCPU's frame;
//!   `GICR_WAKER.ChildrenAsleep` follows `ProcessorSleep` at once (both 1 out of reset).
//!   Sleep does not gate delivery.
//! - Priorities keep all 8 bits (the hardware's `ICH_VTR_EL2.PRIbits` decides how many
//!   the virtual CPU interface honours). SGIs are edge-triggered (`GICR_ICFGR0` reads
//!   `0xAAAA_AAAA`, WI); PPIs are level-sensitive (`GICR_ICFGR1` RAZ/WI); an SPI's
//!   `Int_config[1]` bit is stored (reset: level).
//! - `GICD_IROUTER<n>` keeps `Aff3..Aff0` and `IRM`. `IRM` = 1 ("any PE", 1-of-N) is
//!   delivered to vCPU 0: the architecture lets the GIC pick any participating PE, so this
//!   is a legal choice, just not a balanced one. An affinity that names no vCPU of the VM
//!   leaves the SPI undeliverable (it stays pending) until the guest fixes it. Reset value:
//!   vCPU 0's affinity.
//!
//! # Ownership
//!
//! The VM owns all 16 SGIs, the PPIs and SPIs listed in its [`VgicConfig`], and nothing
//! else. For an interrupt it does not own every bit of every register reads 0 and ignores
//! writes (as an unimplemented INTID does on real hardware), so it can never be enabled,
//! routed, made pending or active. INTIDs 0..=31 are reached only through the Redistributor
//! (the Distributor's copies are RES0 with affinity routing), and INTIDs 1020..=1023 are
//! never owned.
//!
//! # Accesses
//!
//! Registers take the widths IHI 0069 requires ("GIC memory-mapped register access"):
//! 32-bit for every 32-bit register; also 8-bit for the `IPRIORITYR`s (and the RES0
//! `ITARGETSR`/`CPENDSGIR`/`SPENDSGIR`); 64-bit or either 32-bit half for `GICD_IROUTER<n>`,
//! `GICR_TYPER` and the RES0 64-bit LPI registers. Halfword accesses are never allowed. Another width is [`MmioError::BadWidth`](crate::mmio::MmioError::BadWidth); an access not aligned to its size is
//! [`MmioError::BadOffset`](crate::mmio::MmioError::BadOffset); an offset past the frame is [`MmioError::OutsideFrame`](crate::mmio::MmioError::OutsideFrame).
//! Reserved and unimplemented offsets inside a frame are RES0: a 32-bit access reads 0 and
//! writes are ignored. Writes to read-only registers are ignored. Nothing panics on any guest
//! value.
//!
//! # Delivery (the contract with the kernel)
//!
//! - Before every entry into vCPU `v`: [`Vgic::flush`] with all of that CPU's List Registers
//!   (`ICH_VTR_EL2.ListRegs + 1` of them); write the values back, all of them (unused ones are
//!   0, invalid). If [`Flush::more_pending`], set `ICH_HCR_EL2.NPIE` (or `UIE`) so the guest
//!   exits when the List Registers drain.
//! - After every exit of vCPU `v` (before handling it): read the List Registers and call
//!   [`Vgic::sync`]. The model is authoritative between `sync` and the next `flush`; the
//!   List Registers are authoritative for the interrupts in them while the guest runs.
//! - A maintenance interrupt (`ICH_MISR_EL2`: EOI, NP, U) needs nothing more than that
//!   sync/flush pair. HW = 0 level-sensitive interrupts are loaded with `EOI` (bit 41) set, so
//!   the guest's deactivation exits and a line still high is made pending again.
//! - Writes return a [`WriteOutcome`]: [`Effect`]s on physical interrupts linked to virtual
//!   ones (enable/disable/route, pend, deactivate) for the kernel to apply to the real GIC,
//!   and a `kick` mask of other vCPUs that must exit and re-flush (an interrupt became
//!   deliverable to them, or one in their List Registers changed). [`Vgic::set_level`],
//!   [`Vgic::hw_fired`], [`Vgic::send_sgi`] and [`Vgic::sync`] return the same kind of mask;
//!   the kernel ignores the bit of the vCPU it is running.
//! - A HW-linked interrupt: the kernel acknowledges the physical interrupt, drops its running
//!   priority only (`ICC_CTLR_EL1.EOImode` = 1) and calls [`Vgic::hw_fired`]; the List
//!   Register gets `HW` = 1 and the physical INTID, and the guest's deactivation deactivates
//!   the physical interrupt. A guest write to `ISPENDR` asks the kernel to pend the physical
//!   interrupt ([`Effect::PendPhysical`]); `ICPENDR`/`ICACTIVER` of one the kernel has taken
//!   asks it to deactivate it ([`Effect::DeactivatePhysical`]); `ISACTIVER` is ignored for
//!   it (a physical interrupt cannot be made active from here). For a linked PPI the kernel
//!   may instead load the List Register itself, from [`Vgic::hw_private_lr`], in a List
//!   Register the model does not use (the virtual timer's fast path): the model then keeps no
//!   state for that delivery.
//!
//! # Limits
//!
//! - While a vCPU runs, what its guest does with the interrupts in its List Registers
//!   (acknowledge, deactivate) is learnt only at its next exit: another vCPU reading
//!   `ISACTIVER`/`ISPENDR` meanwhile sees the state as of that vCPU's last `sync`. A write
//!   that changes an interrupt held in a running vCPU's List Registers kicks that vCPU, and
//!   an MMIO change made meanwhile wins over the List Register's at `sync`.
//! - An edge (SGI, `ISPENDR`, HW arrival) that arrives while the same interrupt sits pending
//!   in a running vCPU's List Register is kept separately; if the guest then acknowledges
//!   the first, it sees a second one. Edges are never lost, but two close together can be
//!   delivered twice where hardware would merge them.
//! - Software-driven lines ([`Vgic::set_level`]) exist for SPIs only; owned PPIs are expected
//!   to be HW-linked (the virtual timer).
//! - No LPIs/ITS, no GICv2 compatibility (`ARE` = 0), no Group 0 delivery (FIQs).

mod dist;
mod redist;
pub mod regs;
#[cfg(test)]
mod tests;

use heapless::Vec;

use self::regs::lr;

/// The most List Registers an implementation has (`ICH_VTR_EL2.ListRegs` is 4 bits).
pub const MAX_LIST_REGISTERS: usize = 16;

/// The most vCPUs one [`Vgic`] serves: kick and target masks are `u32` bitmaps.
pub const MAX_VCPUS: usize = 32;

/// The most [`Effect`]s one register write produces: one per interrupt, and one register
/// covers at most 32 interrupts.
pub const MAX_EFFECTS: usize = 32;

/// The most SPIs one [`Vgic`] owns: the live set of SPIs is a `u32` bitmap.
pub const MAX_SPIS: usize = 32;

/// The last SPI INTID (1020..=1023 are special INTIDs, IHI 0069 "INTIDs").
pub const MAX_SPI_INTID: u32 = 1019;

/// An interrupt the VM owns, optionally linked to a physical interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OwnedIrq {
    /// The virtual INTID the guest sees: 16..=31 for a PPI, 32..=1019 for an SPI.
    pub intid: u32,
    /// The physical INTID it is linked to (a PPI for a PPI, an SPI for an SPI), or `None`
    /// for an interrupt the hypervisor emulates (driven by [`Vgic::set_level`]).
    pub hw: Option<u32>,
}

/// What one VM's virtual GIC is built from.
#[derive(Debug, Clone, Copy)]
pub struct VgicConfig<'a> {
    /// The MPIDR of each vCPU, by vCPU index. Only the affinity fields (Aff3 \[39:32\],
    /// Aff2..Aff0 \[23:0\]) are used; they must differ between vCPUs.
    pub mpidrs: &'a [u64],
    /// The PPIs the VM owns (the same on every vCPU), e.g. the virtual timer, PPI 27.
    pub ppis: &'a [OwnedIrq],
    /// The SPIs the VM owns: its emulated devices' and its passthrough devices'.
    pub spis: &'a [OwnedIrq],
}

/// Why a [`VgicConfig`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum VgicError {
    /// `mpidrs` is empty.
    NoVcpus,
    /// More vCPUs than the `Vgic`'s capacity.
    TooManyVcpus {
        /// vCPUs asked for.
        count: usize,
        /// The type's `VCPUS`.
        capacity: usize,
    },
    /// Two vCPUs have the same MPIDR affinity.
    DuplicateAffinity {
        /// The later vCPU.
        vcpu: usize,
        /// The earlier one with the same affinity.
        other: usize,
    },
    /// A PPI entry whose INTID is not 16..=31.
    NotAPpi {
        /// The INTID given.
        intid: u32,
    },
    /// An SPI entry whose INTID is not 32..=1019.
    NotAnSpi {
        /// The INTID given.
        intid: u32,
    },
    /// The same virtual INTID is listed twice.
    DuplicateIntid {
        /// The INTID.
        intid: u32,
    },
    /// More SPIs than the `Vgic`'s capacity.
    TooManySpis {
        /// SPIs asked for.
        count: usize,
        /// The type's `SPIS`.
        capacity: usize,
    },
    /// A physical INTID of the wrong kind: a PPI must link to a physical PPI (16..=31), an
    /// SPI to a physical SPI (32..=1019).
    BadHwIntid {
        /// The virtual INTID.
        intid: u32,
        /// The physical INTID given.
        hw: u32,
    },
    /// Two virtual interrupts linked to the same physical one.
    DuplicateHwIntid {
        /// The physical INTID.
        hw: u32,
    },
}

/// Something the kernel must do to the physical GIC after a guest write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Effect {
    /// Route physical `hw_intid` to the physical CPU running `vcpu` (an SPI's
    /// `GICD_IROUTER`; for a PPI, `vcpu`'s own CPU) and enable it. Also sent when an
    /// enabled SPI is re-routed.
    EnablePhysical {
        /// Physical INTID.
        hw_intid: u32,
        /// The vCPU whose physical CPU takes it.
        vcpu: usize,
    },
    /// Disable physical `hw_intid` (for a PPI, in `vcpu`'s CPU's Redistributor).
    DisablePhysical {
        /// Physical INTID.
        hw_intid: u32,
        /// The vCPU it was routed to (meaningful for a PPI).
        vcpu: usize,
    },
    /// Make physical `hw_intid` pending (the guest wrote its `ISPENDR` bit); it then arrives
    /// through [`Vgic::hw_fired`] like any other.
    PendPhysical {
        /// Physical INTID.
        hw_intid: u32,
        /// The vCPU it is routed to (meaningful for a PPI).
        vcpu: usize,
    },
    /// Deactivate physical `hw_intid`, which the kernel acknowledged but the guest will now
    /// never deactivate (it cleared the pending or active state by MMIO).
    DeactivatePhysical {
        /// Physical INTID.
        hw_intid: u32,
        /// The vCPU it is routed to (meaningful for a PPI).
        vcpu: usize,
    },
}

/// What a register write asks of the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Physical-GIC work, in order.
    pub effects: Vec<Effect, MAX_EFFECTS>,
    /// Bit `n`: vCPU `n` (never the writer) must exit and re-flush its List Registers.
    pub kick: u32,
}

/// What [`Vgic::flush`] loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Flush {
    /// List Registers `0..used` hold interrupts; the rest were written 0.
    pub used: usize,
    /// Some pending interrupt did not fit: ask for a maintenance interrupt when the List
    /// Registers drain (`ICH_HCR_EL2.NPIE`/`UIE`).
    pub more_pending: bool,
}

/// The state of one interrupt, as a GIC keeps it (IHI 0069, "Interrupt handling state machine").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IrqState {
    enabled: bool,
    /// Pending set by an edge, `ISPENDR`, an SGI or a HW-linked arrival, not yet taken.
    latch: bool,
    /// The part of `latch` moved into a List Register by `flush` (merged back by `sync`
    /// unless the guest acknowledged it).
    lr_pending: bool,
    /// The input line of an emulated level-sensitive interrupt.
    line: bool,
    edge: bool,
    active: bool,
    priority: u8,
}

impl IrqState {
    const fn reset(edge: bool) -> Self {
        Self {
            enabled: false,
            latch: false,
            lr_pending: false,
            line: false,
            edge,
            active: false,
            priority: 0,
        }
    }

    /// The pending state a register read shows (IHI 0069, "Interrupt handling state machine": a level-sensitive
    /// interrupt is pending while its line is asserted or its pending latch is set).
    const fn pending(&self) -> bool {
        self.latch || self.lr_pending || (!self.edge && self.line)
    }
}

/// An owned SPI.
#[derive(Debug, Clone, Copy)]
struct Spi {
    intid: u32,
    hw: Option<u32>,
    state: IrqState,
    /// `GICD_IROUTER<n>`, masked to [`regs::irouter::WRITABLE`].
    route: u64,
    /// The vCPU that holds it active (meaningful while `state.active`).
    active_vcpu: usize,
    /// The vCPU whose List Registers hold it, between that vCPU's `flush` and `sync`.
    in_lr: Option<usize>,
}

impl Spi {
    const EMPTY: Spi = Spi {
        intid: 0,
        hw: None,
        state: IrqState::reset(false),
        route: 0,
        active_vcpu: 0,
        in_lr: None,
    };
}

/// One vCPU's Redistributor: its SGIs and PPIs.
#[derive(Debug, Clone, Copy)]
struct Redist {
    irqs: [IrqState; 32],
    processor_sleep: bool,
}

impl Redist {
    const RESET: Redist = {
        let mut irqs = [IrqState::reset(false); 32];
        let mut i = 0;
        while i < 16 {
            irqs[i] = IrqState::reset(true); // SGIs are always edge-triggered
            i += 1;
        }
        Redist {
            irqs,
            processor_sleep: true,
        }
    };
}

/// An owned interrupt, resolved: a vCPU's SGI/PPI, or an SPI slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Irq {
    Private { vcpu: usize, intid: u32 },
    Spi { slot: usize },
}

/// What a List Register was loaded with.
#[derive(Debug, Clone, Copy)]
struct LrSlot {
    irq: Irq,
    /// `State` as written: bit 0 pending, bit 1 active.
    state: u8,
}

/// The register families that are one bit per interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BitOp {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

/// The virtual GIC of one VM with at most `VCPUS` vCPUs and `SPIS` owned SPIs.
#[derive(Debug, Clone)]
pub struct Vgic<const VCPUS: usize, const SPIS: usize> {
    vcpu_count: usize,
    /// `Aff3.Aff2.Aff1.Aff0` of each vCPU, as `GICR_TYPER[63:32]` shows it.
    affinity: [u32; VCPUS],
    /// Bit n: the VM owns private INTID n (all SGIs, the configured PPIs).
    private_owned: u32,
    /// The physical PPI each private INTID is linked to.
    private_hw: [Option<u32>; 32],
    /// Owned SPIs, sorted by INTID.
    spis: [Spi; SPIS],
    spi_count: usize,
    enable_grp0: bool,
    enable_grp1: bool,
    redists: [Redist; VCPUS],
    lr_slots: [[Option<LrSlot>; MAX_LIST_REGISTERS]; VCPUS],
    /// How many of `lr_slots[vcpu]` the last `flush` filled (the rest are `None`).
    lr_used: [u8; VCPUS],
    /// The live set: bit n of `live_private[vcpu]` may be set only if that vCPU's private
    /// INTID n is pending or active, and must be set if it is; `live_spis` likewise by SPI
    /// slot. Every path that can make an interrupt pending or active marks it
    /// ([`Self::state_mut`], [`Self::mark`]); `flush` drops the bits of interrupts that are
    /// neither. `flush` and `has_pending` visit only these, so they cost O(pending), not
    /// O(owned interrupts).
    live_private: [u32; VCPUS],
    live_spis: u32,
}

/// `Aff3.Aff2.Aff1.Aff0` packed into 32 bits, from an MPIDR or a `GICD_IROUTER` value (both
/// keep Aff3 in \[39:32\] and Aff2..Aff0 in \[23:0\]).
const fn affinity_of(mpidr: u64) -> u32 {
    (((mpidr >> 8) & 0xFF00_0000) | (mpidr & 0x00FF_FFFF)) as u32
}

impl<const VCPUS: usize, const SPIS: usize> Vgic<VCPUS, SPIS> {
    const CAPACITY_OK: () = assert!(VCPUS >= 1 && VCPUS <= MAX_VCPUS && SPIS <= MAX_SPIS);

    /// A virtual GIC in its reset state for the VM `config` describes.
    ///
    /// # Errors
    /// A [`VgicError`] naming the first thing wrong with `config`.
    pub fn new(config: &VgicConfig<'_>) -> Result<Self, VgicError> {
        let () = Self::CAPACITY_OK;
        let vcpu_count = config.mpidrs.len();
        if vcpu_count == 0 {
            return Err(VgicError::NoVcpus);
        }
        if vcpu_count > VCPUS {
            return Err(VgicError::TooManyVcpus {
                count: vcpu_count,
                capacity: VCPUS,
            });
        }
        let mut affinity = [0u32; VCPUS];
        for (vcpu, &mpidr) in config.mpidrs.iter().enumerate() {
            let aff = affinity_of(mpidr);
            if let Some(other) = affinity[..vcpu].iter().position(|&a| a == aff) {
                return Err(VgicError::DuplicateAffinity { vcpu, other });
            }
            affinity[vcpu] = aff;
        }

        let mut hw_seen = [0u32; 32]; // a bitmap of the physical INTIDs 0..=1023 linked
        let mut claim_hw = |intid: u32, hw: Option<u32>, range: core::ops::RangeInclusive<u32>| {
            let Some(hw) = hw else { return Ok(()) };
            if !range.contains(&hw) {
                return Err(VgicError::BadHwIntid { intid, hw });
            }
            let (word, bit) = ((hw / 32) as usize, 1u32 << (hw % 32));
            if hw_seen[word] & bit != 0 {
                return Err(VgicError::DuplicateHwIntid { hw });
            }
            hw_seen[word] |= bit;
            Ok(())
        };

        let mut private_owned = 0xFFFFu32;
        let mut private_hw = [None; 32];
        for ppi in config.ppis {
            if !(16..32).contains(&ppi.intid) {
                return Err(VgicError::NotAPpi { intid: ppi.intid });
            }
            if private_owned & (1 << ppi.intid) != 0 {
                return Err(VgicError::DuplicateIntid { intid: ppi.intid });
            }
            claim_hw(ppi.intid, ppi.hw, 16..=31)?;
            private_owned |= 1 << ppi.intid;
            private_hw[ppi.intid as usize] = ppi.hw;
        }

        if config.spis.len() > SPIS {
            return Err(VgicError::TooManySpis {
                count: config.spis.len(),
                capacity: SPIS,
            });
        }
        let mut spis = [Spi::EMPTY; SPIS];
        let mut spi_count = 0;
        for spi in config.spis {
            if !(32..=MAX_SPI_INTID).contains(&spi.intid) {
                return Err(VgicError::NotAnSpi { intid: spi.intid });
            }
            // Insertion into the sorted prefix.
            let pos = match spis[..spi_count].binary_search_by_key(&spi.intid, |s| s.intid) {
                Ok(_) => return Err(VgicError::DuplicateIntid { intid: spi.intid }),
                Err(pos) => pos,
            };
            claim_hw(spi.intid, spi.hw, 32..=MAX_SPI_INTID)?;
            spis.copy_within(pos..spi_count, pos + 1);
            spis[pos] = Spi {
                intid: spi.intid,
                hw: spi.hw,
                ..Spi::EMPTY
            };
            spi_count += 1;
        }

        let mut vgic = Self {
            vcpu_count,
            affinity,
            private_owned,
            private_hw,
            spis,
            spi_count,
            enable_grp0: false,
            enable_grp1: false,
            redists: [Redist::RESET; VCPUS],
            lr_slots: [[None; MAX_LIST_REGISTERS]; VCPUS],
            lr_used: [0; VCPUS],
            live_private: [0; VCPUS],
            live_spis: 0,
        };
        vgic.reset();
        Ok(vgic)
    }

    /// Back to the reset state (a VM restart), keeping what the VM owns. Every List
    /// Register record is dropped: the kernel must not `sync` values loaded before.
    pub fn reset(&mut self) {
        self.enable_grp0 = false;
        self.enable_grp1 = false;
        self.redists = [Redist::RESET; VCPUS];
        self.lr_slots = [[None; MAX_LIST_REGISTERS]; VCPUS];
        self.lr_used = [0; VCPUS];
        self.live_private = [0; VCPUS];
        self.live_spis = 0;
        let route = self.vcpu0_route();
        for spi in &mut self.spis[..self.spi_count] {
            spi.state = IrqState::reset(false);
            spi.route = route;
            spi.active_vcpu = 0;
            spi.in_lr = None;
        }
    }

    /// How many vCPUs this VM has.
    #[must_use]
    pub fn vcpu_count(&self) -> usize {
        self.vcpu_count
    }

    /// vCPU 0's affinity as a `GICD_IROUTER` value (the reset route).
    fn vcpu0_route(&self) -> u64 {
        let aff = u64::from(self.affinity[0]);
        ((aff & 0xFF00_0000) << 8) | (aff & 0x00FF_FFFF)
    }

    // ---- Looking interrupts up -------------------------------------------------------

    fn spis(&self) -> &[Spi] {
        &self.spis[..self.spi_count]
    }

    fn spi_slot(&self, intid: u32) -> Option<usize> {
        self.spis().binary_search_by_key(&intid, |s| s.intid).ok()
    }

    /// The owned interrupt `intid` as seen from `vcpu`'s Redistributor (for 0..=31) or the
    /// Distributor (32 and up); `None` if the VM does not own it.
    fn lookup(&self, vcpu: usize, intid: u32) -> Option<Irq> {
        if intid < 32 {
            (vcpu < self.vcpu_count && self.private_owned & (1 << intid) != 0)
                .then_some(Irq::Private { vcpu, intid })
        } else {
            self.spi_slot(intid).map(|slot| Irq::Spi { slot })
        }
    }

    fn state(&self, irq: Irq) -> &IrqState {
        match irq {
            Irq::Private { vcpu, intid } => &self.redists[vcpu].irqs[intid as usize],
            Irq::Spi { slot } => &self.spis[slot].state,
        }
    }

    /// The interrupt's state, for a change: it joins the live set (a superset is harmless;
    /// `flush` prunes it).
    fn state_mut(&mut self, irq: Irq) -> &mut IrqState {
        self.mark(irq);
        match irq {
            Irq::Private { vcpu, intid } => &mut self.redists[vcpu].irqs[intid as usize],
            Irq::Spi { slot } => &mut self.spis[slot].state,
        }
    }

    /// Puts `irq` in the live set (it may now be pending or active).
    fn mark(&mut self, irq: Irq) {
        match irq {
            Irq::Private { vcpu, intid } => self.live_private[vcpu] |= 1 << intid,
            Irq::Spi { slot } => self.live_spis |= 1 << slot,
        }
    }

    /// The live interrupts of `vcpu`'s Redistributor and of the Distributor, privates
    /// first, each in INTID order (SPI slots are sorted by INTID).
    fn live(&self, vcpu: usize) -> impl Iterator<Item = Irq> + use<VCPUS, SPIS> {
        let privates = Bits(self.live_private[vcpu] & self.private_owned)
            .map(move |intid| Irq::Private { vcpu, intid });
        let spis = Bits(self.live_spis).map(|slot| Irq::Spi {
            slot: slot as usize,
        });
        privates.chain(spis)
    }

    fn intid(&self, irq: Irq) -> u32 {
        match irq {
            Irq::Private { intid, .. } => intid,
            Irq::Spi { slot } => self.spis[slot].intid,
        }
    }

    fn hw(&self, irq: Irq) -> Option<u32> {
        match irq {
            Irq::Private { intid, .. } => self.private_hw[intid as usize],
            Irq::Spi { slot } => self.spis[slot].hw,
        }
    }

    /// The vCPU a `GICD_IROUTER` value delivers to (see the module docs for `IRM`).
    fn route_target(&self, route: u64) -> Option<usize> {
        if route & regs::irouter::IRM != 0 {
            return Some(0);
        }
        let aff = affinity_of(route);
        self.affinity[..self.vcpu_count]
            .iter()
            .position(|&a| a == aff)
    }

    /// The vCPU the interrupt is delivered to.
    fn target(&self, irq: Irq) -> Option<usize> {
        match irq {
            Irq::Private { vcpu, .. } => Some(vcpu),
            Irq::Spi { slot } => self.route_target(self.spis[slot].route),
        }
    }

    /// The vCPU whose List Registers hold it, or that holds it active.
    fn holder(&self, irq: Irq) -> Option<usize> {
        match irq {
            Irq::Private { vcpu, .. } => Some(vcpu),
            Irq::Spi { slot } => {
                let spi = &self.spis[slot];
                spi.in_lr.or(spi.state.active.then_some(spi.active_vcpu))
            }
        }
    }

    /// Pending, enabled, forwarded, not active, routed to `vcpu` and in no other vCPU's List
    /// Registers: the guest on `vcpu` could take it now.
    fn deliverable_to(&self, irq: Irq, vcpu: usize) -> bool {
        let st = self.state(irq);
        let in_other_lr = match irq {
            Irq::Private { .. } => false,
            Irq::Spi { slot } => self.spis[slot].in_lr.is_some_and(|v| v != vcpu),
        };
        st.pending()
            && st.enabled
            && self.enable_grp1
            && !st.active
            && !in_other_lr
            && self.target(irq) == Some(vcpu)
    }

    /// Adds to `kick` the vCPUs other than `writer` that a change to `irq` concerns: the
    /// one it is now deliverable to, and the one holding it in its List Registers.
    fn note_change(&self, irq: Irq, writer: usize, kick: &mut u32) {
        if let Some(target) = self.target(irq)
            && target != writer
            && self.deliverable_to(irq, target)
        {
            *kick |= 1 << target;
        }
        if let Some(holder) = self.holder(irq)
            && holder != writer
        {
            *kick |= 1 << holder;
        }
    }

    // ---- Register helpers shared by the Distributor and the Redistributors -------------

    /// One bit of an `IGROUPR`/`IS*R`/`IC*R` read.
    fn read_bit(&self, irq: Irq, op: BitOp) -> bool {
        let st = self.state(irq);
        match op {
            BitOp::Group => true,
            BitOp::SetEnable | BitOp::ClearEnable => st.enabled,
            BitOp::SetPending | BitOp::ClearPending => st.pending(),
            BitOp::SetActive | BitOp::ClearActive => st.active,
        }
    }

    /// A 1 written to one bit of an `IS*R`/`IC*R` (a 0 does nothing; `IGROUPR` is WI).
    fn write_bit(&mut self, irq: Irq, op: BitOp, writer: usize, out: &mut WriteOutcome) {
        let hw = self.hw(irq);
        let target = self.target(irq);
        let physical_vcpu = target.unwrap_or(0);
        let before = *self.state(irq);
        let mut effect = None;
        match op {
            BitOp::Group => {}
            BitOp::SetEnable => {
                self.state_mut(irq).enabled = true;
                if let Some(hw_intid) = hw
                    && !before.enabled
                    && let Some(vcpu) = target
                {
                    effect = Some(Effect::EnablePhysical { hw_intid, vcpu });
                }
            }
            BitOp::ClearEnable => {
                self.state_mut(irq).enabled = false;
                if let Some(hw_intid) = hw
                    && before.enabled
                {
                    effect = Some(Effect::DisablePhysical {
                        hw_intid,
                        vcpu: physical_vcpu,
                    });
                }
            }
            BitOp::SetPending => match hw {
                Some(hw_intid) => {
                    effect = Some(Effect::PendPhysical {
                        hw_intid,
                        vcpu: physical_vcpu,
                    });
                }
                None => self.state_mut(irq).latch = true,
            },
            BitOp::ClearPending => {
                let st = self.state_mut(irq);
                st.latch = false;
                st.lr_pending = false;
                // A HW-linked arrival was acknowledged by the kernel: release it.
                if let Some(hw_intid) = hw
                    && (before.latch || before.lr_pending)
                    && !before.active
                {
                    effect = Some(Effect::DeactivatePhysical {
                        hw_intid,
                        vcpu: physical_vcpu,
                    });
                }
            }
            BitOp::SetActive => {
                // A physical interrupt cannot be made active from here: WI when HW-linked.
                if hw.is_none() {
                    self.state_mut(irq).active = true;
                    if let Irq::Spi { slot } = irq
                        && !before.active
                    {
                        self.spis[slot].active_vcpu =
                            target.unwrap_or(writer.min(self.vcpu_count - 1));
                    }
                }
            }
            BitOp::ClearActive => {
                self.state_mut(irq).active = false;
                if let Some(hw_intid) = hw
                    && before.active
                {
                    effect = Some(Effect::DeactivatePhysical {
                        hw_intid,
                        vcpu: physical_vcpu,
                    });
                }
            }
        }
        if let Some(effect) = effect {
            // Cannot fail: one register write touches at most MAX_EFFECTS interrupts.
            let _ = out.effects.push(effect);
        }
        if *self.state(irq) != before {
            self.note_change(irq, writer, &mut out.kick);
        }
    }

    /// Reads a 32-bit one-bit-per-interrupt register covering `first..first + 32`, as seen
    /// from `bank`'s Redistributor.
    fn read_bits(&self, bank: usize, first: u32, op: BitOp) -> u32 {
        let mut value = 0;
        for bit in 0..32 {
            if let Some(irq) = self.lookup(bank, first + bit)
                && self.read_bit(irq, op)
            {
                value |= 1 << bit;
            }
        }
        value
    }

    fn write_bits(
        &mut self,
        bank: usize,
        first: u32,
        op: BitOp,
        value: u32,
        writer: usize,
    ) -> WriteOutcome {
        let mut out = WriteOutcome::default();
        if op == BitOp::Group {
            return out;
        }
        for bit in Bits(value) {
            if let Some(irq) = self.lookup(bank, first + bit) {
                self.write_bit(irq, op, writer, &mut out);
            }
        }
        out
    }

    /// `IPRIORITYR` bytes `first..first + count` as a little-endian value.
    fn read_priorities(&self, bank: usize, first: u32, count: u32) -> u64 {
        (0..count).fold(0, |value, i| {
            let prio = self
                .lookup(bank, first + i)
                .map_or(0, |irq| self.state(irq).priority);
            value | (u64::from(prio) << (8 * i))
        })
    }

    fn write_priorities(&mut self, bank: usize, first: u32, count: u32, value: u64) {
        for i in 0..count {
            if let Some(irq) = self.lookup(bank, first + i) {
                self.state_mut(irq).priority = (value >> (8 * i)) as u8;
            }
        }
    }

    /// An `ICFGR` word covering `first..first + 16`: `Int_config[1]` (bit 2k+1) is 1 for
    /// edge-triggered.
    fn read_config(&self, bank: usize, first: u32) -> u32 {
        let mut value = 0;
        for i in 0..16 {
            if let Some(irq) = self.lookup(bank, first + i)
                && self.state(irq).edge
            {
                value |= 2 << (2 * i);
            }
        }
        value
    }

    // ---- Interrupt sources ------------------------------------------------------------

    /// The line of the emulated (not HW-linked) SPI `intid` is now `level` (e.g. the SBSA
    /// UART's `irq_level()` after an access or new input). A level-sensitive SPI is pending
    /// while the line is high; an edge-triggered one latches a rising edge. An INTID the VM
    /// does not own, or a HW-linked one, is ignored.
    ///
    /// Returns the vCPUs to kick (see the module docs).
    pub fn set_level(&mut self, intid: u32, level: bool) -> u32 {
        let Some(slot) = (intid >= 32).then(|| self.spi_slot(intid)).flatten() else {
            return 0;
        };
        if self.spis[slot].hw.is_some() {
            return 0;
        }
        let irq = Irq::Spi { slot };
        let before = self.spis[slot].state;
        self.mark(irq);
        let st = &mut self.spis[slot].state;
        if st.edge && level && !st.line {
            st.latch = true;
        }
        st.line = level;
        let mut kick = 0;
        if self.spis[slot].state != before {
            self.note_change(irq, usize::MAX, &mut kick);
        }
        kick
    }

    /// Physical interrupt `hw_intid`, linked to one of the VM's, arrived on the physical CPU
    /// running `vcpu` and was acknowledged (priority dropped, not deactivated) by the kernel:
    /// make the virtual interrupt pending. For a PPI, `vcpu` picks the Redistributor. A
    /// physical INTID not linked to this VM (or a `vcpu` out of range for a PPI) is ignored.
    ///
    /// Returns the vCPUs to kick: the target, if it is not the one the kernel is running.
    pub fn hw_fired(&mut self, hw_intid: u32, vcpu: usize) -> u32 {
        let irq = if hw_intid < 32 {
            match self.private_hw.iter().position(|&hw| hw == Some(hw_intid)) {
                Some(intid) if vcpu < self.vcpu_count => Irq::Private {
                    vcpu,
                    intid: intid as u32,
                },
                _ => return 0,
            }
        } else {
            match self.spis().iter().position(|s| s.hw == Some(hw_intid)) {
                Some(slot) => Irq::Spi { slot },
                None => return 0,
            }
        };
        self.state_mut(irq).latch = true;
        let mut kick = 0;
        self.note_change(irq, vcpu, &mut kick);
        kick
    }

    /// The guest on `sender` wrote `icc_sgi1r` to `ICC_SGI1R_EL1` (trapped because
    /// `HCR_EL2.IMO` is set). Makes SGI `INTID` pending on every target: with `IRM` = 1 every
    /// vCPU of the VM but the sender; otherwise the vCPUs whose affinity is
    /// `Aff3.Aff2.Aff1.(16 × RS + n)` for each bit `n` of `TargetList`. Only this VM's vCPUs
    /// can be targets; an affinity that matches none is ignored.
    ///
    /// Returns the targets as a bitmap (the sender's bit included if it targeted itself).
    pub fn send_sgi(&mut self, sender: usize, icc_sgi1r: u64) -> u32 {
        use regs::sgi1r;
        if sender >= self.vcpu_count {
            return 0;
        }
        let intid = ((icc_sgi1r >> sgi1r::INTID_SHIFT) & 0xF) as usize;
        let mut targets = 0u32;
        if icc_sgi1r & sgi1r::IRM != 0 {
            for vcpu in (0..self.vcpu_count).filter(|&v| v != sender) {
                targets |= 1 << vcpu;
            }
        } else {
            let aff3 = ((icc_sgi1r >> sgi1r::AFF3_SHIFT) & 0xFF) as u32;
            let aff2 = ((icc_sgi1r >> sgi1r::AFF2_SHIFT) & 0xFF) as u32;
            let aff1 = ((icc_sgi1r >> sgi1r::AFF1_SHIFT) & 0xFF) as u32;
            let upper = (aff3 << 16) | (aff2 << 8) | aff1;
            let range_base = ((icc_sgi1r >> sgi1r::RS_SHIFT) & 0xF) as u32 * 16;
            let list = (icc_sgi1r & sgi1r::TARGET_LIST_MASK) as u32;
            for (vcpu, &aff) in self.affinity[..self.vcpu_count].iter().enumerate() {
                let aff0 = aff & 0xFF;
                if aff >> 8 == upper
                    && let Some(n) = aff0.checked_sub(range_base)
                    && n < 16
                    && list & (1 << n) != 0
                {
                    targets |= 1 << vcpu;
                }
            }
        }
        for vcpu in 0..self.vcpu_count {
            if targets & (1 << vcpu) != 0 {
                self.redists[vcpu].irqs[intid].latch = true;
                self.live_private[vcpu] |= 1 << intid;
            }
        }
        targets
    }

    // ---- List Registers ---------------------------------------------------------------

    /// Forgets what `vcpu`'s List Registers were loaded with, as if the guest did nothing
    /// with them (moved pending state returns to the model).
    fn release_lrs(&mut self, vcpu: usize) {
        let used = core::mem::take(&mut self.lr_used[vcpu]);
        for i in 0..usize::from(used) {
            let Some(slot) = self.lr_slots[vcpu][i].take() else {
                continue;
            };
            let st = self.state_mut(slot.irq);
            st.latch |= st.lr_pending;
            st.lr_pending = false;
            if let Irq::Spi { slot } = slot.irq {
                self.spis[slot].in_lr = None;
            }
        }
    }

    /// Whether `irq` belongs in `vcpu`'s List Registers, and its sort key if so: active
    /// ones first (they must stay where the guest can deactivate them), then by priority
    /// (lower value first), then by INTID.
    fn candidate_key(&self, irq: Irq, vcpu: usize) -> Option<u32> {
        let st = self.state(irq);
        let takeable = st.pending() && st.enabled && self.enable_grp1;
        let wanted = match irq {
            Irq::Private { .. } => st.active || takeable,
            Irq::Spi { slot } => {
                let spi = &self.spis[slot];
                spi.in_lr.is_none()
                    && if st.active {
                        spi.active_vcpu == vcpu
                    } else {
                        takeable && self.target(irq) == Some(vcpu)
                    }
            }
        };
        wanted.then(|| {
            (u32::from(!st.active) << 24) | (u32::from(st.priority) << 12) | self.intid(irq)
        })
    }

    /// Loads `lrs` (`vcpu`'s List Registers, `ICH_LR<n>_EL2` values) with the interrupts it
    /// must see: those it holds active, then the highest-priority pending, enabled ones
    /// routed to it. Every element of `lrs` is written (unused ones 0). Up to
    /// [`MAX_LIST_REGISTERS`] are used.
    pub fn flush(&mut self, vcpu: usize, lrs: &mut [u64]) -> Flush {
        lrs.fill(0);
        let capacity = lrs.len();
        self.flush_with(vcpu, capacity, |i, value| {
            if let Some(lr) = lrs.get_mut(i) {
                *lr = value;
            }
        })
    }

    /// [`flush`](Self::flush) for `capacity` List Registers, handing each value it loads to
    /// `load(index, value)` (indices `0..used`, in order) instead of filling a slice: the
    /// kernel writes them to the CPU as they come. The List Registers from `used` on are left
    /// to the caller.
    pub fn flush_with(&mut self, vcpu: usize, capacity: usize, mut load: impl FnMut(usize, u64)) -> Flush {
        if vcpu >= self.vcpu_count {
            return Flush {
                used: 0,
                more_pending: false,
            };
        }
        self.release_lrs(vcpu);
        let capacity = capacity.min(MAX_LIST_REGISTERS);

        // The best `capacity` candidates, sorted by key.
        let mut chosen: Vec<(u32, Irq), MAX_LIST_REGISTERS> = Vec::new();
        let mut more_pending = false;
        for irq in self.live(vcpu) {
            let st = self.state(irq);
            if !st.pending() && !st.active {
                // Neither pending nor active: out of the live set until something marks it.
                match irq {
                    Irq::Private { intid, .. } => self.live_private[vcpu] &= !(1 << intid),
                    Irq::Spi { slot } => self.live_spis &= !(1 << slot),
                }
                continue;
            }
            let Some(key) = self.candidate_key(irq, vcpu) else {
                continue;
            };
            let pos = chosen
                .iter()
                .position(|&(k, _)| key < k)
                .unwrap_or(chosen.len());
            if pos >= capacity {
                more_pending = true;
                continue;
            }
            if chosen.len() >= capacity {
                chosen.pop();
                more_pending = true;
            }
            // Cannot fail: room was made above and capacity <= MAX_LIST_REGISTERS.
            let _ = chosen.insert(pos, (key, irq));
        }

        for (i, &(_, irq)) in chosen.iter().enumerate() {
            let hw = self.hw(irq);
            let intid = self.intid(irq);
            let enable_grp1 = self.enable_grp1;
            let st = self.state_mut(irq);
            let takeable = st.pending() && st.enabled && enable_grp1;
            // A HW-linked interrupt is never loaded pending and active: its pending state
            // is kept by the physical GIC until the guest deactivates it.
            let pending = takeable && !(hw.is_some() && st.active);
            let state = u8::from(pending) | (u8::from(st.active) << 1);
            let mut value = (u64::from(state) << lr::STATE_SHIFT)
                | lr::GROUP1
                | (u64::from(st.priority) << lr::PRIORITY_SHIFT)
                | u64::from(intid);
            match hw {
                Some(hw_intid) => value |= lr::HW | (u64::from(hw_intid) << lr::PINTID_SHIFT),
                None if !st.edge && pending => value |= lr::EOI,
                None => {}
            }
            if pending {
                st.lr_pending = st.latch;
                st.latch = false;
            }
            if let Irq::Spi { slot } = irq {
                self.spis[slot].in_lr = Some(vcpu);
            }
            self.lr_slots[vcpu][i] = Some(LrSlot { irq, state });
            load(i, value);
        }
        // At most MAX_LIST_REGISTERS (16).
        self.lr_used[vcpu] = chosen.len() as u8;
        Flush {
            used: chosen.len(),
            more_pending,
        }
    }

    /// Reads back `vcpu`'s List Registers after the guest ran (the same order [`flush`]
    /// loaded them in): an interrupt no longer pending was acknowledged; its active state is
    /// the guest's. Changes made meanwhile by MMIO from another vCPU win over the List
    /// Register's.
    ///
    /// Returns the vCPUs to kick: an SPI this vCPU released is now deliverable to them.
    ///
    /// [`flush`]: Self::flush
    pub fn sync(&mut self, vcpu: usize, lrs: &[u64]) -> u32 {
        self.sync_with(vcpu, |i| lrs.get(i).copied())
    }

    /// [`sync`](Self::sync) reading List Register `i` through `read(i)` (`None`: as if
    /// unchanged), for `i` in `0..`[`lrs_in_use`](Self::lrs_in_use), in order.
    pub fn sync_with(&mut self, vcpu: usize, mut read: impl FnMut(usize) -> Option<u64>) -> u32 {
        if vcpu >= self.vcpu_count {
            return 0;
        }
        let mut kick = 0;
        let used = core::mem::take(&mut self.lr_used[vcpu]);
        for i in 0..usize::from(used) {
            let Some(slot) = self.lr_slots[vcpu][i].take() else {
                continue;
            };
            let intid = self.intid(slot.irq);
            let now = read(i)
                .filter(|&lr| lr & lr::VINTID_MASK == u64::from(intid))
                .map_or(slot.state, |lr| (lr >> lr::STATE_SHIFT) as u8);
            let (was_pending, was_active) = (slot.state & 1 != 0, slot.state & 2 != 0);
            let (now_pending, now_active) = (now & 1 != 0, now & 2 != 0);
            let st = self.state_mut(slot.irq);
            let acknowledged = was_pending && !now_pending;
            if !acknowledged {
                // Not acknowledged: the moved pending state comes back.
                st.latch |= st.lr_pending;
            }
            st.lr_pending = false;
            let guest_owns_active = st.active == was_active;
            if guest_owns_active {
                st.active = now_active;
            }
            if let Irq::Spi { slot: spi } = slot.irq {
                self.spis[spi].in_lr = None;
                if guest_owns_active && now_active {
                    self.spis[spi].active_vcpu = vcpu;
                }
                if let Some(target) = self.target(slot.irq)
                    && target != vcpu
                    && self.deliverable_to(slot.irq, target)
                {
                    kick |= 1 << target;
                }
            }
        }
        kick
    }

    /// The List Register value that makes private interrupt `hw_intid` (a PPI linked to a
    /// physical one, the virtual timer) pending on `vcpu`, HW-linked, with the guest's
    /// priority, for a forwarding fast path that loads it without the model when the physical
    /// interrupt fires; 0 when the guest could not take it now (disabled, Group 1 off), so the
    /// fast path leaves it to [`hw_fired`](Self::hw_fired). The model keeps no state for an
    /// interrupt forwarded so: the physical interrupt stays active until the guest's EOI
    /// deactivates it, so it cannot fire again while that List Register is in use.
    #[must_use]
    pub fn hw_private_lr(&self, vcpu: usize, hw_intid: u32) -> u64 {
        if vcpu >= self.vcpu_count || !self.enable_grp1 {
            return 0;
        }
        // Linked PPIs keep their INTID (the virtual timer), so look there first: this runs at
        // every flush of a fast-path CPU.
        let same = hw_intid as usize;
        let intid = if self.private_hw.get(same) == Some(&Some(hw_intid)) {
            same
        } else {
            match self.private_hw.iter().position(|&hw| hw == Some(hw_intid)) {
                Some(intid) => intid,
                None => return 0,
            }
        };
        let st = &self.redists[vcpu].irqs[intid];
        if !st.enabled {
            return 0;
        }
        (1 << lr::STATE_SHIFT)
            | lr::HW
            | lr::GROUP1
            | (u64::from(st.priority) << lr::PRIORITY_SHIFT)
            | (u64::from(hw_intid) << lr::PINTID_SHIFT)
            | intid as u64
    }

    /// Whether `vcpu` has an interrupt it could take now: wake it from WFI.
    #[must_use]
    pub fn has_pending(&self, vcpu: usize) -> bool {
        if vcpu >= self.vcpu_count {
            return false;
        }
        self.live(vcpu).any(|irq| self.deliverable_to(irq, vcpu))
    }

    /// How many List Registers the last [`flush`](Self::flush) of `vcpu` filled: [`sync`]
    /// reads back only these, and they are the only ones the guest can have changed.
    ///
    /// [`sync`]: Self::sync
    #[must_use]
    pub fn lrs_in_use(&self, vcpu: usize) -> usize {
        self.lr_used.get(vcpu).map_or(0, |&used| usize::from(used))
    }
}

/// The set bits of a word, lowest first.
struct Bits(u32);

impl Iterator for Bits {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(bit)
    }
}
