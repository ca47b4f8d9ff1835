//! The exit decoder (`tessera_core::exit`): any `ESR_EL2`, `FAR_EL2`, `HPFAR_EL2`, and for a
//! decoded MMIO access any device value and register content.
//!
//! Invariants checked (DDI 0487, `ESR_EL2` ISS encodings, `HPFAR_EL2`):
//! - `ESR_EL2[63:32]` (ISS2, RES0 here) never changes the decode;
//! - the exception class picks the variant, and each field is the bits it comes from: a
//!   register number is 0..=31, system-register fields fit their widths, `imm16` is
//!   `ISS[15:0]`, an `Other` ISS fits 25 bits;
//! - a fault IPA is below 2^52 and keeps `FAR_EL2[11:0]` as its page offset;
//! - an emulatable access exists only with `ISV` = 1 and `CM` = 0;
//! - `mmio_read_result` keeps the device value's low `width` bits, sign-extends only with
//!   `SSE`, and never sets bits above 31 for a `Wt` register; `mmio_write_value` is the
//!   register masked to the width.

use arbitrary::{Arbitrary, Unstructured};
use tessera_core::exit::{DataAbort, Exit, decode, ec, mmio_read_result, mmio_write_value};

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    // Unstructured yields zeros once the data runs out: stop there, not at an error.
    while !u.is_empty() {
        let Ok((esr, far, hpfar, raw)) = <(u64, u64, u64, u64)>::arbitrary(&mut u) else {
            break;
        };
        check(esr, far, hpfar, raw);
        // The same with the exception class forced to one that has a decoder.
        let class = [
            ec::DABT_LOWER,
            ec::IABT_LOWER,
            ec::HVC64,
            ec::SMC64,
            ec::WFX,
            ec::SYS64,
        ][(raw % 6) as usize];
        check(
            (esr & !(0x3f << 26)) | (u64::from(class) << 26),
            far,
            hpfar,
            raw,
        );
    }
}

fn check(esr: u64, far: u64, hpfar: u64, raw: u64) {
    let exit = decode(esr, far, hpfar);
    assert_eq!(
        exit,
        decode(esr & 0xffff_ffff, far, hpfar),
        "ISS2 changed the decode of {esr:#x}"
    );
    let class = ((esr >> 26) & 0x3f) as u8;
    let iss = (esr & 0x1ff_ffff) as u32;
    let ipa_ok = |ipa: u64| ipa < (1 << 52) && ipa & 0xfff == far & 0xfff;
    match exit {
        Exit::DataAbort(DataAbort {
            ipa,
            far: f,
            dfsc,
            write,
            access,
            ..
        }) => {
            assert_eq!(class, ec::DABT_LOWER);
            assert!(
                ipa_ok(ipa) && f == far,
                "IPA {ipa:#x} from FAR {far:#x}, HPFAR {hpfar:#x}"
            );
            assert_eq!(u32::from(dfsc), iss & 0x3f);
            assert_eq!(write, iss & (1 << 6) != 0);
            let emulatable = iss & (1 << 24) != 0 && iss & (1 << 8) == 0;
            assert_eq!(access.is_some(), emulatable, "ISV/CM of {esr:#x}");
            if let Some(a) = access {
                assert!(
                    a.reg <= 31 && u32::from(a.reg) == (iss >> 16) & 0x1f,
                    "SRT of {esr:#x}"
                );
                assert_eq!(a.width.bytes(), 1 << ((iss >> 22) & 3), "SAS of {esr:#x}");
                let mask = a.width.mask();
                let value = mmio_read_result(&a, raw);
                assert_eq!(
                    value & mask & 0xffff_ffff,
                    raw & mask & 0xffff_ffff,
                    "low bits of the load"
                );
                if !a.sixty_four {
                    assert!(
                        value <= u64::from(u32::MAX),
                        "a Wt load set bits above 31: {value:#x}"
                    );
                }
                let negative = raw & mask & (1 << (a.width.bytes() * 8 - 1)) != 0;
                if !a.sign_extend || !negative {
                    assert_eq!(
                        value,
                        raw & mask & if a.sixty_four { u64::MAX } else { 0xffff_ffff }
                    );
                }
                assert_eq!(mmio_write_value(&a, raw), raw & mask);
            }
        }
        Exit::InstructionAbort {
            ipa, far: f, fsc, ..
        } => {
            assert_eq!(class, ec::IABT_LOWER);
            assert!(ipa_ok(ipa) && f == far);
            assert_eq!(u32::from(fsc), iss & 0x3f);
        }
        Exit::Hvc { imm } => assert!(class == ec::HVC64 && u32::from(imm) == iss & 0xffff),
        Exit::Smc { imm } => assert!(class == ec::SMC64 && u32::from(imm) == iss & 0xffff),
        Exit::Wfx { wfe } => assert!(class == ec::WFX && wfe == (iss & 1 != 0)),
        Exit::SysReg(s) => {
            assert_eq!(class, ec::SYS64);
            assert!(
                s.op0 <= 3 && s.op1 <= 7 && s.crn <= 15 && s.crm <= 15 && s.op2 <= 7 && s.rt <= 31,
                "{s:?}"
            );
            assert_eq!(s.read, iss & 1 != 0);
            let encoding = s.encoding();
            assert_eq!(
                (
                    encoding >> 14,
                    (encoding >> 11) & 7,
                    (encoding >> 7) & 15,
                    (encoding >> 3) & 15,
                    encoding & 7
                ),
                (
                    u16::from(s.op0),
                    u16::from(s.op1),
                    u16::from(s.crn),
                    u16::from(s.crm),
                    u16::from(s.op2)
                )
            );
        }
        Exit::Other { ec: other, iss: i } => {
            assert_eq!(other, class);
            assert!(i < (1 << 25) && i == iss);
            assert!(
                ![
                    ec::DABT_LOWER,
                    ec::IABT_LOWER,
                    ec::HVC64,
                    ec::SMC64,
                    ec::WFX,
                    ec::SYS64
                ]
                .contains(&other)
            );
        }
    }
}
