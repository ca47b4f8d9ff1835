//! The QEMU command line for a board, shared by `cargo xtask run` and the HIL harness.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

/// The program, for messages.
pub const QEMU: &str = "qemu-system-aarch64";

/// How to boot a hypervisor image under QEMU `virt`.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// The flat arm64 Image (`tessera.img`).
    pub kernel: PathBuf,
    /// QEMU's working directory: semihosting files (`hv.defmt`) land here.
    pub run_dir: PathBuf,
    /// The `-cpu` value (`cortex-a57` unless a caller sets options, e.g. the bench's counter
    /// frequency).
    pub cpu: String,
    /// Arguments appended after the defaults (they can override `-smp`, add `-s -S`, …).
    pub extra_args: Vec<OsString>,
}

impl Qemu {
    pub fn new(kernel: impl Into<PathBuf>, run_dir: impl Into<PathBuf>) -> Self {
        Self {
            kernel: kernel.into(),
            run_dir: run_dir.into(),
            cpu: "cortex-a57".into(),
            extra_args: Vec::new(),
        }
    }

    /// The arguments, without the program name. They match the board in
    /// `platforms/qemu-virt` (`tessera_qemu_virt::PLATFORM`).
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            "-M",
            "virt,virtualization=on,gic-version=3",
            "-cpu",
            &self.cpu,
            "-smp",
            "4",
            "-m",
            "1G",
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        args.push(self.kernel.clone().into_os_string());
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// The command, ready to spawn, with the run directory as its working directory.
    pub fn command(&self) -> Command {
        let mut command = Command::new(QEMU);
        command.args(self.args()).current_dir(&self.run_dir);
        command
    }

    /// The command as a shell line, for logs.
    pub fn display(&self) -> String {
        std::iter::once(QEMU.into())
            .chain(self.args().iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<String>>()
            .join(" ")
    }

    pub fn log_path(&self) -> PathBuf {
        self.run_dir.join(crate::defmt_log::LOG_FILE)
    }
}
