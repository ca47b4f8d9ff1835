//! `cargo xtask`: build Tessera images from system descriptions and run them under QEMU.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};

use xtask::defmt_log::LogDecoder;
use xtask::qemu::{QEMU, Qemu};
use xtask::{Error, Workspace};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  build <system.dts>                       build the image; prints its path as the last stdout line
  check <system.dts>                       parse and validate only
  run [<system.dts>] [-- <qemu args>...]   build and boot under QEMU (default: dts/systems/qemu-virt/linux.dts)
  log <tessera.elf> <hv.defmt>             decode a hypervisor log written by that image
  bench                                    run the benchmark suite; rewrites docs/benchmarks.md
";

/// The system `run` boots when none is named.
const DEFAULT_SYSTEM: &str = "dts/systems/qemu-virt/linux.dts";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let ws = Workspace::locate();
    let command = args.first().and_then(|a| a.to_str()).unwrap_or("help");
    let rest = args.get(1..).unwrap_or_default();
    let (dts, extra) = split_dash_dash(rest);
    let result = match (command, dts.as_slice()) {
        ("build", [dts]) => xtask::build(&ws, dts)
            .map(|built| println!("{}", built.image.display()))
            .map_err(|e| (e, dts)),
        ("check", [dts]) => xtask::check(&ws, dts)
            .map(|_| eprintln!("tessera: {} is valid", dts.display()))
            .map_err(|e| (e, dts)),
        ("log", [elf, log]) => {
            return match std::fs::read(log).map_err(|e| e.to_string()).and_then(|bytes| {
                xtask::defmt_log::decode(elf, &bytes).map_err(|e| e.to_string())
            }) {
                Ok(lines) => {
                    lines.iter().for_each(|line| println!("{line}"));
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {}: {error}", log.display());
                    ExitCode::FAILURE
                }
            };
        }
        ("bench", []) => {
            return match xtask::bench::run(&ws) {
                Ok(table) => {
                    print!("{table}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: bench: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        ("run", []) => return run(&ws, &ws.root.join(DEFAULT_SYSTEM), extra),
        ("run", [dts]) => return run(&ws, dts, extra),
        ("help" | "--help" | "-h", _) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((error, dts)) => report(&error, dts),
    }
}

fn split_dash_dash(args: &[OsString]) -> (Vec<PathBuf>, Vec<OsString>) {
    match args.iter().position(|a| a == "--") {
        Some(i) => (
            args[..i].iter().map(PathBuf::from).collect(),
            args[i + 1..].to_vec(),
        ),
        None => (args.iter().map(PathBuf::from).collect(), Vec::new()),
    }
}

fn report(error: &Error, dts: &Path) -> ExitCode {
    eprintln!("error: {}: {error}", dts.display());
    ExitCode::FAILURE
}

/// Sets the host up, builds `dts`, boots it and follows the hypervisor's log until QEMU exits.
fn run(ws: &Workspace, dts: &Path, extra_args: Vec<OsString>) -> ExitCode {
    let setup = ws.root.join("scripts/setup-host.sh");
    match Command::new("bash").arg(&setup).status() {
        Ok(status) if status.success() => {}
        Ok(status) => {
            eprintln!("error: {} failed ({status})", setup.display());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", setup.display());
            return ExitCode::FAILURE;
        }
    }
    let built = match xtask::build(ws, dts) {
        Ok(built) => built,
        Err(error) => return report(&error, dts),
    };
    match boot(ws, dts, &built, extra_args) {
        Ok(code) => code,
        Err(error) => report(&error, dts),
    }
}

fn boot(
    ws: &Workspace,
    dts: &Path,
    built: &xtask::Built,
    extra_args: Vec<OsString>,
) -> Result<ExitCode, Error> {
    let stem = dts
        .file_stem()
        .map_or_else(|| "system".into(), |s| s.to_string_lossy().into_owned());
    let run_dir = ws.tessera_dir().join("run").join(stem);
    std::fs::create_dir_all(&run_dir).map_err(|source| Error::Io {
        path: run_dir.clone(),
        source,
    })?;
    let mut qemu = Qemu::new(&built.image, &run_dir);
    qemu.extra_args = extra_args;
    let log = qemu.log_path();
    // A log from an earlier run would be decoded as if it were this one's.
    match std::fs::remove_file(&log) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::Io {
                path: log,
                source: e,
            });
        }
        _ => {}
    }
    let decoder = match LogDecoder::load(&built.elf) {
        Ok(decoder) => Some(decoder),
        Err(error) => {
            eprintln!("tessera: warning: the hypervisor log will not be decoded: {error}");
            None
        }
    };
    eprintln!("tessera: {}", qemu.display());
    eprintln!("tessera: (in {}; quit with Ctrl-A X)", run_dir.display());
    let mut child = qemu.command().spawn().map_err(|source| Error::Spawn {
        program: format!("{QEMU} (install it with scripts/setup-host.sh)"),
        source,
    })?;
    let exited = AtomicBool::new(false);
    let status = std::thread::scope(|scope| {
        if let Some(decoder) = &decoder {
            let (exited, log) = (&exited, &log);
            scope.spawn(move || {
                let follow = decoder.follow(
                    log,
                    || exited.load(Ordering::Acquire),
                    |line| eprintln!("[hv] {line}"),
                );
                if let Err(error) = follow {
                    eprintln!("tessera: warning: {error}");
                }
            });
        }
        let status = child.wait();
        exited.store(true, Ordering::Release);
        status
    });
    let status = status.map_err(|e| Error::Qemu {
        reason: e.to_string(),
    })?;
    if status.success() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("tessera: QEMU exited with {status}");
        Ok(ExitCode::FAILURE)
    }
}
