//! The QEMU target: one fresh `qemu-system-aarch64` per boot, in its own working directory
//! (where the hypervisor's semihosting log `hv.defmt` lands), with a hard timeout.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use defmt_decoder::Table;

use crate::Target;
use crate::build::elf_beside;
use crate::console::ConsoleLog;
use crate::defmt_log::{decode_with, load_table};
use crate::error::{Error, Result};

/// The semihosting file the hypervisor writes its defmt log to, in QEMU's working directory.
pub const HV_LOG_FILE: &str = "hv.defmt";

/// The whole console, written into a kept run directory.
pub const CONSOLE_FILE: &str = "console.log";

/// How a boot is run. [`QemuOptions::default`] is a Tessera system on `virt` with EL2.
#[derive(Debug, Clone)]
pub struct QemuOptions {
    pub smp: u32,
    /// `-M` value.
    pub machine: String,
    pub cpu: String,
    pub memory: String,
    /// `-append`: sets `/chosen/bootargs` in QEMU's DTB (for native guest boots).
    pub append: Option<String>,
    /// Kill QEMU this long after it started, whatever the test is doing.
    pub hard_timeout: Duration,
    /// Appended to the command line as is.
    pub extra_args: Vec<String>,
}

impl Default for QemuOptions {
    fn default() -> Self {
        Self {
            smp: 4,
            machine: "virt,virtualization=on,gic-version=3".into(),
            cpu: "cortex-a57".into(),
            memory: "1G".into(),
            append: None,
            hard_timeout: Duration::from_secs(180),
            extra_args: Vec::new(),
        }
    }
}

impl QemuOptions {
    /// A guest booted directly at EL1 (no hypervisor): `-M virt`.
    pub fn native() -> Self {
        Self {
            machine: "virt".into(),
            ..Self::default()
        }
    }

    pub fn smp(mut self, count: u32) -> Self {
        self.smp = count;
        self
    }

    pub fn append(mut self, bootargs: &str) -> Self {
        self.append = Some(bootargs.into());
        self
    }

    pub fn hard_timeout(mut self, timeout: Duration) -> Self {
        self.hard_timeout = timeout;
        self
    }

    fn command(&self, image: &Path) -> Command {
        let qemu = std::env::var_os("TESSERA_QEMU").unwrap_or_else(|| "qemu-system-aarch64".into());
        let mut command = Command::new(qemu);
        command
            .arg("-M")
            .arg(&self.machine)
            .args([
                "-cpu",
                &self.cpu,
                "-smp",
                &self.smp.to_string(),
                "-m",
                &self.memory,
            ])
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
            .arg("-kernel")
            .arg(image)
            .args(["-semihosting-config", "enable=on,target=native"]);
        if let Some(bootargs) = &self.append {
            command.arg("-append").arg(bootargs);
        }
        command.args(&self.extra_args);
        command
    }
}

/// A running QEMU. Dropping it kills QEMU; the working directory is removed unless the test
/// is failing (panicking) or `TESSERA_HIL_KEEP=1`, in which case the console is written
/// there ([`CONSOLE_FILE`]) and its path is printed.
#[derive(Debug)]
pub struct Qemu {
    child: Arc<Mutex<Child>>,
    stdin: Option<ChildStdin>,
    console: ConsoleLog,
    dir: PathBuf,
    elf: Option<PathBuf>,
    table: OnceLock<Result<Table, String>>,
    stop_watchdog: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    _permit: Permit,
}

fn lock(child: &Mutex<Child>) -> MutexGuard<'_, Child> {
    child
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Qemu {
    /// Boots `image`. If `tessera.elf` sits beside it (a built system), [`Target::hv_log`]
    /// decodes the hypervisor's log with it.
    pub fn boot(image: &Path, options: QemuOptions) -> Result<Self> {
        let permit = Permit::acquire();
        let dir = fresh_dir()?;
        let stderr_path = dir.join("qemu.stderr");
        let stderr = std::fs::File::create(&stderr_path).map_err(|error| Error::Io {
            path: stderr_path.clone(),
            error,
        })?;
        let mut command = options.command(image);
        command
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let text = format!("{command:?}");
        std::fs::write(dir.join("command.txt"), &text).ok();
        let mut child = command.spawn().map_err(|error| Error::Command {
            command: text,
            detail: error.to_string(),
        })?;
        let console = ConsoleLog::new(Some(stderr_path));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let child = Arc::new(Mutex::new(child));
        let mut threads = Vec::new();

        if let Some(mut stdout) = stdout {
            let console = console.clone();
            threads.push(std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                loop {
                    match stdout.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(count) => console.push_bytes(&buffer[..count]),
                    }
                }
                console.close();
            }));
        }

        let (stop_watchdog, stopped) = mpsc::channel::<()>();
        {
            let child = Arc::clone(&child);
            let console = console.clone();
            let limit = options.hard_timeout;
            threads.push(std::thread::spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(limit) {
                    let mut child = lock(&child);
                    if matches!(child.try_wait(), Ok(None)) {
                        console.push_bytes(
                            format!("\n[hil] hard timeout: QEMU killed after {limit:?}\n")
                                .as_bytes(),
                        );
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
            }));
        }

        let elf = Some(elf_beside(image)).filter(|elf| elf.is_file());
        Ok(Self {
            child,
            stdin,
            console,
            dir,
            elf,
            table: OnceLock::new(),
            stop_watchdog: Some(stop_watchdog),
            threads,
            _permit: permit,
        })
    }

    /// QEMU's working directory for this boot.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Target for Qemu {
    fn console(&self) -> &ConsoleLog {
        &self.console
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| Error::Command {
            command: "qemu stdin".into(),
            detail: "closed".into(),
        })?;
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .map_err(|error| Error::Io {
                path: self.dir.join("<qemu stdin>"),
                error,
            })
    }

    fn hv_log(&self) -> Result<Vec<String>> {
        let Some(elf) = &self.elf else {
            return Ok(Vec::new()); // a native boot: no hypervisor
        };
        let table = self
            .table
            .get_or_init(|| load_table(elf).map_err(|error| error.to_string()))
            .as_ref()
            .map_err(|reason| Error::Defmt {
                elf: elf.clone(),
                reason: reason.clone(),
            })?;
        let path = self.dir.join(HV_LOG_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(decode_with(table, &bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => Err(Error::Io { path, error }),
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = lock(&self.child).try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let mut child = lock(&self.child);
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
        self.stdin = None;
        self.stop_watchdog = None; // disconnects: the watchdog returns
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        let keep = std::thread::panicking()
            || std::env::var_os("TESSERA_HIL_KEEP").is_some_and(|v| v != "0");
        if keep {
            // The whole console, timestamped, beside the hypervisor's log: failure messages
            // show only its tail.
            let console: String = self
                .console
                .lines()
                .iter()
                .map(|line| format!("{line}\n"))
                .collect();
            let _ = std::fs::write(self.dir.join(CONSOLE_FILE), console);
            eprintln!("hil: QEMU run directory kept: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A new empty directory for one boot.
fn fresh_dir() -> Result<PathBuf> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tessera-hil-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|error| Error::Io {
        path: dir.clone(),
        error,
    })?;
    Ok(dir)
}

/// Limits concurrent QEMUs (TCG is CPU-hungry, and a starved guest misses its timeouts):
/// `TESSERA_HIL_JOBS`, else half the host's CPUs, at least one.
#[derive(Debug)]
struct Permit;

static RUNNING: Mutex<usize> = Mutex::new(0);
static RUNNING_CHANGED: Condvar = Condvar::new();

fn max_jobs() -> usize {
    std::env::var("TESSERA_HIL_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() / 2))
        .max(1)
}

impl Permit {
    fn acquire() -> Self {
        let limit = max_jobs();
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        while *running >= limit {
            running = RUNNING_CHANGED
                .wait(running)
                .unwrap_or_else(|p| p.into_inner());
        }
        *running += 1;
        Permit
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        *running = running.saturating_sub(1);
        drop(running);
        RUNNING_CHANGED.notify_one();
    }
}
