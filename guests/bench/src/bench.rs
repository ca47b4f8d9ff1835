//! The measurements. The boot CPU runs them one after another; vCPU 1 (if the DT has a
//! second CPU) only answers SGIs. Shared state is plain atomics (the MMU is off, so memory is
//! Device memory and exclusives are not guaranteed; only loads and stores are used).
//!
//! Every time is a difference of counter reads: CNTVCT_EL0 (the vector reads it as its third
//! instruction for interrupts; `arch::cntvct_el0` has an ISB before the read elsewhere).
//! With QEMU's `-icount shift=0` and a 1 GHz counter, one tick is one instruction.

use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tessera_guest_baremetal::dt::{self, Conduit, Platform};
use tessera_guest_baremetal::gic::{self, GicRegions, Interrupt, Trigger};
use tessera_guest_bench::args::{Args, MAX_SAMPLES, Role};
use tessera_guest_bench::sgi1r_value;
use tessera_guest_bench::stats::Summary;

use crate::arch::{self, IrqCell, Syndrome, VectorIndex, icc, virtual_timer};
use crate::gicv3::GicV3;
use crate::uart::{Console, Uart};

/// QEMU virt's PL011, used until the DT names the console.
const FALLBACK_UART: usize = 0x0900_0000;
/// vCPU 0 pings vCPU 1 with this SGI; vCPU 1 answers with the other.
const SGI_PING: u32 = 1;
const SGI_PONG: u32 = 2;
/// SMCCC_VERSION (DEN0028): answered by every SMCCC 1.1 implementation, does nothing.
const SMCCC_VERSION: u32 = 0x8000_0000;
/// TESSERA_STATS (`docs/hvcall.md`): x1 = instructions retired at EL2 on this CPU.
const TESSERA_STATS: u32 = 0xC600_0001;
/// How long to wait for one event (timer, SGI answer, secondary start), in ticks, before
/// giving up on that benchmark: 0.1 s at 1 GHz.
const TIMEOUT_TICKS: u64 = 100_000_000;

static UART_BASE: AtomicUsize = AtomicUsize::new(FALLBACK_UART);
static CONDUIT_IS_SMC: AtomicBool = AtomicBool::new(false);
static TIMER_INTID: AtomicU64 = AtomicU64::new(gic::DEFAULT_VIRTUAL_TIMER_INTID as u64);
/// CNTVCT_EL0 at the last timer interrupt's vector (0: not yet).
static TIMER_AT: AtomicU64 = AtomicU64::new(0);
/// CNTVCT_EL0 at the last SGI_PONG's vector on vCPU 0 (0: not yet).
static PONG_AT: AtomicU64 = AtomicU64::new(0);
/// vCPU 0's MPIDR, for vCPU 1's answer.
static BOOT_MPIDR: AtomicU64 = AtomicU64::new(0);
/// vCPU 1 has its GIC up and waits for pings.
static SECONDARY_READY: AtomicBool = AtomicBool::new(false);
/// The GIC frames, published by the boot CPU for vCPU 1 (before CPU_ON).
static GICD: AtomicU64 = AtomicU64::new(0);
static GICR: AtomicU64 = AtomicU64::new(0);
static GICR_SIZE: AtomicU64 = AtomicU64::new(0);
/// The sample buffer (boot CPU only, outside interrupt handlers).
static SAMPLES: IrqCell<[u64; MAX_SAMPLES]> = IrqCell::new([0; MAX_SAMPLES]);

fn uart() -> Uart {
    // SAFETY: UART_BASE is QEMU virt's PL011 or the UART this guest's DT names (its console,
    // reachable with the MMU off).
    unsafe { Uart::new(UART_BASE.load(Ordering::Relaxed)) }
}

macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(Console(uart()), $($arg)*);
    }};
}

fn conduit() -> Conduit {
    if CONDUIT_IS_SMC.load(Ordering::Relaxed) { Conduit::Smc } else { Conduit::Hvc }
}

/// The IRQ vector's handler (both vCPUs): acknowledges every pending interrupt.
pub(crate) fn interrupt(entry_count: u64) -> bool {
    loop {
        let intid = gic::iar_intid(icc::acknowledge());
        if intid >= gic::FIRST_SPECIAL_INTID {
            return true;
        }
        if u64::from(intid) == TIMER_INTID.load(Ordering::Relaxed) {
            virtual_timer::disarm();
            TIMER_AT.store(entry_count, Ordering::Release);
        } else if intid == SGI_PING {
            send_sgi(BOOT_MPIDR.load(Ordering::Relaxed), SGI_PONG);
        } else if intid == SGI_PONG {
            PONG_AT.store(entry_count, Ordering::Release);
        }
        icc::end_of_interrupt(intid);
    }
}

pub(crate) fn exception(vector: VectorIndex, syndrome: Syndrome) -> bool {
    say!(
        "guest: exception ESR={:#x} FAR={:#x} ELR={:#x} ({} from vector {})",
        syndrome.esr, syndrome.far, syndrome.elr, vector.kind(), vector.0
    );
    false
}

/// ICC_SGI1R_EL1 (S3_0_C12_C11_5, IHI 0069H §12.2.22): one SGI to one CPU.
fn send_sgi(mpidr: u64, intid: u32) {
    let value = sgi1r_value(mpidr, intid);
    // SAFETY: generating an SGI to a CPU of this VM (natively: of this machine) only makes
    // it take an interrupt this guest handles.
    unsafe {
        core::arch::asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) value, options(nomem, nostack, preserves_flags))
    };
}

/// An SMCCC call returning x0 and x1.
fn smccc2(function: u32) -> (u64, u64) {
    let (mut x0, x1): (u64, u64) = (u64::from(function), 0);
    let mut x1 = x1;
    match conduit() {
        // SAFETY: an SMCCC call with no arguments; x0–x17 are clobbered per the C ABI and no
        // memory Rust owns is touched.
        Conduit::Hvc => unsafe {
            core::arch::asm!("hvc #0", inout("x0") x0, inout("x1") x1, clobber_abi("C"))
        },
        // SAFETY: as above.
        Conduit::Smc => unsafe {
            core::arch::asm!("smc #0", inout("x0") x0, inout("x1") x1, clobber_abi("C"))
        },
    }
    (x0, x1)
}

/// EL2 instructions on this CPU so far, if the hypervisor answers TESSERA_STATS.
fn el2_instructions() -> Option<u64> {
    match smccc2(TESSERA_STATS) {
        (0, count) => Some(count),
        _ => None,
    }
}

/// Records `samples + warmup` rounds of `round` (a sample, or None on a timeout) and reports
/// them as `bench: <name> <summary>`.
fn measure(name: &str, args: &Args, round: impl FnMut() -> Option<u64>) -> bool {
    match measure_quietly(name, args, round) {
        Some(summary) => {
            say!("bench: {name} {summary}");
            true
        }
        None => false,
    }
}

/// [`measure`] without the report line, for a caller that reads the EL2 instruction count
/// right after the last round (a console line is hundreds of trapped writes).
fn measure_quietly(name: &str, args: &Args, mut round: impl FnMut() -> Option<u64>) -> Option<Summary> {
    for _ in 0..args.warmup {
        if round().is_none() {
            say!("bench: {name} timeout");
            return None;
        }
    }
    for i in 0..args.samples {
        let Some(sample) = round() else {
            say!("bench: {name} timeout");
            return None;
        };
        SAMPLES.with(|samples| samples[i] = sample);
    }
    Some(SAMPLES.with(|samples| Summary::of(&mut samples[..args.samples])))
}

/// Waits until `flag` is non-zero, spinning or in WFI; returns it, or None after the timeout.
fn wait_for(flag: &AtomicU64, wfi: bool) -> Option<u64> {
    let start = arch::cntvct_el0();
    loop {
        if wfi {
            // Check and sleep with IRQs masked (a pending IRQ still ends WFI), then unmask to
            // take it: no wake-up is lost between the check and the WFI.
            let daif = arch::irq_save();
            if flag.load(Ordering::Acquire) == 0 {
                arch::wait_for_interrupt();
            }
            arch::irq_restore(daif);
        }
        let value = flag.load(Ordering::Acquire);
        if value != 0 {
            return Some(value);
        }
        if arch::cntvct_el0().wrapping_sub(start) > TIMEOUT_TICKS {
            return None;
        }
        core::hint::spin_loop();
    }
}

/// One timer round: arm `period` ticks ahead, wait, return the lateness.
fn timer_round(period: u64, wfi: bool) -> Option<u64> {
    TIMER_AT.store(0, Ordering::Release);
    let deadline = arch::cntvct_el0().wrapping_add(period);
    virtual_timer::arm(deadline);
    let fired = wait_for(&TIMER_AT, wfi)?;
    Some(fired.wrapping_sub(deadline))
}

fn timer_benchmark(args: &Args, wfi: bool) {
    let name = if wfi { "timer_wfi" } else { "timer_spin" };
    let before = el2_instructions();
    let rounds = (args.warmup + args.samples) as u64;
    let Some(summary) = measure_quietly(name, args, || timer_round(args.period_ticks, wfi)) else {
        return;
    };
    let after = el2_instructions();
    say!("bench: {name} {summary}");
    let call = el2_instructions().zip(el2_instructions()).map(|(a, b)| b.wrapping_sub(a));
    if let (Some(before), Some(after), Some(call)) = (before, after, call) {
        let per_irq = after.wrapping_sub(before).saturating_sub(call) / rounds;
        say!("bench: el2_per_irq_{} {per_irq} (call {call})", if wfi { "wfi" } else { "spin" });
    }
}

fn mmio_benchmark(args: &Args) {
    let data = UART_BASE.load(Ordering::Relaxed) as *mut u32; // UARTDR at offset 0
    let mut written = 0usize;
    measure("mmio_write", args, || {
        written += 1;
        let start = arch::cntvct_el0();
        // SAFETY: one store to this guest's console UART's data register (SBSA UART §3.1):
        // it sends a '.', which is all the benchmark needs.
        unsafe { core::ptr::write_volatile(data, u32::from(b'.')) };
        let end = arch::cntvct_el0();
        if written.is_multiple_of(100) {
            say!("");
        }
        Some(end.wrapping_sub(start))
    });
}

fn hvc_benchmark(args: &Args) {
    measure("hvc", args, || {
        let start = arch::cntvct_el0();
        let _ = smccc2(SMCCC_VERSION);
        Some(arch::cntvct_el0().wrapping_sub(start))
    });
}

fn empty_benchmark(args: &Args) {
    measure("empty", args, || {
        let start = arch::cntvct_el0();
        Some(arch::cntvct_el0().wrapping_sub(start))
    });
}

fn sgi_benchmark(args: &Args, platform: &Platform<'_>) {
    let own = arch::mpidr_el1() & arch::MPIDR_AFFINITY_MASK;
    let Some((index, &target)) = platform.cpus().iter().enumerate().find(|(_, m)| **m != own) else {
        say!("bench: sgi skipped (one cpu)");
        return;
    };
    if arch::cpu_on(conduit(), target, index as u64) != 0 {
        say!("bench: sgi skipped (CPU_ON failed)");
        return;
    }
    let start = arch::cntvct_el0();
    while !SECONDARY_READY.load(Ordering::Acquire) {
        if arch::cntvct_el0().wrapping_sub(start) > TIMEOUT_TICKS {
            say!("bench: sgi skipped (cpu {index} did not come up)");
            return;
        }
    }
    measure("sgi", args, || {
        PONG_AT.store(0, Ordering::Release);
        let start = arch::cntvct_el0();
        send_sgi(target, SGI_PING);
        // Wait in WFI: QEMU runs its CPUs round-robin, and a spinning vCPU 0 would hold the
        // host thread until its time slice ends instead of letting vCPU 1 answer.
        let answered = wait_for(&PONG_AT, true)?;
        Some(answered.wrapping_sub(start))
    });
}

#[unsafe(no_mangle)]
extern "C" fn primary_main(dtb_address: u64, boot_count: u64) -> ! {
    uart().init();
    let Some(platform) = arch::device_tree(dtb_address)
        .and_then(|blob| dt::open(blob).and_then(|tree| dt::scan(&tree)).ok())
    else {
        say!("bench: no usable device tree at {dtb_address:#x}");
        arch::park();
    };
    if let Some(base) = platform.uart.and_then(|base| usize::try_from(base).ok()) {
        UART_BASE.store(base, Ordering::Relaxed);
        uart().init();
    }
    CONDUIT_IS_SMC.store(platform.psci == Some(Conduit::Smc), Ordering::Relaxed);
    let name = platform.name();
    let args = Args::parse(platform.bootargs, |word| say!("bench: ignoring bootarg '{word}'"));
    say!("bench: first_insn {boot_count}");
    say!("bench: vm {name} el{} cntfrq {}", arch::current_el(), arch::cntfrq_el0());
    if args.role == Role::Full {
        run(&args, &platform);
    }
    say!("bench: done");
    arch::smccc(conduit(), arch::psci::SYSTEM_OFF, 0, 0, 0);
    arch::park()
}

fn run(args: &Args, platform: &Platform<'_>) {
    let own = arch::mpidr_el1() & arch::MPIDR_AFFINITY_MASK;
    BOOT_MPIDR.store(own, Ordering::Relaxed);
    let Some(regions) = platform.gic else {
        say!("bench: no gicv3 in the device tree");
        return;
    };
    // SAFETY: the frames come from this guest's DT (natively the only software, under
    // Tessera its vGIC); this is the boot CPU.
    let gic = match unsafe { GicV3::init(regions, own) } {
        Ok(gic) => gic,
        Err(error) => {
            say!("bench: gic: {error}");
            return;
        }
    };
    let timer = platform.virtual_timer.unwrap_or(Interrupt {
        intid: gic::DEFAULT_VIRTUAL_TIMER_INTID,
        trigger: Trigger::Level,
    });
    TIMER_INTID.store(u64::from(timer.intid), Ordering::Relaxed);
    GICD.store(regions.distributor.0, Ordering::Relaxed);
    GICR.store(regions.redistributors.0, Ordering::Relaxed);
    GICR_SIZE.store(regions.redistributors.1, Ordering::Release);
    if let Err(error) = gic.enable_ppi(timer).and_then(|()| gic.enable_sgi(SGI_PONG)) {
        say!("bench: gic: {error}");
        return;
    }
    arch::irq_enable();
    empty_benchmark(args);
    timer_benchmark(args, true);
    timer_benchmark(args, false);
    mmio_benchmark(args);
    hvc_benchmark(args);
    sgi_benchmark(args, platform);
}

/// vCPU 1: brings up its redistributor, enables SGI_PING and answers pings forever.
#[unsafe(no_mangle)]
extern "C" fn secondary_main(_index: u64) -> ! {
    let mpidr = arch::mpidr_el1() & arch::MPIDR_AFFINITY_MASK;
    let regions = GicRegions {
        distributor: (GICD.load(Ordering::Acquire), 0x1_0000),
        redistributors: (GICR.load(Ordering::Acquire), GICR_SIZE.load(Ordering::Acquire)),
    };
    // SAFETY: the frames are this guest's (as for the boot CPU, which brought the
    // distributor up already); this CPU drives only its own redistributor.
    match unsafe { GicV3::init(regions, mpidr) }.and_then(|gic| gic.enable_sgi(SGI_PING)) {
        Ok(()) => {}
        Err(error) => {
            say!("bench: secondary gic: {error}");
            arch::park();
        }
    }
    SECONDARY_READY.store(true, Ordering::Release);
    arch::irq_enable();
    loop {
        arch::wait_for_interrupt();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    say!("bench: panic: {info}");
    arch::park()
}
