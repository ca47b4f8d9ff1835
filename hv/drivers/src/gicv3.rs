//! The physical GICv3 distributor and redistributors (IHI 0069H), as the hypervisor uses
//! them for its own interrupts: the console UART's SPI and an SGI to kick other CPUs.
//! Tessera runs the GIC with affinity routing on and everything in Group 1 (non-secure).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

use crate::POLL_LIMIT;

register_structs! {
    /// Distributor (GICD_*) frame, IHI 0069H 12.9.
    GicdRegisters {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => typer: ReadOnly<u32>),
        (0x0008 => iidr: ReadOnly<u32>),
        (0x000c => _reserved0),
        (0x0080 => igroupr: [ReadWrite<u32>; 32]),
        (0x0100 => isenabler: [ReadWrite<u32>; 32]),
        (0x0180 => icenabler: [ReadWrite<u32>; 32]),
        (0x0200 => ispendr: [ReadWrite<u32>; 32]),
        (0x0280 => icpendr: [ReadWrite<u32>; 32]),
        (0x0300 => isactiver: [ReadWrite<u32>; 32]),
        (0x0380 => icactiver: [ReadWrite<u32>; 32]),
        (0x0400 => ipriorityr: [ReadWrite<u8>; 1024]),
        (0x0800 => _reserved1),
        (0x0c00 => icfgr: [ReadWrite<u32>; 64]),
        (0x0d00 => _reserved2),
        (0x6000 => irouter: [ReadWrite<u64>; 1024]),
        (0x8000 => @END),
    }
}

register_structs! {
    /// Redistributor control frame (RD_base), IHI 0069H 12.10.
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
    /// Redistributor SGI/PPI frame (SGI_base = RD_base + 64 KiB), IHI 0069H 12.10.
    GicrSgiRegisters {
        (0x0000 => _reserved0),
        (0x0080 => igroupr0: ReadWrite<u32>),
        (0x0084 => _reserved1),
        (0x0100 => isenabler0: ReadWrite<u32>),
        (0x0104 => _reserved2),
        (0x0180 => icenabler0: ReadWrite<u32>),
        (0x0184 => _reserved3),
        (0x0280 => icpendr0: ReadWrite<u32>),
        (0x0284 => _reserved4),
        (0x0380 => icactiver0: ReadWrite<u32>),
        (0x0384 => _reserved5),
        (0x0400 => ipriorityr: [ReadWrite<u8>; 32]),
        (0x0420 => @END),
    }
}

/// GICD_CTLR bits (IHI 0069H 12.9.4): Group 1 enable (bit 1), affinity routing (bit 4),
/// register write pending (bit 31).
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;
const GICD_CTLR_ARE: u32 = 1 << 4;
const GICD_CTLR_RWP: u32 = 1 << 31;
/// GICD_CTLR with a single security state (DS = 1, bit 6): Group 0 enable is bit 0.
const GICD_CTLR_ENABLE_GRP0: u32 = 1 << 0;
const GICD_CTLR_DS: u32 = 1 << 6;
/// GICR_WAKER (12.10.26): ProcessorSleep (bit 1), ChildrenAsleep (bit 2).
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// GICR_TYPER.Last (12.10.22).
const GICR_TYPER_LAST: u64 = 1 << 4;
/// Offset of the SGI frame from RD_base.
const SGI_FRAME: u64 = 0x1_0000;
/// The priority the hypervisor gives its own interrupts (all equal: it never nests them).
const PRIORITY: u8 = 0x80;

/// Things that went wrong bringing the GIC up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicError {
    /// A register write did not complete within the poll limit.
    Timeout,
    /// No redistributor in the region has this CPU's affinity.
    NoRedistributor { mpidr: u64 },
    /// Group 0 belongs to the Secure world (GICD_CTLR.DS = 0): no direct-interrupt VM here.
    Group0Unavailable,
}

pub struct Distributor {
    registers: &'static GicdRegisters,
}

// SAFETY: every access is a single volatile MMIO load or store, which cannot break memory
// safety when CPUs share the driver. (The read-modify-write in `enable_spi` is serialized by
// the kernel's lock around the distributor, for correctness, not safety.)
unsafe impl Sync for Distributor {}
// SAFETY: as for `Sync`: moving the handle to another CPU moves only an address.
unsafe impl Send for Distributor {}

impl Distributor {
    /// # Safety
    /// `base` is the GICD frame, mapped as Device memory; only the hypervisor programs it.
    pub const unsafe fn new(base: u64) -> Self {
        // SAFETY: per the caller's contract.
        Self { registers: unsafe { &*(base as *const GicdRegisters) } }
    }

    fn wait_for_rwp(&self) -> Result<(), GicError> {
        for _ in 0..POLL_LIMIT {
            if self.registers.ctlr.get() & GICD_CTLR_RWP == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(GicError::Timeout)
    }

    /// Disables and deconfigures every SPI, then enables affinity routing and Group 1.
    pub fn init(&self) -> Result<(), GicError> {
        self.registers.ctlr.set(0);
        self.wait_for_rwp()?;
        let lines = ((self.registers.typer.get() & 0x1f) as usize + 1) * 32;
        for word in 1..lines.min(1024) / 32 {
            self.registers.icenabler[word].set(u32::MAX);
            self.registers.icpendr[word].set(u32::MAX);
            self.registers.igroupr[word].set(u32::MAX);
        }
        self.wait_for_rwp()?;
        self.registers.ctlr.set(GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1);
        self.wait_for_rwp()
    }

    /// Routes SPI `intid` to the CPU with affinity `mpidr`, level-triggered, and enables it.
    pub fn enable_spi(&self, intid: u32, mpidr: u64) -> Result<(), GicError> {
        let n = intid as usize;
        if !(32..1020).contains(&n) {
            return Ok(());
        }
        self.registers.ipriorityr[n].set(PRIORITY);
        let cfg = &self.registers.icfgr[n / 16];
        cfg.set(cfg.get() & !(0b10 << ((n % 16) * 2)));
        self.registers.irouter[n].set(mpidr & 0xff_00ff_ffff);
        self.registers.isenabler[n / 32].set(1 << (n % 32));
        self.wait_for_rwp()
    }
}

impl Distributor {
    /// Enables Group 0 for the hypervisor's direct-interrupt kick. Only a GIC with a single
    /// security state (GICD_CTLR.DS = 1) gives Non-secure EL2 Group 0; otherwise
    /// `Group0Unavailable`, and nothing changes.
    pub fn enable_group0(&self) -> Result<(), GicError> {
        let ctlr = self.registers.ctlr.get();
        if ctlr & GICD_CTLR_DS == 0 {
            return Err(GicError::Group0Unavailable);
        }
        self.registers.ctlr.set((ctlr & !GICD_CTLR_RWP) | GICD_CTLR_ENABLE_GRP0);
        self.wait_for_rwp()
    }

    /// Sets SPI `intid`'s priority (a direct-interrupt VM's, clamped by the caller).
    pub fn set_priority(&self, intid: u32, priority: u8) {
        if let Some(register) = self.registers.ipriorityr.get(intid as usize).filter(|_| intid >= 32) {
            register.set(priority);
        }
    }

    fn spi_bit(intid: u32) -> Option<(usize, u32)> {
        let n = intid as usize;
        (32..1020).contains(&n).then_some((n / 32, 1 << (n % 32)))
    }

    /// Disables SPI `intid`.
    pub fn disable_spi(&self, intid: u32) -> Result<(), GicError> {
        if let Some((word, bit)) = Self::spi_bit(intid) {
            self.registers.icenabler[word].set(bit);
        }
        self.wait_for_rwp()
    }

    /// Makes SPI `intid` pending.
    pub fn set_pending_spi(&self, intid: u32) -> Result<(), GicError> {
        if let Some((word, bit)) = Self::spi_bit(intid) {
            self.registers.ispendr[word].set(bit);
        }
        Ok(())
    }

    /// Deactivates SPI `intid` (one a guest will not deactivate itself).
    pub fn deactivate_spi(&self, intid: u32) -> Result<(), GicError> {
        if let Some((word, bit)) = Self::spi_bit(intid) {
            self.registers.icactiver[word].set(bit);
        }
        Ok(())
    }
}

pub struct Redistributor {
    rd: &'static GicrRdRegisters,
    sgi: &'static GicrSgiRegisters,
}

impl Redistributor {
    /// Finds the redistributor whose affinity is `mpidr` in the region `[base, base + size)`.
    ///
    /// # Safety
    /// The region is the GICR region, mapped as Device memory, with frames `stride` apart.
    pub unsafe fn find(base: u64, size: u64, stride: u64, mpidr: u64) -> Result<Self, GicError> {
        let wanted = ((mpidr >> 32) & 0xff) << 24 | (mpidr & 0xff_ffff);
        let mut frame = base;
        while frame.saturating_add(stride) <= base.saturating_add(size) {
            // SAFETY: `frame` is inside the GICR region per the caller's contract.
            let rd = unsafe { &*(frame as *const GicrRdRegisters) };
            let typer = rd.typer.get();
            if typer >> 32 == wanted {
                // SAFETY: the SGI frame follows RD_base in the same redistributor.
                let sgi = unsafe { &*((frame + SGI_FRAME) as *const GicrSgiRegisters) };
                return Ok(Self { rd, sgi });
            }
            if typer & GICR_TYPER_LAST != 0 {
                break;
            }
            frame += stride;
        }
        Err(GicError::NoRedistributor { mpidr })
    }

    /// Sets up the SGIs and PPIs of a CPU that runs a direct-interrupt VM: those in `group0`
    /// (the hypervisor's) Group 0 at `hv_priority` and enabled; those in `guest` Group 1 at
    /// `guest_priority`, enabled only if also in `guest_enabled`; everything else Group 1
    /// and disabled. Called after [`Self::init`] woke the redistributor.
    pub fn init_direct(&self, group0: u32, hv_priority: u8, guest: u32, guest_enabled: u32, guest_priority: u8) {
        self.sgi.icenabler0.set(u32::MAX);
        self.sgi.igroupr0.set(!group0);
        for n in 0..32 {
            if group0 & (1 << n) != 0 {
                self.sgi.ipriorityr[n].set(hv_priority);
            } else if guest & (1 << n) != 0 {
                self.sgi.ipriorityr[n].set(guest_priority);
            }
        }
        self.sgi.isenabler0.set(group0 | (guest & guest_enabled));
    }

    /// Enables (`true`) or disables the SGIs/PPIs in `mask`.
    pub fn set_enabled(&self, mask: u32, enabled: bool) {
        if enabled {
            self.sgi.isenabler0.set(mask);
        } else {
            self.sgi.icenabler0.set(mask);
        }
    }

    /// Clears the pending and active state of the SGIs/PPIs in `mask` (what a stopped
    /// direct guest left behind).
    pub fn clear_private(&self, mask: u32) {
        self.sgi.icpendr0.set(mask);
        self.sgi.icactiver0.set(mask);
    }

    /// Sets SGI/PPI `intid`'s priority.
    pub fn set_priority(&self, intid: u32, priority: u8) {
        if let Some(register) = self.sgi.ipriorityr.get(intid as usize) {
            register.set(priority);
        }
    }

    /// Wakes the redistributor and puts SGIs/PPIs in Group 1, all disabled but those whose
    /// bit is set in `enabled` (bit n = INTID n, 0-31).
    pub fn init(&self, enabled: u32) -> Result<(), GicError> {
        self.rd.waker.set(self.rd.waker.get() & !GICR_WAKER_PROCESSOR_SLEEP);
        let mut awake = false;
        for _ in 0..POLL_LIMIT {
            if self.rd.waker.get() & GICR_WAKER_CHILDREN_ASLEEP == 0 {
                awake = true;
                break;
            }
            core::hint::spin_loop();
        }
        if !awake {
            return Err(GicError::Timeout);
        }
        self.sgi.icenabler0.set(u32::MAX);
        self.sgi.igroupr0.set(u32::MAX);
        for n in 0..32 {
            if enabled & (1 << n) != 0 {
                self.sgi.ipriorityr[n].set(PRIORITY);
            }
        }
        self.sgi.isenabler0.set(enabled);
        Ok(())
    }
}
