//! Host tests of the virtual GICv3: every register and width, ownership, delivery through
//! the List Registers, SGI targeting, and a property test over random guest behaviour.

#![allow(clippy::unwrap_used, reason = "tests")]

use super::regs::{gicd, gicr, gicr_sgi, lr};
use super::*;
use crate::mmio::{MmioError, Width};

type V = Vgic<4, 8>;

const ALL_WIDTHS: [Width; 4] = [Width::Byte, Width::Half, Width::Word, Width::Double];

/// vCPU MPIDRs: 0.0.0.0, 0.0.0.1, 0.0.1.0, 1.0.0.0 (bit 31, RES1 in MPIDR_EL1, is ignored).
const MPIDRS: [u64; 4] = [0x8000_0000, 0x8000_0001, 0x8000_0100, 0x1_8000_0000];
const UART_SPI: u32 = 33;
const PASS_SPI: u32 = 40;
const PASS_HW: u32 = 72;
const SPARE_SPI: u32 = 100;
const VTIMER: u32 = 27;

const PPIS: [OwnedIrq; 1] = [OwnedIrq {
    intid: VTIMER,
    hw: Some(VTIMER),
}];
const SPIS: [OwnedIrq; 3] = [
    OwnedIrq {
        intid: SPARE_SPI,
        hw: None,
    },
    OwnedIrq {
        intid: UART_SPI,
        hw: None,
    },
    OwnedIrq {
        intid: PASS_SPI,
        hw: Some(PASS_HW),
    },
];

fn owned(intid: u32) -> bool {
    intid < 16 || intid == VTIMER || [UART_SPI, PASS_SPI, SPARE_SPI].contains(&intid)
}

fn vgic() -> V {
    V::new(&VgicConfig {
        mpidrs: &MPIDRS,
        ppis: &PPIS,
        spis: &SPIS,
    })
    .unwrap()
}

fn dread(v: &V, offset: u64) -> u64 {
    v.dist_read(offset, Width::Word).unwrap()
}

fn dwrite(v: &mut V, vcpu: usize, offset: u64, value: u64) -> WriteOutcome {
    v.dist_write(vcpu, offset, Width::Word, value).unwrap()
}

fn rread(v: &V, frame: usize, offset: u64) -> u64 {
    v.redist_read(frame, offset, Width::Word).unwrap()
}

fn rwrite(v: &mut V, frame: usize, offset: u64, value: u64) -> WriteOutcome {
    v.redist_write(frame, frame, offset, Width::Word, value)
        .unwrap()
}

/// The 32-bit register of family `base` holding `intid`, and its bit.
fn reg_bit(base: u64, intid: u32) -> (u64, u64) {
    (base + 4 * u64::from(intid / 32), 1 << (intid % 32))
}

fn set_spi(v: &mut V, base: u64, intid: u32) -> WriteOutcome {
    let (offset, bit) = reg_bit(base, intid);
    dwrite(v, 0, offset, bit)
}

fn spi_bit(v: &V, base: u64, intid: u32) -> bool {
    let (offset, bit) = reg_bit(base, intid);
    dread(v, offset) & bit != 0
}

fn enable_dist(v: &mut V) {
    dwrite(v, 0, gicd::CTLR, u64::from(regs::ctlr::ENABLE_GRP1));
}

fn sgi_offset(offset: u64) -> u64 {
    regs::SGI_BASE + offset
}

fn lr_state(value: u64) -> u64 {
    value >> lr::STATE_SHIFT
}

fn with_state(value: u64, state: u64) -> u64 {
    (value & !(3 << lr::STATE_SHIFT)) | (state << lr::STATE_SHIFT)
}

// ---- Construction ---------------------------------------------------------------------

#[test]
fn config_errors() {
    let ok_mpidrs = [0u64, 1];
    let cases: [(VgicConfig<'_>, VgicError); 9] = [
        (
            VgicConfig {
                mpidrs: &[],
                ppis: &[],
                spis: &[],
            },
            VgicError::NoVcpus,
        ),
        (
            VgicConfig {
                mpidrs: &[0, 1, 2, 3, 4],
                ppis: &[],
                spis: &[],
            },
            VgicError::TooManyVcpus {
                count: 5,
                capacity: 4,
            },
        ),
        (
            VgicConfig {
                mpidrs: &[0x1, 0x8000_0001],
                ppis: &[],
                spis: &[],
            },
            VgicError::DuplicateAffinity { vcpu: 1, other: 0 },
        ),
        (
            VgicConfig {
                mpidrs: &ok_mpidrs,
                ppis: &[OwnedIrq {
                    intid: 32,
                    hw: None,
                }],
                spis: &[],
            },
            VgicError::NotAPpi { intid: 32 },
        ),
        (
            VgicConfig {
                mpidrs: &ok_mpidrs,
                ppis: &[],
                spis: &[OwnedIrq {
                    intid: 1020,
                    hw: None,
                }],
            },
            VgicError::NotAnSpi { intid: 1020 },
        ),
        (
            VgicConfig {
                mpidrs: &ok_mpidrs,
                ppis: &[],
                spis: &[
                    OwnedIrq {
                        intid: 40,
                        hw: None,
                    },
                    OwnedIrq {
                        intid: 40,
                        hw: None,
                    },
                ],
            },
            VgicError::DuplicateIntid { intid: 40 },
        ),
        (
            VgicConfig {
                mpidrs: &ok_mpidrs,
                ppis: &[],
                spis: &[OwnedIrq {
                    intid: 32,
                    hw: None,
                }; 9],
            },
            VgicError::TooManySpis {
                count: 9,
                capacity: 8,
            },
        ),
        (
            VgicConfig {
                mpidrs: &ok_mpidrs,
                ppis: &[OwnedIrq {
                    intid: 27,
                    hw: Some(40),
                }],
                spis: &[],
            },
            VgicError::BadHwIntid { intid: 27, hw: 40 },
        ),
        (
            VgicConfig {
                mpidrs: &ok_mpidrs,
                ppis: &[],
                spis: &[
                    OwnedIrq {
                        intid: 40,
                        hw: Some(50),
                    },
                    OwnedIrq {
                        intid: 41,
                        hw: Some(50),
                    },
                ],
            },
            VgicError::DuplicateHwIntid { hw: 50 },
        ),
    ];
    for (config, error) in cases {
        assert_eq!(V::new(&config).err(), Some(error));
    }
    // A PPI listed twice, and an SPI linked to a PPI.
    let twice = [OwnedIrq {
        intid: 27,
        hw: None,
    }; 2];
    assert_eq!(
        V::new(&VgicConfig {
            mpidrs: &ok_mpidrs,
            ppis: &twice,
            spis: &[]
        })
        .err(),
        Some(VgicError::DuplicateIntid { intid: 27 })
    );
    let spi_to_ppi = [OwnedIrq {
        intid: 40,
        hw: Some(27),
    }];
    assert_eq!(
        V::new(&VgicConfig {
            mpidrs: &ok_mpidrs,
            ppis: &[],
            spis: &spi_to_ppi
        })
        .err(),
        Some(VgicError::BadHwIntid { intid: 40, hw: 27 })
    );
    assert_eq!(vgic().vcpu_count(), 4);
}

// ---- Distributor identification and control -------------------------------------------

#[test]
fn gicd_ctlr() {
    let mut v = vgic();
    assert_eq!(dread(&v, gicd::CTLR), 0x50, "ARE and DS, nothing enabled");
    dwrite(&mut v, 0, gicd::CTLR, 0xFFFF_FFFF);
    assert_eq!(
        dread(&v, gicd::CTLR),
        0x53,
        "EnableGrp0/1 stored; RWP reads 0"
    );
    let out = dwrite(&mut v, 0, gicd::CTLR, 0);
    assert_eq!(dread(&v, gicd::CTLR), 0x50, "ARE and DS cannot be cleared");
    assert_eq!(
        out.kick, 0b1110,
        "disabling forwarding re-flushes the others"
    );
}

#[test]
fn gicd_typer() {
    let v = vgic();
    // Highest SPI 100: ITLinesNumber = 3 (INTIDs up to 127); IDbits 15; A3V; RSS.
    assert_eq!(
        dread(&v, gicd::TYPER),
        3 | (15 << 19) | (1 << 24) | (1 << 26)
    );
    let none = V::new(&VgicConfig {
        mpidrs: &[0],
        ppis: &[],
        spis: &[],
    })
    .unwrap();
    assert_eq!(dread(&none, gicd::TYPER) & 0x1F, 0);
    let top = [OwnedIrq {
        intid: 1019,
        hw: None,
    }];
    let top = V::new(&VgicConfig {
        mpidrs: &[0],
        ppis: &[],
        spis: &top,
    })
    .unwrap();
    assert_eq!(dread(&top, gicd::TYPER) & 0x1F, 31);
    let edge = [OwnedIrq {
        intid: 63,
        hw: None,
    }];
    let edge = V::new(&VgicConfig {
        mpidrs: &[0],
        ppis: &[],
        spis: &edge,
    })
    .unwrap();
    assert_eq!(dread(&edge, gicd::TYPER) & 0x1F, 1);
    // No LPIs, MBIS, security extension.
    assert_eq!(
        dread(&v, gicd::TYPER) & ((1 << 16) | (1 << 17) | (1 << 10)),
        0
    );
}

#[test]
fn identification_registers() {
    let mut v = vgic();
    assert_eq!(dread(&v, gicd::IIDR), u64::from(regs::IIDR));
    assert_eq!(dread(&v, gicd::PIDR2), 0x3B);
    assert_eq!((dread(&v, gicd::PIDR2) >> 4) & 0xF, 3, "ArchRev: GICv3");
    assert_eq!(dread(&v, gicd::TYPER2), 0);
    for vcpu in 0..4 {
        assert_eq!(rread(&v, vcpu, gicr::PIDR2), 0x3B);
        assert_eq!(rread(&v, vcpu, gicr::IIDR), u64::from(regs::IIDR));
    }
    let cidrs: std::vec::Vec<u64> = (0..4).map(|i| dread(&v, 0xFFF0 + 4 * i)).collect();
    assert_eq!(cidrs, [0x0D, 0xF0, 0x05, 0xB1]);
    // Read-only: writes are ignored.
    dwrite(&mut v, 0, gicd::PIDR2, 0);
    dwrite(&mut v, 0, gicd::TYPER, 0);
    dwrite(&mut v, 0, gicd::IIDR, 0);
    assert_eq!(dread(&v, gicd::PIDR2), 0x3B);
    assert_eq!(dread(&v, gicd::IIDR), u64::from(regs::IIDR));
}

// ---- Widths and offsets ----------------------------------------------------------------

/// (offset, widths that must be accepted) in the Distributor frame.
const DIST_TABLE: &[(u64, &[Width])] = &[
    (gicd::CTLR, &[Width::Word]),
    (gicd::TYPER, &[Width::Word]),
    (gicd::IIDR, &[Width::Word]),
    (gicd::TYPER2, &[Width::Word]),
    (0x0010, &[Width::Word]), // STATUSR
    (0x0040, &[Width::Word]), // SETSPI_NSR (no MBIS: reserved)
    (gicd::IGROUPR + 4, &[Width::Word]),
    (gicd::ISENABLER + 4, &[Width::Word]),
    (gicd::ICENABLER + 8, &[Width::Word]),
    (gicd::ISPENDR + 4, &[Width::Word]),
    (gicd::ICPENDR + 4, &[Width::Word]),
    (gicd::ISACTIVER + 4, &[Width::Word]),
    (gicd::ICACTIVER + 0x7C, &[Width::Word]),
    (gicd::IPRIORITYR, &[Width::Byte, Width::Word]),
    (gicd::IPRIORITYR + 33, &[Width::Byte]),
    (gicd::IPRIORITYR + 0x3F8, &[Width::Byte, Width::Word]),
    (gicd::ITARGETSR + 40, &[Width::Byte, Width::Word]),
    (gicd::ICFGR + 8, &[Width::Word]),
    (gicd::IGRPMODR + 4, &[Width::Word]),
    (gicd::NSACR + 8, &[Width::Word]),
    (gicd::SGIR, &[Width::Word]),
    (gicd::CPENDSGIR + 1, &[Width::Byte]),
    (gicd::SPENDSGIR + 4, &[Width::Byte, Width::Word]),
    (gicd::IROUTER, &[Width::Word, Width::Double]),
    (gicd::IROUTER + 8 * 40, &[Width::Word, Width::Double]),
    (gicd::IROUTER + 8 * 40 + 4, &[Width::Word]),
    (gicd::IROUTER + 8 * 1019, &[Width::Word, Width::Double]),
    (0x8000, &[Width::Word]), // reserved
    (gicd::PIDR2, &[Width::Word]),
    (0xFFFC, &[Width::Word]),
];

/// (offset, accepted widths) in a Redistributor frame pair.
const REDIST_TABLE: &[(u64, &[Width])] = &[
    (gicr::CTLR, &[Width::Word]),
    (gicr::IIDR, &[Width::Word]),
    (gicr::TYPER, &[Width::Word, Width::Double]),
    (gicr::TYPER + 4, &[Width::Word]),
    (gicr::STATUSR, &[Width::Word]),
    (gicr::WAKER, &[Width::Word]),
    (gicr::SETLPIR, &[Width::Word, Width::Double]),
    (gicr::PROPBASER, &[Width::Word, Width::Double]),
    (gicr::PENDBASER + 4, &[Width::Word]),
    (gicr::INVALLR, &[Width::Word, Width::Double]),
    (0x00C0, &[Width::Word]), // SYNCR
    (gicr::PIDR2, &[Width::Word]),
    (regs::SGI_BASE + gicr_sgi::IGROUPR0, &[Width::Word]),
    (regs::SGI_BASE + gicr_sgi::ISENABLER0, &[Width::Word]),
    (regs::SGI_BASE + gicr_sgi::ICENABLER0, &[Width::Word]),
    (regs::SGI_BASE + gicr_sgi::ISPENDR0, &[Width::Word]),
    (regs::SGI_BASE + gicr_sgi::ICPENDR0, &[Width::Word]),
    (regs::SGI_BASE + gicr_sgi::ISACTIVER0, &[Width::Word]),
    (regs::SGI_BASE + gicr_sgi::ICACTIVER0, &[Width::Word]),
    (
        regs::SGI_BASE + gicr_sgi::IPRIORITYR,
        &[Width::Byte, Width::Word],
    ),
    (regs::SGI_BASE + gicr_sgi::IPRIORITYR + 27, &[Width::Byte]),
    (
        regs::SGI_BASE + gicr_sgi::IPRIORITYR + 28,
        &[Width::Byte, Width::Word],
    ),
    (regs::SGI_BASE + gicr_sgi::IPRIORITYR + 32, &[Width::Word]), // reserved past IPRIORITYR7
    (regs::SGI_BASE + gicr_sgi::ICFGR0, &[Width::Word]),
    (regs::SGI_BASE + gicr_sgi::ICFGR1, &[Width::Word]),
    (regs::SGI_BASE + gicr_sgi::IGRPMODR0, &[Width::Word]),
    (regs::SGI_BASE + gicr_sgi::NSACR, &[Width::Word]),
    (regs::SGI_BASE + 0xFFFC, &[Width::Word]),
];

/// Every offset of `table` at every width: misaligned accesses are `BadOffset`, the listed
/// widths succeed, the rest are `BadWidth`, for reads and writes alike.
fn check_width_table(
    table: &[(u64, &[Width])],
    read: impl Fn(&mut V, u64, Width) -> Result<u64, MmioError>,
    write: impl Fn(&mut V, u64, Width) -> Result<(), MmioError>,
) {
    for &(offset, allowed) in table {
        for width in ALL_WIDTHS {
            let mut v = vgic();
            let r = read(&mut v, offset, width);
            let w = write(&mut v, offset, width);
            if !offset.is_multiple_of(width.bytes()) {
                assert_eq!(
                    r,
                    Err(MmioError::BadOffset { offset }),
                    "{offset:#x} {width:?}"
                );
                assert_eq!(w, Err(MmioError::BadOffset { offset }));
            } else if allowed.contains(&width) {
                assert!(r.is_ok() && w.is_ok(), "{offset:#x} {width:?}");
            } else {
                let e = MmioError::BadWidth { offset, width };
                assert_eq!(r, Err(e), "{offset:#x} {width:?}");
                assert_eq!(w, Err(e));
            }
        }
    }
}

#[test]
fn dist_width_table() {
    check_width_table(
        DIST_TABLE,
        |v, o, w| v.dist_read(o, w),
        |v, o, w| v.dist_write(0, o, w, 0).map(drop),
    );
}

#[test]
fn redist_width_table() {
    check_width_table(
        REDIST_TABLE,
        |v, o, w| v.redist_read(1, o, w),
        |v, o, w| v.redist_write(1, 1, o, w, 0).map(drop),
    );
}

#[test]
fn outside_frames() {
    let mut v = vgic();
    let dist = MmioError::OutsideFrame {
        offset: 0x1_0000,
        frame_size: 0x1_0000,
    };
    assert_eq!(v.dist_read(0x1_0000, Width::Word), Err(dist));
    assert_eq!(v.dist_write(0, 0x1_0000, Width::Word, 0), Err(dist));
    assert!(v.dist_read(u64::MAX - 3, Width::Word).is_err());
    let pair = MmioError::OutsideFrame {
        offset: 0x2_0000,
        frame_size: 0x2_0000,
    };
    assert_eq!(v.redist_read(0, 0x2_0000, Width::Word), Err(pair));
    assert_eq!(v.redist_write(0, 0, 0x2_0000, Width::Word, 0), Err(pair));
    // Frame pair 4 of a 4-vCPU VM is past the region.
    let past = MmioError::OutsideFrame {
        offset: 4 * 0x2_0000 + 8,
        frame_size: 4 * 0x2_0000,
    };
    assert_eq!(v.redist_read(4, gicr::TYPER, Width::Double), Err(past));
    assert_eq!(
        v.redist_write(0, 4, gicr::TYPER, Width::Double, 0),
        Err(past)
    );
    assert!(v.redist_read(usize::MAX, 0, Width::Word).is_err());
}

#[test]
fn reserved_registers_are_raz_wi() {
    let mut v = vgic();
    for offset in [
        0x0010,
        0x0040,
        0x0048,
        gicd::IGRPMODR + 4,
        gicd::NSACR + 8,
        gicd::SGIR,
        0x8000,
        0xC000,
        0x0F80,
    ] {
        dwrite(&mut v, 0, offset, 0xFFFF_FFFF);
        assert_eq!(dread(&v, offset), 0, "{offset:#x}");
    }
    for offset in [gicd::ITARGETSR + 32, gicd::CPENDSGIR, gicd::SPENDSGIR] {
        v.dist_write(0, offset, Width::Byte, 0xFF).unwrap();
        assert_eq!(v.dist_read(offset, Width::Byte).unwrap(), 0, "{offset:#x}");
    }
    for offset in [gicr::CTLR, gicr::STATUSR, 0x00C0, gicr::PROPBASER, 0x0100] {
        rwrite(&mut v, 0, offset, 0xFFFF_FFFF);
        assert_eq!(rread(&v, 0, offset), 0, "{offset:#x}");
    }
    for offset in [gicr_sgi::IGRPMODR0, gicr_sgi::NSACR, 0x0084, 0x0104, 0x0D04] {
        rwrite(&mut v, 0, sgi_offset(offset), 0xFFFF_FFFF);
        assert_eq!(rread(&v, 0, sgi_offset(offset)), 0, "{offset:#x}");
    }
    // The Distributor's copies of the private registers are RES0 with affinity routing.
    for base in [
        gicd::IGROUPR,
        gicd::ISENABLER,
        gicd::ISPENDR,
        gicd::ISACTIVER,
    ] {
        dwrite(&mut v, 0, base, 0xFFFF_FFFF);
        assert_eq!(dread(&v, base), 0);
    }
    dwrite(&mut v, 0, gicd::IPRIORITYR, 0xFFFF_FFFF);
    assert_eq!(dread(&v, gicd::IPRIORITYR), 0);
    dwrite(&mut v, 0, gicd::ICFGR + 4, 0xFFFF_FFFF);
    assert_eq!(dread(&v, gicd::ICFGR + 4), 0);
    v.dist_write(0, gicd::IROUTER, Width::Double, u64::MAX)
        .unwrap();
    assert_eq!(v.dist_read(gicd::IROUTER, Width::Double).unwrap(), 0);
    // Nothing private got enabled through them.
    assert_eq!(rread(&v, 0, sgi_offset(gicr_sgi::ISENABLER0)), 0);
}

// ---- Ownership -------------------------------------------------------------------------

#[test]
fn igroupr_reads_owned_interrupts() {
    let mut v = vgic();
    let private = rread(&v, 2, sgi_offset(gicr_sgi::IGROUPR0));
    assert_eq!(private, 0xFFFF | (1 << VTIMER));
    assert_eq!(
        dread(&v, gicd::IGROUPR + 4),
        (1 << (UART_SPI - 32)) | (1 << (PASS_SPI - 32))
    );
    assert_eq!(dread(&v, gicd::IGROUPR + 12), 1 << (SPARE_SPI - 96));
    dwrite(&mut v, 0, gicd::IGROUPR + 4, 0);
    rwrite(&mut v, 2, sgi_offset(gicr_sgi::IGROUPR0), 0);
    assert_eq!(
        dread(&v, gicd::IGROUPR + 4),
        (1 << (UART_SPI - 32)) | (1 << (PASS_SPI - 32))
    );
    assert_eq!(
        rread(&v, 2, sgi_offset(gicr_sgi::IGROUPR0)),
        private,
        "RAO/WI"
    );
}

/// All ones written to every set-register of every interrupt: only owned bits stick.
#[test]
fn unowned_interrupts_cannot_be_touched() {
    let mut v = vgic();
    for n in 0..32u64 {
        for base in [
            gicd::ISENABLER,
            gicd::ISPENDR,
            gicd::ISACTIVER,
            gicd::ICFGR,
            gicd::ICFGR + 0x80,
        ] {
            dwrite(&mut v, 0, base + 4 * n, 0xFFFF_FFFF);
        }
    }
    for offset in (gicd::IPRIORITYR..gicd::ITARGETSR).step_by(4) {
        dwrite(&mut v, 0, offset, 0xFFFF_FFFF);
    }
    for intid in 32..1020u64 {
        v.dist_write(0, gicd::IROUTER + 8 * intid, Width::Double, u64::MAX)
            .unwrap();
    }
    for frame in 0..4 {
        for offset in [
            gicr_sgi::ISENABLER0,
            gicr_sgi::ISPENDR0,
            gicr_sgi::ISACTIVER0,
            gicr_sgi::ICFGR1,
        ] {
            rwrite(&mut v, frame, sgi_offset(offset), 0xFFFF_FFFF);
        }
        for offset in (0..32).step_by(4) {
            rwrite(
                &mut v,
                frame,
                sgi_offset(gicr_sgi::IPRIORITYR + offset),
                0xFFFF_FFFF,
            );
        }
    }
    for intid in 32..1024u32 {
        let expect = owned(intid);
        assert_eq!(spi_bit(&v, gicd::ISENABLER, intid), expect, "{intid}");
        assert_eq!(spi_bit(&v, gicd::ICENABLER, intid), expect, "{intid}");
        // The HW-linked SPI cannot be made active (or pending) by MMIO.
        assert_eq!(
            spi_bit(&v, gicd::ISACTIVER, intid),
            expect && intid != PASS_SPI,
            "{intid}"
        );
        let prio = v.dist_read(gicd::IPRIORITYR + u64::from(intid), Width::Byte);
        if intid < 1020 {
            assert_eq!(prio.unwrap(), if expect { 0xFF } else { 0 }, "{intid}");
            let route = v
                .dist_read(gicd::IROUTER + 8 * u64::from(intid), Width::Double)
                .unwrap();
            assert_eq!(
                route,
                if expect { regs::irouter::WRITABLE } else { 0 },
                "{intid}"
            );
        }
    }
    for frame in 0..4 {
        let private = 0xFFFF | (1 << VTIMER);
        assert_eq!(rread(&v, frame, sgi_offset(gicr_sgi::ISENABLER0)), private);
        // The vtimer is HW-linked: ISPENDR asks for the physical one, ISACTIVER is WI.
        assert_eq!(rread(&v, frame, sgi_offset(gicr_sgi::ISPENDR0)), 0xFFFF);
        assert_eq!(rread(&v, frame, sgi_offset(gicr_sgi::ISACTIVER0)), 0xFFFF);
        assert_eq!(
            rread(&v, frame, sgi_offset(gicr_sgi::IPRIORITYR + 24)),
            0xFF << 24
        );
    }
    // Unowned interrupts never reach a List Register.
    enable_dist(&mut v);
    for vcpu in 0..4 {
        let mut lrs = [0u64; 16];
        let flush = v.flush(vcpu, &mut lrs);
        for value in &lrs[..flush.used] {
            assert!(owned((value & lr::VINTID_MASK) as u32));
        }
    }
}

#[test]
fn software_cannot_pend_unowned_through_sources() {
    let mut v = vgic();
    assert_eq!(v.set_level(34, true), 0);
    assert_eq!(v.set_level(5, true), 0);
    assert_eq!(
        v.set_level(PASS_SPI, true),
        0,
        "HW-linked: not a software line"
    );
    assert_eq!(v.hw_fired(73, 0), 0);
    assert_eq!(v.hw_fired(26, 0), 0);
    assert_eq!(v.hw_fired(VTIMER, 9), 0, "vCPU out of range");
    assert!(!spi_bit(&v, gicd::ISPENDR, 34));
    assert!(!spi_bit(&v, gicd::ISPENDR, PASS_SPI));
    for vcpu in 0..4 {
        assert!(!v.has_pending(vcpu));
    }
}

// ---- Registers with state --------------------------------------------------------------

#[test]
fn enable_pending_active_set_and_clear() {
    let mut v = vgic();
    set_spi(&mut v, gicd::ISENABLER, UART_SPI);
    assert!(spi_bit(&v, gicd::ISENABLER, UART_SPI));
    assert!(spi_bit(&v, gicd::ICENABLER, UART_SPI));
    set_spi(&mut v, gicd::ICENABLER, UART_SPI);
    assert!(!spi_bit(&v, gicd::ISENABLER, UART_SPI));
    set_spi(&mut v, gicd::ISPENDR, SPARE_SPI);
    assert!(spi_bit(&v, gicd::ISPENDR, SPARE_SPI));
    set_spi(&mut v, gicd::ICPENDR, SPARE_SPI);
    assert!(!spi_bit(&v, gicd::ISPENDR, SPARE_SPI));
    set_spi(&mut v, gicd::ISACTIVER, SPARE_SPI);
    assert!(spi_bit(&v, gicd::ICACTIVER, SPARE_SPI));
    set_spi(&mut v, gicd::ICACTIVER, SPARE_SPI);
    assert!(!spi_bit(&v, gicd::ISACTIVER, SPARE_SPI));
    // Writing 0 changes nothing.
    set_spi(&mut v, gicd::ISENABLER, UART_SPI);
    dwrite(&mut v, 0, gicd::ICENABLER + 4, 0);
    assert!(spi_bit(&v, gicd::ISENABLER, UART_SPI));

    // The same through a Redistributor, banked per vCPU.
    rwrite(&mut v, 1, sgi_offset(gicr_sgi::ISENABLER0), 0b101);
    rwrite(&mut v, 1, sgi_offset(gicr_sgi::ISPENDR0), 0b110);
    rwrite(&mut v, 1, sgi_offset(gicr_sgi::ISACTIVER0), 0b1000);
    assert_eq!(rread(&v, 1, sgi_offset(gicr_sgi::ISENABLER0)), 0b101);
    assert_eq!(rread(&v, 1, sgi_offset(gicr_sgi::ICPENDR0)), 0b110);
    assert_eq!(rread(&v, 1, sgi_offset(gicr_sgi::ICACTIVER0)), 0b1000);
    assert_eq!(rread(&v, 0, sgi_offset(gicr_sgi::ISENABLER0)), 0, "banked");
    rwrite(&mut v, 1, sgi_offset(gicr_sgi::ICENABLER0), 0b1);
    rwrite(&mut v, 1, sgi_offset(gicr_sgi::ICPENDR0), 0b10);
    rwrite(&mut v, 1, sgi_offset(gicr_sgi::ICACTIVER0), 0b1000);
    assert_eq!(rread(&v, 1, sgi_offset(gicr_sgi::ISENABLER0)), 0b100);
    assert_eq!(rread(&v, 1, sgi_offset(gicr_sgi::ISPENDR0)), 0b100);
    assert_eq!(rread(&v, 1, sgi_offset(gicr_sgi::ISACTIVER0)), 0);
}

#[test]
fn priorities_by_byte_and_word() {
    let mut v = vgic();
    let uart = gicd::IPRIORITYR + u64::from(UART_SPI);
    v.dist_write(0, uart, Width::Byte, 0xA0).unwrap();
    assert_eq!(v.dist_read(uart, Width::Byte).unwrap(), 0xA0);
    // INTIDs 32..=35: only 33 is owned.
    assert_eq!(dread(&v, gicd::IPRIORITYR + 32), 0xA0 << 8);
    dwrite(&mut v, 0, gicd::IPRIORITYR + 32, 0x1122_3344);
    assert_eq!(dread(&v, gicd::IPRIORITYR + 32), 0x33 << 8);
    assert_eq!(v.dist_read(uart, Width::Byte).unwrap(), 0x33);

    let prio = |offset| sgi_offset(gicr_sgi::IPRIORITYR + offset);
    rwrite(&mut v, 2, prio(24), 0x8899_AABB);
    assert_eq!(
        rread(&v, 2, prio(24)),
        0x88 << 24,
        "only PPI 27 of 24..=27 is owned"
    );
    v.redist_write(2, 2, prio(3), Width::Byte, 0x5A).unwrap();
    assert_eq!(v.redist_read(2, prio(3), Width::Byte).unwrap(), 0x5A);
    assert_eq!(rread(&v, 2, prio(0)), 0x5A << 24);
    assert_eq!(rread(&v, 1, prio(0)), 0, "banked");
    // A write wider than the access is truncated.
    v.redist_write(2, 2, prio(4), Width::Byte, 0x1234).unwrap();
    assert_eq!(rread(&v, 2, prio(4)), 0x34);
}

#[test]
fn interrupt_configuration() {
    let mut v = vgic();
    // SGIs: edge, read-only.
    assert_eq!(rread(&v, 0, sgi_offset(gicr_sgi::ICFGR0)), 0xAAAA_AAAA);
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ICFGR0), 0);
    assert_eq!(rread(&v, 0, sgi_offset(gicr_sgi::ICFGR0)), 0xAAAA_AAAA);
    // PPIs: level, read-only.
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ICFGR1), 0xFFFF_FFFF);
    assert_eq!(rread(&v, 0, sgi_offset(gicr_sgi::ICFGR1)), 0);
    // SPIs: Int_config[1] of owned ones, level out of reset.
    let (offset, shift) = (gicd::ICFGR + 8, 2 * (UART_SPI % 16)); // ICFGR2: 32..=47
    assert_eq!(dread(&v, offset), 0);
    dwrite(&mut v, 0, offset, 0xFFFF_FFFF);
    let both = (2 << shift) | (2 << (2 * (PASS_SPI % 16)));
    assert_eq!(dread(&v, offset), both, "bit 0 of each pair is RES0");
    dwrite(&mut v, 0, offset, 0);
    assert_eq!(dread(&v, offset), 0);
}

#[test]
fn irouter_affinity_irm_and_halves() {
    let mut v = vgic();
    let at = gicd::IROUTER + 8 * u64::from(SPARE_SPI);
    assert_eq!(
        v.dist_read(at, Width::Double).unwrap(),
        0,
        "vCPU 0's affinity"
    );
    v.dist_write(0, at, Width::Double, 0x1_0000_0000).unwrap(); // Aff3 = 1: vCPU 3
    assert_eq!(v.dist_read(at + 4, Width::Word).unwrap(), 1);
    assert_eq!(v.dist_read(at, Width::Word).unwrap(), 0);
    v.dist_write(0, at, Width::Word, 0x0000_0100).unwrap(); // low half: Aff1 = 1
    assert_eq!(v.dist_read(at, Width::Double).unwrap(), 0x1_0000_0100);
    v.dist_write(0, at + 4, Width::Word, 0).unwrap();
    assert_eq!(v.dist_read(at, Width::Double).unwrap(), 0x100);
    // RES0 bits are dropped; IRM is kept.
    v.dist_write(0, at, Width::Double, u64::MAX).unwrap();
    assert_eq!(v.dist_read(at, Width::Double).unwrap(), 0xFF_80FF_FFFF);

    // Delivery follows the route: 0.0.1.0 is vCPU 2; IRM goes to vCPU 0; no match: nobody.
    enable_dist(&mut v);
    set_spi(&mut v, gicd::ISENABLER, SPARE_SPI);
    set_spi(&mut v, gicd::ISPENDR, SPARE_SPI);
    for (route, vcpu) in [
        (0x100, Some(2)),
        (regs::irouter::IRM | 0x1, Some(0)),
        (0x0203, None),
    ] {
        v.dist_write(0, at, Width::Double, route).unwrap();
        for candidate in 0..4 {
            assert_eq!(
                v.has_pending(candidate),
                Some(candidate) == vcpu,
                "{route:#x}"
            );
        }
    }
}

#[test]
fn gicr_typer_affinity_number_last() {
    let v = vgic();
    for (vcpu, &mpidr) in MPIDRS.iter().enumerate() {
        let typer = v.redist_read(vcpu, gicr::TYPER, Width::Double).unwrap();
        let affinity = ((mpidr >> 8) & 0xFF00_0000) | (mpidr & 0xFF_FFFF);
        assert_eq!(typer >> 32, affinity, "vCPU {vcpu}");
        assert_eq!((typer >> 8) & 0xFFFF, vcpu as u64);
        assert_eq!(typer & (1 << 4) != 0, vcpu == 3, "Last");
        assert_eq!(typer & 0b11, 0, "no PLPIS/VLPIS");
        assert_eq!(rread(&v, vcpu, gicr::TYPER), typer & 0xFFFF_FFFF);
        assert_eq!(rread(&v, vcpu, gicr::TYPER + 4), typer >> 32);
    }
    assert_eq!(
        v.redist_read(3, gicr::TYPER + 4, Width::Word).unwrap(),
        0x0100_0000,
        "Aff3 = 1"
    );
    let one = V::new(&VgicConfig {
        mpidrs: &[0x8000_0000],
        ppis: &[],
        spis: &[],
    })
    .unwrap();
    assert_eq!(
        one.redist_read(0, gicr::TYPER, Width::Double).unwrap(),
        1 << 4
    );
}

#[test]
fn gicr_waker() {
    let mut v = vgic();
    assert_eq!(rread(&v, 1, gicr::WAKER), 0b110, "asleep out of reset");
    rwrite(&mut v, 1, gicr::WAKER, 0);
    assert_eq!(
        rread(&v, 1, gicr::WAKER),
        0,
        "ChildrenAsleep follows at once"
    );
    assert_eq!(rread(&v, 0, gicr::WAKER), 0b110, "per Redistributor");
    rwrite(&mut v, 1, gicr::WAKER, 0b010);
    assert_eq!(rread(&v, 1, gicr::WAKER), 0b110);
    rwrite(&mut v, 1, gicr::WAKER, 0b101); // ChildrenAsleep is read-only, bit 0 RAZ/WI
    assert_eq!(rread(&v, 1, gicr::WAKER), 0);
}

// ---- Delivery --------------------------------------------------------------------------

fn expected_lr(intid: u32, state: u64, priority: u8) -> u64 {
    (state << lr::STATE_SHIFT)
        | lr::GROUP1
        | (u64::from(priority) << lr::PRIORITY_SHIFT)
        | u64::from(intid)
}

#[test]
fn level_spi_reaches_a_list_register() {
    let mut v = vgic();
    v.dist_write(0, gicd::IPRIORITYR + u64::from(UART_SPI), Width::Byte, 0xA0)
        .unwrap();
    set_spi(&mut v, gicd::ISENABLER, UART_SPI);
    assert_eq!(
        v.set_level(UART_SPI, true),
        0,
        "not deliverable yet: distributor off"
    );
    let mut lrs = [0xDEAD_u64; 4];
    assert_eq!(
        v.flush(0, &mut lrs),
        Flush {
            used: 0,
            more_pending: false
        }
    );
    assert_eq!(lrs, [0; 4], "unused List Registers are cleared");
    enable_dist(&mut v);
    assert!(v.has_pending(0));
    assert!(!v.has_pending(1));
    assert_eq!(
        v.flush(0, &mut lrs),
        Flush {
            used: 1,
            more_pending: false
        }
    );
    assert_eq!(
        lrs[0],
        expected_lr(UART_SPI, 1, 0xA0) | lr::EOI,
        "level, HW = 0: EOI set"
    );
    assert_eq!(lrs[1..], [0; 3]);
    let mut other = [0u64; 4];
    assert_eq!(v.flush(1, &mut other).used, 0, "routed to vCPU 0 only");

    // Disabled: not loaded (and the line stays pending).
    v.sync(0, &lrs);
    set_spi(&mut v, gicd::ICENABLER, UART_SPI);
    assert_eq!(v.flush(0, &mut lrs).used, 0);
    assert!(spi_bit(&v, gicd::ISPENDR, UART_SPI));
    v.sync(0, &lrs);
    // The line drops: no longer pending.
    set_spi(&mut v, gicd::ISENABLER, UART_SPI);
    v.set_level(UART_SPI, false);
    assert!(!spi_bit(&v, gicd::ISPENDR, UART_SPI));
    assert_eq!(v.flush(0, &mut lrs).used, 0);
}

#[test]
fn more_pending_than_list_registers() {
    let mut v = vgic();
    enable_dist(&mut v);
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ISENABLER0), 0b1111);
    // Priorities: SGI0 0x80, SGI1 0x40, SGI2 0x40, SGI3 0x10.
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::IPRIORITYR), 0x1040_4080);
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ISPENDR0), 0b1111);
    let mut lrs = [0u64; 2];
    let flush = v.flush(0, &mut lrs);
    assert_eq!(
        flush,
        Flush {
            used: 2,
            more_pending: true
        }
    );
    assert_eq!(lrs, [expected_lr(3, 1, 0x10), expected_lr(1, 1, 0x40)]);
    // The guest takes both and EOIs them; the next flush loads the remaining two.
    v.sync(0, &[with_state(lrs[0], 0), with_state(lrs[1], 0)]);
    assert_eq!(
        v.flush(0, &mut lrs),
        Flush {
            used: 2,
            more_pending: false
        }
    );
    assert_eq!(lrs, [expected_lr(2, 1, 0x40), expected_lr(0, 1, 0x80)]);
    v.sync(0, &[with_state(lrs[0], 0), with_state(lrs[1], 0)]);
    assert_eq!(
        v.flush(0, &mut lrs),
        Flush {
            used: 0,
            more_pending: false
        }
    );
    // No List Registers at all: everything is "more".
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ISPENDR0), 1);
    assert_eq!(
        v.flush(0, &mut []),
        Flush {
            used: 0,
            more_pending: true
        }
    );
}

#[test]
fn active_interrupts_keep_their_list_register() {
    let mut v = vgic();
    enable_dist(&mut v);
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ISENABLER0), 0b11);
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::IPRIORITYR), 0x0000_80F0); // SGI0 0xF0, SGI1 0x80
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ISPENDR0), 0b01);
    let mut lrs = [0u64; 1];
    v.flush(0, &mut lrs);
    v.sync(0, &[with_state(lrs[0], 2)]); // SGI 0 acknowledged
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ISPENDR0), 0b10); // a higher-priority one arrives
    let flush = v.flush(0, &mut lrs);
    assert_eq!(
        flush,
        Flush {
            used: 1,
            more_pending: true
        }
    );
    assert_eq!(lrs[0], expected_lr(0, 2, 0xF0), "the active one stays");
}

#[test]
fn sync_pending_active_invalid() {
    let mut v = vgic();
    enable_dist(&mut v);
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ISENABLER0), 1 << 5);
    assert_eq!(
        v.send_sgi(1, (5 << 24) | 1),
        1,
        "vCPU 1 sends SGI 5 to vCPU 0"
    );
    let mut lrs = [0u64; 4];
    v.flush(0, &mut lrs);
    assert_eq!(lr_state(lrs[0]), 1);
    assert_eq!(lrs[0] & lr::EOI, 0, "edge: no EOI maintenance");
    // The guest acknowledged it.
    lrs[0] = with_state(lrs[0], 2);
    v.sync(0, &lrs);
    let pend = rread(&v, 0, sgi_offset(gicr_sgi::ISPENDR0));
    let act = rread(&v, 0, sgi_offset(gicr_sgi::ISACTIVER0));
    assert_eq!((pend, act), (0, 1 << 5));
    assert!(!v.has_pending(0));
    v.flush(0, &mut lrs);
    assert_eq!(lr_state(lrs[0]), 2, "still active: reloaded");
    // The guest deactivated it.
    lrs[0] = with_state(lrs[0], 0);
    v.sync(0, &lrs);
    assert_eq!(rread(&v, 0, sgi_offset(gicr_sgi::ISACTIVER0)), 0);
    assert_eq!(v.flush(0, &mut lrs).used, 0);
    // Still pending in the List Register at exit: stays pending.
    v.send_sgi(1, (5 << 24) | 1);
    v.flush(0, &mut lrs);
    v.sync(0, &lrs);
    assert_eq!(rread(&v, 0, sgi_offset(gicr_sgi::ISPENDR0)), 1 << 5);
    assert!(v.has_pending(0));
}

#[test]
fn edge_arriving_while_acknowledged_is_not_lost() {
    let mut v = vgic();
    enable_dist(&mut v);
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ISENABLER0), 1);
    v.send_sgi(1, 1);
    let mut lrs = [0u64; 4];
    v.flush(0, &mut lrs);
    // While vCPU 0 runs with SGI 0 acknowledged, vCPU 1 sends it again.
    v.send_sgi(1, 1);
    v.sync(0, &[with_state(lrs[0], 2)]);
    assert_eq!(
        rread(&v, 0, sgi_offset(gicr_sgi::ISPENDR0)),
        1,
        "pending again"
    );
    v.flush(0, &mut lrs);
    assert_eq!(lr_state(lrs[0]), 3, "pending and active");
}

#[test]
fn level_interrupt_repends_after_eoi_while_line_high() {
    let mut v = vgic();
    enable_dist(&mut v);
    set_spi(&mut v, gicd::ISENABLER, UART_SPI);
    v.set_level(UART_SPI, true);
    let mut lrs = [0u64; 4];
    v.flush(0, &mut lrs);
    // Acknowledged, and the handler has not serviced the device yet: pending and active.
    v.sync(0, &[with_state(lrs[0], 2)]);
    assert!(spi_bit(&v, gicd::ISACTIVER, UART_SPI));
    assert!(
        spi_bit(&v, gicd::ISPENDR, UART_SPI),
        "the line is still high"
    );
    v.flush(0, &mut lrs);
    assert_eq!(lr_state(lrs[0]), 3);
    // Acknowledged and deactivated within one run (EOI maintenance exit): line still high.
    v.sync(0, &[with_state(lrs[0], 0)]);
    v.flush(0, &mut lrs);
    assert_eq!(lr_state(lrs[0]), 1, "pending again after EOI");
    assert_ne!(lrs[0] & lr::EOI, 0);
    // The device is serviced (the line drops) and the guest EOIs: nothing left.
    v.sync(0, &[with_state(lrs[0], 2)]);
    v.set_level(UART_SPI, false);
    v.flush(0, &mut lrs);
    assert_eq!(lr_state(lrs[0]), 2);
    v.sync(0, &[with_state(lrs[0], 0)]);
    assert_eq!(v.flush(0, &mut lrs).used, 0);
    assert!(!spi_bit(&v, gicd::ISACTIVER, UART_SPI));
}

#[test]
fn edge_configured_spi_latches_rising_edges() {
    let mut v = vgic();
    enable_dist(&mut v);
    dwrite(&mut v, 0, gicd::ICFGR + 8, 2 << (2 * (UART_SPI % 16)));
    set_spi(&mut v, gicd::ISENABLER, UART_SPI);
    v.set_level(UART_SPI, true);
    v.set_level(UART_SPI, false);
    assert!(spi_bit(&v, gicd::ISPENDR, UART_SPI), "latched");
    let mut lrs = [0u64; 4];
    v.flush(0, &mut lrs);
    assert_eq!(lrs[0] & lr::EOI, 0);
    v.sync(0, &[with_state(lrs[0], 0)]);
    assert!(!spi_bit(&v, gicd::ISPENDR, UART_SPI));
    v.set_level(UART_SPI, true);
    v.set_level(UART_SPI, true); // no new edge
    v.flush(0, &mut lrs);
    v.sync(0, &[with_state(lrs[0], 0)]);
    assert!(!spi_bit(&v, gicd::ISPENDR, UART_SPI));
}

#[test]
fn hw_linked_spi() {
    let mut v = vgic();
    enable_dist(&mut v);
    let route = gicd::IROUTER + 8 * u64::from(PASS_SPI);
    // Enabling routes and enables the physical SPI.
    let out = set_spi(&mut v, gicd::ISENABLER, PASS_SPI);
    assert_eq!(
        out.effects[..],
        [Effect::EnablePhysical {
            hw_intid: PASS_HW,
            vcpu: 0
        }]
    );
    assert!(
        set_spi(&mut v, gicd::ISENABLER, PASS_SPI)
            .effects
            .is_empty(),
        "already enabled"
    );
    // Re-routing an enabled one re-routes the physical one.
    let out = v.dist_write(0, route, Width::Double, 0x1).unwrap();
    assert_eq!(
        out.effects[..],
        [Effect::EnablePhysical {
            hw_intid: PASS_HW,
            vcpu: 1
        }]
    );
    let out = v.dist_write(0, route, Width::Double, 0x0707).unwrap();
    assert_eq!(
        out.effects[..],
        [Effect::DisablePhysical {
            hw_intid: PASS_HW,
            vcpu: 1
        }]
    );
    v.dist_write(0, route, Width::Double, 0x1).unwrap();

    // The physical one arrives: the LR is HW = 1 with the physical INTID, no EOI bit.
    v.dist_write(0, gicd::IPRIORITYR + u64::from(PASS_SPI), Width::Byte, 0x20)
        .unwrap();
    assert_eq!(v.hw_fired(PASS_HW, 1), 0, "arrived on its target");
    let mut lrs = [0u64; 4];
    assert_eq!(v.flush(0, &mut lrs).used, 0);
    v.sync(0, &lrs);
    v.flush(1, &mut lrs);
    let expect = expected_lr(PASS_SPI, 1, 0x20) | lr::HW | (u64::from(PASS_HW) << lr::PINTID_SHIFT);
    assert_eq!(lrs[0], expect);
    assert_eq!(
        (lrs[0] & lr::PINTID_MASK) >> lr::PINTID_SHIFT,
        u64::from(PASS_HW)
    );
    // Acknowledged: active; the hardware deactivates the physical one on the guest's EOI.
    v.sync(1, &[with_state(lrs[0], 2)]);
    v.flush(1, &mut lrs);
    assert_eq!(lr_state(lrs[0]), 2);
    v.sync(1, &[with_state(lrs[0], 0)]);
    assert_eq!(v.flush(1, &mut lrs).used, 0);

    // ISPENDR asks for the physical interrupt; ICPENDR of a taken one releases it.
    let out = set_spi(&mut v, gicd::ISPENDR, PASS_SPI);
    assert_eq!(
        out.effects[..],
        [Effect::PendPhysical {
            hw_intid: PASS_HW,
            vcpu: 1
        }]
    );
    assert!(!spi_bit(&v, gicd::ISPENDR, PASS_SPI));
    v.hw_fired(PASS_HW, 1);
    let out = set_spi(&mut v, gicd::ICPENDR, PASS_SPI);
    assert_eq!(
        out.effects[..],
        [Effect::DeactivatePhysical {
            hw_intid: PASS_HW,
            vcpu: 1
        }]
    );
    // Active one cleared by ICACTIVER: released too.
    v.hw_fired(PASS_HW, 1);
    v.flush(1, &mut lrs);
    v.sync(1, &[with_state(lrs[0], 2)]);
    let out = set_spi(&mut v, gicd::ICACTIVER, PASS_SPI);
    assert_eq!(
        out.effects[..],
        [Effect::DeactivatePhysical {
            hw_intid: PASS_HW,
            vcpu: 1
        }]
    );
    // An active HW interrupt that fires again is never loaded pending and active.
    v.hw_fired(PASS_HW, 1);
    v.flush(1, &mut lrs);
    v.sync(1, &[with_state(lrs[0], 2)]);
    v.hw_fired(PASS_HW, 1);
    v.flush(1, &mut lrs);
    assert_eq!(lr_state(lrs[0]), 2);
    v.sync(1, &lrs);
    // Disabling disables the physical one.
    let out = set_spi(&mut v, gicd::ICENABLER, PASS_SPI);
    assert_eq!(
        out.effects[..],
        [Effect::DisablePhysical {
            hw_intid: PASS_HW,
            vcpu: 1
        }]
    );
}

#[test]
fn hw_linked_ppi_is_banked() {
    let mut v = vgic();
    enable_dist(&mut v);
    let out = rwrite(&mut v, 2, sgi_offset(gicr_sgi::ISENABLER0), 1 << VTIMER);
    assert_eq!(
        out.effects[..],
        [Effect::EnablePhysical {
            hw_intid: VTIMER,
            vcpu: 2
        }]
    );
    assert_eq!(out.kick, 0, "the writer is the owner");
    assert_eq!(v.hw_fired(VTIMER, 2), 0);
    let mut lrs = [0u64; 4];
    assert_eq!(v.flush(0, &mut lrs).used, 0);
    assert_eq!(v.flush(2, &mut lrs).used, 1);
    assert_eq!(lrs[0] & (lr::HW | lr::PINTID_MASK), lr::HW | (27 << 32));
    // Another vCPU disabling it through vCPU 2's frame kicks vCPU 2.
    v.sync(2, &lrs);
    let out = v
        .redist_write(
            0,
            2,
            sgi_offset(gicr_sgi::ICENABLER0),
            Width::Word,
            1 << VTIMER,
        )
        .unwrap();
    assert_eq!(
        out.effects[..],
        [Effect::DisablePhysical {
            hw_intid: VTIMER,
            vcpu: 2
        }]
    );
    assert_eq!(out.kick, 1 << 2);
}

#[test]
fn an_spi_is_in_one_vcpus_list_registers_at_a_time() {
    let mut v = vgic();
    enable_dist(&mut v);
    let route = gicd::IROUTER + 8 * u64::from(SPARE_SPI);
    set_spi(&mut v, gicd::ISENABLER, SPARE_SPI);
    let out = set_spi(&mut v, gicd::ISPENDR, SPARE_SPI);
    assert_eq!(out.kick, 0, "routed to the writer");
    let mut lrs0 = [0u64; 4];
    v.flush(0, &mut lrs0);
    // vCPU 3 re-routes it to vCPU 1 while it sits in vCPU 0's List Registers.
    let out = v.dist_write(3, route, Width::Double, 0x1).unwrap();
    assert_eq!(out.kick, 0b01, "the holder re-syncs");
    let mut lrs1 = [0u64; 4];
    assert_eq!(v.flush(1, &mut lrs1).used, 0, "not twice");
    v.sync(1, &lrs1);
    assert!(!v.has_pending(1));
    // vCPU 0 exits without taking it: now vCPU 1 gets it.
    assert_eq!(v.sync(0, &lrs0), 0b10);
    assert_eq!(v.flush(0, &mut lrs0).used, 0);
    assert_eq!(v.flush(1, &mut lrs1).used, 1);
}

#[test]
fn writes_kick_the_vcpus_concerned() {
    let mut v = vgic();
    enable_dist(&mut v);
    let route = gicd::IROUTER + 8 * u64::from(SPARE_SPI);
    v.dist_write(0, route, Width::Double, 0x100).unwrap(); // vCPU 2
    set_spi(&mut v, gicd::ISENABLER, SPARE_SPI);
    assert_eq!(set_spi(&mut v, gicd::ISPENDR, SPARE_SPI).kick, 1 << 2);
    assert_eq!(
        dwrite(&mut v, 2, reg_bit(gicd::ISPENDR, SPARE_SPI).0, 0).kick,
        0
    );
    // The line of an emulated SPI: kick its target.
    v.dist_write(
        0,
        gicd::IROUTER + 8 * u64::from(UART_SPI),
        Width::Double,
        0x1,
    )
    .unwrap();
    set_spi(&mut v, gicd::ISENABLER, UART_SPI);
    assert_eq!(v.set_level(UART_SPI, true), 1 << 1);
    assert_eq!(v.set_level(UART_SPI, true), 0, "no change");
    // A physical SPI arriving on another CPU than its target's.
    v.dist_write(
        0,
        gicd::IROUTER + 8 * u64::from(PASS_SPI),
        Width::Double,
        0x1_0000_0000,
    )
    .unwrap();
    set_spi(&mut v, gicd::ISENABLER, PASS_SPI);
    assert_eq!(v.hw_fired(PASS_HW, 0), 1 << 3);
}

#[test]
fn distributor_enable_gates_forwarding() {
    let mut v = vgic();
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ISENABLER0), 1);
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ISPENDR0), 1);
    assert!(!v.has_pending(0));
    let mut lrs = [0u64; 4];
    assert_eq!(v.flush(0, &mut lrs).used, 0);
    v.sync(0, &lrs);
    enable_dist(&mut v);
    assert!(v.has_pending(0));
    assert_eq!(v.flush(0, &mut lrs).used, 1);
}

#[test]
fn sync_tolerates_mismatched_list_registers() {
    let mut v = vgic();
    enable_dist(&mut v);
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ISENABLER0), 0b11);
    rwrite(&mut v, 0, sgi_offset(gicr_sgi::ISPENDR0), 0b11);
    let mut lrs = [0u64; 4];
    v.flush(0, &mut lrs);
    // A wrong vINTID and a missing register: treated as untouched.
    v.sync(0, &[with_state(lrs[0], 2) ^ 1]);
    assert_eq!(rread(&v, 0, sgi_offset(gicr_sgi::ISPENDR0)), 0b11);
    assert_eq!(rread(&v, 0, sgi_offset(gicr_sgi::ISACTIVER0)), 0);
    // Flushing twice without a sync loses nothing either.
    v.flush(0, &mut lrs);
    v.flush(0, &mut lrs);
    v.sync(0, &lrs);
    assert_eq!(rread(&v, 0, sgi_offset(gicr_sgi::ISPENDR0)), 0b11);
    // Out-of-range vCPUs are ignored.
    lrs = [7; 4];
    assert_eq!(
        v.flush(9, &mut lrs),
        Flush {
            used: 0,
            more_pending: false
        }
    );
    assert_eq!(lrs, [0; 4]);
    assert_eq!(v.sync(9, &lrs), 0);
    assert!(!v.has_pending(9));
}

#[test]
fn external_clear_wins_over_the_list_register() {
    let mut v = vgic();
    enable_dist(&mut v);
    set_spi(&mut v, gicd::ISENABLER, SPARE_SPI);
    set_spi(&mut v, gicd::ISPENDR, SPARE_SPI);
    let mut lrs = [0u64; 4];
    v.flush(0, &mut lrs);
    // vCPU 1 clears the pending state while it sits, untaken, in vCPU 0's LR.
    let out = v
        .dist_write(
            1,
            reg_bit(gicd::ICPENDR, SPARE_SPI).0,
            Width::Word,
            reg_bit(0, SPARE_SPI).1,
        )
        .unwrap();
    assert_eq!(out.kick, 1);
    assert!(!spi_bit(&v, gicd::ISPENDR, SPARE_SPI));
    v.sync(0, &lrs);
    assert!(!spi_bit(&v, gicd::ISPENDR, SPARE_SPI), "stays cleared");
    // vCPU 1 deactivates one vCPU 0 holds active.
    set_spi(&mut v, gicd::ISPENDR, SPARE_SPI);
    v.flush(0, &mut lrs);
    v.sync(0, &[with_state(lrs[0], 2)]);
    v.flush(0, &mut lrs);
    let out = v
        .dist_write(
            1,
            reg_bit(gicd::ICACTIVER, SPARE_SPI).0,
            Width::Word,
            reg_bit(0, SPARE_SPI).1,
        )
        .unwrap();
    assert_eq!(out.kick, 1);
    v.sync(0, &lrs); // vCPU 0 still shows it active: the MMIO clear wins
    assert!(!spi_bit(&v, gicd::ISACTIVER, SPARE_SPI));
    assert_eq!(v.flush(0, &mut lrs).used, 0);
}

// ---- SGIs ------------------------------------------------------------------------------

#[test]
fn sgi_targeting() {
    let mut v = vgic();
    let sgi1r = |intid: u64, aff3: u64, aff2: u64, aff1: u64, rs: u64, list: u64| {
        (aff3 << 48) | (rs << 44) | (aff2 << 32) | (intid << 24) | (aff1 << 16) | list
    };
    // 0.0.0.{0,1}: vCPUs 0 and 1.
    assert_eq!(v.send_sgi(0, sgi1r(3, 0, 0, 0, 0, 0b11)), 0b0011);
    assert_eq!(v.send_sgi(0, sgi1r(3, 0, 0, 0, 0, 0b10)), 0b0010);
    // 0.0.1.0: vCPU 2; 1.0.0.0: vCPU 3.
    assert_eq!(v.send_sgi(0, sgi1r(3, 0, 0, 1, 0, 0b1)), 0b0100);
    assert_eq!(v.send_sgi(0, sgi1r(3, 1, 0, 0, 0, 0b1)), 0b1000);
    // Affinities the VM does not have: nobody.
    assert_eq!(v.send_sgi(0, sgi1r(3, 0, 0, 0, 0, 0b1111_1100)), 0);
    assert_eq!(v.send_sgi(0, sgi1r(3, 0, 5, 0, 0, 0xFFFF)), 0);
    assert_eq!(
        v.send_sgi(0, sgi1r(3, 0, 0, 0, 1, 0xFFFF)),
        0,
        "RS = 1: Aff0 16..=31"
    );
    // IRM: everyone but the sender.
    assert_eq!(v.send_sgi(2, (1 << 40) | (7 << 24)), 0b1011);
    // An invalid sender sends nothing.
    assert_eq!(v.send_sgi(4, 1 << 40), 0);
    for vcpu in 0..4 {
        let pending = rread(&v, vcpu, sgi_offset(gicr_sgi::ISPENDR0));
        let expect = match vcpu {
            2 => 1 << 3,
            _ => (1 << 3) | (1 << 7),
        };
        assert_eq!(pending, expect, "vCPU {vcpu}");
    }
}

#[test]
fn sgi_range_selector() {
    // Aff0 = 17 is reachable only with RS = 1.
    let mut v = Vgic::<2, 1>::new(&VgicConfig {
        mpidrs: &[0, 17],
        ppis: &[],
        spis: &[],
    })
    .unwrap();
    assert_eq!(v.send_sgi(0, (1 << 44) | 0b10), 0b10);
    assert_eq!(v.send_sgi(0, 0xFFFF), 0b01);
}

// ---- Reset -----------------------------------------------------------------------------

#[test]
fn reset_restores_power_on_state() {
    let mut v = vgic();
    let fresh = vgic();
    enable_dist(&mut v);
    set_spi(&mut v, gicd::ISENABLER, UART_SPI);
    v.set_level(UART_SPI, true);
    v.dist_write(
        0,
        gicd::IROUTER + 8 * u64::from(UART_SPI),
        Width::Double,
        0x1,
    )
    .unwrap();
    rwrite(&mut v, 1, gicr::WAKER, 0);
    v.send_sgi(0, 1 << 40);
    let mut lrs = [0u64; 4];
    v.flush(1, &mut lrs);
    v.reset();
    for offset in (0..0x1_0000).step_by(4) {
        assert_eq!(
            v.dist_read(offset, Width::Word),
            fresh.dist_read(offset, Width::Word),
            "{offset:#x}"
        );
    }
    for frame in 0..4 {
        for offset in (0..0x2_0000).step_by(4) {
            assert_eq!(
                v.redist_read(frame, offset, Width::Word),
                fresh.redist_read(frame, offset, Width::Word)
            );
        }
    }
    assert_eq!(v.flush(1, &mut lrs).used, 0);
}

#[test]
fn bits_iterates_set_bits_in_order() {
    assert_eq!(Bits(0).count(), 0);
    assert_eq!(Bits(0x8000_0011).collect::<std::vec::Vec<_>>(), [0, 4, 31]);
    assert_eq!(Bits(u32::MAX).count(), 32);
}

#[test]
fn live_set_follows_pending_and_active() {
    let mut v = vgic();
    enable_dist(&mut v);
    assert_eq!(v.live_private[0], 0);
    assert_eq!(v.live_spis, 0);
    // An SGI to vCPU 1 makes INTID 3 live there only.
    rwrite(&mut v, 1, sgi_offset(gicr_sgi::ISENABLER0), 1 << 3);
    v.send_sgi(0, (3 << 24) | 0b10);
    assert_eq!(v.live_private[1], 1 << 3);
    assert_eq!(v.live_private[0], 0);
    let mut lrs = [0u64; 4];
    assert_eq!(v.flush(1, &mut lrs).used, 1);
    assert_eq!(v.lrs_in_use(1), 1);
    // Acknowledged and deactivated by the guest: still live until the next flush prunes it.
    v.sync(1, &[with_state(lrs[0], 0), 0, 0, 0]);
    assert_eq!(v.lrs_in_use(1), 0);
    assert_eq!(v.live_private[1], 1 << 3);
    assert_eq!(v.flush(1, &mut lrs).used, 0);
    assert_eq!(v.live_private[1], 0);
    // A level SPI line: live while high, pruned after it drops.
    set_spi(&mut v, gicd::ISENABLER, UART_SPI);
    v.set_level(UART_SPI, true);
    assert_ne!(v.live_spis, 0);
    assert!(v.has_pending(0));
    v.set_level(UART_SPI, false);
    assert!(!v.has_pending(0));
    v.flush(0, &mut lrs);
    assert_eq!(v.live_spis, 0);
    // Reset empties it.
    v.send_sgi(0, (5 << 24) | 0b1);
    assert_ne!(v.live_private[0], 0);
    v.reset();
    assert_eq!(v.live_private, [0; 4]);
}

// ---- Property: random guests never panic and never reach what they do not own ---------

mod property {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        DistRead(u64, Width),
        DistWrite(usize, u64, Width, u64),
        RedistRead(usize, u64, Width),
        RedistWrite(usize, usize, u64, Width, u64),
        Level(u32, bool),
        HwFired(u32, usize),
        Sgi(usize, u64),
        Run(usize, std::vec::Vec<u8>),
    }

    fn width() -> impl Strategy<Value = Width> {
        prop_oneof![
            Just(Width::Byte),
            Just(Width::Half),
            Just(Width::Word),
            Just(Width::Double)
        ]
    }

    /// Offsets that hit registers often, and anything at all sometimes.
    fn dist_offset() -> impl Strategy<Value = u64> {
        prop_oneof![
            (0u64..0x1000),
            (0x6000u64..0x8000),
            (0xFFD0u64..0x1_0000),
            any::<u64>(),
        ]
    }

    fn redist_offset() -> impl Strategy<Value = u64> {
        prop_oneof![
            (0u64..0x100),
            (0x1_0000u64..0x1_1000),
            (0u64..0x2_1000),
            any::<u64>()
        ]
    }

    fn value() -> impl Strategy<Value = u64> {
        prop_oneof![any::<u64>(), Just(u64::MAX), Just(0xFFFF_FFFF), 0u64..4]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (dist_offset(), width()).prop_map(|(o, w)| Op::DistRead(o, w)),
            (0usize..6, dist_offset(), width(), value())
                .prop_map(|(c, o, w, v)| Op::DistWrite(c, o, w, v)),
            (0usize..6, redist_offset(), width()).prop_map(|(f, o, w)| Op::RedistRead(f, o, w)),
            (0usize..6, 0usize..6, redist_offset(), width(), value())
                .prop_map(|(c, f, o, w, v)| Op::RedistWrite(c, f, o, w, v)),
            (0u32..1100, any::<bool>()).prop_map(|(i, l)| Op::Level(i, l)),
            (
                prop_oneof![Just(PASS_HW), Just(VTIMER), 0u32..1100],
                0usize..6
            )
                .prop_map(|(h, c)| Op::HwFired(h, c)),
            (0usize..6, any::<u64>()).prop_map(|(c, s)| Op::Sgi(c, s)),
            (0usize..6, proptest::collection::vec(0u8..4, 0..6)).prop_map(|(c, s)| Op::Run(c, s)),
        ]
    }

    /// No unowned INTID's enable, pending, active or group bit reads 1, in Distributor
    /// registers `1..registers` and in every Redistributor.
    fn check_unowned_never_set(v: &V, registers: u64) {
        for n in 1..registers {
            for base in [
                gicd::ISENABLER,
                gicd::ISPENDR,
                gicd::ISACTIVER,
                gicd::IGROUPR,
            ] {
                let bits = v.dist_read(base + 4 * n, Width::Word).unwrap();
                for bit in 0..32 {
                    let intid = (32 * n + bit) as u32;
                    assert!(
                        bits & (1 << bit) == 0 || owned(intid),
                        "INTID {intid} set in {base:#x}"
                    );
                }
            }
        }
        for frame in 0..4 {
            for offset in [
                gicr_sgi::ISENABLER0,
                gicr_sgi::ISPENDR0,
                gicr_sgi::ISACTIVER0,
            ] {
                let bits = v
                    .redist_read(frame, sgi_offset(offset), Width::Word)
                    .unwrap();
                assert_eq!(bits & !(0xFFFF | (1 << VTIMER)), 0);
            }
        }
    }

    /// The live set covers every owned interrupt that is pending or active.
    fn check_live_set(v: &V) {
        for vcpu in 0..v.vcpu_count {
            for intid in 0..32 {
                if let Some(irq) = v.lookup(vcpu, intid) {
                    let st = v.state(irq);
                    assert!(
                        !(st.pending() || st.active) || v.live_private[vcpu] & (1 << intid) != 0,
                        "vCPU {vcpu} INTID {intid} not live"
                    );
                }
            }
        }
        for slot in 0..v.spi_count {
            let st = &v.spis[slot].state;
            assert!(
                !(st.pending() || st.active) || v.live_spis & (1 << slot) != 0,
                "SPI slot {slot} not live"
            );
        }
    }

    /// What `flush(vcpu)` must load with `capacity` List Registers, found by scanning every
    /// owned interrupt (the pre-live-set algorithm): the INTIDs in order, and whether more
    /// were pending.
    fn full_scan(v: &V, vcpu: usize, capacity: usize) -> (std::vec::Vec<u32>, bool) {
        let mut v = v.clone();
        v.release_lrs(vcpu);
        let mut keys: std::vec::Vec<(u32, u32)> = (0..32)
            .filter_map(|i| v.lookup(vcpu, i))
            .chain((0..v.spi_count).map(|slot| Irq::Spi { slot }))
            .filter_map(|irq| v.candidate_key(irq, vcpu).map(|k| (k, v.intid(irq))))
            .collect();
        keys.sort_unstable();
        let more = keys.len() > capacity;
        (keys.iter().take(capacity).map(|&(_, i)| i).collect(), more)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_guests(ops in proptest::collection::vec(op(), 1..64)) {
            let mut v = vgic();
            // What each vCPU's List Registers hold between its flush and its sync.
            let mut loaded: [Option<[u64; 4]>; 4] = [None; 4];
            for op in ops {
                match op {
                    Op::DistRead(o, w) => { let _ = v.dist_read(o, w); }
                    Op::DistWrite(c, o, w, val) => {
                        if let Ok(out) = v.dist_write(c, o, w, val) {
                            prop_assert!(c >= 32 || out.kick & (1 << c) == 0, "never kicks the writer");
                        }
                    }
                    Op::RedistRead(f, o, w) => { let _ = v.redist_read(f, o, w); }
                    Op::RedistWrite(c, f, o, w, val) => { let _ = v.redist_write(c, f, o, w, val); }
                    Op::Level(i, l) => { let _ = v.set_level(i, l); }
                    Op::HwFired(h, c) => { let _ = v.hw_fired(h, c); }
                    Op::Sgi(c, s) => {
                        let targets = v.send_sgi(c, s);
                        prop_assert_eq!(targets & !0b1111, 0, "only the VM's vCPUs");
                    }
                    Op::Run(c, states) => {
                        // Sync what was loaded (after the "guest" changed states), then flush.
                        if c < 4 && let Some(mut lrs) = loaded[c].take() {
                            for (lr, &s) in lrs.iter_mut().zip(&states) {
                                *lr = with_state(*lr, u64::from(s));
                            }
                            let _ = v.sync(c, &lrs);
                        }
                        let expected = (c < 4).then(|| full_scan(&v, c, 4));
                        let mut lrs = [0u64; 4];
                        let flush = v.flush(c, &mut lrs);
                        prop_assert!(flush.used <= 4);
                        if let Some((intids, more)) = expected {
                            // The live-set flush loads what a scan of every interrupt would.
                            let loaded: std::vec::Vec<u32> = lrs[..flush.used].iter().map(|x| (x & lr::VINTID_MASK) as u32).collect();
                            prop_assert_eq!(loaded, intids);
                            prop_assert_eq!(flush.more_pending, more);
                            prop_assert_eq!(v.lrs_in_use(c), flush.used);
                        }
                        for value in &lrs[..flush.used] {
                            let intid = (value & lr::VINTID_MASK) as u32;
                            prop_assert!(owned(intid), "INTID {} delivered", intid);
                            prop_assert_ne!(lr_state(*value), 0);
                            // An SPI is in at most one vCPU's List Registers.
                            if intid >= 32 {
                                for (other, held) in loaded.iter().enumerate() {
                                    if other != c && let Some(held) = held {
                                        prop_assert!(held.iter().all(|h| h & lr::VINTID_MASK != u64::from(intid) || lr_state(*h) == 0));
                                    }
                                }
                            }
                        }
                        prop_assert!(lrs[flush.used..].iter().all(|&x| x == 0));
                        if c < 4 {
                            loaded[c] = Some(lrs);
                        }
                    }
                }
                // The owned SPIs are all below INTID 128: registers 1..=3 hold them.
                check_unowned_never_set(&v, 5);
                check_live_set(&v);
                for vcpu in 0..4 {
                    let scanned = (0..32).filter_map(|i| v.lookup(vcpu, i))
                        .chain((0..v.spi_count).map(|slot| Irq::Spi { slot }))
                        .any(|irq| v.deliverable_to(irq, vcpu));
                    prop_assert_eq!(v.has_pending(vcpu), scanned);
                }
            }
            check_unowned_never_set(&v, 32);
        }
    }
}

#[test]
fn fast_path_timer_lr_matches_what_the_model_would_load() {
    let mut v = vgic();
    // Not enabled, Group 1 off: the fast path must leave the timer to the model.
    assert_eq!(v.hw_private_lr(1, VTIMER), 0);
    enable_dist(&mut v);
    assert_eq!(v.hw_private_lr(1, VTIMER), 0, "PPI not enabled");
    rwrite(&mut v, 1, sgi_offset(gicr_sgi::ISENABLER0), 1 << VTIMER);
    // Priority byte of INTID 27 in GICR_IPRIORITYR6 (bits 31:24).
    rwrite(&mut v, 1, sgi_offset(gicr_sgi::IPRIORITYR + 24), 0xa0 << 24);
    let fast = v.hw_private_lr(1, VTIMER);
    assert_eq!(v.hw_private_lr(0, VTIMER), 0, "enabled on vCPU 1's redistributor only");
    // The model's own delivery of the same event loads the same value.
    v.hw_fired(VTIMER, 1);
    let mut lrs = [0u64; 4];
    assert_eq!(v.flush(1, &mut lrs).used, 1);
    assert_eq!(fast, lrs[0]);
    assert_eq!(fast, expected_lr(VTIMER, 1, 0xa0) | lr::HW | (u64::from(VTIMER) << lr::PINTID_SHIFT));
    // Only a physical INTID linked to a PPI has a fast path; vCPUs out of range have none.
    assert_eq!(v.hw_private_lr(1, PASS_HW), 0);
    assert_eq!(v.hw_private_lr(1, 26), 0);
    assert_eq!(v.hw_private_lr(9, VTIMER), 0);
    // Disabled again, or Group 1 off: back to the model.
    dwrite(&mut v, 0, gicd::CTLR, 0);
    assert_eq!(v.hw_private_lr(1, VTIMER), 0);
    enable_dist(&mut v);
    assert_ne!(v.hw_private_lr(1, VTIMER), 0);
    rwrite(&mut v, 1, sgi_offset(gicr_sgi::ICENABLER0), 1 << VTIMER);
    assert_eq!(v.hw_private_lr(1, VTIMER), 0);
}
