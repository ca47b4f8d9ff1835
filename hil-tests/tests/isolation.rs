//! Isolation: an attack guest probes everything outside its partition (the address space, the
//! vGIC, HVC/SMC, system registers, the abort path) beside a victim that checksums its RAM and
//! keeps a heartbeat. Every test is named `isolation_*`: `cargo test -p hil-tests isolation`
//! runs exactly these.
//!
//! System: `dts/systems/qemu-virt/isolation.dts` (and `hil-tests/systems/isolation-stop.dts`,
//! the attacker with `fault-policy = "stop"`). Guests: `guests/attack/README.md` (the probe
//! lines), `guests/baremetal/README.md` (`canary=1`, `status`).
//!
//! QEMU runs without `-icount`, so the hypervisor's EL2 instruction counter does not advance
//! and the attacker skips the probes that watch it (it says so); the PMU probes that read
//! the hypervisor's counter's enable bit and event filter still run. (Under `-icount
//! shift=0,sleep=off` the victim's virtual clock races through idle time and its heartbeat
//! floods the console, so these tests do not use it.)
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::time::{Duration, Instant};

use hil_tests::{EXPECT_TIMEOUT, QemuOptions, Target, boot_system, mux_switch};

const SYSTEM: &str = "dts/systems/qemu-virt/isolation.dts";
const SYSTEM_STOP: &str = "hil-tests/systems/isolation-stop.dts";
const ATTACKER: &str = "attacker";
const VICTIM: &str = "victim";
/// The victim's heartbeat period (`bootargs` in the system): a beat later than this is a gap.
/// One second, because the host is shared: at a load of 8-9 on 2 cores an idle victim's beats
/// were up to 341 ms late (200 and 500 ms periods gave false gaps).
const HEARTBEAT_NS: u64 = 1_000_000_000;
const ATTACK_TIMEOUT: Duration = Duration::from_secs(300);
const HARD_TIMEOUT: Duration = Duration::from_secs(600);

fn boot(dts: &str) -> Box<dyn Target> {
    let options = QemuOptions::default().hard_timeout(HARD_TIMEOUT);
    boot_system(Path::new(dts), options).unwrap()
}

/// Both guests are up: the attacker has its targets and prompt, the victim its canary, its
/// GIC and a first heartbeat.
fn wait_ready(target: &dyn Target) {
    target.expect_line_from(ATTACKER, "hello from attacker: attack guest, el1", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from(ATTACKER, "attacker: target victim 0x", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from(ATTACKER, "attacker> ", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from(VICTIM, "victim: canary 0x40000000+0x2000000 checksum=", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from(VICTIM, "victim: rt mode: gicv3", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from(VICTIM, "victim: heartbeat 1 late", EXPECT_TIMEOUT).unwrap();
}

/// What the victim's `status` said.
#[derive(Debug)]
struct Status {
    checksum: String,
    boot: String,
    intact: String,
    beats: u64,
    /// The worst heartbeat lateness since the previous `status`.
    window_max_late_ns: u64,
    unexpected_irqs: u64,
}

/// The value after `key=` in `text`, up to the next space.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    let start = text.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key}= in {text:?}")) + key.len() + 1;
    let rest = &text[start..];
    rest.split(|c: char| c.is_whitespace()).next().unwrap_or(rest)
}

fn number(text: &str, key: &str) -> u64 {
    let value = field(text, key);
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("{key}={value:?} in {text:?}"))
}

/// Asks the victim for its status (the console focus moves to it and back to the attacker).
fn victim_status(target: &mut dyn Target) -> Status {
    target.send(&mux_switch(1)).unwrap();
    target.expect_line_from("mux", "input -> victim", EXPECT_TIMEOUT).unwrap();
    let start = target.mark();
    target.send(b"status\r").unwrap();
    target.expect_line_from(VICTIM, "unexpected_irqs=", EXPECT_TIMEOUT).unwrap();
    let stream = target.console().stream_from(VICTIM, start);
    let line = &stream[stream.find("victim: status ").unwrap()..];
    let status = Status {
        checksum: field(line, "checksum").to_string(),
        boot: field(line, "boot").to_string(),
        intact: field(line, "intact").to_string(),
        beats: number(line, "beats"),
        window_max_late_ns: number(line, "window_max_late_ns"),
        unexpected_irqs: number(line, "unexpected_irqs"),
    };
    target.send(&mux_switch(0)).unwrap();
    target.expect_line_from("mux", "input -> attacker", EXPECT_TIMEOUT).unwrap();
    status
}

/// The victim's heartbeats printed since line `start`: (k, lateness in ns).
fn heartbeats(target: &dyn Target, start: usize) -> Vec<(u64, u64)> {
    let stream = target.console().stream_from(VICTIM, start);
    stream
        .match_indices("victim: heartbeat ")
        .filter_map(|(at, prefix)| {
            let rest = &stream[at + prefix.len()..];
            let (k, rest) = rest.split_once(" late ")?;
            let late: String = rest.chars().take_while(char::is_ascii_digit).collect();
            Some((k.parse().ok()?, late.parse().ok()?))
        })
        .collect()
}

/// Every probe verdict in a stream of the attacker's output: (probe text, escaped).
fn verdicts(stream: &str) -> Vec<(String, bool)> {
    stream
        .split("probe ")
        .skip(1)
        .filter_map(|piece| {
            let denied = piece.find(" denied");
            let escaped = piece.find(" ESCAPE");
            match (denied, escaped) {
                (Some(d), Some(e)) if e < d => Some((piece[..e].to_string(), true)),
                (Some(d), _) => Some((piece[..d].to_string(), false)),
                (None, Some(e)) => Some((piece[..e].to_string(), true)),
                (None, None) => None,
            }
        })
        .collect()
}

/// `attack all`: no probe escapes, the victim's RAM checksum is unchanged, its heartbeat has
/// no gap and it took no interrupt it did not ask for, and the hypervisor's log shows an
/// injected abort for every denied memory probe.
#[test]
fn isolation_attack_all_is_denied_and_the_victim_is_intact() {
    let mut target = boot(SYSTEM);
    wait_ready(target.as_ref());
    let before = victim_status(target.as_mut());
    assert_eq!(before.intact, "yes", "{before:?}");
    let hv_before = target.hv_log().unwrap().len();

    let start = target.mark();
    let started = Instant::now();
    target.send(b"attack all\r").unwrap();
    let summary = target.expect_line_from(ATTACKER, "probes=", ATTACK_TIMEOUT).unwrap();
    let took = started.elapsed();
    let stream = target.console().stream_from(ATTACKER, start);
    let summary_text = &stream[stream.rfind("probes=").unwrap()..];
    let probes = number(summary_text, "probes");
    let escapes = number(summary_text, "escapes");

    let after = victim_status(target.as_mut());
    let intact = after.intact == "yes" && after.checksum == before.checksum && after.boot == before.boot;
    println!(
        "probes={probes} escapes={escapes} victim_intact={} ({:.1} s, victim beats {}, worst lateness {} ns)",
        if intact { "yes" } else { "no" },
        took.as_secs_f64(),
        after.beats - before.beats,
        after.window_max_late_ns
    );
    eprintln!("attacker: {summary}");

    let found = verdicts(&stream);
    let escaped: Vec<&String> = found.iter().filter(|(_, escaped)| *escaped).map(|(text, _)| text).collect();
    for (class, minimum) in [("mem ", 6000), ("gic ", 150), ("smccc ", 800), ("sysreg ", 35), ("abort ", 4)] {
        let count = found.iter().filter(|(text, _)| text.starts_with(class)).count();
        assert!(count >= minimum, "only {count} `probe {class}…` verdicts seen (expected at least {minimum})");
    }

    // Every memory probe came back as the injected synchronous external abort (the attacker
    // shows the syndrome of any other fault).
    let other_faults: Vec<&String> =
        found.iter().filter(|(text, _)| text.starts_with("mem ") && text.contains("esr=")).map(|(text, _)| text).collect();
    assert!(other_faults.is_empty(), "memory probes that faulted otherwise than by an injected abort: {other_faults:?}");

    // The hypervisor logged an injected abort for each denied memory probe.
    let log = target.hv_log().unwrap();
    let injected = log[hv_before..]
        .iter()
        .filter(|line| line.contains("VM attacker") && line.contains("abort injected"))
        .count();
    let memory_denied = found.iter().filter(|(text, escaped)| text.starts_with("mem ") && !escaped).count();
    assert!(
        injected >= memory_denied,
        "hypervisor log: {injected} injected aborts for {memory_denied} denied memory probes"
    );

    // The victim's heartbeat kept going through the attack, and no beat was missed: a missed
    // beat would make the next one at least a period late (the victim skips missed deadlines).
    // Printed beat numbers may skip (the victim prints only the latest when its loop is busy,
    // e.g. checksumming for `status`), so the lateness is what counts.
    assert!(after.beats > before.beats, "the victim's heartbeat stopped: {before:?} -> {after:?}");
    assert!(
        after.window_max_late_ns < HEARTBEAT_NS,
        "a victim heartbeat was {} ns late during the attack (a missed beat)",
        after.window_max_late_ns
    );
    let printed = heartbeats(target.as_ref(), start);
    assert!(printed.len() >= 2, "the victim printed {} heartbeats during the attack", printed.len());

    assert_eq!(after.unexpected_irqs, 0, "the victim took interrupts nobody in it sent: {after:?}");
    assert!(intact, "the victim's RAM changed: {before:?} -> {after:?}");
    assert!(escaped.is_empty(), "{escapes} probes escaped:\n{}", escaped.iter().map(|e| format!("  probe {e} ESCAPE")).collect::<Vec<_>>().join("\n"));
    assert_eq!(escapes, 0);
    assert_eq!(probes as usize, found.len(), "every probe printed one verdict line");
}

/// With `fault-policy = "stop"`, the attacker's first denied probe stops it (and only it): no
/// verdict line, the hypervisor says so, and the victim carries on intact.
#[test]
fn isolation_fault_policy_stop_stops_only_the_attacker() {
    let mut target = boot(SYSTEM_STOP);
    wait_ready(target.as_ref());
    let before = victim_status(target.as_mut());
    let hv_before = target.hv_log().unwrap().len();

    let start = target.mark();
    target.send(b"attack mem\r").unwrap();
    let said = target.expect_hv_log(hv_before, &["attacker", "stop"], EXPECT_TIMEOUT).unwrap();
    eprintln!("hv log: {said}");
    // Exactly one fault: the first probe (a load from address 0).
    let log = target.hv_log().unwrap();
    let faults: Vec<&String> = log[hv_before..].iter().filter(|line| line.contains("VM attacker: data abort")).collect();
    assert_eq!(faults.len(), 1, "the attacker should fault once, then be stopped: {faults:?}");
    assert!(faults[0].contains("IPA 0x0 (read)"), "{}", faults[0]);
    target.console().expect_count_from(VICTIM, "heartbeat", 3, EXPECT_TIMEOUT).unwrap();
    target.console().assert_absent_from(ATTACKER, "probe mem", start).unwrap();
    target.console().assert_absent_from(ATTACKER, "probes=", start).unwrap();

    let after = victim_status(target.as_mut());
    assert_eq!(after.intact, "yes", "{after:?}");
    assert_eq!(after.checksum, before.checksum);
    assert!(after.beats > before.beats, "{before:?} -> {after:?}");
    assert!(target.wait_exit(Duration::ZERO).is_none(), "the system keeps running");
}
