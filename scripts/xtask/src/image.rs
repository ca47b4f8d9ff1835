//! Images: the arm64 Image header, ELF → flat binary, and section sizes for the summary.

use std::path::Path;

use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object, ObjectSection, SectionFlags, elf};

use crate::error::{Error, Result};

/// `ARM\x64` at offset 56 (Linux Documentation/arch/arm64/booting.rst, "Call the kernel image").
pub const ARM64_IMAGE_MAGIC: [u8; 4] = *b"ARM\x64";
const MAGIC_OFFSET: usize = 56;
const HEADER_SIZE: usize = 64;
/// Images from before Linux 3.17 have `image_size` 0, and then `text_offset` is 0x80000
/// whatever the header says (booting.rst).
const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;

/// What an arm64 Image header says about placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arm64Header {
    /// Bytes from a 2 MiB-aligned base to where the image is loaded (and entered).
    pub text_offset: u64,
    /// Bytes the image occupies once loaded, BSS included; 0 if the header does not say.
    pub image_size: u64,
}

impl Arm64Header {
    /// The header of `bytes`, if they start with one.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let header = bytes.get(..HEADER_SIZE)?;
        if header[MAGIC_OFFSET..MAGIC_OFFSET + 4] != ARM64_IMAGE_MAGIC {
            return None;
        }
        let le64 = |offset: usize| {
            let mut word = [0; 8];
            word.copy_from_slice(&header[offset..offset + 8]);
            u64::from_le_bytes(word)
        };
        let image_size = le64(16);
        let text_offset = if image_size == 0 {
            LEGACY_TEXT_OFFSET
        } else {
            le64(8)
        };
        Some(Self {
            text_offset,
            image_size,
        })
    }
}

fn elf_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Elf {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The flat binary of an ELF: each `PT_LOAD` segment's file bytes at (its vaddr − the lowest
/// vaddr), gaps zero-filled, ending at the last file-backed byte (so without trailing BSS).
pub fn elf_to_flat(path: &Path, data: &[u8]) -> Result<Vec<u8>> {
    let file = ElfFile64::<Endianness>::parse(data)
        .map_err(|e| elf_error(path, format!("not a 64-bit ELF: {e}")))?;
    let endian = file.endian();
    let segments: Vec<_> = file
        .elf_program_headers()
        .iter()
        .filter(|ph| ph.p_type(endian) == elf::PT_LOAD && ph.p_filesz(endian) > 0)
        .collect();
    let lowest = segments
        .iter()
        .map(|ph| ph.p_vaddr(endian))
        .min()
        .ok_or_else(|| elf_error(path, "no loadable segment with file contents"))?;
    let mut flat = Vec::new();
    for ph in segments {
        let bytes = ph
            .data(endian, data)
            .map_err(|_| elf_error(path, "a segment lies outside the file"))?;
        let start = usize::try_from(ph.p_vaddr(endian) - lowest)
            .ok()
            .filter(|&start| start < 1 << 30)
            .ok_or_else(|| elf_error(path, "segments span more than 1 GiB"))?;
        let end = start + bytes.len();
        if flat.len() < end {
            flat.resize(end, 0);
        }
        flat[start..end].copy_from_slice(bytes);
    }
    Ok(flat)
}

/// Sizes of an ELF's allocated sections, for the build summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SectionSizes {
    /// Code and data, `.payload` excluded.
    pub file_backed: u64,
    /// `.bss` and the like (no file bytes).
    pub zero_filled: u64,
    /// The embedded guest images and device trees.
    pub payload: u64,
}

pub fn section_sizes(path: &Path, data: &[u8]) -> Result<SectionSizes> {
    let file = ElfFile64::<Endianness>::parse(data)
        .map_err(|e| elf_error(path, format!("not a 64-bit ELF: {e}")))?;
    let mut sizes = SectionSizes::default();
    for section in file.sections() {
        let SectionFlags::Elf { sh_flags } = section.flags() else {
            continue;
        };
        if sh_flags & u64::from(elf::SHF_ALLOC) == 0 {
            continue;
        }
        if section.name() == Ok(".payload") {
            sizes.payload += section.size();
        } else if section.file_range().is_some() {
            sizes.file_backed += section.size();
        } else {
            sizes.zero_filled += section.size();
        }
    }
    Ok(sizes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly
mod tests {
    use super::*;

    fn header(text_offset: u64, image_size: u64) -> Vec<u8> {
        let mut bytes = vec![0; 4096];
        bytes[8..16].copy_from_slice(&text_offset.to_le_bytes());
        bytes[16..24].copy_from_slice(&image_size.to_le_bytes());
        bytes[56..60].copy_from_slice(&ARM64_IMAGE_MAGIC);
        bytes
    }

    #[test]
    fn reads_an_arm64_image_header() {
        assert_eq!(
            Arm64Header::parse(&header(0x20_0000, 0x5000)),
            Some(Arm64Header {
                text_offset: 0x20_0000,
                image_size: 0x5000
            })
        );
    }

    #[test]
    fn legacy_header_means_text_offset_0x80000() {
        assert_eq!(
            Arm64Header::parse(&header(0x1234, 0)).map(|h| h.text_offset),
            Some(0x8_0000)
        );
    }

    #[test]
    fn no_magic_or_too_short_is_no_header() {
        assert_eq!(Arm64Header::parse(&[0; 4096]), None);
        assert_eq!(Arm64Header::parse(&header(0, 1)[..60]), None);
    }

    #[test]
    fn garbage_is_not_an_elf() {
        assert!(matches!(
            elf_to_flat(Path::new("x"), b"not an elf"),
            Err(Error::Elf { .. })
        ));
    }
}
