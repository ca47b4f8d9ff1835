//! The guest's GICv3 driver: its distributor and its own redistributor (tock-registers), and
//! the system-register CPU interface (`arch::icc`). Everything goes to Group 1 with affinity
//! routing on, which is what a non-secure EL1 sees natively on QEMU `virt` and what Tessera's
//! vGIC will present. GICD/GICR_IGRPMODR are left alone: non-secure software cannot change
//! them (IHI 0069H §12.9.15), and a vGIC need not implement them. The decisions (which redistributor, which field values) are in the
//! library's `gic` module and host-tested.
//!
//! Registers: GICv3/v4 architecture specification (IHI 0069H), chapter 12.

use tessera_guest_baremetal::gic::{
    self, GicError, GicRegions, Interrupt, PRIORITY, find_redistributor,
};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

use crate::arch::icc;

register_structs! {
    /// Distributor (GICD_*) frame, IHI 0069H §12.9.
    GicdRegisters {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => typer: ReadOnly<u32>),
        (0x0008 => _reserved0),
        (0x0080 => igroupr: [ReadWrite<u32>; 32]),
        (0x0100 => isenabler: [ReadWrite<u32>; 32]),
        (0x0180 => icenabler: [ReadWrite<u32>; 32]),
        (0x0200 => _reserved1),
        (0x0400 => ipriorityr: [ReadWrite<u8>; 1024]),
        (0x0800 => _reserved2),
        (0x0c00 => icfgr: [ReadWrite<u32>; 64]),
        (0x0d00 => _reserved3),
        (0x6000 => irouter: [ReadWrite<u64>; 1024]),
        (0x8000 => _reserved4),
        (0xffe8 => pidr2: ReadOnly<u32>),
        (0xffec => @END),
    }
}

register_structs! {
    /// Redistributor control frame (RD_base), IHI 0069H §12.10.
    GicrRdRegisters {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => iidr: ReadOnly<u32>),
        (0x0008 => typer: ReadOnly<u64>),
        (0x0010 => statusr: ReadWrite<u32>),
        (0x0014 => waker: ReadWrite<u32>),
        (0x0018 => @END),
    }
}

register_structs! {
    /// Redistributor SGI/PPI frame (SGI_base = RD_base + 64 KiB), IHI 0069H §12.10.
    GicrSgiRegisters {
        (0x0000 => _reserved0),
        (0x0080 => igroupr0: ReadWrite<u32>),
        (0x0084 => _reserved1),
        (0x0100 => isenabler0: ReadWrite<u32>),
        (0x0104 => _reserved2),
        (0x0180 => icenabler0: ReadWrite<u32>),
        (0x0184 => _reserved3),
        (0x0400 => ipriorityr: [ReadWrite<u8>; 32]),
        (0x0420 => _reserved4),
        (0x0c00 => icfgr: [ReadWrite<u32>; 2]),
        (0x0c08 => @END),
    }
}

/// GICD_CTLR (IHI 0069H §12.9.4, non-secure or DS=1 view): EnableGrp1(A) bit 1, ARE(_NS)
/// bit 4, RWP bit 31.
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;
const GICD_CTLR_ARE: u32 = 1 << 4;
const GICD_CTLR_RWP: u32 = 1 << 31;
/// GICR_WAKER (§12.10.26): ProcessorSleep bit 1, ChildrenAsleep bit 2.
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// SGI_base is the second 64 KiB frame of a redistributor.
const SGI_FRAME: u64 = 0x1_0000;
/// How many reads to wait for RWP or ChildrenAsleep before giving up. The GIC finishes in a
/// few cycles; this bounds the wait if it (or a vGIC) never does.
const POLL_LIMIT: u32 = 1_000_000;

/// The distributor and this CPU's redistributor, once brought up.
pub struct GicV3 {
    distributor: &'static GicdRegisters,
    redistributor: &'static GicrRdRegisters,
    sgi: &'static GicrSgiRegisters,
    /// The redistributor's RD_base, for the report line.
    pub redistributor_base: u64,
}

impl GicV3 {
    /// Checks GICD_PIDR2 says GICv3/v4, finds this CPU's redistributor (by MPIDR_EL1 affinity), wakes it, enables affinity
    /// routing and Group 1 in the distributor, and turns on the CPU interface (SRE = 1,
    /// PMR = 0xff, EOImode 0, IGRPEN1 = 1). IRQs stay masked in PSTATE.
    ///
    /// # Safety
    /// `regions` must be the GICv3 frames from this guest's device tree, reachable (the MMU
    /// is off), and this guest must be the only software driving them (natively) or they must
    /// be its vGIC (under Tessera). The boot CPU calls it first; a secondary may call it after
    /// that for its own redistributor (the distributor writes are then no-ops).
    pub unsafe fn init(regions: GicRegions, mpidr: u64) -> Result<Self, GicError> {
        // SAFETY: the distributor frame comes from the device tree (caller's contract).
        let distributor = unsafe { &*(regions.distributor.0 as *const GicdRegisters) };
        gic::check_arch_rev(distributor.pidr2.get())?;
        let (rd_region, rd_size) = regions.redistributors;
        let offset = find_redistributor(rd_size, mpidr, |offset| {
            // SAFETY: `offset` + one RD frame lies inside the redistributor region (checked
            // by `find_redistributor`), which the caller vouches for.
            unsafe { rd_frame(rd_region + offset) }.typer.get()
        })?;
        let redistributor_base = rd_region + offset;
        // SAFETY: the region comes from the device tree (caller's contract); the found
        // redistributor's two frames lie inside it.
        let gic = unsafe {
            Self {
                distributor,
                redistributor: rd_frame(redistributor_base),
                sgi: &*((redistributor_base + SGI_FRAME) as *const GicrSgiRegisters),
                redistributor_base,
            }
        };
        gic.wake()?;
        gic.enable_distributor()?;
        if !icc::enable_system_registers() {
            return Err(GicError::NoSystemRegisterInterface);
        }
        icc::set_priority_mask(0xff);
        icc::set_eoi_mode_0();
        icc::enable_group1();
        Ok(gic)
    }

    /// Clears GICR_WAKER.ProcessorSleep and waits (bounded) for ChildrenAsleep to clear.
    fn wake(&self) -> Result<(), GicError> {
        let waker = &self.redistributor.waker;
        waker.set(waker.get() & !GICR_WAKER_PROCESSOR_SLEEP);
        for _ in 0..POLL_LIMIT {
            if waker.get() & GICR_WAKER_CHILDREN_ASLEEP == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(GicError::RedistributorAsleep)
    }

    fn wait_for_rwp(&self) -> Result<(), GicError> {
        for _ in 0..POLL_LIMIT {
            if self.distributor.ctlr.get() & GICD_CTLR_RWP == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(GicError::RegisterWritePending)
    }

    /// ARE first (with the group enables as they were, off at reset), then Group 1.
    fn enable_distributor(&self) -> Result<(), GicError> {
        let ctlr = self.distributor.ctlr.get();
        if ctlr & GICD_CTLR_ARE == 0 {
            self.distributor.ctlr.set(GICD_CTLR_ARE);
            self.wait_for_rwp()?;
        }
        self.distributor
            .ctlr
            .set(GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1);
        self.wait_for_rwp()
    }

    /// Enables a PPI in this CPU's redistributor: Group 1, [`PRIORITY`], its trigger.
    pub fn enable_ppi(&self, interrupt: Interrupt) -> Result<(), GicError> {
        if !interrupt.is_ppi() {
            return Err(GicError::UnusableInterrupt {
                intid: interrupt.intid,
            });
        }
        let n = interrupt.intid as usize;
        let bit = 1u32 << n;
        self.sgi.igroupr0.set(self.sgi.igroupr0.get() | bit);
        self.sgi.ipriorityr[n].set(PRIORITY);
        set_config(&self.sgi.icfgr[1], n % 16, interrupt);
        self.sgi.isenabler0.set(bit);
        Ok(())
    }

    /// Enables an SGI (INTID 0–15) in this CPU's redistributor: Group 1, [`PRIORITY`]. SGIs
    /// are always edge-triggered (GICR_ICFGR0 is read-only for them).
    pub fn enable_sgi(&self, intid: u32) -> Result<(), GicError> {
        if intid >= gic::FIRST_PPI {
            return Err(GicError::UnusableInterrupt { intid });
        }
        let bit = 1u32 << intid;
        self.sgi.igroupr0.set(self.sgi.igroupr0.get() | bit);
        self.sgi.ipriorityr[intid as usize].set(PRIORITY);
        self.sgi.isenabler0.set(bit);
        Ok(())
    }

    /// Enables an SPI in the distributor: Group 1, [`PRIORITY`], its trigger, routed to
    /// the CPU with affinity `mpidr` (GICD_IROUTER, 1-of-N off).
    pub fn enable_spi(&self, interrupt: Interrupt, mpidr: u64) -> Result<(), GicError> {
        if !interrupt.is_spi() {
            return Err(GicError::UnusableInterrupt {
                intid: interrupt.intid,
            });
        }
        let n = interrupt.intid as usize;
        let (word, bit) = (n / 32, 1u32 << (n % 32));
        let registers = self.distributor;
        registers.igroupr[word].set(registers.igroupr[word].get() | bit);
        registers.ipriorityr[n].set(PRIORITY);
        set_config(&registers.icfgr[n / 16], n % 16, interrupt);
        registers.irouter[n].set(gic::irouter_value(mpidr));
        registers.isenabler[word].set(bit);
        self.wait_for_rwp()
    }
}

/// Sets the Int_config field of interrupt `slot` (0–15) in one ICFGR word.
fn set_config(register: &ReadWrite<u32>, slot: usize, interrupt: Interrupt) {
    let shift = slot * 2;
    let value = (register.get() & !(0b11 << shift)) | (interrupt.trigger.icfgr_field() << shift);
    register.set(value);
}

/// # Safety
/// `base` is a redistributor's RD_base inside the device tree's redistributor region.
unsafe fn rd_frame(base: u64) -> &'static GicrRdRegisters {
    // SAFETY: per the caller's contract; tock-registers accesses it only volatilely.
    unsafe { &*(base as *const GicrRdRegisters) }
}
