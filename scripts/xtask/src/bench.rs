//! `cargo xtask bench`: the benchmark suite (issue 5). Runs the benchmark guest
//! (`guests/bench`) natively and as a Tessera VM, and Linux natively and under Tessera, all
//! under QEMU with `-icount shift=0,sleep=off` and a 1 GHz counter, so that one instruction
//! is one nanosecond and one counter tick and every run repeats bit for bit. It prints a table
//! and the `BENCH <metric> <value> <unit>` lines, and rewrites `docs/benchmarks.md`.
//!
//! The parsing and the report are pure functions with host tests; running QEMU is not tested
//! (`scripts/test.sh` times nothing).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result, io};
use crate::pipeline::{self, Workspace};
use crate::qemu::{QEMU, Qemu};

/// The CPU with the counter at 1 GHz: one tick per nanosecond.
pub const CPU: &str = "cortex-a57,cntfrq=1000000000";
/// One instruction per nanosecond of virtual time, deterministic.
pub const ICOUNT: &str = "shift=0,sleep=off";
/// The benchmark system (two VMs, four CPUs).
pub const SYSTEM: &str = "dts/systems/qemu-virt/bench.dts";
/// The benchmark guest as a direct-interrupt VM (`direct_irq_added`).
pub const DIRECT_SYSTEM: &str = "dts/systems/qemu-virt/bench-direct.dts";
/// The Linux system (Linux on 2 CPUs beside the rt guest).
pub const LINUX_SYSTEM: &str = "dts/systems/qemu-virt/linux.dts";
/// What Linux's /init prints when the initramfs shell is up (`scripts/linux/init`).
pub const LINUX_MARKER: &str = "TESSERA-LINUX-UP";
/// Linux's boot line whose printk timestamp is taken (the kernel starts /init).
pub const LINUX_INIT_LINE: &str = "Run /init as init process";
/// Wall-clock limit of one QEMU run.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// One `bench: <name> n=… min=… avg=… p99=… max=…` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub avg: u64,
    pub p99: u64,
    pub max: u64,
}

/// What one run of the benchmark guest reported (every VM's lines, by VM tag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestReport {
    /// `name` -> summary, from the measured VM.
    pub summaries: BTreeMap<String, Summary>,
    /// `el2_per_irq_<mode>` -> value.
    pub values: BTreeMap<String, u64>,
    /// VM tag (`native` natively) -> CNTPCT_EL0 at its first instruction.
    pub first_insn: BTreeMap<String, u64>,
    pub done: bool,
}

/// The VM tag of a console line (`[bench] …` from Tessera's mux) and the rest.
fn split_tag(line: &str) -> (&str, &str) {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(rest) = line.strip_prefix('[')
        && let Some((tag, text)) = rest.split_once("] ")
    {
        return (tag, text);
    }
    ("native", line)
}

/// Parses `n=1 min=2 avg=3 p99=4 max=5`.
pub fn parse_summary(text: &str) -> Option<Summary> {
    let mut fields = BTreeMap::new();
    for word in text.split_ascii_whitespace() {
        let (key, value) = word.split_once('=')?;
        fields.insert(key, value.parse::<u64>().ok()?);
    }
    Some(Summary {
        count: *fields.get("n")?,
        min: *fields.get("min")?,
        avg: *fields.get("avg")?,
        p99: *fields.get("p99")?,
        max: *fields.get("max")?,
    })
}

/// Collects the `bench:` lines of a console transcript (`guests/bench/README.md`).
pub fn parse_guest(output: &str) -> GuestReport {
    let mut report = GuestReport::default();
    for line in output.lines() {
        let (tag, text) = split_tag(line);
        // The MMIO benchmark's dots may precede the line on the same console line.
        let Some(at) = text.find("bench: ") else { continue };
        let text = &text[at + "bench: ".len()..];
        let (name, rest) = text.split_once(' ').unwrap_or((text, ""));
        match name {
            "done" => report.done = true,
            "first_insn" => {
                if let Ok(count) = rest.trim().parse() {
                    report.first_insn.insert(tag.to_string(), count);
                }
            }
            _ if name.starts_with("el2_per_irq_") => {
                if let Some(value) = rest.split_ascii_whitespace().next().and_then(|v| v.parse().ok()) {
                    report.values.insert(name.to_string(), value);
                }
            }
            _ => {
                if let Some(summary) = parse_summary(rest) {
                    report.summaries.insert(name.to_string(), summary);
                }
            }
        }
    }
    report
}

/// Linux's printk timestamp (`[    1.234567] …`) of the line containing `needle`, in ns.
pub fn printk_time_ns(output: &str, needle: &str) -> Option<u64> {
    let line = output.lines().find(|line| line.contains(needle))?;
    let open = line.find('[')?;
    let rest = &line[open..];
    // A mux tag (`[linux] [  1.2] …`) comes first under Tessera: take the bracket holding a number.
    for part in rest.split('[').skip(1) {
        let Some((inside, _)) = part.split_once(']') else { continue };
        let inside = inside.trim();
        if let Some((seconds, micros)) = inside.split_once('.')
            && let (Ok(seconds), Ok(micros)) = (seconds.parse::<u64>(), micros.parse::<u64>())
        {
            return Some(seconds * 1_000_000_000 + micros * 1_000);
        }
    }
    None
}

/// What a metric's row holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub what: &'static str,
    pub native: String,
    pub tessera: String,
    /// The machine-readable value (None: not measured).
    pub value: Option<f64>,
    pub unit: &'static str,
    pub target: &'static str,
    /// Whether the target is met (None: no target or not measured).
    pub met: Option<bool>,
}

/// Everything the report needs.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub native: GuestReport,
    pub tessera: GuestReport,
    /// The benchmark guest as a direct-interrupt VM (`DIRECT_SYSTEM`).
    pub direct: GuestReport,
    pub hv_image_bytes: u64,
    pub hv_ram_bytes: u64,
    /// Linux's `Run /init` printk time natively and under Tessera (ns), if measured.
    pub linux_native_ns: Option<u64>,
    pub linux_tessera_ns: Option<u64>,
    /// The RTDS run (`bench_rtds`).
    pub rtds: crate::bench_rtds::RtdsFigures,
}

fn summary_text(summary: Option<&Summary>) -> String {
    summary.map_or_else(
        || "not measured".into(),
        |s| format!("{} / {} / {} / {}", s.min, s.avg, s.p99, s.max),
    )
}

/// The metrics, from the parsed runs.
pub fn metrics(inputs: &Inputs) -> Vec<Metric> {
    let native = |name: &str| inputs.native.summaries.get(name);
    let tessera = |name: &str| inputs.tessera.summaries.get(name);
    let added = |name: &str| {
        Some(tessera(name)?.avg as f64 - native(name)?.avg as f64)
    };
    let mut rows = Vec::new();
    // The Xen figures are the issue's, measured in this same setup (Xen 4.17, null scheduler).
    for (metric, name, what, target) in [
        ("timer_irq_added_wfi", "timer_wfi", "virtual-timer IRQ lateness, waiting in WFI (trapped under Tessera): min / avg / p99 / max ns; value = avg added over native", "≤ 150 (Xen 4.17: 2929)"),
        ("timer_irq_added_spin", "timer_spin", "virtual-timer IRQ lateness, spinning: min / avg / p99 / max ns; value = avg added over native", "≤ 150 (Xen 4.17: 1083)"),
    ] {
        let value = added(name);
        rows.push(Metric {
            name: metric,
            what,
            native: summary_text(native(name)),
            tessera: summary_text(tessera(name)),
            value,
            unit: "ns",
            target,
            met: value.map(|v| v <= 150.0),
        });
    }
    let el2 = inputs.tessera.values.get("el2_per_irq_spin").copied();
    rows.push(Metric {
        name: "el2_instr_per_irq",
        what: "instructions retired at EL2 per injected timer IRQ (PMU, EL2-filtered; spinning guest; with WFI trapped in brackets)",
        native: "0".into(),
        tessera: match (el2, inputs.tessera.values.get("el2_per_irq_wfi")) {
            (Some(spin), Some(wfi)) => format!("{spin} ({wfi})"),
            (Some(spin), None) => spin.to_string(),
            _ => "not measured".into(),
        },
        value: el2.map(|v| v as f64),
        unit: "instructions",
        target: "(Bao 188, Jailhouse 225, Xen 1418 on A53)",
        met: None,
    });
    for (metric, name, what, target, limit) in [
        ("mmio_write_roundtrip", "mmio_write", "one store to the UART data register, CNTVCT before/after (incl. one counter read): min / avg / p99 / max ns", "≤ 300", Some(300.0)),
        ("hvc_roundtrip", "hvc", "HVC SMCCC_VERSION, CNTVCT before/after: min / avg / p99 / max ns", "", None),
        ("sgi_roundtrip", "sgi", "SGI vCPU 0 → 1, answered by an SGI 1 → 0 (vCPU 0 waits in WFI): min / avg / p99 / max ns", "", None),
    ] {
        let value = tessera(name).map(|s| s.avg as f64);
        rows.push(Metric {
            name: metric,
            what,
            native: summary_text(native(name)),
            tessera: summary_text(tessera(name)),
            value,
            unit: "ns",
            target,
            met: limit.and_then(|limit| value.map(|v| v <= limit)),
        });
    }
    let ms = |ticks: u64| ticks as f64 / 1e6;
    let first = inputs.tessera.first_insn.values().copied().max();
    rows.push(Metric {
        name: "first_guest_insn_ms",
        what: "QEMU start (CNTPCT = 0) to the latest VM's first instruction, -smp 4 (per VM in brackets)",
        native: inputs.native.first_insn.values().next().map_or("not measured".into(), |&t| format!("{:.6}", ms(t))),
        tessera: if inputs.tessera.first_insn.is_empty() {
            "not measured".into()
        } else {
            let each: Vec<String> = inputs.tessera.first_insn.iter().map(|(vm, &t)| format!("{vm} {:.3}", ms(t))).collect();
            format!("{:.3} ({})", first.map_or(0.0, ms), each.join(", "))
        },
        value: first.map(ms),
        unit: "ms",
        target: "≤ 2 (Xen 4.17: 685)",
        met: first.map(|t| ms(t) <= 2.0),
    });
    rows.push(Metric {
        name: "hv_image_bytes",
        what: "hypervisor code and data in the image, guests excluded",
        native: "–".into(),
        tessera: inputs.hv_image_bytes.to_string(),
        value: Some(inputs.hv_image_bytes as f64),
        unit: "bytes",
        target: "≤ 65536",
        met: Some(inputs.hv_image_bytes <= 65536),
    });
    rows.push(Metric {
        name: "hv_ram_bytes",
        what: "hypervisor RAM footprint: image + BSS + stacks (ELF), guests excluded",
        native: "–".into(),
        tessera: inputs.hv_ram_bytes.to_string(),
        value: Some(inputs.hv_ram_bytes as f64),
        unit: "bytes",
        target: "",
        met: None,
    });
    let ratio = match (inputs.linux_native_ns, inputs.linux_tessera_ns) {
        (Some(native), Some(tessera)) if native > 0 => Some(tessera as f64 / native as f64),
        _ => None,
    };
    rows.push(Metric {
        name: "linux_boot_ratio",
        what: "Linux kernel start to `Run /init` (its printk clock, virtual time), Tessera / native",
        native: inputs.linux_native_ns.map_or("not measured".into(), |ns| format!("{:.3} ms", ns as f64 / 1e6)),
        tessera: inputs.linux_tessera_ns.map_or("not measured".into(), |ns| format!("{:.3} ms", ns as f64 / 1e6)),
        value: ratio,
        unit: "ratio",
        target: "",
        met: None,
    });
    let (switch, per_period, shares) = crate::bench_rtds::texts(&inputs.rtds);
    rows.push(Metric {
        name: "rtds_switch_instr",
        what: "RTDS context switch between two VMs' vCPUs on one CPU: EL2 instructions (EL1 + FP/SIMD + timer + ICH state, VM controls)",
        native: "–".into(),
        tessera: switch,
        value: inputs.rtds.switch_instructions.map(|v| v as f64),
        unit: "instructions",
        target: "",
        met: None,
    });
    rows.push(Metric {
        name: "rtds_el2_per_period",
        what: "RTDS scheduler overhead: EL2 instructions on a CPU shared 20/30/40% per 10 ms period (measured shares in brackets)",
        native: "–".into(),
        tessera: format!("{per_period} ({shares})"),
        value: inputs.rtds.el2_per_period.map(|v| v as f64),
        unit: "instructions",
        target: "",
        met: None,
    });
    // Direct mode: the larger of the two added averages (WFI native in both runs).
    let direct = |name: &str| inputs.direct.summaries.get(name);
    let direct_added = |name: &str| Some(direct(name)?.avg as f64 - native(name)?.avg as f64);
    let direct_value = match (direct_added("timer_wfi"), direct_added("timer_spin")) {
        (Some(wfi), Some(spin)) => Some(wfi.max(spin)),
        _ => None,
    };
    let both = |report: &GuestReport| {
        let summary = |name: &str| summary_text(report.summaries.get(name));
        format!("WFI {}; spin {}", summary("timer_wfi"), summary("timer_spin"))
    };
    rows.push(Metric {
        name: "direct_irq_added",
        what: "direct-interrupt mode (`bench-direct.dts`): virtual-timer IRQ lateness, native WFI and spinning: min / avg / p99 / max ns; value = the larger avg added over native (EL2 instructions per IRQ in brackets)",
        native: both(&inputs.native),
        tessera: format!(
            "{} ({} / {})",
            both(&inputs.direct),
            inputs.direct.values.get("el2_per_irq_wfi").map_or("–".into(), u64::to_string),
            inputs.direct.values.get("el2_per_irq_spin").map_or("–".into(), u64::to_string)
        ),
        value: direct_value,
        unit: "ns",
        target: "≤ 10",
        met: direct_value.map(|v| v <= 10.0),
    });
    rows
}

/// `BENCH <metric> <value> <unit>` (value `not-implemented`/`not-measured` if absent).
pub fn bench_line(metric: &Metric) -> String {
    let value = match metric.value {
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.4}"),
        None if metric.tessera == "not implemented" => "not-implemented".into(),
        None => "not-measured".into(),
    };
    format!("BENCH {} {value} {}", metric.name, metric.unit)
}

fn met_text(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "–",
    }
}

/// The terminal table.
pub fn table(rows: &[Metric]) -> String {
    let mut out = String::new();
    for row in rows {
        out.push_str(&format!(
            "{:<22} native {:<32} tessera {:<40} target {:<8} {}\n",
            row.name,
            row.native,
            row.tessera,
            row.target,
            met_text(row.met)
        ));
    }
    out
}

/// How the numbers were made, for the document.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub qemu_version: String,
    pub rust_version: String,
    pub commands: Vec<String>,
    pub wall_seconds: f64,
}

/// `docs/benchmarks.md`.
pub fn document(rows: &[Metric], provenance: &Provenance) -> String {
    let mut doc = String::from(
        "# Benchmarks\n\n\
         Written by `cargo xtask bench` (`scripts/xtask/src/bench.rs`); do not edit by hand.\n\
         Everything runs under QEMU TCG with `-icount shift=0,sleep=off` and a 1 GHz counter\n\
         (`-cpu cortex-a57,cntfrq=1000000000`): one instruction is one nanosecond and one counter\n\
         tick, so \"ns\" below means instructions, and two runs give the same numbers bit for bit.\n\
         Cache and TLB effects do not exist here (see `../../shared/research/anchors-performance.md` §4\n\
         for what transfers to hardware). Native = the same guest binary as QEMU's `-kernel` at EL1,\n\
         no hypervisor.\n\n",
    );
    doc.push_str(&format!(
        "- QEMU: `{}`\n- Rust: `{}`\n- wall time of the whole run: {:.0} s\n\n",
        provenance.qemu_version, provenance.rust_version, provenance.wall_seconds
    ));
    doc.push_str("| metric | what | native | Tessera | target | |\n|---|---|---|---|---|---|\n");
    for row in rows {
        doc.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            row.name,
            row.what,
            row.native,
            row.tessera,
            row.target,
            met_text(row.met)
        ));
    }
    doc.push_str("\n## Machine-readable\n\n```\n");
    for row in rows {
        doc.push_str(&bench_line(row));
        doc.push('\n');
    }
    doc.push_str("```\n\n## Commands\n\n`cargo xtask bench` ran:\n\n```\n");
    for command in &provenance.commands {
        doc.push_str(command);
        doc.push('\n');
    }
    doc.push_str("```\n\n");
    doc.push_str(NOTES);
    doc
}

/// The method, for the document (kept beside the code that implements it).
const NOTES: &str = "## Method\n\n\
- **Timer latency** (`guests/bench`): the guest arms CNTV_CVAL_EL0 20 µs ahead, 10 warm-up\n\
  rounds then 1000 measured; the IRQ vector reads CNTVCT_EL0 as its third instruction;\n\
  lateness = that count − the deadline. WFI mode checks a flag with IRQs masked, WFIs, then\n\
  unmasks (no lost wake-up); the bench VM has `wfi = \"trap\"`, so under Tessera the WFI traps\n\
  and the hypervisor waits for the vCPU's interrupt (in the exception vector itself: see\n\
  `docs/design.md`, Exits). Spin mode polls the flag with IRQs on.\n\
- **EL2 instructions per IRQ**: the hypervisor reserves its PMU's last counter for\n\
  INST_RETIRED at EL2 only and answers `TESSERA_STATS` (`docs/hvcall.md`); the guest reads it\n\
  around the timer loop, subtracts one call's own cost (two back-to-back calls) and divides by\n\
  the rounds. It is everything EL2 did per interrupt: the IRQ exit, the injection, and in WFI\n\
  mode the trapped WFI too.\n\
- **MMIO, HVC**: CNTVCT (with ISB) before and after one store to the UART data register\n\
  (SBSA UART, trapped and emulated under Tessera) or one `hvc #0` SMCCC_VERSION; the `empty`\n\
  row of the guest (two counter reads) is 2.\n\
- **SGI**: vCPU 0 writes ICC_SGI1R_EL1 (SGI 1 to vCPU 1), vCPU 1's handler answers with SGI 2;\n\
  vCPU 0 waits in WFI (QEMU runs CPUs round-robin: a spinning vCPU 0 would hold the host thread\n\
  for its whole time slice) and its vector's CNTVCT − the send time is the sample.\n\
- **First instruction**: each VM's first instruction reads CNTPCT_EL0 (the physical count,\n\
  0 at QEMU start; CNTVCT would start at the VM's start), with `-smp 4` and two VMs of 2 CPUs\n\
  and 32 MiB each (`dts/systems/qemu-virt/bench.dts`). Natively it is the same guest as\n\
  QEMU's `-kernel` (QEMU's boot stub runs a few instructions first). Each VM's boot CPU loads\n\
  it; only the 2 MiB blocks holding image, DTB and initrd are scrubbed first, the rest on first\n\
  touch (`docs/design.md`, RAM scrubbing). Under `-icount` virtual time is the sum of every\n\
  CPU's instructions, so loading in parallel does not show here; scrubbing less does.\n\
- **Image and RAM**: from the hypervisor ELF (`.payload`, the embedded guests, excluded): file-backed\n\
  sections, and those plus BSS and stacks.\n\
- **Linux**: Debian's kernel and the busybox initramfs (`scripts/fetch-linux.sh`), natively\n\
  (`-smp 2 -m 256M`, same bootargs) and as the `linux` VM of `dts/systems/qemu-virt/linux.dts`;\n\
  the value is the printk timestamp of `Run /init as init process`, i.e. the kernel's own\n\
  clock from its start (under Tessera the virtual count starts at the VM's start, so the\n\
  hypervisor's boot is not in it: that is `first_guest_insn_ms`).\n\
- **Where EL2 instructions go**: QEMU's `-d exec,nochain` with `-accel tcg,one-insn-per-tb=on`,\n\
  EL2 translation blocks (MMU index 6) attributed to the ELF's symbols, one episode per stay\n\
  at EL2. A forwarded timer interrupt is 14 instructions in the vector (`guest_irq`; the\n\
  trapped WFI's own path `guest_wfx` about 12 more); a full exit is the vectors and world\n\
  switch (about 75), the run loop's checks, then the handler: a console write 262 in all\n\
  (its store is recognised before the ESR is decoded), an HVC about 220 (decoding about 50).\n\
- **Direct-interrupt mode** (`docs/direct-mode.md`): the same guest as the only VM of\n\
  `dts/systems/qemu-virt/bench-direct.dts` (CPUs 1-2, `interrupt-mode = \"direct\"`, so its\n\
  WFI is native); its timer interrupt goes from the physical GIC straight to EL1. The value\n\
  is the larger of the WFI and spin averages minus native's; the EL2 instructions per IRQ\n\
  (same method as above) are in brackets and are 0 when no interrupt enters EL2.\n";

/// Runs `command` (stdout captured, stderr kept apart) until it exits, `stop_at` appears in its
/// output (then it is killed), or the timeout. Returns stdout.
fn run_capture(mut command: Command, stop_at: Option<&str>) -> Result<String> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| Error::Spawn {
        program: format!("{QEMU} (install it with scripts/setup-host.sh)"),
        source,
    })?;
    let stdout = child.stdout.take().ok_or_else(|| Error::Qemu { reason: "no stdout".into() })?;
    let mut stderr = child.stderr.take().ok_or_else(|| Error::Qemu { reason: "no stderr".into() })?;
    let err_thread = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (sender, receiver) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(|l| l.ok()) {
            if sender.send(String::from_utf8_lossy(&line).into_owned()).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut output = String::new();
    loop {
        match receiver.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                output.push_str(&line);
                output.push('\n');
                if stop_at.is_some_and(|marker| line.contains(marker)) {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            return Err(Error::Qemu { reason: format!("no result after {} s", RUN_TIMEOUT.as_secs()) });
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let errors = err_thread.join().unwrap_or_default();
    if !errors.trim().is_empty() {
        eprint!("{errors}");
    }
    Ok(output)
}

fn display(command: &Command) -> String {
    std::iter::once(command.get_program().to_string_lossy().into_owned())
        .chain(command.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn version(program: &str, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| format!("{program}: unknown"))
}

fn native_command(kernel: &Path, smp: &str, memory: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(QEMU);
    command.args(["-M", "virt,gic-version=3,dtb-randomness=off", "-cpu", CPU, "-icount", ICOUNT, "-smp", smp, "-m", memory, "-nographic", "-nic", "none", "-rtc", "base=2026-01-01T00:00:00,clock=vm", "-kernel"]);
    command.arg(kernel);
    command.args(extra);
    command
}

fn tessera_command(image: &Path, run_dir: &Path) -> Result<Command> {
    std::fs::create_dir_all(run_dir).map_err(io(run_dir))?;
    let mut qemu = Qemu::new(image, run_dir);
    qemu.cpu = CPU.into();
    qemu.extra_args = vec!["-icount".into(), ICOUNT.into()];
    Ok(qemu.command())
}

/// `cargo xtask bench`: runs everything and rewrites `docs/benchmarks.md`.
pub fn run(ws: &Workspace) -> Result<String> {
    let started = Instant::now();
    let mut provenance = Provenance {
        qemu_version: version(QEMU, "--version"),
        rust_version: version("rustc", "--version"),
        ..Provenance::default()
    };
    let bench_dir = ws.tessera_dir().join("bench");
    std::fs::create_dir_all(&bench_dir).map_err(io(&bench_dir))?;

    // The guest, flat, for native runs.
    let guest_elf = {
        let _lock = ws.lock()?;
        pipeline::cargo_build(ws, pipeline::TARGET, &["-p", "tessera-guest-bench", "--bin", "tessera-guest-bench"], &[])
            .map_err(|reason| Error::Qemu { reason: format!("building tessera-guest-bench: {reason}") })?
    };
    let elf_bytes = std::fs::read(&guest_elf).map_err(io(&guest_elf))?;
    let guest_img = bench_dir.join("bench.img");
    std::fs::write(&guest_img, crate::image::elf_to_flat(&guest_elf, &elf_bytes)?).map_err(io(&guest_img))?;

    let mut inputs = Inputs::default();
    let native = native_command(&guest_img, "4", "1G", &[]);
    provenance.commands.push(display(&native));
    eprintln!("tessera: bench: native guest");
    inputs.native = parse_guest(&run_capture(native, Some("bench: done"))?);

    let built = pipeline::build(ws, &ws.root.join(SYSTEM))?;
    let hv_elf = std::fs::read(&built.elf).map_err(io(&built.elf))?;
    let sizes = crate::image::section_sizes(&built.elf, &hv_elf)?;
    inputs.hv_image_bytes = sizes.file_backed;
    inputs.hv_ram_bytes = sizes.file_backed + sizes.zero_filled;
    let tessera = tessera_command(&built.image, &bench_dir.join("run-bench"))?;
    provenance.commands.push(format!("(in {}) {}", bench_dir.join("run-bench").display(), display(&tessera)));
    eprintln!("tessera: bench: the guest under Tessera");
    let output = run_capture(tessera, None)?;
    inputs.tessera = parse_guest(&output);

    let built = pipeline::build(ws, &ws.root.join(DIRECT_SYSTEM))?;
    let direct = tessera_command(&built.image, &bench_dir.join("run-direct"))?;
    provenance.commands.push(format!("(in {}) {}", bench_dir.join("run-direct").display(), display(&direct)));
    eprintln!("tessera: bench: the guest as a direct-interrupt VM");
    inputs.direct = parse_guest(&run_capture(direct, Some("bench: done"))?);
    if !inputs.tessera.done || !inputs.native.done || !inputs.direct.done {
        eprintln!("tessera: bench: warning: a guest run did not finish (see the table)");
    }

    let linux = ws.target_dir.join("linux");
    let (kernel, initrd) = (linux.join("Image"), linux.join("initramfs.cpio.gz"));
    if kernel.exists() && initrd.exists() {
        let mut native = native_command(&kernel, "2", "256M", &[]);
        native.arg("-initrd").arg(&initrd).args(["-append", "console=ttyAMA0 earlycon rdinit=/init"]);
        provenance.commands.push(display(&native));
        eprintln!("tessera: bench: Linux natively");
        inputs.linux_native_ns = printk_time_ns(&run_capture(native, Some(LINUX_MARKER))?, LINUX_INIT_LINE);
        let built = pipeline::build(ws, &ws.root.join(LINUX_SYSTEM))?;
        let tessera = tessera_command(&built.image, &bench_dir.join("run-linux"))?;
        provenance.commands.push(format!("(in {}) {}", bench_dir.join("run-linux").display(), display(&tessera)));
        eprintln!("tessera: bench: Linux under Tessera");
        inputs.linux_tessera_ns = printk_time_ns(&run_capture(tessera, Some(LINUX_MARKER))?, LINUX_INIT_LINE);
    } else {
        eprintln!("tessera: bench: no {} (run scripts/fetch-linux.sh); linux_boot_ratio not measured", kernel.display());
    }

    let built = pipeline::build(ws, &ws.root.join(crate::bench_rtds::SYSTEM))?;
    let tessera = tessera_command(&built.image, &bench_dir.join("run-rtds"))?;
    provenance.commands.push(format!("(in {}) {}", bench_dir.join("run-rtds").display(), display(&tessera)));
    eprintln!("tessera: bench: RTDS");
    inputs.rtds = crate::bench_rtds::parse(&run_capture(tessera, Some("[c40] c40: sched vcpu 0"))?);

    provenance.wall_seconds = started.elapsed().as_secs_f64();
    let rows = metrics(&inputs);
    let doc_path: PathBuf = ws.root.join("docs/benchmarks.md");
    std::fs::write(&doc_path, document(&rows, &provenance)).map_err(io(&doc_path))?;
    let mut out = table(&rows);
    for row in &rows {
        out.push_str(&bench_line(row));
        out.push('\n');
    }
    out.push_str(&format!("(wall time {:.0} s; written to {})\n", provenance.wall_seconds, doc_path.display()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NATIVE: &str = "bench: first_insn 8\r\nbench: vm native el1 cntfrq 1000000000\r\n\
bench: timer_wfi n=1000 min=4 avg=4 p99=4 max=4\r\nbench: el2_per_irq_wfi 5 (call 2)\r\n\
..........bench: mmio_write n=10 min=3 avg=3 p99=3 max=3\r\nbench: done\r\n";

    #[test]
    fn parses_a_native_transcript() {
        let report = parse_guest(NATIVE);
        assert!(report.done);
        assert_eq!(report.first_insn.get("native"), Some(&8));
        assert_eq!(report.summaries["timer_wfi"], Summary { count: 1000, min: 4, avg: 4, p99: 4, max: 4 });
        assert_eq!(report.summaries["mmio_write"].avg, 3);
        assert_eq!(report.values["el2_per_irq_wfi"], 5);
        assert!(!report.summaries.contains_key("vm"));
    }

    #[test]
    fn parses_tagged_lines() {
        let report = parse_guest("[bench] bench: first_insn 100\n[boot] bench: first_insn 200\n[hv] VM boot: PSCI SYSTEM_OFF\n");
        assert_eq!(report.first_insn.len(), 2);
        assert_eq!(report.first_insn["boot"], 200);
    }

    #[test]
    fn bad_summaries_are_skipped() {
        assert_eq!(parse_summary("n=1 min=2 avg=3 p99=4"), None);
        assert_eq!(parse_summary("n=1 min=x avg=3 p99=4 max=5"), None);
        assert!(parse_guest("bench: sgi timeout\n").summaries.is_empty());
    }

    #[test]
    fn printk_times() {
        let out = "[    0.000000] Booting\n[linux] [    1.250000] Run /init as init process\n";
        assert_eq!(printk_time_ns(out, LINUX_INIT_LINE), Some(1_250_000_000));
        assert_eq!(printk_time_ns(out, "absent"), None);
    }

    #[test]
    fn metrics_and_lines() {
        let mut inputs = Inputs { hv_image_bytes: 1000, hv_ram_bytes: 5000, ..Inputs::default() };
        inputs.native = parse_guest(NATIVE);
        inputs.tessera = parse_guest("[bench] bench: timer_wfi n=1000 min=104 avg=200 p99=300 max=400\n[bench] bench: first_insn 3000000\n");
        inputs.linux_native_ns = Some(100);
        inputs.linux_tessera_ns = Some(150);
        let rows = metrics(&inputs);
        let line = |name: &str| bench_line(rows.iter().find(|r| r.name == name).unwrap());
        assert_eq!(line("timer_irq_added_wfi"), "BENCH timer_irq_added_wfi 196 ns");
        assert_eq!(line("timer_irq_added_spin"), "BENCH timer_irq_added_spin not-measured ns");
        assert_eq!(line("first_guest_insn_ms"), "BENCH first_guest_insn_ms 3 ms");
        assert_eq!(line("linux_boot_ratio"), "BENCH linux_boot_ratio 1.5000 ratio");
        assert_eq!(line("direct_irq_added"), "BENCH direct_irq_added not-measured ns");
        inputs.native = parse_guest("bench: timer_wfi n=1000 min=4 avg=40 p99=4 max=4\nbench: timer_spin n=1000 min=4 avg=30 p99=4 max=4\n");
        inputs.direct = parse_guest(
            "[bench] bench: timer_wfi n=1000 min=4 avg=43 p99=4 max=4\n[bench] bench: el2_per_irq_wfi 0 (call 240)\n\
             [bench] bench: timer_spin n=1000 min=4 avg=42 p99=4 max=4\n[bench] bench: el2_per_irq_spin 0 (call 240)\n",
        );
        let rows = metrics(&inputs);
        let direct = rows.iter().find(|r| r.name == "direct_irq_added").unwrap();
        assert_eq!(bench_line(direct), "BENCH direct_irq_added 12 ns", "the larger of +3 (WFI) and +12 (spin)");
        assert_eq!(direct.met, Some(false));
        assert!(direct.tessera.ends_with("(0 / 0)"), "{}", direct.tessera);
        assert_eq!(line("hv_image_bytes"), "BENCH hv_image_bytes 1000 bytes");
        let wfi = rows.iter().find(|r| r.name == "timer_irq_added_wfi").unwrap();
        assert_eq!(wfi.met, Some(false));
        let doc = document(&rows, &Provenance::default());
        assert!(doc.contains("BENCH hv_ram_bytes 5000 bytes"));
        assert!(doc.contains("| `timer_irq_added_wfi` |"));
    }
}
