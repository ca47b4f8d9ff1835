//! The Distributor frame (`GICD_*`, IHI 0069 chapter 12): decoding and emulation.

use super::regs::{self, ctlr, gicd, irouter, typer};
use super::{BitOp, Irq, Vgic, WriteOutcome};
use crate::mmio::{MmioError, Width};

/// Which half of a 64-bit register a 32-bit access reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Half {
    Whole,
    Low,
    High,
}

/// A decoded Distributor access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DistReg {
    Ctlr,
    Typer,
    Iidr,
    /// A one-bit-per-interrupt register covering `first..first + 32`.
    Bits {
        op: BitOp,
        first: u32,
    },
    /// `IPRIORITYR` bytes starting at INTID `first`.
    Priority {
        first: u32,
    },
    /// `ICFGR` word covering `first..first + 16`.
    Config {
        first: u32,
    },
    Router {
        intid: u32,
        half: Half,
    },
    Id {
        index: usize,
    },
    RazWi,
}

/// Refuses `width` unless it is one of `allowed`.
pub(super) fn require(offset: u64, width: Width, allowed: &[Width]) -> Result<(), MmioError> {
    if allowed.contains(&width) {
        Ok(())
    } else {
        Err(MmioError::BadWidth { offset, width })
    }
}

const WORD: &[Width] = &[Width::Word];
const BYTE_WORD: &[Width] = &[Width::Byte, Width::Word];
const WORD_DOUBLE: &[Width] = &[Width::Word, Width::Double];

/// One past `GICD_SPENDSGIR3`.
const SGI_PEND_END: u64 = gicd::SPENDSGIR + 0x10;

/// The 32-bit register families at `base + 4n`, one bit per interrupt.
const BIT_REGISTERS: [(u64, BitOp); 7] = [
    (gicd::IGROUPR, BitOp::Group),
    (gicd::ISENABLER, BitOp::SetEnable),
    (gicd::ICENABLER, BitOp::ClearEnable),
    (gicd::ISPENDR, BitOp::SetPending),
    (gicd::ICPENDR, BitOp::ClearPending),
    (gicd::ISACTIVER, BitOp::SetActive),
    (gicd::ICACTIVER, BitOp::ClearActive),
];

impl DistReg {
    fn decode(offset: u64, width: Width) -> Result<DistReg, MmioError> {
        if offset >= regs::DIST_FRAME_SIZE {
            return Err(MmioError::OutsideFrame {
                offset,
                frame_size: regs::DIST_FRAME_SIZE,
            });
        }
        if !offset.is_multiple_of(width.bytes()) {
            return Err(MmioError::BadOffset { offset });
        }
        // Each arm gives the register and the widths it allows (IHI 0069, "GIC memory-mapped register access").
        let (reg, widths) = match offset {
            gicd::CTLR => (DistReg::Ctlr, WORD),
            gicd::TYPER => (DistReg::Typer, WORD),
            gicd::IIDR => (DistReg::Iidr, WORD),
            gicd::IGROUPR..gicd::IPRIORITYR => {
                let (base, op) = BIT_REGISTERS[((offset - gicd::IGROUPR) / 0x80) as usize];
                let n = ((offset - base) / 4) as u32;
                // With affinity routing, register 0 (SGIs and PPIs) is RES0 here.
                let reg = if n == 0 {
                    DistReg::RazWi
                } else {
                    DistReg::Bits { op, first: 32 * n }
                };
                (reg, WORD)
            }
            gicd::IPRIORITYR..gicd::ITARGETSR => {
                // INTIDs 0..=31 are RES0 here; bytes past INTID 1019 are reserved.
                let first = (offset - gicd::IPRIORITYR) as u32;
                let reg = if first < 32 {
                    DistReg::RazWi
                } else {
                    DistReg::Priority { first }
                };
                (reg, BYTE_WORD)
            }
            // ITARGETSR, CPENDSGIR, SPENDSGIR: RES0 with affinity routing, byte-accessible.
            gicd::ITARGETSR..gicd::ICFGR | gicd::CPENDSGIR..SGI_PEND_END => {
                (DistReg::RazWi, BYTE_WORD)
            }
            gicd::ICFGR..gicd::IGRPMODR => {
                let n = ((offset - gicd::ICFGR) / 4) as u32;
                let reg = if n < 2 {
                    DistReg::RazWi
                } else {
                    DistReg::Config { first: 16 * n }
                };
                (reg, WORD)
            }
            gicd::IROUTER..gicd::IROUTER_END => {
                let intid = ((offset - gicd::IROUTER) / 8) as u32;
                let half = match (width, offset & 4) {
                    (Width::Double, _) => Half::Whole,
                    (_, 0) => Half::Low,
                    _ => Half::High,
                };
                let reg = if intid < 32 {
                    DistReg::RazWi
                } else {
                    DistReg::Router { intid, half }
                };
                (reg, WORD_DOUBLE)
            }
            gicd::ID_BASE.. => {
                let index = ((offset - gicd::ID_BASE) / 4) as usize;
                (DistReg::Id { index }, WORD)
            }
            // IGRPMODR, NSACR (DS = 1), SGIR (affinity routing), TYPER2, STATUSR and every
            // reserved offset: RES0.
            _ => (DistReg::RazWi, WORD),
        };
        require(offset, width, widths)?;
        Ok(reg)
    }
}

impl<const VCPUS: usize, const SPIS: usize> Vgic<VCPUS, SPIS> {
    /// `GICD_TYPER`: `ITLinesNumber` covers the highest owned SPI; 16 INTID bits; `A3V`,
    /// `RSS`; no LPIs, MBIS, ESPI, NMI or security extension; `CPUNumber` 0 (no legacy
    /// routing).
    fn gicd_typer(&self) -> u32 {
        let highest = self.spis().last().map_or(31, |s| s.intid);
        let lines = (highest + 1).div_ceil(32) - 1;
        (lines & typer::IT_LINES_NUMBER_MASK)
            | (typer::IDBITS_16 << typer::IDBITS_SHIFT)
            | typer::A3V
            | typer::RSS
    }

    fn gicd_ctlr(&self) -> u32 {
        let mut value = ctlr::ARE | ctlr::DS;
        if self.enable_grp0 {
            value |= ctlr::ENABLE_GRP0;
        }
        if self.enable_grp1 {
            value |= ctlr::ENABLE_GRP1;
        }
        value
    }

    /// A guest read of the Distributor frame.
    ///
    /// # Errors
    /// [`MmioError`] for a width or alignment the register does not allow, or an offset
    /// past the 64 KiB frame.
    pub fn dist_read(&self, offset: u64, width: Width) -> Result<u64, MmioError> {
        let value = match DistReg::decode(offset, width)? {
            DistReg::Ctlr => u64::from(self.gicd_ctlr()),
            DistReg::Typer => u64::from(self.gicd_typer()),
            DistReg::Iidr => u64::from(regs::IIDR),
            // The bank does not matter for SPIs.
            DistReg::Bits { op, first } => u64::from(self.read_bits(0, first, op)),
            DistReg::Priority { first } => self.read_priorities(0, first, width.bytes() as u32),
            DistReg::Config { first } => u64::from(self.read_config(0, first)),
            DistReg::Router { intid, half } => {
                let route = self.spi_slot(intid).map_or(0, |slot| self.spis[slot].route);
                match half {
                    Half::Whole => route,
                    Half::Low => route & 0xFFFF_FFFF,
                    Half::High => route >> 32,
                }
            }
            DistReg::Id { index } => u64::from(regs::ID_REGISTERS.get(index).copied().unwrap_or(0)),
            DistReg::RazWi => 0,
        };
        Ok(value & width.mask())
    }

    /// A guest write to the Distributor frame by the guest on `vcpu`. `value` is truncated
    /// to `width`.
    ///
    /// # Errors
    /// [`MmioError`] for a width or alignment the register does not allow, or an offset
    /// past the 64 KiB frame. Nothing changed.
    pub fn dist_write(
        &mut self,
        vcpu: usize,
        offset: u64,
        width: Width,
        value: u64,
    ) -> Result<WriteOutcome, MmioError> {
        let value = value & width.mask();
        let mut out = WriteOutcome::default();
        match DistReg::decode(offset, width)? {
            DistReg::Ctlr => {
                let before = (self.enable_grp0, self.enable_grp1);
                self.enable_grp0 = value & u64::from(ctlr::ENABLE_GRP0) != 0;
                self.enable_grp1 = value & u64::from(ctlr::ENABLE_GRP1) != 0;
                if before.1 != self.enable_grp1 {
                    // Forwarding changed for every interrupt: every other vCPU re-flushes.
                    for other in (0..self.vcpu_count).filter(|&v| v != vcpu) {
                        out.kick |= 1 << other;
                    }
                }
            }
            DistReg::Bits { op, first } => {
                out = self.write_bits(0, first, op, value as u32, vcpu);
            }
            DistReg::Priority { first } => {
                self.write_priorities(0, first, width.bytes() as u32, value);
            }
            DistReg::Config { first } => {
                for i in 0..16 {
                    if let Some(slot) = self.spi_slot(first + i) {
                        // A level line that is high turns pending as it becomes level.
                        self.state_mut(Irq::Spi { slot }).edge = value & (2 << (2 * i)) != 0;
                    }
                }
            }
            DistReg::Router { intid, half } => {
                if let Some(slot) = self.spi_slot(intid) {
                    self.write_router(slot, half, value, vcpu, &mut out);
                }
            }
            DistReg::Typer | DistReg::Iidr | DistReg::Id { .. } | DistReg::RazWi => {}
        }
        Ok(out)
    }

    fn write_router(
        &mut self,
        slot: usize,
        half: Half,
        value: u64,
        writer: usize,
        out: &mut WriteOutcome,
    ) {
        let old = self.spis[slot].route;
        let new = match half {
            Half::Whole => value,
            Half::Low => (old & !0xFFFF_FFFF) | value,
            Half::High => (old & 0xFFFF_FFFF) | (value << 32),
        } & irouter::WRITABLE;
        if new == old {
            return;
        }
        let irq = Irq::Spi { slot };
        let old_target = self.target(irq);
        self.spis[slot].route = new;
        let new_target = self.target(irq);
        let spi = self.spis[slot];
        if let Some(hw_intid) = spi.hw
            && spi.state.enabled
            && old_target != new_target
        {
            let effect = match new_target {
                Some(vcpu) => super::Effect::EnablePhysical { hw_intid, vcpu },
                None => super::Effect::DisablePhysical {
                    hw_intid,
                    vcpu: old_target.unwrap_or(0),
                },
            };
            let _ = out.effects.push(effect);
        }
        self.note_change(irq, writer, &mut out.kick);
    }
}
