//! The malformed-input corpus (`tests/malformed/`, listed in `tests/malformed/cases.txt`): every
//! broken system description or DTB goes through the library path the build tool takes after
//! `dtc` ([`xtask::check_blob`]), and a few through the `xtask check` binary. Each must be
//! rejected with an error that names the problem, within a time limit, without a panic.
//! A property test corrupts the valid inputs at random on the same path.
#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{LazyLock, mpsc};
use std::time::{Duration, Instant};

/// A case's verdict must come well within this; a hang is a failure.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed")
}

/// One line of `cases.txt`: `<system file> | <board file or -> | <expected substring>`.
#[derive(Debug, Clone)]
struct Case {
    system: String,
    board: Option<String>,
    expected: String,
}

impl Case {
    fn name(&self) -> String {
        match &self.board {
            Some(board) => format!("{} on {board}", self.system),
            None => self.system.clone(),
        }
    }
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(corpus().join("cases.txt")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split(" | ").map(str::trim).collect();
            let [system, board, expected] = fields[..] else {
                panic!("cases.txt: not `system | board | expected`: {line}");
            };
            Case {
                system: system.into(),
                board: (board != "-").then(|| board.into()),
                expected: expected.into(),
            }
        })
        .collect()
}

/// The file's blob: a `.dtb` as is, a `.dts` compiled by dtc.
fn blob(file: &str) -> Vec<u8> {
    let path = corpus().join(file);
    if file.ends_with(".dtb") {
        return std::fs::read(&path).unwrap();
    }
    let output = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb"])
        .arg(&path)
        .output()
        .expect("dtc (scripts/setup-host.sh installs it)");
    assert!(output.status.success(), "{file}: dtc failed: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// Runs `check_blob` on a case in a thread: its error message, or why there is none.
fn verdict(case: &Case) -> Result<String, String> {
    let system = blob(&case.system);
    let board = case.board.as_deref().map(blob);
    let (send, receive) = mpsc::channel();
    let name = case.name();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(|| {
            xtask::check_blob(&system, board.as_deref(), &[0xaa; 4096], &[0x55; 4096])
        });
        let _ = send.send(result);
    });
    match receive.recv_timeout(CASE_TIMEOUT) {
        Ok(Ok(Err(error))) => Ok(error.to_string()),
        Ok(Ok(Ok(_))) => Err(format!("{name}: accepted")),
        Ok(Err(_)) => Err(format!("{name}: panicked")),
        Err(_) => Err(format!("{name}: no verdict in {CASE_TIMEOUT:?}")),
    }
}

#[test]
fn every_malformed_input_is_rejected_with_its_reason() {
    let cases = cases();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let start = Instant::now();
        match verdict(case) {
            Ok(message) if message.contains(&case.expected) => {
                eprintln!("ok   {} ({:?}): {message}", case.name(), start.elapsed());
            }
            Ok(message) => failures.push(format!(
                "{}: expected `{}` in: {message}",
                case.name(), case.expected
            )),
            Err(why) => failures.push(why),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// The control cases: the corpus's valid blob and board tree pass, so the broken ones fail
/// for what they break.
#[test]
fn the_unbroken_inputs_pass() {
    let image = [0xaa; 4096];
    xtask::check_blob(&blob("valid.dtb"), None, &image, &[]).unwrap();
    let board = blob("board-valid.dts");
    let plan = xtask::check_blob(&blob("passes-dev.dts"), Some(&board), &image, &[]).unwrap();
    assert_eq!(plan.vms[0].devices[0].spis, [41]);
}

/// A system description with `vms` VMs of `cpus_per_vm` CPUs each, its structure block
/// written token by token (DT spec 5.4; vm-fdt is too slow for a million nodes in a debug build).
fn absurd(vms: usize, cpus_per_vm: usize) -> Vec<u8> {
    fn be(out: &mut Vec<u8>, value: u32) {
        out.extend_from_slice(&value.to_be_bytes());
    }
    fn begin(out: &mut Vec<u8>, name: &str) {
        be(out, 1);
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    let strings = b"compatible\0board\0cpus\0image\0";
    let prop = |out: &mut Vec<u8>, name_offset: u32, value: &[u8]| {
        be(out, 3);
        be(out, value.len() as u32);
        be(out, name_offset);
        out.extend_from_slice(value);
        out.resize(out.len().next_multiple_of(4), 0);
    };
    let mut structure = Vec::new();
    begin(&mut structure, "");
    prop(&mut structure, 0, b"tessera,system\0");
    prop(&mut structure, 11, b"qemu-virt\0");
    begin(&mut structure, "vms");
    let cpus = vec![0u8; 4 * cpus_per_vm];
    for index in 0..vms {
        begin(&mut structure, &format!("vm{index}"));
        prop(&mut structure, 17, &cpus);
        prop(&mut structure, 22, b"guest.img\0");
        be(&mut structure, 2);
    }
    be(&mut structure, 2);
    be(&mut structure, 2);
    be(&mut structure, 9);
    let struct_offset = 40 + 16; // the header, then one empty reservation entry
    let strings_offset = struct_offset + structure.len();
    let total = strings_offset + strings.len();
    let mut blob = Vec::with_capacity(total);
    for field in [0xd00d_feed, total, struct_offset, strings_offset, 40, 17, 16, 0, strings.len(), structure.len()] {
        be(&mut blob, field as u32);
    }
    blob.extend_from_slice(&[0; 16]);
    blob.extend_from_slice(&structure);
    blob.extend_from_slice(strings);
    blob
}

/// `check_blob`'s error for `blob`, and how long it took; no verdict within
/// [`CASE_TIMEOUT`] fails the test.
fn rejected_in_time(blob: Vec<u8>) -> (String, Duration) {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let start = Instant::now();
        let result = xtask::check_blob(&blob, None, &[0xaa; 4096], &[]).map(|_| ());
        let _ = send.send((result, start.elapsed()));
    });
    let (result, took) = receive.recv_timeout(CASE_TIMEOUT).expect("a verdict in time");
    (result.expect_err("rejected").to_string(), took)
}

/// Absurd counts are refused before any per-VM work: 10^6 VMs by the reader's node limit,
/// 1000 VMs by the VM count, 10^6 CPUs in one VM by the board's CPU count. (Before the fix,
/// 10^6 VMs were each parsed, given a device tree and placed before the validator's 255-VM
/// limit: no verdict within 20 s.)
#[test]
fn absurd_counts_are_refused_early() {
    let (message, took) = rejected_in_time(absurd(1_000_000, 1));
    assert!(message.contains("more than 65536 nodes (below `/vms`)"), "{message}");
    eprintln!("10^6 VMs refused in {took:?}");
    let (message, took) = rejected_in_time(absurd(1000, 1));
    assert_eq!(message, "/vms: 1000 VMs, but at most 255 fit in 8-bit VMIDs");
    eprintln!("1000 VMs refused in {took:?}");
    let (message, took) = rejected_in_time(absurd(1, 1_000_000));
    assert_eq!(message, "/vms/vm0: 1000000 CPUs, but the board has 4");
    eprintln!("10^6 CPUs refused in {took:?}");
    // The generator's own control: a sane count passes the parser (and fails only later, on
    // the missing memory node).
    let (message, _) = rejected_in_time(absurd(2, 1));
    assert!(message.contains("/vms/vm0"), "{message}");
}

/// A few cases through the `xtask check` binary, as a user runs it: exit status 1 and the
/// message on stderr after the file name.
#[test]
fn the_check_command_reports_them() {
    for (file, expected) in [
        ("memory-wraps.dts", "is empty or wraps around the address space"),
        ("missing-cpus.dts", "/vms/alpha: missing required property `cpus`"),
        ("raw-device-wraps.dts", "device window 0xfffffffffffff000 size 0x2000"),
        ("bootargs-not-utf8.dts", "/vms/alpha: property `bootargs` is not UTF-8"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dts = dir.path().join(file);
        std::fs::copy(corpus().join(file), &dts).unwrap();
        std::fs::write(dir.path().join("guest.img"), [0xaa; 4096]).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("check").arg(&dts).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{file}: {stderr}");
        assert!(stderr.contains(&format!("error: {}: ", dts.display())), "{file}: {stderr}");
        assert!(stderr.contains(expected), "{file}: {stderr}");
    }
}

/// The valid inputs, compiled once for the property test.
static VALID_SYSTEM: LazyLock<Vec<u8>> = LazyLock::new(|| blob("passes-dev.dts"));
static VALID_BOARD: LazyLock<Vec<u8>> = LazyLock::new(|| blob("board-valid.dts"));

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// Corruptions of the valid description and board tree: `check_blob` refuses or accepts,
    /// never panics; a blob the FDT reader refuses is refused as malformed.
    #[test]
    fn corrupt_descriptions_never_panic(
        edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..6),
        board_edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..3),
    ) {
        let mut system = VALID_SYSTEM.clone();
        let mut board = VALID_BOARD.clone();
        for (at, value) in edits {
            let at = at % system.len();
            system[at] = value;
        }
        for (at, value) in board_edits {
            let at = at % board.len();
            board[at] = value;
        }
        if let Err(error) = xtask::check_blob(&system, Some(&board), &[0xaa; 4096], &[]) {
            proptest::prop_assert!(!error.to_string().is_empty());
            if xtask::dts::fdt::read(&system).is_err() {
                proptest::prop_assert!(matches!(error, xtask::Error::MalformedDtb { .. }), "{}", error);
            }
        }
    }
}
