//! Building what the tests boot: whole systems through `cargo xtask build`, and the bare-metal
//! guest on its own (for harness self-tests that boot it natively).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use object::Endianness;
use object::elf::{FileHeader64, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};

use crate::error::{Error, Result};

/// The cargo workspace root (this crate lives in `<root>/hil-tests`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// One build at a time (cargo would serialise them anyway), and each path built once per
/// test process. Failures are cached too, so every test that needs a broken system fails fast
/// with the same message.
type BuildCache = HashMap<(PathBuf, String), Result<PathBuf, String>>;

fn cache() -> &'static Mutex<BuildCache> {
    static CACHE: OnceLock<Mutex<BuildCache>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn run(mut command: Command) -> Result<String> {
    let text = format!("{command:?}");
    let output = command.output().map_err(|error| Error::Command {
        command: text.clone(),
        detail: error.to_string(),
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Error::Command {
            command: text,
            detail: format!("{}\n{}", output.status, tail.join("\n")),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Builds the system described by `dts` with `cargo xtask build <dts>` and returns the image's
/// absolute path (the last stdout line, by the build tool's contract). The unstripped ELF is
/// `tessera.elf` beside it. `dts` may be relative to the workspace root.
pub fn build_system(dts: &Path) -> Result<PathBuf> {
    build_system_with_features(dts, "")
}

/// As [`build_system`], with test-only cargo `features` of the platform binary (comma
/// separated, e.g. `fault-test`), passed to the build tool in `TESSERA_HV_FEATURES`. Give
/// such a build its own system file: outputs go to a directory named after it.
pub fn build_system_with_features(dts: &Path, features: &str) -> Result<PathBuf> {
    let dts = if dts.is_absolute() {
        dts.to_path_buf()
    } else {
        workspace_root().join(dts)
    };
    let mut cache = cache()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = (dts.clone(), features.to_string());
    if let Some(result) = cache.get(&key) {
        return result.clone().map_err(|detail| Error::Command {
            command: format!("cargo xtask build {}", dts.display()),
            detail,
        });
    }
    let result = build_uncached(&dts, features);
    cache.insert(
        key,
        result
            .as_ref()
            .map(Clone::clone)
            .map_err(ToString::to_string),
    );
    result
}

fn build_uncached(dts: &Path, features: &str) -> Result<PathBuf> {
    let mut command = cargo();
    command.arg("xtask").arg("build").arg(dts);
    command.env("TESSERA_HV_FEATURES", features);
    let stdout = run(command)?;
    let last_line = stdout
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("")
        .trim();
    let image = PathBuf::from(last_line);
    if image.is_absolute() && image.is_file() {
        Ok(image)
    } else {
        Err(Error::NoImage {
            dts: dts.to_path_buf(),
            last_line: last_line.to_string(),
        })
    }
}

/// The unstripped ELF of a built system (the build tool's contract).
pub(crate) fn elf_beside(image: &Path) -> PathBuf {
    image.with_file_name("tessera.elf")
}

/// Builds the bare-metal guest for aarch64 and flattens its PT_LOAD segments into
/// `target/hil-tests/tessera-guest-baremetal.img` (an arm64 Image that boots natively under
/// QEMU `-kernel`). Built once per test process.
pub fn build_guest_image() -> Result<PathBuf> {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| build_guest_uncached().map_err(|error| error.to_string()))
        .clone()
        .map_err(|detail| Error::Command {
            command: "build tessera-guest-baremetal".into(),
            detail,
        })
}

fn build_guest_uncached() -> Result<PathBuf> {
    const PACKAGE: &str = "tessera-guest-baremetal";
    let mut command = cargo();
    command.args([
        "build",
        "--package",
        PACKAGE,
        "--target",
        "aarch64-unknown-none",
        "--release",
    ]);
    run(command)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let elf = target_dir
        .join("aarch64-unknown-none/release")
        .join(PACKAGE);
    let bytes = std::fs::read(&elf).map_err(|error| Error::Io {
        path: elf.clone(),
        error,
    })?;
    let flat = flatten(&bytes).map_err(|reason| Error::Command {
        command: format!("flatten {}", elf.display()),
        detail: reason,
    })?;
    let out_dir = target_dir.join("hil-tests");
    std::fs::create_dir_all(&out_dir).map_err(|error| Error::Io {
        path: out_dir.clone(),
        error,
    })?;
    let image = out_dir.join(format!("{PACKAGE}.img"));
    std::fs::write(&image, flat).map_err(|error| Error::Io {
        path: image.clone(),
        error,
    })?;
    Ok(image)
}

/// The bytes of an ELF's PT_LOAD segments, laid out from the lowest physical address (what
/// `objcopy -O binary` produces). BSS (memsz beyond filesz) is not included.
pub(crate) fn flatten(elf: &[u8]) -> Result<Vec<u8>, String> {
    let header = FileHeader64::<Endianness>::parse(elf).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let segments: Vec<_> = header
        .program_headers(endian, elf)
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|segment| segment.p_type(endian) == PT_LOAD && segment.p_filesz(endian) > 0)
        .collect();
    let base = segments
        .iter()
        .map(|s| s.p_paddr(endian))
        .min()
        .ok_or("no PT_LOAD segment with data")?;
    let mut image = Vec::new();
    for segment in segments {
        let offset = usize::try_from(segment.p_paddr(endian) - base).map_err(|e| e.to_string())?;
        let data = segment
            .data(endian, elf)
            .map_err(|()| "segment data out of bounds".to_string())?;
        let end = offset.checked_add(data.len()).ok_or("segment too large")?;
        if image.len() < end {
            image.resize(end, 0);
        }
        image[offset..end].copy_from_slice(data);
    }
    Ok(image)
}
