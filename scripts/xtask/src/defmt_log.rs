//! The hypervisor's own log: defmt frames it writes to the semihosting file `hv.defmt`,
//! decoded on the host with the table in its ELF. `cargo xtask run` follows the file live;
//! the HIL harness decodes it after a run with [`decode`].

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use defmt_decoder::{DecodeError, StreamDecoder, Table};

use crate::error::{Error, Result, io};

/// The file name the hypervisor opens through semihosting, in QEMU's working directory.
pub const LOG_FILE: &str = "hv.defmt";

/// Decodes a whole log. A malformed frame becomes a line saying so; decoding goes on if the
/// encoding can resynchronise (rzcobs), and stops otherwise (raw).
pub fn decode(elf: &Path, bytes: &[u8]) -> Result<Vec<String>> {
    let decoder = LogDecoder::load(elf)?;
    let mut stream = decoder.stream();
    let mut lines = Vec::new();
    stream.feed(bytes, |line| lines.push(line));
    Ok(lines)
}

/// The defmt table of one ELF.
#[derive(Debug)]
pub struct LogDecoder {
    table: Table,
}

impl LogDecoder {
    pub fn load(elf: &Path) -> Result<Self> {
        let bytes = std::fs::read(elf).map_err(io(elf))?;
        let table = Table::parse(&bytes)
            .map_err(|e| Error::Defmt {
                reason: format!("{}: {e}", elf.display()),
            })?
            .ok_or_else(|| Error::Defmt {
                reason: format!("{} has no .defmt section", elf.display()),
            })?;
        Ok(Self { table })
    }

    /// A decoder for one stream of frames.
    pub fn stream(&self) -> LogStream<'_> {
        LogStream {
            decoder: self.table.new_stream_decoder(),
            can_recover: self.table.encoding().can_recover(),
            broken: false,
        }
    }

    /// Follows the log at `path` (which may not exist yet) until `done()` is true, then
    /// decodes what is left, calling `on_line` for each line.
    pub fn follow(
        &self,
        path: &Path,
        done: impl Fn() -> bool,
        mut on_line: impl FnMut(String),
    ) -> Result<()> {
        const POLL: Duration = Duration::from_millis(50);
        let mut stream = self.stream();
        let mut file = None;
        let mut buffer = vec![0; 64 * 1024];
        loop {
            // Read `done` before draining, so nothing written before the end is missed.
            let finished = done();
            if file.is_none() {
                file = File::open(path).ok();
            }
            if let Some(file) = file.as_mut() {
                loop {
                    let count = file.read(&mut buffer).map_err(io(path))?;
                    if count == 0 {
                        break;
                    }
                    stream.feed(&buffer[..count], &mut on_line);
                }
            }
            if finished {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Decoding state across reads: a frame may arrive in pieces.
pub struct LogStream<'t> {
    decoder: Box<dyn StreamDecoder + Send + Sync + 't>,
    can_recover: bool,
    broken: bool,
}

impl std::fmt::Debug for LogStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStream")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl LogStream<'_> {
    /// Adds bytes and emits every line they complete.
    pub fn feed(&mut self, bytes: &[u8], mut on_line: impl FnMut(String)) {
        if self.broken {
            return;
        }
        self.decoder.received(bytes);
        loop {
            match self.decoder.decode() {
                Ok(frame) => on_line(frame.display(false).to_string()),
                Err(DecodeError::UnexpectedEof) => return,
                Err(DecodeError::Malformed) if self.can_recover => {
                    on_line("(malformed defmt frame skipped)".into())
                }
                Err(DecodeError::Malformed) => {
                    on_line("(malformed defmt frame; the raw encoding cannot resynchronise, decoding stops)".into());
                    self.broken = true;
                    return;
                }
            }
        }
    }
}
