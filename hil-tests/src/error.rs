//! The harness's errors. A failed expectation carries the console's tail so the test output
//! shows what the system did instead.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::console::Line;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Debug` shows the same text as `Display`, so a test's `.unwrap()` prints the console tail
/// readably.
pub enum Error {
    /// A command the harness runs (cargo, qemu) could not start or failed.
    Command {
        command: String,
        detail: String,
    },
    /// `cargo xtask build` succeeded but its last stdout line is not an existing file.
    NoImage {
        dts: PathBuf,
        last_line: String,
    },
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// No matching console line in time.
    Timeout {
        what: String,
        waited: Duration,
        exited: bool,
        tail: Vec<Line>,
        stderr: String,
    },
    /// No matching hypervisor log line in time.
    HvLogTimeout {
        words: Vec<String>,
        hv_tail: Vec<String>,
        console_tail: Vec<Line>,
    },
    /// The ELF has no usable defmt table.
    Defmt {
        elf: PathBuf,
        reason: String,
    },
    /// A negative check failed: a line that must not appear did.
    Unexpected {
        what: String,
        line: Line,
        tail: Vec<Line>,
    },
    UnknownTarget(String),
}

impl std::error::Error for Error {}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f)?;
        fmt::Display::fmt(self, f)
    }
}

fn write_tail(f: &mut fmt::Formatter<'_>, tail: &[Line]) -> fmt::Result {
    writeln!(f, "--- last {} console lines ---", tail.len())?;
    for line in tail {
        writeln!(f, "{line}")?;
    }
    write!(f, "---")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Command { command, detail } => write!(f, "`{command}` failed: {detail}"),
            Error::NoImage { dts, last_line } => write!(
                f,
                "building {}: the last stdout line {last_line:?} is not an image file",
                dts.display()
            ),
            Error::Io { path, error } => write!(f, "{}: {error}", path.display()),
            Error::Timeout {
                what,
                waited,
                exited,
                tail,
                stderr,
            } => {
                write!(f, "no console line {what} after {waited:?}")?;
                if *exited {
                    write!(f, " (the target stopped)")?;
                }
                writeln!(f)?;
                write_tail(f, tail)?;
                if !stderr.is_empty() {
                    write!(f, "\n--- target stderr ---\n{stderr}---")?;
                }
                Ok(())
            }
            Error::HvLogTimeout {
                words,
                hv_tail,
                console_tail,
            } => {
                writeln!(f, "no hypervisor log line containing all of {words:?}")?;
                writeln!(f, "--- last {} hypervisor log lines ---", hv_tail.len())?;
                for line in hv_tail {
                    writeln!(f, "{line}")?;
                }
                write_tail(f, console_tail)
            }
            Error::Defmt { elf, reason } => write!(f, "defmt table of {}: {reason}", elf.display()),
            Error::Unexpected { what, line, tail } => {
                writeln!(f, "unexpected console line ({what}): {line}")?;
                write_tail(f, tail)
            }
            Error::UnknownTarget(name) => {
                write!(f, "unknown TESSERA_HIL_TARGET {name:?} (known: qemu)")
            }
        }
    }
}
