//! Decoding the hypervisor's defmt log (`hv.defmt`, written through semihosting) with the
//! table in its ELF. Kept here, independent of the build tool's decoder, so the harness only
//! depends on the ELF and the bytes.

use std::path::Path;

use defmt_decoder::{DecodeError, Table};

use crate::error::{Error, Result};

/// Loads the defmt table of `elf`.
pub(crate) fn load_table(elf: &Path) -> Result<Table> {
    let bytes = std::fs::read(elf).map_err(|error| Error::Io {
        path: elf.to_path_buf(),
        error,
    })?;
    Table::parse(&bytes)
        .map_err(|error| Error::Defmt {
            elf: elf.to_path_buf(),
            reason: error.to_string(),
        })?
        .ok_or_else(|| Error::Defmt {
            elf: elf.to_path_buf(),
            reason: "no .defmt section".into(),
        })
}

/// Decodes a whole log from the start. A frame cut off at the end (the hypervisor is still
/// writing) is ignored; a malformed frame is skipped when the encoding can resynchronise
/// (rzCOBS, the default) and ends decoding otherwise.
pub(crate) fn decode_with(table: &Table, bytes: &[u8]) -> Vec<String> {
    let mut decoder = table.new_stream_decoder();
    decoder.received(bytes);
    let mut lines = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => lines.push(frame.display(false).to_string()),
            Err(DecodeError::UnexpectedEof) => break,
            Err(DecodeError::Malformed) if table.encoding().can_recover() => continue,
            Err(DecodeError::Malformed) => break,
        }
    }
    lines
}

/// Decodes `bytes` with the table in `elf`.
pub fn decode_defmt(elf: &Path, bytes: &[u8]) -> Result<Vec<String>> {
    Ok(decode_with(&load_table(elf)?, bytes))
}
