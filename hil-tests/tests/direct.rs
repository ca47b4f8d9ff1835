//! Direct-interrupt mode (`docs/direct-mode.md`): a bare-metal guest that takes its own
//! interrupts on the physical GIC CPU interface, beside a victim VM. Every test is named
//! `direct_*`: `cargo test -p hil-tests direct` runs exactly these.
//!
//! Systems: `hil-tests/systems/direct.dts` (`rt`: direct, CPUs 1 and 2, `on-system-reset =
//! "restart"`; `victim`: CPU 0, `canary=1`), and `dts/systems/qemu-virt/bench-direct.dts`
//! (the benchmark guest in direct mode) under `-icount`, for the EL2 instruction count.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::time::Duration;

use hil_tests::{EXPECT_TIMEOUT, QemuOptions, Target, boot_system, mux_switch};

const SYSTEM: &str = "hil-tests/systems/direct.dts";
const DEAF_SYSTEM: &str = "hil-tests/systems/direct-deaf.dts";
const BENCH_SYSTEM: &str = "dts/systems/qemu-virt/bench-direct.dts";
const RT: &str = "rt";
const VICTIM: &str = "victim";
/// The victim's heartbeat period (its bootargs): a beat later than this is a gap.
const VICTIM_HEARTBEAT_NS: u64 = 1_000_000_000;
const HARD_TIMEOUT: Duration = Duration::from_secs(600);

fn boot() -> Box<dyn Target> {
    boot_dts(SYSTEM)
}

fn boot_dts(dts: &str) -> Box<dyn Target> {
    boot_system(Path::new(dts), QemuOptions::default().hard_timeout(HARD_TIMEOUT)).unwrap()
}

/// Both guests are up and their timers tick; the console focus is on `rt` (VM index 1).
fn wait_ready(target: &mut dyn Target) {
    target.expect_line_from(VICTIM, "victim: canary 0x40000000+0x2000000 checksum=", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from(VICTIM, "victim: rt mode: gicv3", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from(VICTIM, "victim: heartbeat 1 late", EXPECT_TIMEOUT).unwrap();
    // No console interrupt reaches a direct guest: it polls its UART.
    target.expect_line_from(RT, "rt: cpu 1 up", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from(RT, "uart polled", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from(RT, "rt: heartbeat 3 late", EXPECT_TIMEOUT).unwrap();
    focus(target, 1, RT);
}

fn focus(target: &mut dyn Target, index: usize, vm: &str) {
    target.send(&mux_switch(index)).unwrap();
    target.expect_line_from("mux", &format!("input -> {vm}"), EXPECT_TIMEOUT).unwrap();
}

/// The value after `key=` in `text`, up to the next space.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    let start = text.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key}= in {text:?}")) + key.len() + 1;
    text[start..].split(char::is_whitespace).next().unwrap_or_default()
}

fn number(text: &str, key: &str) -> u64 {
    let value = field(text, key);
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("{key}={value:?} in {text:?}"))
}

/// What a guest's `status` said.
#[derive(Debug)]
struct Status {
    checksum: String,
    intact: String,
    beats: u64,
    window_max_late_ns: u64,
    unexpected_irqs: u64,
}

/// Asks `vm` (console index `index`) for its status; the focus goes back to `rt`.
fn status(target: &mut dyn Target, index: usize, vm: &str) -> Status {
    focus(target, index, vm);
    let start = target.mark();
    target.send(b"status\r").unwrap();
    target.expect_line_from(vm, "unexpected_irqs=", EXPECT_TIMEOUT).unwrap();
    let stream = target.console().stream_from(vm, start);
    let line = &stream[stream.find(&format!("{vm}: status ")).unwrap()..];
    let status = Status {
        checksum: field(line, "checksum").to_string(),
        intact: field(line, "intact").to_string(),
        beats: number(line, "beats"),
        window_max_late_ns: number(line, "window_max_late_ns"),
        unexpected_irqs: number(line, "unexpected_irqs"),
    };
    focus(target, 1, RT);
    status
}

/// The direct guest sprays SGIs (all 16 INTIDs; SGI1R, SGI0R and ASGI1R; IRM = 1 and every
/// target form) and writes PMR, IGRPEN0/1, BPR0/1, EOIR0/1 and DIR of INTIDs it does not
/// own. The victim keeps its heartbeat, its RAM checksum and takes no stray interrupt; the
/// direct guest's own timer keeps ticking; the hypervisor dropped what was not the VM's
/// (logged once each); and it can still restart the direct VM (PSCI SYSTEM_RESET, which
/// kicks the VM's second CPU out of the guest with the Group 0 SGI) and stop it.
#[test]
fn direct_guest_cannot_disturb_others() {
    let mut target = boot();
    wait_ready(target.as_mut());
    let before = status(target.as_mut(), 0, VICTIM);
    assert_eq!(before.intact, "yes", "{before:?}");
    let hv_before = target.hv_log().unwrap().len();

    let start = target.mark();
    target.send(b"gicspray\r").unwrap();
    target.expect_line_from(RT, "rt: gicspray done: 1008 sgi writes", EXPECT_TIMEOUT).unwrap();
    // Its own timer still works: three more heartbeats after the spray.
    let beats_after = target.console().count_from(RT, "rt: heartbeat ", start);
    target.console().expect_count_from(RT, "rt: heartbeat ", beats_after + 3, EXPECT_TIMEOUT).unwrap();
    target.send(b"ping\r").unwrap();
    target.expect_line_from(RT, "pong rt", EXPECT_TIMEOUT).unwrap();
    // Two victim heartbeats since the spray began.
    target.console().expect_count_from(VICTIM, "victim: heartbeat ", 2, EXPECT_TIMEOUT).unwrap();

    let after = status(target.as_mut(), 0, VICTIM);
    println!(
        "victim: beats {} -> {}, worst lateness {} ns, unexpected_irqs {}, intact {}",
        before.beats, after.beats, after.window_max_late_ns, after.unexpected_irqs, after.intact
    );
    assert!(after.beats > before.beats, "the victim's heartbeat stopped: {before:?} -> {after:?}");
    assert!(after.window_max_late_ns < VICTIM_HEARTBEAT_NS, "a victim heartbeat was missed: {after:?}");
    assert_eq!(after.unexpected_irqs, 0, "the victim took interrupts nobody in it sent: {after:?}");
    assert_eq!((after.intact.as_str(), &after.checksum), ("yes", &before.checksum), "{before:?} -> {after:?}");

    let log = target.hv_log().unwrap();
    let dropped: Vec<&String> = log[hv_before..].iter().filter(|line| line.contains("VM rt:")).collect();
    for expected in ["ReservedIntid", "OutsideVm", "ICC_SGI0R/ASGI1R write dropped"] {
        assert!(dropped.iter().any(|line| line.contains(expected)), "no {expected:?} in the log: {dropped:?}");
    }
    assert!(dropped.len() <= 3, "each kind is logged once: {dropped:?}");

    // The hypervisor still restarts the direct VM, and it runs again.
    let reset = target.mark();
    target.send(b"reset\r").unwrap();
    target.expect_line_from("hv", "VM rt: restarting (PSCI SYSTEM_RESET)", EXPECT_TIMEOUT).unwrap();
    target.console().set_mark(reset);
    target.expect_line_from(RT, "hello from rt", EXPECT_TIMEOUT).unwrap();
    target.expect_line_from(RT, "rt: heartbeat 3 late", EXPECT_TIMEOUT).unwrap();
    let log = target.hv_log().unwrap();
    assert!(
        !log.iter().any(|line| line.contains("did not leave the guest")),
        "the restart's kick did not reach the direct VM's second CPU: {log:?}"
    );
    target.send(b"ping\r").unwrap();
    target.expect_line_from(RT, "pong rt", EXPECT_TIMEOUT).unwrap();

    // And stops it (PSCI SYSTEM_OFF: `on-system-off` is "stop"); the victim carries on.
    target.send(b"off\r").unwrap();
    target.expect_line_from("hv", "VM rt: stopped (PSCI SYSTEM_OFF)", EXPECT_TIMEOUT).unwrap();
    target.console().expect_count_from(VICTIM, "victim: heartbeat ", 2, EXPECT_TIMEOUT).unwrap();
    let last = status(target.as_mut(), 0, VICTIM);
    assert!(last.beats > after.beats, "{after:?} -> {last:?}");
    assert_eq!(last.unexpected_irqs, 0, "{last:?}");
    assert!(target.wait_exit(Duration::ZERO).is_none(), "the system keeps running");
}

/// With ICC_AP1R0_EL1 bit 0 set (the guest marks the highest priority active), its CPU
/// takes no interrupt any more, its own timer included: the guest silenced only itself.
/// The victim keeps its heartbeat.
#[test]
fn direct_deaf_guest_silences_only_itself() {
    let mut target = boot();
    wait_ready(target.as_mut());
    let before = status(target.as_mut(), 0, VICTIM);
    target.send(b"deafen\r").unwrap();
    target.expect_line_from(RT, "rt: deafened", EXPECT_TIMEOUT).unwrap();
    let deaf = target.mark();
    std::thread::sleep(Duration::from_secs(3));
    let beats = target.console().count_from(RT, "rt: heartbeat ", deaf);
    assert!(beats <= 1, "a deafened direct guest still took {beats} timer interrupts");
    focus(target.as_mut(), 0, VICTIM);
    target.send(b"status\r").unwrap();
    target.expect_line_from(VICTIM, "unexpected_irqs=0", EXPECT_TIMEOUT).unwrap();
    let after_beats = target.console().count_from(VICTIM, "victim: heartbeat ", deaf);
    assert!(after_beats >= 2, "the victim's heartbeat stopped too ({after_beats} beats in 3 s; before: {before:?})");
}

/// A direct guest whose second CPU made itself deaf (ICC_AP1R0_EL1 bit 0, `deaf=1`) asks for
/// a restart (PSCI SYSTEM_RESET from its first CPU). The hypervisor's Group 0 kick cannot
/// reach the deaf CPU: the wait for it ends after its bound (1 s) with a log line naming the
/// vCPU, the restart becomes a stop, and the victim is untouched throughout.
#[test]
fn direct_restart_of_a_deaf_cpu_is_bounded() {
    let mut target = boot_dts(DEAF_SYSTEM);
    target.expect_line_from(RT, "rt: cpu 1 deafened", EXPECT_TIMEOUT).unwrap();
    wait_ready(target.as_mut());
    let before = status(target.as_mut(), 0, VICTIM);
    let hv_before = target.hv_log().unwrap().len();
    let reset = target.mark();
    let asked = std::time::Instant::now();
    target.send(b"reset\r").unwrap();
    target.expect_line_from("hv", "VM rt: restarting (PSCI SYSTEM_RESET)", EXPECT_TIMEOUT).unwrap();
    target.console().set_mark(reset);
    target.expect_line_from("hv", "VM rt: stopped (a vCPU did not leave the guest for a restart)", EXPECT_TIMEOUT).unwrap();
    let took = asked.elapsed();
    println!("restart of a deaf direct VM ended as a stop after {took:?}");
    let log = target.hv_log().unwrap();
    let said: Vec<&String> = log[hv_before..].iter().filter(|line| line.contains("VM rt")).collect();
    for expected in ["vCPU 1 did not leave the guest", "vCPU 1 is deaf to the hypervisor's Group 0 kick", "not restarted; stopping it instead"] {
        assert!(said.iter().any(|line| line.contains(expected)), "no {expected:?} in the log: {said:?}");
    }
    target.console().set_mark(reset);
    target.console().assert_absent_from(RT, "hello from rt", reset).unwrap();
    target.console().expect_count_from(VICTIM, "victim: heartbeat ", 2, EXPECT_TIMEOUT).unwrap();
    let after = status(target.as_mut(), 0, VICTIM);
    assert!(after.beats > before.beats, "{before:?} -> {after:?}");
    assert!(after.window_max_late_ns < VICTIM_HEARTBEAT_NS, "a victim heartbeat was missed: {after:?}");
    assert_eq!((after.unexpected_irqs, after.intact.as_str()), (0, "yes"), "{after:?}");
    assert!(target.wait_exit(Duration::ZERO).is_none(), "the system keeps running");
}

/// The benchmark guest in direct mode, under `-icount`: TESSERA_STATS (EL2 instructions on
/// its CPU) read before and after 1000 virtual-timer interrupts, waiting in WFI and
/// spinning, moves by no more than one call's own cost: no EL2 entry per interrupt. Its SGI
/// ping-pong between its two vCPUs completes.
#[test]
fn direct_timer_takes_no_el2_entry() {
    let mut options = QemuOptions::default().hard_timeout(HARD_TIMEOUT);
    options.cpu = "cortex-a57,cntfrq=1000000000".into();
    options.extra_args = vec!["-icount".into(), "shift=0,sleep=off".into()];
    let target = boot_system(Path::new(BENCH_SYSTEM), options).unwrap();
    for mode in ["wfi", "spin"] {
        let line = target.expect_line_from("bench", &format!("bench: el2_per_irq_{mode} "), EXPECT_TIMEOUT).unwrap();
        println!("{line}");
        // `bench: el2_per_irq_<mode> <per irq> (call <call>)`
        let words: Vec<&str> = line[line.find("el2_per_irq_").unwrap()..].split_whitespace().collect();
        let per_irq: u64 = words[1].parse().unwrap();
        let call: u64 = words[3].trim_end_matches(')').parse().unwrap();
        assert!(call > 0, "TESSERA_STATS does not count ({line})");
        assert_eq!(per_irq, 0, "EL2 instructions per direct timer interrupt ({mode}): {line}");
    }
    // SGIs between its own two vCPUs: the trapped ICC_SGI1R_EL1 write becomes a physical
    // Group 1 SGI, which the other CPU takes once the guest enabled it in its vGIC.
    let sgi = target.expect_line_from("bench", "bench: sgi ", EXPECT_TIMEOUT).unwrap();
    println!("{sgi}");
    assert!(sgi.contains("n=1000"), "the direct guest's SGI ping-pong did not complete: {sgi}");
}
