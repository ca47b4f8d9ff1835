//! The guest proper: boot report, secondary CPUs, the console loop and the heartbeat, polled
//! (default) or interrupt-driven (`rt=1`).
//!
//! In rt mode the virtual timer's interrupt drives the heartbeat: the handler measures how
//! late it ran (CNTVCT_EL0 read in the vector, minus the deadline), records it and arms the
//! next deadline; the console loop prints, and sleeps in WFI in between. The UART's receive
//! interrupt (if the DT names one) fills a queue the loop drains; otherwise the loop polls
//! the UART each time it wakes. Handler and loop share [`RT`], an `IrqCell`: the loop masks
//! IRQs to touch it, and only the boot CPU takes interrupts.
//!
//! One CPU owns the console loop. Secondaries print one line each while the boot CPU waits
//! for them, so there is never concurrent output and no lock. (With the MMU off all memory is
//! Device memory, where exclusives are not guaranteed; the only cross-CPU state is
//! plain load-acquire/store-release atomics.)

use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tessera_guest_baremetal::bootargs::Bootargs;
use tessera_guest_baremetal::canary::{self, Checksum};
use tessera_guest_baremetal::command::{Command, HELP};
use tessera_guest_baremetal::dt::{self, Conduit, MAX_CPUS, Platform};
use tessera_guest_baremetal::gic::{self, Interrupt, Trigger};
use tessera_guest_baremetal::jitter::{self, JitterStats};
use tessera_guest_baremetal::line::{Action, LineEditor};
use tessera_guest_baremetal::rx::RxQueue;

use crate::arch::{self, IrqCell, Syndrome, VectorIndex, icc, virtual_timer};
use crate::gicv3::GicV3;
use crate::uart::{Console, Uart};

/// The UART used before the device tree is read (and by the exception handler until then):
/// QEMU `virt`'s PL011, which is also Tessera's default console IPA on qemu-virt.
const FALLBACK_UART: usize = 0x0900_0000;

static UART_BASE: AtomicUsize = AtomicUsize::new(FALLBACK_UART);
static NAME: arch::SharedStr = arch::SharedStr::new();
static CONDUIT_IS_SMC: AtomicBool = AtomicBool::new(false);
/// Set by each secondary once it has printed its line.
/// `deaf=1`: secondaries set ICC_AP1R0_EL1 bit 0 before they park.
static DEAF_SECONDARIES: AtomicBool = AtomicBool::new(false);
static CPU_UP: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// How long to wait for a secondary to report, in counter ticks (set from CNTFRQ).
static CPU_UP_TIMEOUT_TICKS: AtomicU64 = AtomicU64::new(0);
/// CNTFRQ_EL0, for nanoseconds.
static FREQUENCY: AtomicU64 = AtomicU64::new(0);
/// Watchdog kicks: the period in counter ticks (0: not kicking) and the next kick's count.
static WDOG_TICKS: AtomicU64 = AtomicU64::new(0);
static WDOG_NEXT: AtomicU64 = AtomicU64::new(0);

/// Tessera's TESSERA_WDOG_KICK (`docs/hvcall.md`).
const TESSERA_WDOG_KICK: u32 = 0xc600_0002;

/// What the IRQ handler and the console loop share (rt mode; the statistics in both modes).
static RT: IrqCell<RtState> = IrqCell::new(RtState::new());
/// Victim mode (`canary=1`): the RAM layout checksummed, and its checksum right after the fill.
static CANARY: IrqCell<Option<(canary::Layout, u64)>> = IrqCell::new(None);

/// The interrupt side of the guest.
struct RtState {
    /// The GIC is up and the handler may acknowledge interrupts.
    ready: bool,
    timer_intid: u32,
    uart_intid: Option<u32>,
    /// Heartbeat period and the armed deadline, in ticks.
    period: Option<u64>,
    deadline: u64,
    /// Heartbeats so far, and the lateness of the last one (ticks).
    beats: u64,
    last_late: u64,
    stats: JitterStats,
    rx: RxQueue,
    /// The distributor's base, to mask an interrupt the guest has no handler for.
    distributor: u64,
    /// Other SPIs taken (a passed-through device's, enabled by `poke`s to the GIC): how many,
    /// and the last one. Each is masked in the distributor when taken, since only the device
    /// can drop its line and the guest has no driver for it.
    other_irqs: u64,
    last_other_irq: u32,
    /// SGIs and PPIs other than the timer's: nobody in this guest sends them, so each one
    /// came from outside (an isolation test counts them).
    unexpected_irqs: u64,
    /// The latest heartbeat's worst lateness since the last `status` (ticks).
    window_max_late: u64,
}

impl RtState {
    const fn new() -> Self {
        Self {
            ready: false,
            timer_intid: gic::DEFAULT_VIRTUAL_TIMER_INTID,
            uart_intid: None,
            period: None,
            deadline: 0,
            beats: 0,
            last_late: 0,
            stats: JitterStats::new(),
            rx: RxQueue::new(),
            distributor: 0,
            other_irqs: 0,
            last_other_irq: 0,
            unexpected_irqs: 0,
            window_max_late: 0,
        }
    }

    /// The virtual timer fired; `entry_count` is CNTVCT_EL0 as the vector read it.
    fn timer_fired(&mut self, entry_count: u64) {
        let Some(period) = self.period else {
            virtual_timer::disarm();
            return;
        };
        let late = jitter::lateness_ticks(entry_count, self.deadline);
        self.stats.record(late);
        self.window_max_late = self.window_max_late.max(late);
        self.beats += 1;
        self.last_late = late;
        self.deadline = jitter::next_deadline(self.deadline, period, arch::cntvct_el0());
        virtual_timer::arm(self.deadline);
    }
}

/// The console UART.
fn uart() -> Uart {
    // SAFETY: UART_BASE holds either QEMU virt's PL011 or the UART the device tree names; the
    // guest has the MMU off, so the frame is reachable, and it is this guest's console.
    unsafe { Uart::new(UART_BASE.load(Ordering::Relaxed)) }
}

macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(Console(uart()), $($arg)*);
    }};
}

fn conduit() -> Conduit {
    if CONDUIT_IS_SMC.load(Ordering::Relaxed) {
        Conduit::Smc
    } else {
        Conduit::Hvc
    }
}

/// Called by the IRQ vector with CNTVCT_EL0 as read on entry. Acknowledges and handles
/// every pending Group 1 interrupt. False if the GIC is not set up (then it is reported as an
/// unexpected exception).
pub(crate) fn interrupt(entry_count: u64) -> bool {
    RT.with(|state| {
        if !state.ready {
            return false;
        }
        loop {
            let intid = gic::iar_intid(icc::acknowledge());
            if intid >= gic::FIRST_SPECIAL_INTID {
                break;
            }
            if intid == state.timer_intid {
                state.timer_fired(entry_count);
            } else if Some(intid) == state.uart_intid {
                // Drain the FIFO so the level-triggered line drops.
                let uart = uart();
                while let Some(byte) = uart.try_read_byte() {
                    state.rx.push(byte);
                }
                uart.clear_rx_interrupt();
            } else if intid >= gic::FIRST_SPI {
                // GICD_ICENABLER<n> (IHI 0069 12.9.7) at distributor + 0x180 + 4 * (intid / 32):
                // mask it, or its level line would fire again at once.
                let icenabler = state.distributor + 0x180 + 4 * u64::from(intid / 32);
                arch::poke(icenabler, 1 << (intid % 32));
                state.other_irqs += 1;
                state.last_other_irq = intid;
            } else {
                state.unexpected_irqs += 1;
            }
            icc::end_of_interrupt(intid);
        }
        true
    })
}

/// Called by the vector stub. Returns true to skip the faulting instruction and carry on.
pub(crate) fn exception(vector: VectorIndex, syndrome: Syndrome) -> bool {
    say!(
        "guest: exception ESR={:#x} FAR={:#x} ELR={:#x} ({} from vector {})",
        syndrome.esr,
        syndrome.far,
        syndrome.elr,
        vector.kind(),
        vector.0
    );
    // Vector 4: synchronous, current EL with SP_ELx.
    if vector.0 == 4 && syndrome.is_external_data_abort() {
        say!("guest: abort caught at {:#x}", syndrome.far);
        return true;
    }
    say!("guest: cannot recover, parking this cpu");
    false
}

#[unsafe(no_mangle)]
extern "C" fn primary_main(dtb_address: u64) -> ! {
    uart().init();
    let Some(blob) = arch::device_tree(dtb_address) else {
        say!("guest: no device tree at {dtb_address:#x}");
        arch::park();
    };
    let platform = match dt::open(blob).and_then(|tree| dt::scan(&tree)) {
        Ok(platform) => platform,
        Err(error) => {
            say!("guest: bad device tree at {dtb_address:#x}: {error:?}");
            arch::park();
        }
    };
    if let Some(base) = platform.uart.and_then(|base| usize::try_from(base).ok()) {
        UART_BASE.store(base, Ordering::Relaxed);
        uart().init();
    }
    let name = platform.name();
    NAME.set(name);
    if let Some(conduit) = platform.psci {
        CONDUIT_IS_SMC.store(conduit == Conduit::Smc, Ordering::Relaxed);
    }
    let frequency = arch::cntfrq_el0();
    FREQUENCY.store(frequency, Ordering::Relaxed);
    CPU_UP_TIMEOUT_TICKS.store(frequency, Ordering::Relaxed); // one second

    let args = Bootargs::parse(platform.bootargs, |problem| {
        say!("{name}: ignoring {problem}")
    });
    hello(&platform);
    if platform.psci.is_none() {
        say!("{name}: no /psci method in the device tree; assuming hvc");
    }
    if let Some(address) = args.poke {
        say!("{name}: boot poke {address:#x}");
        poke(address, 0);
    }
    if args.canary {
        fill_canary(&platform, dtb_address, blob.len() as u64);
    }
    if args.smp {
        DEAF_SECONDARIES.store(args.deaf, Ordering::Release);
        start_secondaries(&platform);
    }
    if let Some(ms) = args.share_ms {
        measure_share(name, ms, frequency);
        say_sched(name);
    }
    if let Some(ms) = args.wdog_ms {
        wdog_start(name, ms);
    }
    let heartbeat_ticks = args
        .heartbeat_ms
        .and_then(|ms| jitter::period_ticks(ms, frequency));
    if args.rt {
        match start_rt(&platform, heartbeat_ticks, args.canary) {
            Some(uart_interrupt) => run_rt(name, heartbeat_ticks, uart_interrupt),
            None => say!("{name}: rt mode needs a GIC"),
        }
    }
    run(name, heartbeat_ticks)
}

/// Brings up the GIC, the timer PPI and (if the DT has one) the UART SPI, arms the first
/// heartbeat and unmasks IRQs. A victim (`canary=1`) also enables its 16 SGIs, so that any
/// SGI that reaches it is taken and counted (`unexpected_irqs` in `status`). `None` if rt mode is not possible (the caller polls instead);
/// otherwise whether the UART is interrupt-driven.
fn start_rt(platform: &Platform<'_>, period: Option<u64>, listen_sgis: bool) -> Option<bool> {
    let name = platform.name();
    let regions = platform.gic?;
    let mpidr = arch::mpidr_el1() & arch::MPIDR_AFFINITY_MASK;
    // SAFETY: the frames come from this guest's device tree; natively the guest is the only
    // software, under Tessera they are its vGIC. This is the boot CPU.
    let gic = match unsafe { GicV3::init(regions, mpidr) } {
        Ok(gic) => gic,
        Err(error) => {
            say!("{name}: gic: {error}");
            return None;
        }
    };
    let timer = platform.virtual_timer.unwrap_or_else(|| {
        say!(
            "{name}: no timer interrupt in the device tree; using intid {}",
            gic::DEFAULT_VIRTUAL_TIMER_INTID
        );
        Interrupt {
            intid: gic::DEFAULT_VIRTUAL_TIMER_INTID,
            trigger: Trigger::Level,
        }
    });
    if let Err(error) = gic.enable_ppi(timer) {
        say!("{name}: gic: {error}");
        return None;
    }
    if listen_sgis {
        for intid in 0..gic::FIRST_PPI {
            if let Err(error) = gic.enable_sgi(intid) {
                say!("{name}: gic: {error}");
            }
        }
    }
    let uart_intid = platform
        .uart_interrupt
        .and_then(|irq| match gic.enable_spi(irq, mpidr) {
            Ok(()) => {
                uart().enable_rx_interrupt();
                Some(irq.intid)
            }
            Err(error) => {
                say!("{name}: gic: {error}; polling the uart");
                None
            }
        });
    say!(
        "{name}: rt mode: gicv3 {:#x}, redistributor {:#x}, timer intid {}, {}",
        regions.distributor.0,
        gic.redistributor_base,
        timer.intid,
        UartMode(uart_intid)
    );
    RT.with(|state| {
        state.timer_intid = timer.intid;
        state.uart_intid = uart_intid;
        state.distributor = regions.distributor.0;
        state.period = period;
        state.ready = true;
        if let Some(period) = period {
            state.deadline = arch::cntvct_el0().wrapping_add(period);
            virtual_timer::arm(state.deadline);
        }
    });
    arch::irq_enable();
    Some(uart_intid.is_some())
}

/// Victim mode: fills the RAM outside the image and the device tree with the pattern and
/// records the checksum of the whole RAM (bar the image's writable part).
fn fill_canary(platform: &Platform<'_>, dtb_address: u64, dtb_size: u64) {
    let name = platform.name();
    let Some((base, size)) = platform.memory else {
        say!("{name}: canary: no memory in the device tree");
        return;
    };
    let (image_start, data_start, image_end) = arch::image_layout();
    let layout = canary::Layout {
        base,
        size,
        skip: (data_start, image_end),
        keep: (dtb_address, dtb_address.saturating_add(dtb_size)),
    };
    layout.for_each_word(|address, fill| {
        if fill && !(image_start..data_start).contains(&address) {
            arch::write_ram(address, canary::pattern(address - base));
        }
    });
    let checksum = ram_checksum(&layout);
    CANARY.with(|canary| *canary = Some((layout, checksum)));
    say!("{name}: canary {base:#x}+{size:#x} checksum={checksum:#018x}");
}

fn ram_checksum(layout: &canary::Layout) -> u64 {
    let mut checksum = Checksum::new();
    layout.for_each_word(|address, _| checksum.add(arch::read_ram(address)));
    checksum.value()
}

/// `status`: `<name>: status checksum=… boot=… intact=yes|no|n/a beats=<n> max_late_ns=<ns>
/// window_max_late_ns=<ns> unexpected_irqs=<n>`; the window is since the previous `status`.
fn say_status(name: &str) {
    let (checksum, boot, intact) = match CANARY.with(|canary| *canary) {
        Some((layout, boot)) => {
            let now = ram_checksum(&layout);
            (now, boot, if now == boot { "yes" } else { "no" })
        }
        None => (0, 0, "n/a"),
    };
    let (beats, stats, window, unexpected) = RT.with(|state| {
        let window = core::mem::take(&mut state.window_max_late);
        (state.beats, state.stats, window, state.unexpected_irqs)
    });
    let frequency = FREQUENCY.load(Ordering::Relaxed);
    let summary = stats.summary(frequency);
    say!(
        "{name}: status checksum={checksum:#018x} boot={boot:#018x} intact={intact} beats={beats} max_late_ns={} window_max_late_ns={} unexpected_irqs={unexpected}",
        summary.max_ns,
        jitter::ticks_to_ns(window, frequency)
    );
}

fn hello(platform: &Platform<'_>) {
    let (memory_base, memory_size) = platform.memory.unwrap_or((0, 0));
    say!(
        "hello from {}: el{}, {} cpus, memory {:#x}+{:#x}, uart {:#x}",
        platform.name(),
        arch::current_el(),
        platform.cpu_count(),
        memory_base,
        memory_size,
        UART_BASE.load(Ordering::Relaxed)
    );
}

fn start_secondaries(platform: &Platform<'_>) {
    let name = platform.name();
    let own = arch::mpidr_el1() & arch::MPIDR_AFFINITY_MASK;
    if platform.cpu_count() > MAX_CPUS {
        say!(
            "{name}: only the first {MAX_CPUS} of {} cpus are used",
            platform.cpu_count()
        );
    }
    let timeout = CPU_UP_TIMEOUT_TICKS.load(Ordering::Relaxed);
    for (index, &mpidr) in platform.cpus().iter().enumerate() {
        if mpidr & arch::MPIDR_AFFINITY_MASK == own {
            continue;
        }
        let status = arch::cpu_on(conduit(), mpidr, index as u64);
        if status != 0 {
            say!("{name}: cpu {index} CPU_ON failed ({status})");
            continue;
        }
        let start = arch::cntvct_el0();
        while !CPU_UP[index].load(Ordering::Acquire) {
            if arch::cntvct_el0().wrapping_sub(start) > timeout {
                say!("{name}: cpu {index} did not come up");
                break;
            }
            core::hint::spin_loop();
        }
    }
}

#[unsafe(no_mangle)]
extern "C" fn secondary_main(index: u64) -> ! {
    let name = NAME.get();
    say!("{name}: cpu {index} up (mpidr {:#x})", arch::mpidr_el1());
    if let Some(flag) = usize::try_from(index).ok().and_then(|i| CPU_UP.get(i)) {
        flag.store(true, Ordering::Release);
    }
    if DEAF_SECONDARIES.load(Ordering::Acquire) {
        // The CPU interface of this CPU must use system registers first.
        arch::icc::enable_system_registers();
        arch::icc::deafen();
        say!("{name}: cpu {index} deafened");
    }
    arch::park()
}

/// Kicks once now, then every `ms` from the console loop (`wdog_poll`).
fn wdog_start(name: &str, ms: u32) {
    let ticks = jitter::period_ticks(ms, FREQUENCY.load(Ordering::Relaxed)).unwrap_or(0);
    let x0 = arch::smccc(conduit(), TESSERA_WDOG_KICK, 0, 0, 0) as i64;
    if x0 != 0 {
        say!("{name}: wdog: kick returned {x0}; not kicking");
        WDOG_TICKS.store(0, Ordering::Relaxed);
        return;
    }
    WDOG_NEXT.store(arch::cntvct_el0().wrapping_add(ticks), Ordering::Relaxed);
    WDOG_TICKS.store(ticks, Ordering::Relaxed);
    say!("{name}: wdog: kicking every {ms} ms");
}

/// Kicks the watchdog if a kick is due. In rt mode the loop looks only when it wakes (a
/// heartbeat or input), so kicks come at most once per wake.
fn wdog_poll() {
    let ticks = WDOG_TICKS.load(Ordering::Relaxed);
    if ticks == 0 {
        return;
    }
    let now = arch::cntvct_el0();
    let due = WDOG_NEXT.load(Ordering::Relaxed);
    if jitter::is_due(now, due) {
        arch::smccc(conduit(), TESSERA_WDOG_KICK, 0, 0, 0);
        WDOG_NEXT.store(jitter::next_deadline(due, ticks, now), Ordering::Relaxed);
    }
}

fn poke(address: u64, value: u32) {
    if !address.is_multiple_of(4) {
        say!("poke: address must be 4-byte aligned");
        return;
    }
    arch::poke(address, value);
    say!("poke done");
}

/// `uart intid <n>` or `uart polled`, for the rt report line.
struct UartMode(Option<u32>);

impl core::fmt::Display for UartMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(intid) => write!(f, "uart intid {intid}"),
            None => write!(f, "uart polled"),
        }
    }
}

/// The rt console loop: sleep until an interrupt, then print what the handler recorded and
/// feed what it received. Without a UART interrupt, the UART is polled at every wake (so a
/// typed line waits for the next heartbeat); with neither, the loop spins.
fn run_rt(name: &str, period: Option<u64>, uart_interrupt: bool) -> ! {
    let mut shell = Shell {
        name,
        editor: LineEditor::new(),
        dirty: true,
    };
    shell.prompt();
    let may_sleep = uart_interrupt || period.is_some();
    let mut printed: u64 = 0;
    let mut others_printed: u64 = 0;
    loop {
        let (beats, late, others, other) = RT.with(|state| {
            if may_sleep && state.beats == printed && state.rx.is_empty() && state.other_irqs == others_printed {
                // IRQs are masked here: a pending interrupt still wakes WFI, and the handler
                // runs when `with` unmasks, so no wake-up is lost between check and sleep.
                arch::wait_for_interrupt();
            }
            (state.beats, state.last_late, state.other_irqs, state.last_other_irq)
        });
        if others != others_printed {
            shell.interrupting_line(|| say!("{name}: irq {other} taken and masked ({others} so far)"));
            others_printed = others;
        }
        if beats != printed {
            let late_ns = jitter::ticks_to_ns(late, FREQUENCY.load(Ordering::Relaxed));
            shell.interrupting_line(|| say!("{name}: heartbeat {beats} late {late_ns}ns"));
            if beats / 10 != printed / 10 {
                say_jitter(name);
            }
            printed = beats;
        }
        wdog_poll();
        while let Some(byte) = RT.with(|state| state.rx.pop()) {
            shell.feed(byte);
        }
        if !uart_interrupt {
            while let Some(byte) = uart().try_read_byte() {
                shell.feed(byte);
            }
        }
    }
}

/// `<name>: jitter n=<n> min=<ns> avg=<ns> max=<ns>`: heartbeat lateness so far.
fn say_jitter(name: &str) {
    let summary = RT
        .with(|state| state.stats)
        .summary(FREQUENCY.load(Ordering::Relaxed));
    say!(
        "{name}: jitter n={} min={} avg={} max={}",
        summary.count,
        summary.min_ns,
        summary.avg_ns,
        summary.max_ns
    );
}

/// TESSERA_SCHED_STATS (`docs/hvcall.md`): the hypervisor's RTDS accounting of vCPU 0.
const TESSERA_SCHED_STATS: u32 = 0xC600_0003;

/// TESSERA_STATS: EL2 instructions retired on this vCPU's physical CPU so far.
const TESSERA_STATS: u32 = 0xC600_0001;

fn el2_instructions() -> Option<u64> {
    match arch::smccc_seven(conduit(), TESSERA_STATS, 0) {
        [0, count, ..] => Some(count),
        _ => None,
    }
}

/// `<name>: share <permille> permille over <ms> ms, <n> iterations[, el2 <n>]`: busy-loops
/// for `ms` milliseconds of virtual time and reports the part of it this vCPU ran, and (under
/// Tessera) the EL2 instructions its physical CPU retired meanwhile.
fn measure_share(name: &str, ms: u32, frequency: u64) {
    let el2_before = el2_instructions();
    let window = u64::from(ms) * frequency / 1000;
    // A step over 2 µs means the loop did not run (its own iteration is far shorter).
    let gap = (frequency / 500_000).max(1);
    let mut meter = tessera_guest_baremetal::share::ShareMeter::new(arch::cntvct_el0(), gap);
    while meter.elapsed() < window {
        meter.record(arch::cntvct_el0());
    }
    match el2_before.zip(el2_instructions()) {
        Some((before, after)) => say!(
            "{name}: share {} permille over {ms} ms, {} iterations, el2 {}",
            meter.permille(), meter.iterations, after.wrapping_sub(before)
        ),
        None => say!("{name}: share {} permille over {ms} ms, {} iterations", meter.permille(), meter.iterations),
    }
}

/// `<name>: sched vcpu 0 used <us> us beyond <us> us misses <n> switches <n> periods <n> switch-cost <n>`,
/// or `<name>: sched not supported (<x0>)` on a CPU that no RTDS pool runs.
fn say_sched(name: &str) {
    let [status, used, beyond, misses, switches, periods, cost] = arch::smccc_seven(conduit(), TESSERA_SCHED_STATS, 0);
    if status != 0 {
        say!("{name}: sched not supported ({})", status as i64);
        return;
    }
    say!("{name}: sched vcpu 0 used {used} us beyond {beyond} us misses {misses} switches {switches} periods {periods} switch-cost {cost}");
}

/// The polled console loop: poll the UART and the heartbeat deadline, forever.
fn run(name: &str, heartbeat_ticks: Option<u64>) -> ! {
    let mut shell = Shell {
        name,
        editor: LineEditor::new(),
        dirty: true,
    };
    shell.prompt();
    let mut beats: u64 = 0;
    let mut deadline = heartbeat_ticks.map(|ticks| arch::cntvct_el0().wrapping_add(ticks));
    loop {
        wdog_poll();
        if let Some(byte) = uart().try_read_byte() {
            shell.feed(byte);
        }
        if let (Some(due), Some(period)) = (deadline, heartbeat_ticks) {
            let now = arch::cntvct_el0();
            if jitter::is_due(now, due) {
                beats += 1;
                // Polled lateness (how long the loop took to notice), for `jitter`.
                RT.with(|state| {
                    let late = jitter::lateness_ticks(now, due);
                    state.stats.record(late);
                    state.window_max_late = state.window_max_late.max(late);
                    state.beats = beats;
                });
                shell.interrupting_line(|| say!("{name}: heartbeat {beats}"));
                // Skip missed beats rather than bursting to catch up.
                deadline = Some(jitter::next_deadline(due, period, now));
            }
        }
        core::hint::spin_loop();
    }
}

struct Shell<'a> {
    name: &'a str,
    editor: LineEditor,
    /// Something is on the current output line (the prompt or typed text).
    dirty: bool,
}

impl Shell<'_> {
    fn prompt(&mut self) {
        let _ = write!(Console(uart()), "{}> ", self.name);
        self.dirty = true;
    }

    /// Prints asynchronous output on its own line; the prompt and the partial input come back
    /// at the next keystroke.
    fn interrupting_line(&mut self, print: impl FnOnce()) {
        if self.dirty {
            say!();
            self.dirty = false;
        }
        print();
    }

    fn feed(&mut self, byte: u8) {
        let action = self.editor.feed(byte);
        if action == Action::None {
            return;
        }
        if !self.dirty {
            // Redraw the prompt and the line as it now stands, this keystroke included.
            let _ = write!(Console(uart()), "{}> {}", self.name, self.editor.line());
            self.dirty = true;
            if action != Action::Enter {
                return;
            }
        }
        match action {
            Action::None => {}
            Action::Echo(byte) => uart().write_byte(byte),
            Action::Erase => {
                let _ = Console(uart()).write_str("\x08 \x08");
            }
            Action::Enter => {
                say!();
                self.dirty = false;
                self.execute();
                self.prompt();
            }
        }
    }

    fn execute(&mut self) {
        let name = self.name;
        match Command::parse(self.editor.line()) {
            Command::Empty => {}
            Command::Ping => say!("pong {name}"),
            Command::Help => {
                for line in HELP {
                    say!("{line}");
                }
            }
            Command::Off => {
                say!("{name}: system off");
                let status = arch::smccc(conduit(), arch::psci::SYSTEM_OFF, 0, 0, 0) as i64;
                say!("{name}: SYSTEM_OFF returned {status}");
            }
            Command::Reset => {
                say!("{name}: system reset");
                let status = arch::smccc(conduit(), arch::psci::SYSTEM_RESET, 0, 0, 0) as i64;
                say!("{name}: SYSTEM_RESET returned {status}");
            }
            Command::Poke { address, value } => poke(address, value),
            Command::Peek { address } => {
                if !address.is_multiple_of(4) {
                    say!("peek: address must be 4-byte aligned");
                } else {
                    say!("peek {address:#x} = {:#x}", arch::peek(address));
                }
            }
            Command::Hvc { function } => {
                let x0 = arch::smccc(Conduit::Hvc, function, 0, 0, 0);
                say!("hvc {function:#x} -> x0={x0:#x}");
            }
            Command::Debug { address } => {
                let [bvr, bcr, mdscr, oslsr, mdrar] = arch::debug_registers(address);
                say!("debug bvr0={bvr:#x} bcr0={bcr:#x} mdscr={mdscr:#x} oslsr={oslsr:#x} mdrar={mdrar:#x}");
            }
            Command::Jitter => say_jitter(name),
            Command::Sched => say_sched(name),
            Command::Status => say_status(name),
            Command::Wdog { ms: Some(ms) } => wdog_start(name, ms),
            Command::Wdog { ms: None } => {
                WDOG_TICKS.store(0, Ordering::Relaxed);
                say!("{name}: wdog: stopped kicking");
            }
            Command::GicSpray => {
                let mut writes = 0usize;
                for intid in 0..16 {
                    for register in tessera_guest_baremetal::spray::SGI_REGISTERS {
                        for value in tessera_guest_baremetal::spray::sgi_values(intid) {
                            arch::icc::write_sgi(register, value);
                            writes += 1;
                        }
                    }
                }
                arch::icc::spray_cpu_interface(&tessera_guest_baremetal::spray::FOREIGN_INTIDS);
                say!("{name}: gicspray done: {writes} sgi writes");
            }
            Command::Pmr { mask } => {
                arch::icc::set_priority_mask(mask);
                say!("pmr {mask:#x} done");
            }
            Command::Deafen => {
                say!("{name}: deafened");
                arch::icc::deafen();
            }
            Command::Unknown(word) => say!("unknown command '{word}' (try help)"),
            Command::Usage(usage) => say!("usage: {usage}"),
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    say!("guest: panic: {info}");
    arch::park()
}
