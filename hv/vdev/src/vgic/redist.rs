//! The Redistributor frame pairs (`GICR_*`, `RD_base` and `SGI_base`, IHI 0069 chapter 12):
//! decoding and emulation. Frame pair `n` belongs to vCPU `n`.

use super::dist::{Half, require};
use super::regs::{self, gicr, gicr_sgi, gicr_typer, waker};
use super::{BitOp, Vgic, WriteOutcome};
use crate::mmio::{MmioError, Width};

const WORD: &[Width] = &[Width::Word];
const BYTE_WORD: &[Width] = &[Width::Byte, Width::Word];
const WORD_DOUBLE: &[Width] = &[Width::Word, Width::Double];

/// A decoded Redistributor access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RedistReg {
    Iidr,
    Typer(Half),
    Waker,
    Id {
        index: usize,
    },
    Bits(BitOp),
    /// `GICR_IPRIORITYR` bytes starting at INTID `first`.
    Priority {
        first: u32,
    },
    /// `GICR_ICFGR0` (SGIs) or `GICR_ICFGR1` (PPIs), covering `first..first + 16`.
    Config {
        first: u32,
    },
    RazWi,
}

impl RedistReg {
    fn decode(offset: u64, width: Width) -> Result<RedistReg, MmioError> {
        if offset >= regs::REDIST_FRAME_PAIR_SIZE {
            return Err(MmioError::OutsideFrame {
                offset,
                frame_size: regs::REDIST_FRAME_PAIR_SIZE,
            });
        }
        if !offset.is_multiple_of(width.bytes()) {
            return Err(MmioError::BadOffset { offset });
        }
        let (reg, widths) = if offset < regs::SGI_BASE {
            match offset {
                gicr::IIDR => (RedistReg::Iidr, WORD),
                gicr::TYPER => {
                    let half = if width == Width::Double {
                        Half::Whole
                    } else {
                        Half::Low
                    };
                    (RedistReg::Typer(half), WORD_DOUBLE)
                }
                o if o == gicr::TYPER + 4 => (RedistReg::Typer(Half::High), WORD),
                gicr::WAKER => (RedistReg::Waker, WORD),
                // The LPI registers are RES0 (`GICR_TYPER.PLPIS` = 0) but keep their width.
                gicr::SETLPIR
                | gicr::CLRLPIR
                | gicr::PROPBASER
                | gicr::PENDBASER
                | gicr::INVLPIR
                | gicr::INVALLR => (RedistReg::RazWi, WORD_DOUBLE),
                gicr::ID_BASE.. => {
                    let index = ((offset - gicr::ID_BASE) / 4) as usize;
                    (RedistReg::Id { index }, WORD)
                }
                // GICR_CTLR (no LPIs: EnableLPIs, RWP and the rest read 0), STATUSR, SYNCR
                // and every reserved offset: RES0.
                _ => (RedistReg::RazWi, WORD),
            }
        } else {
            let sgi_offset = offset - regs::SGI_BASE;
            match sgi_offset {
                gicr_sgi::IGROUPR0 => (RedistReg::Bits(BitOp::Group), WORD),
                gicr_sgi::ISENABLER0 => (RedistReg::Bits(BitOp::SetEnable), WORD),
                gicr_sgi::ICENABLER0 => (RedistReg::Bits(BitOp::ClearEnable), WORD),
                gicr_sgi::ISPENDR0 => (RedistReg::Bits(BitOp::SetPending), WORD),
                gicr_sgi::ICPENDR0 => (RedistReg::Bits(BitOp::ClearPending), WORD),
                gicr_sgi::ISACTIVER0 => (RedistReg::Bits(BitOp::SetActive), WORD),
                gicr_sgi::ICACTIVER0 => (RedistReg::Bits(BitOp::ClearActive), WORD),
                IPRIORITYR_FIRST..IPRIORITYR_END => {
                    let first = (sgi_offset - gicr_sgi::IPRIORITYR) as u32;
                    (RedistReg::Priority { first }, BYTE_WORD)
                }
                gicr_sgi::ICFGR0 => (RedistReg::Config { first: 0 }, WORD),
                gicr_sgi::ICFGR1 => (RedistReg::Config { first: 16 }, WORD),
                // IGRPMODR0 and NSACR (DS = 1), the extended PPI registers (none) and every
                // reserved offset: RES0.
                _ => (RedistReg::RazWi, WORD),
            }
        };
        require(offset, width, widths)?;
        Ok(reg)
    }
}

const IPRIORITYR_FIRST: u64 = gicr_sgi::IPRIORITYR;
/// One past `GICR_IPRIORITYR7`.
const IPRIORITYR_END: u64 = gicr_sgi::IPRIORITYR + 32;

impl<const VCPUS: usize, const SPIS: usize> Vgic<VCPUS, SPIS> {
    /// `GICR_TYPER` of vCPU `vcpu`: its affinity, `Processor_Number` = `vcpu`, `Last` on the
    /// final vCPU; no LPIs (`PLPIS`, `VLPIS`, `DirectLPI` = 0), no extended PPIs.
    fn gicr_typer(&self, vcpu: usize) -> u64 {
        let mut value = (u64::from(self.affinity[vcpu]) << gicr_typer::AFFINITY_SHIFT)
            | ((vcpu as u64 & 0xFFFF) << gicr_typer::PROCESSOR_NUMBER_SHIFT);
        if vcpu + 1 == self.vcpu_count {
            value |= gicr_typer::LAST;
        }
        value
    }

    fn frame_check(&self, frame_vcpu: usize, offset: u64) -> Result<(), MmioError> {
        if frame_vcpu < self.vcpu_count {
            Ok(())
        } else {
            // Past the last frame pair of the VM's Redistributor region.
            let frame_offset = (frame_vcpu as u64)
                .saturating_mul(regs::REDIST_FRAME_PAIR_SIZE)
                .saturating_add(offset);
            Err(MmioError::OutsideFrame {
                offset: frame_offset,
                frame_size: (self.vcpu_count as u64) * regs::REDIST_FRAME_PAIR_SIZE,
            })
        }
    }

    /// A guest read of vCPU `frame_vcpu`'s Redistributor, `offset` bytes into its frame pair
    /// (`SGI_base` starts at 64 KiB).
    ///
    /// # Errors
    /// [`MmioError`] for a width or alignment the register does not allow, an offset past
    /// the 128 KiB frame pair, or a `frame_vcpu` the VM does not have ([`MmioError::OutsideFrame`]
    /// with the offset from the start of the Redistributor region).
    pub fn redist_read(
        &self,
        frame_vcpu: usize,
        offset: u64,
        width: Width,
    ) -> Result<u64, MmioError> {
        let reg = RedistReg::decode(offset, width)?;
        self.frame_check(frame_vcpu, offset)?;
        let value = match reg {
            RedistReg::Iidr => u64::from(regs::IIDR),
            RedistReg::Typer(half) => {
                let typer = self.gicr_typer(frame_vcpu);
                match half {
                    Half::Whole => typer,
                    Half::Low => typer & 0xFFFF_FFFF,
                    Half::High => typer >> 32,
                }
            }
            RedistReg::Waker => {
                if self.redists[frame_vcpu].processor_sleep {
                    u64::from(waker::PROCESSOR_SLEEP | waker::CHILDREN_ASLEEP)
                } else {
                    0
                }
            }
            RedistReg::Id { index } => {
                u64::from(regs::ID_REGISTERS.get(index).copied().unwrap_or(0))
            }
            RedistReg::Bits(op) => u64::from(self.read_bits(frame_vcpu, 0, op)),
            RedistReg::Priority { first } => {
                self.read_priorities(frame_vcpu, first, width.bytes() as u32)
            }
            RedistReg::Config { first } => u64::from(self.read_config(frame_vcpu, first)),
            RedistReg::RazWi => 0,
        };
        Ok(value & width.mask())
    }

    /// A guest write by the guest on `vcpu` to vCPU `frame_vcpu`'s Redistributor, `offset`
    /// bytes into its frame pair. `value` is truncated to `width`.
    ///
    /// # Errors
    /// As [`redist_read`](Self::redist_read). Nothing changed.
    pub fn redist_write(
        &mut self,
        vcpu: usize,
        frame_vcpu: usize,
        offset: u64,
        width: Width,
        value: u64,
    ) -> Result<WriteOutcome, MmioError> {
        let reg = RedistReg::decode(offset, width)?;
        self.frame_check(frame_vcpu, offset)?;
        let value = value & width.mask();
        let mut out = WriteOutcome::default();
        match reg {
            RedistReg::Waker => {
                // ChildrenAsleep follows ProcessorSleep at once: there is nothing to quiesce.
                self.redists[frame_vcpu].processor_sleep =
                    value & u64::from(waker::PROCESSOR_SLEEP) != 0;
            }
            RedistReg::Bits(op) => {
                out = self.write_bits(frame_vcpu, 0, op, value as u32, vcpu);
            }
            RedistReg::Priority { first } => {
                self.write_priorities(frame_vcpu, first, width.bytes() as u32, value);
                if frame_vcpu != vcpu && frame_vcpu < super::MAX_VCPUS {
                    out.kick |= 1 << frame_vcpu; // its List Register order may change
                }
            }
            // SGIs are always edge and PPIs always level: ICFGR0/1 are read-only here.
            RedistReg::Config { .. }
            | RedistReg::Iidr
            | RedistReg::Typer(_)
            | RedistReg::Id { .. }
            | RedistReg::RazWi => {}
        }
        Ok(out)
    }
}
