//! Handing a synchronous external abort back to the guest, as if its own memory system had
//! failed the access.
//!
//! The hypervisor does what the PE would have done on taking a synchronous exception to EL1
//! (DDI 0487 D1.10, "Exception entry"): save the return state in `ELR_EL1`/`SPSR_EL1`, report
//! the syndrome in `ESR_EL1`/`FAR_EL1`, and return to the guest's vector with PSTATE set as on
//! exception entry. [`sync_external_abort`] computes those values; the arch layer writes them.

use crate::vcpu::{SPSR_EL1H, SPSR_MASK_DAIF};

// SPSR_EL2.M[4:0] for an exception from AArch64 (DDI 0487, `SPSR_EL2`): M[4] = 0, M[3:2] = the EL,
// M[0] = the stack pointer (0 = SP_EL0 "t", 1 = SP_ELx "h").
const SPSR_M_MASK: u64 = 0x1f;
const SPSR_M_EL0T: u64 = 0b0_0000;
const SPSR_M_EL1T: u64 = 0b0_0100;
const SPSR_M_EL1H: u64 = 0b0_0101;
// M[4] = 1 is AArch32; User mode 0b10000 (DDI 0487, AArch32 PSTATE.M) is the only AArch32 mode a guest
// can be in, at EL0 (HCR_EL2.RW = 1 keeps EL1 in AArch64).
const SPSR_M_AARCH32_USR: u64 = 0b1_0000;

// Synchronous vector offsets from VBAR_EL1 (DDI 0487 D1.10.2, Table D1-7).
const VECTOR_CURRENT_EL_SP0: u64 = 0x000;
const VECTOR_CURRENT_EL_SPX: u64 = 0x200;
const VECTOR_LOWER_EL_AARCH64: u64 = 0x400;
const VECTOR_LOWER_EL_AARCH32: u64 = 0x600;

// ESR_EL1 (DDI 0487, `ESR_EL1`): EC[31:26], IL[25]; Data/Instruction Abort ISS: WnR[6], FSC[5:0].
const ESR_EC_SHIFT: u32 = 26;
const ESR_IL: u64 = 1 << 25;
const ESR_WNR: u64 = 1 << 6;
/// DFSC/IFSC 0b010000: synchronous External abort, not on a translation table walk.
pub const FSC_SYNC_EXTERNAL: u64 = 0b01_0000;
const EC_IABT_LOWER: u64 = 0x20;
const EC_IABT_CURRENT: u64 = 0x21;
const EC_DABT_LOWER: u64 = 0x24;
const EC_DABT_CURRENT: u64 = 0x25;

/// What kind of access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AbortKind {
    /// A load (`write` false) or store (`write` true).
    Data { write: bool },
    /// An instruction fetch.
    Instruction,
}

/// The guest state at the exit, as captured at EL2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestPstate {
    /// The guest's PSTATE at the exit.
    pub spsr_el2: u64,
    /// The address of the faulting instruction (for an abort, `ELR_EL2` points AT it).
    pub elr_el2: u64,
    /// The guest's vector base.
    pub vbar_el1: u64,
}

/// The register values that deliver the abort. The arch layer writes each into the named
/// register and then returns to the guest with `ERET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Injection {
    pub esr_el1: u64,
    pub far_el1: u64,
    /// The guest's return address: the faulting instruction.
    pub elr_el1: u64,
    /// The guest's PSTATE at the fault.
    pub spsr_el1: u64,
    /// The new `ELR_EL2`: the guest's synchronous vector.
    pub elr_el2: u64,
    /// The new `SPSR_EL2`: EL1h with D, A, I and F masked.
    pub spsr_el2: u64,
}

/// Why an abort cannot be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum InjectError {
    /// `SPSR_EL2.M` names a mode the guest cannot have been in when it exited to EL2 (EL2,
    /// EL3, or an AArch32 mode other than User). The capture path is broken; stop the VM.
    ImpossibleSourceMode { m: u8 },
}

/// The values that inject a synchronous external abort at `far` into the guest.
///
/// The vector is chosen from the mode in `SPSR_EL2.M` (DDI 0487 D1.10.2): EL1t `+0x000`, EL1h
/// `+0x200`, EL0 AArch64 `+0x400`, EL0 AArch32 `+0x600`. The EC is the "same EL" class when the
/// guest was at EL1 and the "lower EL" class from EL0.
///
/// Simplification: the new PSTATE is exactly EL1h with DAIF masked. The architecture also sets
/// PAN from `SCTLR_EL1.SPAN` and SSBS from `SCTLR_EL1.DSSBS` on exception entry; guests that
/// rely on those need `SCTLR_EL1` passed in here (not done yet).
pub fn sync_external_abort(
    kind: AbortKind,
    guest: &GuestPstate,
    far: u64,
) -> Result<Injection, InjectError> {
    let m = guest.spsr_el2 & SPSR_M_MASK;
    let (offset, from_el1) = match m {
        SPSR_M_EL1T => (VECTOR_CURRENT_EL_SP0, true),
        SPSR_M_EL1H => (VECTOR_CURRENT_EL_SPX, true),
        SPSR_M_EL0T => (VECTOR_LOWER_EL_AARCH64, false),
        SPSR_M_AARCH32_USR => (VECTOR_LOWER_EL_AARCH32, false),
        _ => return Err(InjectError::ImpossibleSourceMode { m: m as u8 }),
    };
    let (ec, wnr) = match (kind, from_el1) {
        (AbortKind::Data { write }, true) => (EC_DABT_CURRENT, write),
        (AbortKind::Data { write }, false) => (EC_DABT_LOWER, write),
        (AbortKind::Instruction, true) => (EC_IABT_CURRENT, false),
        (AbortKind::Instruction, false) => (EC_IABT_LOWER, false),
    };
    let esr_el1 = (ec << ESR_EC_SHIFT) | ESR_IL | if wnr { ESR_WNR } else { 0 } | FSC_SYNC_EXTERNAL;
    Ok(Injection {
        esr_el1,
        far_el1: far,
        elr_el1: guest.elr_el2,
        spsr_el1: guest.spsr_el2,
        // VBAR_EL1[10:0] are RES0; the wrapping add matches the hardware's address arithmetic
        // and cannot panic on a guest-written value.
        elr_el2: (guest.vbar_el1 & !0x7ff).wrapping_add(offset),
        spsr_el2: SPSR_MASK_DAIF | SPSR_EL1H,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap known-good values")]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VBAR: u64 = 0xffff_8000_1001_0800;
    const ELR: u64 = 0xffff_8000_1020_3040;
    const FAR: u64 = 0x0900_1000;

    fn inject(kind: AbortKind, spsr: u64) -> Injection {
        let guest = GuestPstate {
            spsr_el2: spsr,
            elr_el2: ELR,
            vbar_el1: VBAR,
        };
        sync_external_abort(kind, &guest, FAR).expect("valid source mode")
    }

    #[test]
    fn data_abort_from_el1h() {
        // EL1h with interrupts unmasked and the Z flag set.
        let spsr = (1 << 30) | 0b0101;
        let i = inject(AbortKind::Data { write: true }, spsr);
        assert_eq!(i.elr_el2, VBAR + 0x200);
        assert_eq!(i.esr_el1, 0x9600_0050); // EC 0x25, IL, WnR, DFSC 0b010000
        assert_eq!(i.far_el1, FAR);
        assert_eq!(i.elr_el1, ELR);
        assert_eq!(i.spsr_el1, spsr);
        assert_eq!(i.spsr_el2, 0x3c5);
    }

    #[test]
    fn data_read_abort_from_el1t() {
        let i = inject(AbortKind::Data { write: false }, 0b0100);
        assert_eq!(i.elr_el2, VBAR);
        assert_eq!(i.esr_el1, 0x9600_0010);
        assert_eq!(i.spsr_el2, 0x3c5);
    }

    #[test]
    fn data_abort_from_el0_aarch64() {
        let i = inject(AbortKind::Data { write: true }, 0b0000);
        assert_eq!(i.elr_el2, VBAR + 0x400);
        assert_eq!(i.esr_el1, 0x9200_0050); // EC 0x24
        assert_eq!(i.spsr_el1, 0);
        assert_eq!(i.spsr_el2, 0x3c5);
    }

    #[test]
    fn data_abort_from_el0_aarch32() {
        let i = inject(AbortKind::Data { write: false }, 0b1_0000);
        assert_eq!(i.elr_el2, VBAR + 0x600);
        assert_eq!(i.esr_el1, 0x9200_0010);
    }

    #[test]
    fn instruction_aborts() {
        let i = inject(AbortKind::Instruction, 0b0101);
        assert_eq!(i.esr_el1, 0x8600_0010); // EC 0x21, IL, IFSC 0b010000, no WnR
        assert_eq!(i.elr_el2, VBAR + 0x200);
        let i = inject(AbortKind::Instruction, 0b0000);
        assert_eq!(i.esr_el1, 0x8200_0010); // EC 0x20
        assert_eq!(i.elr_el2, VBAR + 0x400);
    }

    #[test]
    fn vbar_low_bits_are_ignored() {
        let guest = GuestPstate {
            spsr_el2: 0b0101,
            elr_el2: ELR,
            vbar_el1: VBAR | 0x7ff,
        };
        let i = sync_external_abort(AbortKind::Instruction, &guest, FAR).unwrap();
        assert_eq!(i.elr_el2, VBAR + 0x200);
    }

    #[test]
    fn impossible_modes_are_errors() {
        for m in [
            0b1000u64, 0b1001, 0b1100, 0b1101, 0b0001, 0b1_0011, 0b1_1111,
        ] {
            let guest = GuestPstate {
                spsr_el2: m,
                elr_el2: ELR,
                vbar_el1: VBAR,
            };
            assert_eq!(
                sync_external_abort(AbortKind::Instruction, &guest, FAR),
                Err(InjectError::ImpossibleSourceMode { m: m as u8 })
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(write: bool, data: bool, spsr: u64, elr: u64, vbar: u64, far: u64) {
            let kind = if data { AbortKind::Data { write } } else { AbortKind::Instruction };
            let guest = GuestPstate { spsr_el2: spsr, elr_el2: elr, vbar_el1: vbar };
            if let Ok(i) = sync_external_abort(kind, &guest, far) {
                prop_assert_eq!(i.spsr_el2, 0x3c5);
                prop_assert_eq!(i.esr_el1 & 0x3f, FSC_SYNC_EXTERNAL);
                prop_assert_eq!(i.elr_el2 & 0x1ff, 0);
            }
        }
    }
}
