//! The virtual GICv3 (`tessera_vdev::vgic`) under a random guest: Distributor or
//! Redistributor/SGI-frame accesses from any vCPU, interleaved with emulated lines, physical
//! arrivals, SGIs and runs of the vCPUs (sync of what the guest did to its List Registers,
//! then flush).
//!
//! Invariants checked (IHI 0069 semantics as the model documents them):
//! - an interrupt the VM does not own never reads enabled, pending, active or Group 1, never
//!   has a priority or a route, and is never loaded into a List Register;
//! - a List Register is loaded with a nonzero state, an owned INTID, and `HW` only with the
//!   physical INTID it is linked to; unused List Registers are written 0; an SPI sits in at
//!   most one vCPU's List Registers;
//! - a read is masked to its width; an offset past the frame (or a Redistributor the VM
//!   does not have) is refused, one inside it never reads as outside;
//! - kick masks and effects name only the VM's vCPUs and linked physical INTIDs, and a write
//!   never kicks its writer.

use arbitrary::{Arbitrary, Unstructured};
use tessera_vdev::mmio::MmioError;
use tessera_vdev::vgic::regs::{
    DIST_FRAME_SIZE, REDIST_FRAME_PAIR_SIZE, SGI_BASE, gicd, gicr_sgi, lr,
};
use tessera_vdev::vgic::{Effect, OwnedIrq, Vgic, VgicConfig, WriteOutcome};

use crate::{offset, width};

type V = Vgic<4, 8>;

const VCPUS: usize = 4;
/// vCPU affinities 0.0.0.0, 0.0.0.1, 0.0.1.0, 1.0.0.0.
const MPIDRS: [u64; VCPUS] = [0x8000_0000, 0x8000_0001, 0x8000_0100, 0x1_8000_0000];
const VTIMER: u32 = 27;
const PPIS: [OwnedIrq; 1] = [OwnedIrq {
    intid: VTIMER,
    hw: Some(VTIMER),
}];
const UART_SPI: u32 = 33;
const PASS_SPI: u32 = 40;
const PASS_HW: u32 = 72;
const SPARE_SPI: u32 = 100;
const SPIS: [OwnedIrq; 3] = [
    OwnedIrq {
        intid: UART_SPI,
        hw: None,
    },
    OwnedIrq {
        intid: PASS_SPI,
        hw: Some(PASS_HW),
    },
    OwnedIrq {
        intid: SPARE_SPI,
        hw: None,
    },
];

fn owned(intid: u32) -> bool {
    intid < 16 || intid == VTIMER || [UART_SPI, PASS_SPI, SPARE_SPI].contains(&intid)
}

/// The physical INTID virtual `intid` is linked to.
fn linked_hw(intid: u32) -> Option<u32> {
    match intid {
        VTIMER => Some(VTIMER),
        PASS_SPI => Some(PASS_HW),
        _ => None,
    }
}

/// Which frame the guest pokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frames {
    Distributor,
    Redistributor,
}

/// Runs one input.
pub fn run(data: &[u8], frames: Frames) {
    let mut u = Unstructured::new(data);
    let mut v = V::new(&VgicConfig {
        mpidrs: &MPIDRS,
        ppis: &PPIS,
        spis: &SPIS,
    })
    .expect("a valid config");
    // What each vCPU's List Registers hold between its flush and its sync.
    let mut loaded: [Option<Vec<u64>>; VCPUS] = Default::default();
    while !u.is_empty() {
        if step(&mut u, &mut v, &mut loaded, frames).is_err() {
            break;
        }
    }
    check_unowned_never_set(&v);
}

fn step(
    u: &mut Unstructured<'_>,
    v: &mut V,
    loaded: &mut [Option<Vec<u64>>; VCPUS],
    frames: Frames,
) -> arbitrary::Result<()> {
    let writer = usize::from(u8::arbitrary(u)?) % VCPUS;
    match u8::arbitrary(u)? % 8 {
        0 | 1 if frames == Frames::Distributor => {
            let (offset, width) = (offset(u, DIST_FRAME_SIZE)?, width(u)?);
            match v.dist_read(offset, width) {
                Ok(value) => assert_eq!(value & !width.mask(), 0, "read wider than {width:?}"),
                Err(error) => check_error(error, offset, DIST_FRAME_SIZE),
            }
        }
        2 | 3 if frames == Frames::Distributor => {
            let (offset, width, value) =
                (offset(u, DIST_FRAME_SIZE)?, width(u)?, u64::arbitrary(u)?);
            match v.dist_write(writer, offset, width, value) {
                Ok(out) => check_outcome(&out, writer),
                Err(error) => check_error(error, offset, DIST_FRAME_SIZE),
            }
            check_unowned_never_set(v);
        }
        0 | 1 => {
            let frame = usize::from(u8::arbitrary(u)? % 6);
            let (offset, width) = (offset(u, REDIST_FRAME_PAIR_SIZE)?, width(u)?);
            match v.redist_read(frame, offset, width) {
                Ok(value) => {
                    assert!(frame < VCPUS, "read of Redistributor {frame}");
                    assert_eq!(value & !width.mask(), 0, "read wider than {width:?}");
                }
                Err(error) if frame < VCPUS => check_error(error, offset, REDIST_FRAME_PAIR_SIZE),
                Err(_) => {}
            }
        }
        2 | 3 => {
            let frame = usize::from(u8::arbitrary(u)? % 6);
            let (offset, width, value) = (
                offset(u, REDIST_FRAME_PAIR_SIZE)?,
                width(u)?,
                u64::arbitrary(u)?,
            );
            match v.redist_write(writer, frame, offset, width, value) {
                Ok(out) => {
                    assert!(frame < VCPUS, "write to Redistributor {frame}");
                    check_outcome(&out, writer);
                }
                Err(error) if frame < VCPUS => check_error(error, offset, REDIST_FRAME_PAIR_SIZE),
                Err(_) => {}
            }
            check_unowned_never_set(v);
        }
        4 => {
            let intid = u32::from(u16::arbitrary(u)? % 1100);
            check_mask(v.set_level(intid, bool::arbitrary(u)?));
        }
        5 => {
            let hw = match u8::arbitrary(u)? % 3 {
                0 => PASS_HW,
                1 => VTIMER,
                _ => u32::from(u16::arbitrary(u)? % 1100),
            };
            check_mask(v.hw_fired(hw, usize::from(u8::arbitrary(u)? % 6)));
        }
        6 => check_mask(v.send_sgi(writer, u64::arbitrary(u)?)),
        _ => run_vcpu(u, v, loaded, writer)?,
    }
    Ok(())
}

/// The guest on `vcpu` ran: what it did to its List Registers is synced, then they are flushed.
fn run_vcpu(
    u: &mut Unstructured<'_>,
    v: &mut V,
    loaded: &mut [Option<Vec<u64>>; VCPUS],
    vcpu: usize,
) -> arbitrary::Result<()> {
    if let Some(mut lrs) = loaded[vcpu].take() {
        for value in &mut lrs {
            // The guest acknowledges (pending -> active), deactivates, or leaves it.
            let state = u64::from(u8::arbitrary(u)? & 3);
            *value = (*value & !(3 << lr::STATE_SHIFT)) | (state << lr::STATE_SHIFT);
        }
        check_mask(v.sync(vcpu, &lrs));
    }
    let count = 1 + usize::from(u8::arbitrary(u)? % 16);
    let mut lrs = vec![u64::MAX; count];
    let flush = v.flush(vcpu, &mut lrs);
    assert!(
        flush.used <= count,
        "{} List Registers used of {count}",
        flush.used
    );
    assert!(
        lrs[flush.used..].iter().all(|&x| x == 0),
        "unused List Registers not zero: {lrs:x?}"
    );
    for &value in &lrs[..flush.used] {
        let intid = (value & lr::VINTID_MASK) as u32;
        assert!(owned(intid), "unowned INTID {intid} loaded: {value:#x}");
        assert_ne!(
            value >> lr::STATE_SHIFT,
            0,
            "an invalid List Register counted as used"
        );
        if value & lr::HW != 0 {
            let pintid = ((value & lr::PINTID_MASK) >> lr::PINTID_SHIFT) as u32;
            assert_eq!(
                Some(pintid),
                linked_hw(intid),
                "HW List Register for INTID {intid}"
            );
        }
        if intid >= 32 {
            for (other, held) in loaded.iter().enumerate() {
                if other != vcpu
                    && let Some(held) = held
                {
                    assert!(
                        held.iter()
                            .all(|h| (h & lr::VINTID_MASK) as u32 != intid
                                || h >> lr::STATE_SHIFT == 0),
                        "SPI {intid} in the List Registers of vCPUs {vcpu} and {other}"
                    );
                }
            }
        }
    }
    lrs.truncate(flush.used);
    loaded[vcpu] = Some(lrs);
    Ok(())
}

fn check_error(error: MmioError, offset: u64, frame: u64) {
    match error {
        MmioError::OutsideFrame { .. } => {
            assert!(offset >= frame, "{offset:#x} refused as outside the frame")
        }
        MmioError::BadOffset { .. } | MmioError::BadWidth { .. } => {
            assert!(
                offset < frame,
                "{offset:#x} past the frame refused as {error:?}"
            );
        }
    }
}

fn check_mask(kick: u32) {
    assert_eq!(
        kick >> VCPUS,
        0,
        "kick or target mask {kick:#b} names vCPUs the VM does not have"
    );
}

fn check_outcome(out: &WriteOutcome, writer: usize) {
    check_mask(out.kick);
    assert_eq!(out.kick & (1 << writer), 0, "the writer {writer} is kicked");
    for effect in &out.effects {
        let (Effect::EnablePhysical { hw_intid, vcpu }
        | Effect::DisablePhysical { hw_intid, vcpu }
        | Effect::PendPhysical { hw_intid, vcpu }
        | Effect::DeactivatePhysical { hw_intid, vcpu }) = *effect;
        assert!(
            hw_intid == PASS_HW || hw_intid == VTIMER,
            "effect on unlinked INTID: {effect:?}"
        );
        assert!(vcpu < VCPUS, "effect on vCPU {vcpu}");
    }
}

/// No unowned INTID reads enabled, pending, active or Group 1, or has a priority or route.
fn check_unowned_never_set(v: &V) {
    use tessera_vdev::mmio::Width::{Byte, Double, Word};
    for n in 1..32u32 {
        for base in [
            gicd::ISENABLER,
            gicd::ISPENDR,
            gicd::ISACTIVER,
            gicd::IGROUPR,
        ] {
            let bits = v
                .dist_read(base + 4 * u64::from(n), Word)
                .expect("a bit register");
            for bit in 0..32 {
                let intid = 32 * n + bit;
                assert!(
                    bits & (1 << bit) == 0 || owned(intid),
                    "unowned INTID {intid} set at {base:#x}"
                );
            }
        }
    }
    for intid in [34u32, 41, 99, 101, 1019] {
        assert_eq!(
            v.dist_read(gicd::IPRIORITYR + u64::from(intid), Byte),
            Ok(0),
            "INTID {intid} priority"
        );
        assert_eq!(
            v.dist_read(gicd::IROUTER + 8 * u64::from(intid), Double),
            Ok(0),
            "INTID {intid} route"
        );
    }
    for frame in 0..VCPUS {
        for offset in [
            gicr_sgi::ISENABLER0,
            gicr_sgi::ISPENDR0,
            gicr_sgi::ISACTIVER0,
        ] {
            let bits = v
                .redist_read(frame, SGI_BASE + offset, Word)
                .expect("a bit register");
            assert_eq!(
                bits & !(0xFFFF | (1 << VTIMER)),
                0,
                "unowned PPI set at {offset:#x} of {frame}"
            );
        }
    }
}
