//! The vocabulary of a trapped MMIO access, shared by every device model.
//!
//! A stage-2 data abort on a device page is decoded elsewhere (from `ESR_EL2.ISS` and
//! `HPFAR_EL2`/`FAR_EL2`, Arm ARM DDI 0487 D24.2.x) into an offset inside the device's frame,
//! a [`Width`] and, for a write, the value. A device model answers with a value or an
//! [`MmioError`]; on an error the caller injects a synchronous external abort into the guest.
//! A device model never panics on what a guest does.

/// The size of one access, as `ESR_EL2.ISS.SAS` encodes it for a data abort (DDI 0487, ISS
/// encoding for an exception from a Data Abort: SAS `0b00` byte .. `0b11` doubleword).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Width {
    /// 8 bits.
    Byte,
    /// 16 bits.
    Half,
    /// 32 bits.
    Word,
    /// 64 bits.
    Double,
}

impl Width {
    /// The access size in bytes: 1, 2, 4 or 8.
    #[must_use]
    pub const fn bytes(self) -> u64 {
        match self {
            Width::Byte => 1,
            Width::Half => 2,
            Width::Word => 4,
            Width::Double => 8,
        }
    }

    /// The width whose size is `2^size_log2` bytes: the `ESR_EL2.ISS.SAS` field as is.
    /// Returns `None` for anything above 3.
    #[must_use]
    pub const fn from_sas(size_log2: u8) -> Option<Width> {
        match size_log2 {
            0 => Some(Width::Byte),
            1 => Some(Width::Half),
            2 => Some(Width::Word),
            3 => Some(Width::Double),
            _ => None,
        }
    }

    /// The bits an access of this width can carry (`0xff` for a byte, all ones for a
    /// doubleword). Values written are truncated to it; values read are masked by it.
    #[must_use]
    pub const fn mask(self) -> u64 {
        match self {
            Width::Double => u64::MAX,
            other => (1u64 << (other.bytes() * 8)) - 1,
        }
    }
}

/// Why a device refused an access. Every variant becomes an abort injected into the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MmioError {
    /// The offset is inside the device's frame but no register starts there (a reserved or
    /// unimplemented register, or an access that does not begin at a register's first byte).
    BadOffset {
        /// Offset from the start of the frame.
        offset: u64,
    },
    /// A register exists at the offset but does not allow accesses of this size.
    BadWidth {
        /// Offset from the start of the frame.
        offset: u64,
        /// The refused size.
        width: Width,
    },
    /// The offset is past the end of the device's frame. The caller should not have routed
    /// this access here; the device refuses it rather than trusting that.
    OutsideFrame {
        /// Offset from the start of the frame.
        offset: u64,
        /// The frame size in bytes.
        frame_size: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_masks() {
        assert_eq!(Width::Byte.bytes(), 1);
        assert_eq!(Width::Half.bytes(), 2);
        assert_eq!(Width::Word.bytes(), 4);
        assert_eq!(Width::Double.bytes(), 8);
        assert_eq!(Width::Byte.mask(), 0xff);
        assert_eq!(Width::Half.mask(), 0xffff);
        assert_eq!(Width::Word.mask(), 0xffff_ffff);
        assert_eq!(Width::Double.mask(), u64::MAX);
    }

    #[test]
    fn from_sas_covers_the_field() {
        assert_eq!(Width::from_sas(0), Some(Width::Byte));
        assert_eq!(Width::from_sas(1), Some(Width::Half));
        assert_eq!(Width::from_sas(2), Some(Width::Word));
        assert_eq!(Width::from_sas(3), Some(Width::Double));
        assert_eq!(Width::from_sas(4), None);
    }
}
