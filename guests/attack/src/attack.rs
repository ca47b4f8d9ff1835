//! The attack guest proper: boot, the console, and each class of probes. Every probe prints
//! one line, `probe <class> <what> denied|ESCAPE`; a run ends with `probes=N escapes=E`.
//!
//! One CPU, polled console, IRQs masked throughout: an exception can only be a probe's, and
//! the synchronous vector records it ([`probe::record`]) and skips the instruction.
//!
//! What counts as an escape, per class, is in `../README.md`. Some probes cannot see their own
//! effect (set/way maintenance, TLBI of its own VMID, SGIs aimed at other CPUs, the WFE storm):
//! those report `denied` when the guest survives them, and the isolation test checks the
//! victim's checksum, heartbeat and interrupt count instead.

use core::fmt::Write as _;
use core::sync::atomic::{AtomicUsize, Ordering};

use tessera_guest_attack::command::{Class, Command, HELP};
use tessera_guest_attack::plan::{MemoryPlan, PAGE, Range, pa_bits};
use tessera_guest_attack::smccc;
use tessera_guest_attack::targets::{self, Targets};
use tessera_guest_attack::{Tally, Verdict};
use tessera_guest_baremetal::dt::{self, Platform};
use tessera_guest_baremetal::gic::GicRegions;
use tessera_guest_baremetal::line::{Action, LineEditor};

use crate::arch::{self, Syndrome, VectorIndex};
use crate::probe::{self, Outcome, attempt};
use crate::uart::{Console, Uart};

/// QEMU virt's PL011 until the device tree names the console.
const FALLBACK_UART: usize = 0x0900_0000;
/// What stores write: recognisable if it ever lands somewhere.
const PATTERN: u32 = 0xa77a_c4ed;
/// Sentinels in x1..x3 of an SMCCC probe: an answer must leave them or zero them.
const SENTINELS: [u64; 3] = [0x5e17_1e11, 0x5e17_1e12, 0x5e17_1e13];
/// TESSERA_STATS (`docs/hvcall.md`): x1 = instructions retired at EL2 on this CPU.
const TESSERA_STATS: u64 = 0xc600_0001;
/// A vGIC redistributor's frames: RD_base then SGI_base (IHI 0069H §12.10).
const GICR_FRAME: u64 = 0x2_0000;
const GICR_SGI_BASE: u64 = 0x1_0000;
/// WFEs in the storm.
const WFE_STORM: u64 = 100_000;

static UART_BASE: AtomicUsize = AtomicUsize::new(FALLBACK_UART);

fn uart() -> Uart {
    // SAFETY: UART_BASE holds QEMU virt's PL011 address or the console the device tree names;
    // with the MMU off it is reachable, and it is this guest's console.
    unsafe { Uart::new(UART_BASE.load(Ordering::Relaxed)) }
}

macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(Console(uart()), $($arg)*);
    }};
}

/// Called by the IRQ vector. The guest never unmasks IRQs.
pub(crate) fn interrupt(_entry_count: u64) -> bool {
    false
}

/// Called by the vector stub: a synchronous exception is a probe's (recorded, instruction
/// skipped); anything else parks the CPU.
pub(crate) fn exception(vector: VectorIndex, syndrome: Syndrome) -> bool {
    if vector.0.is_multiple_of(4) {
        probe::record(syndrome.esr, syndrome.far);
        return true;
    }
    say!(
        "attacker: unexpected {} exception ESR={:#x} ELR={:#x}; parking",
        vector.kind(),
        syndrome.esr,
        syndrome.elr
    );
    false
}

/// Everything the probes aim with.
struct Attack<'dt> {
    name: &'dt str,
    /// RAM, console frame, GICD frame, GICR frames (IPAs).
    own: [Range; 4],
    targets: Targets<'dt>,
    pa_bits: u32,
    gic: Option<GicRegions>,
    /// The console's SPI and the virtual timer's PPI, which the vGIC lets this VM own.
    console_intid: Option<u32>,
    timer_intid: u32,
    vcpus: u64,
    /// A device window of its own whose every access is a bus error (bootargs).
    error_device: Option<u64>,
    tally: Tally,
}

#[unsafe(no_mangle)]
extern "C" fn primary_main(dtb_address: u64, _boot_count: u64) -> ! {
    // The console is touched only once the device tree has named it: the fallback address
    // is not this VM's, and with fault-policy "stop" one stray access ends it.
    let Some(blob) = arch::device_tree(dtb_address) else {
        say!("attacker: no device tree at {dtb_address:#x}");
        arch::park();
    };
    let scanned = dt::open(blob).and_then(|tree| Ok((dt::scan(&tree)?, targets::scan(&tree)?)));
    let (platform, targets): (Platform<'_>, Targets<'_>) = match scanned {
        Ok(found) => found,
        Err(error) => {
            say!("attacker: bad device tree at {dtb_address:#x}: {error:?}");
            arch::park();
        }
    };
    if let Some(base) = platform.uart.and_then(|base| usize::try_from(base).ok()) {
        UART_BASE.store(base, Ordering::Relaxed);
        uart().init();
    }
    let (ram_base, ram_size) = platform.memory.unwrap_or((0, 0));
    let gic = platform.gic;
    let gicd = gic.map_or(Range::new(0, 0), |g| Range::new(g.distributor.0, g.distributor.1));
    let gicr = gic.map_or(Range::new(0, 0), |g| Range::new(g.redistributors.0, g.redistributors.1));
    let mut attack = Attack {
        name: platform.name(),
        own: [
            Range::new(ram_base, ram_size),
            Range::new(UART_BASE.load(Ordering::Relaxed) as u64, PAGE),
            gicd,
            gicr,
        ],
        targets,
        pa_bits: pa_bits(probe::id_aa64mmfr0_el1()),
        gic,
        console_intid: platform.uart_interrupt.map(|i| i.intid),
        timer_intid: platform.virtual_timer.map_or(27, |i| i.intid),
        vcpus: platform.cpu_count().max(1) as u64,
        error_device: tessera_guest_attack::error_device(platform.bootargs),
        tally: Tally::default(),
    };
    say!(
        "hello from {}: attack guest, el{}, memory {:#x}+{:#x}, uart {:#x}, pa {} bits, {} probe targets",
        attack.name,
        arch::current_el(),
        ram_base,
        ram_size,
        UART_BASE.load(Ordering::Relaxed),
        attack.pa_bits,
        attack.targets.as_slice().len()
    );
    for target in attack.targets.as_slice() {
        say!("{}: target {} {:#x}+{:#x}", attack.name, target.name, target.range.base, target.range.size);
    }
    if attack.targets.dropped != 0 {
        say!("{}: {} probe targets beyond the first {} ignored", attack.name, attack.targets.dropped, targets::MAX_TARGETS);
    }
    attack.console()
}

#[unsafe(no_mangle)]
extern "C" fn secondary_main(_index: u64) -> ! {
    arch::park()
}

impl Attack<'_> {
    /// The polled console loop.
    fn console(&mut self) -> ! {
        let mut editor = LineEditor::new();
        let _ = write!(Console(uart()), "{}> ", self.name);
        loop {
            let Some(byte) = uart().try_read_byte() else {
                core::hint::spin_loop();
                continue;
            };
            match editor.feed(byte) {
                Action::None => {}
                Action::Echo(byte) => uart().write_byte(byte),
                Action::Erase => {
                    let _ = Console(uart()).write_str("\x08 \x08");
                }
                Action::Enter => {
                    say!();
                    self.execute(editor.line());
                    let _ = write!(Console(uart()), "{}> ", self.name);
                }
            }
        }
    }

    fn execute(&mut self, line: &str) {
        match Command::parse(line) {
            Command::Empty => {}
            Command::Ping => say!("pong {}", self.name),
            Command::Help => HELP.iter().for_each(|line| say!("{line}")),
            Command::Attack(class) => {
                self.tally = Tally::default();
                match class {
                    Class::All => Class::EACH.iter().for_each(|&class| self.run(class)),
                    class => self.run(class),
                }
                say!("{}: attack {} done", self.name, class.name());
                say!("probes={} escapes={}", self.tally.probes, self.tally.escapes);
            }
            Command::Unknown(word) => say!("unknown command '{word}' (try help)"),
            Command::Usage(usage) => say!("usage: {usage}"),
        }
    }

    fn run(&mut self, class: Class) {
        match class {
            Class::All => {}
            Class::Mem => self.memory(),
            Class::Gic => self.vgic(),
            Class::Smccc => self.smccc(),
            Class::Sysreg => self.sysregs(),
            Class::Abort => self.aborts(),
        }
    }

    fn report(&mut self, class: &str, what: core::fmt::Arguments<'_>, verdict: Verdict) {
        say!("probe {class} {what} {verdict}");
        self.tally.record(verdict);
    }

    /// An access that must fault: an escape if it completed. A fault other than the injected
    /// external abort is still a denial, but its syndrome is shown.
    fn must_fault(&mut self, class: &str, what: core::fmt::Arguments<'_>, outcome: Outcome) {
        match outcome {
            Outcome::Completed(value) => self.report(class, format_args!("{what} value={value:#x}"), Verdict::Escape),
            Outcome::Faulted { .. } if outcome.is_external_abort() => self.report(class, what, Verdict::Denied),
            Outcome::Faulted { esr, .. } => self.report(class, format_args!("{what} esr={esr:#x}"), Verdict::Denied),
        }
    }

    /// Loads and stores across the address space (`plan.rs` says where).
    fn memory(&mut self) {
        let own = self.own;
        let targets = self.targets;
        let plan = MemoryPlan { own: &own, targets: targets.as_slice(), pa_bits: self.pa_bits };
        plan.for_each(|address, reason| {
            let read = attempt(|| probe::load32(address));
            self.must_fault("mem", format_args!("r {address:#x} {reason}"), read);
            let write = attempt(|| {
                probe::store32(address, PATTERN);
                0
            });
            self.must_fault("mem", format_args!("w {address:#x} {reason}"), write);
        });
    }

    /// vGIC misuse: interrupts the VM does not own (GICD and its own GICR), redistributor
    /// frames beyond its vCPUs, and SGIs to CPUs outside the VM.
    fn vgic(&mut self) {
        let Some(gic) = self.gic else {
            say!("{}: no GIC in the device tree; gic probes skipped", self.name);
            return;
        };
        let gicd = gic.distributor.0;
        // GICD_ISENABLER/ISPENDR/ISACTIVER<n> (IHI 0069H §12.9): set every bit, read back;
        // only the VM's own SPI may stick. Then clear them again (IC* at +0x80).
        for (name, set) in [("GICD_ISENABLER", 0x100u64), ("GICD_ISPENDR", 0x200), ("GICD_ISACTIVER", 0x300)] {
            for n in 1..32u64 {
                let register = gicd + set + 4 * n;
                let owned = self.owned_bits(32 * n as u32);
                let outcome = attempt(|| {
                    probe::store32(register, u32::MAX);
                    probe::load32(register)
                });
                let stuck = match outcome {
                    Outcome::Completed(value) => value & !owned,
                    Outcome::Faulted { .. } => 0,
                };
                let _ = attempt(|| {
                    probe::store32(register + 0x80, u32::MAX);
                    0
                });
                self.report("gic", format_args!("{name}{n} stuck={stuck:#x}"), Verdict::from_escape(stuck != 0));
            }
        }
        // GICD_IROUTER<n> (64-bit, 0x6000 + 8n) and GICD_IPRIORITYR (bytes, 0x400 + n) of SPIs
        // the VM does not own: must read back as zero.
        for intid in [32u32, 33, 34, 35, 40, 47, 48, 63, 64, 100, 200, 1019] {
            if self.owned_bits(intid & !31) & (1 << (intid % 32)) != 0 {
                continue;
            }
            let router = gicd + 0x6000 + 8 * u64::from(intid);
            let outcome = attempt(|| {
                probe::store32(router, 1);
                probe::store32(router + 4, 0);
                probe::load32(router)
            });
            let escaped = matches!(outcome, Outcome::Completed(value) if value != 0);
            self.report("gic", format_args!("GICD_IROUTER{intid}"), Verdict::from_escape(escaped));
            let priority = gicd + 0x400 + u64::from(intid);
            let outcome = attempt(|| {
                probe::store8(priority, 0x80);
                probe::load32(priority & !3) >> (8 * (priority & 3)) & 0xff
            });
            let escaped = matches!(outcome, Outcome::Completed(value) if value != 0);
            self.report("gic", format_args!("GICD_IPRIORITYR{intid}"), Verdict::from_escape(escaped));
        }
        // Its own redistributor's SGI frame: PPIs other than the virtual timer's must not stick.
        let sgi_base = gic.redistributors.0 + GICR_SGI_BASE;
        let owned_private = 0xffff | (1u64 << self.timer_intid);
        for (name, set) in [("GICR_ISENABLER0", 0x100u64), ("GICR_ISPENDR0", 0x200), ("GICR_ISACTIVER0", 0x300)] {
            let register = sgi_base + set;
            let outcome = attempt(|| {
                probe::store32(register, u32::MAX);
                probe::load32(register)
            });
            let stuck = match outcome {
                Outcome::Completed(value) => value & !owned_private,
                Outcome::Faulted { .. } => 0,
            };
            let _ = attempt(|| {
                probe::store32(register + 0x80, u32::MAX);
                0
            });
            self.report("gic", format_args!("{name} stuck={stuck:#x}"), Verdict::from_escape(stuck != 0));
        }
        // Redistributor frames beyond its vCPUs: every access must abort.
        for frame in self.vcpus..self.vcpus + 4 {
            let rd = gic.redistributors.0 + frame * GICR_FRAME;
            for (what, offset) in [("GICR_TYPER", 0x8u64), ("GICR_WAKER", 0x14), ("GICR_ISENABLER0", GICR_SGI_BASE + 0x100)] {
                let read = attempt(|| probe::load32(rd + offset));
                self.must_fault("gic", format_args!("r frame{frame} {what} {:#x}", rd + offset), read);
                let write = attempt(|| {
                    probe::store32(rd + offset, u32::MAX);
                    0
                });
                self.must_fault("gic", format_args!("w frame{frame} {what} {:#x}", rd + offset), write);
            }
        }
        // SGIs through ICC_SGI1R_EL1 to affinities outside the VM (IHI 0069H §12.2.22:
        // TargetList 15:0, Aff1 23:16, INTID 27:24, Aff2 39:32, IRM 40, RS 47:44, Aff3 55:48).
        // vCPU 0 of every VM has Aff0 = 0, so "self" also checks that the victim's vCPU 0
        // is not hit. The victim counts what it takes; the attacker can only survive.
        if arch::icc::enable_system_registers() {
            for intid in [0u64, 7, 15] {
                for (what, value) in [
                    ("self", 1u64),
                    ("aff0-1..15", 0xfffe),
                    ("aff1-1", (1 << 16) | 0xffff),
                    ("aff2-1", (1 << 32) | 0xffff),
                    ("aff3-1", (1 << 48) | 0xffff),
                    ("rs-1", (1 << 44) | 0xffff),
                    ("irm-all", 1 << 40),
                ] {
                    let outcome = attempt(|| {
                        probe::set_icc_sgi1r_el1(value | (intid << 24));
                        0
                    });
                    let note = if matches!(outcome, Outcome::Faulted { .. }) { " (faulted)" } else { "" };
                    self.report("gic", format_args!("sgi{intid} {what}{note}"), Verdict::Denied);
                }
            }
            // Clear what landed on itself (GICR_ICPENDR0).
            let _ = attempt(|| {
                probe::store32(sgi_base + 0x280, 0xffff);
                0
            });
        } else {
            say!("{}: ICC_SRE_EL1.SRE is 0; sgi probes skipped", self.name);
        }
    }

    /// Bits of the 32 interrupts from `first` that the VM owns (its console SPI).
    fn owned_bits(&self, first: u32) -> u64 {
        match self.console_intid {
            Some(intid) if intid >= first && intid < first + 32 => 1 << (intid - first),
            _ => 0,
        }
    }

    /// Unimplemented function IDs through HVC and SMC: each must answer NOT_SUPPORTED and
    /// leave x1..x3 as they were or zero.
    fn smccc(&mut self) {
        for use_smc in [false, true] {
            let conduit = if use_smc { "smc" } else { "hvc" };
            smccc::for_each_id(|id| {
                let [x0, x1, x2, x3] = probe::smccc(use_smc, [u64::from(id), SENTINELS[0], SENTINELS[1], SENTINELS[2]]);
                let leaked = [x1, x2, x3].iter().zip(SENTINELS).any(|(&x, sentinel)| x != 0 && x != sentinel);
                let escaped = !smccc::is_not_supported(x0) || leaked;
                self.report("smccc", format_args!("{conduit} {id:#010x} x0={x0:#x}"), Verdict::from_escape(escaped));
            });
        }
    }

    /// TESSERA_STATS' x1: the hypervisor's EL2 instruction counter on this CPU (None if the
    /// call fails).
    fn el2_counter() -> Option<u64> {
        let [x0, x1, _, _] = probe::smccc(false, [TESSERA_STATS, 0, 0, 0]);
        (x0 == 0).then_some(x1)
    }

    /// A PMU probe: the hypervisor's reserved counter must keep counting across `action`.
    fn pmu(&mut self, what: &str, action: impl FnOnce()) {
        let before = Self::el2_counter();
        let _ = attempt(|| {
            action();
            0
        });
        let after = Self::el2_counter();
        let verdict = match (before, after) {
            (Some(before), Some(after)) => {
                let escaped = after <= before;
                self.report("sysreg", format_args!("{what} el2-counter {before}->{after}"), Verdict::from_escape(escaped));
                return;
            }
            _ => Verdict::Escape,
        };
        self.report("sysreg", format_args!("{what} (TESSERA_STATS failed)"), verdict);
    }

    /// A register write the hypervisor must swallow: escape if the value reads back.
    fn write_sticks(&mut self, what: &str, value: u64, write: impl FnOnce(u64), read: impl FnOnce() -> u64) {
        let outcome = attempt(|| {
            write(value);
            read()
        });
        let escaped = matches!(outcome, Outcome::Completed(read) if read & value != 0);
        let shown = match outcome {
            Outcome::Completed(read) => read,
            Outcome::Faulted { .. } => 0,
        };
        self.report("sysreg", format_args!("{what} wrote={value:#x} read={shown:#x}"), Verdict::from_escape(escaped));
    }

    /// A register the VM may not read: escape if it reads non-zero.
    fn reads_zero(&mut self, what: &str, read: impl FnOnce() -> u64) {
        let outcome = attempt(read);
        let escaped = matches!(outcome, Outcome::Completed(value) if value != 0);
        let shown = match outcome {
            Outcome::Completed(value) => value,
            Outcome::Faulted { .. } => 0,
        };
        self.report("sysreg", format_args!("{what} read={shown:#x}"), Verdict::from_escape(escaped));
    }

    fn sysregs(&mut self) {
        // Set/way maintenance on levels 1 and 2 (ways in bits 31:30 for a 4-way cache, sets
        // from bit 6 for 64-byte lines; DDI 0487 "DC CISW"). Trapped (HCR_EL2.TSW) and a no-op
        // under Tessera; natively it would clean and invalidate lines the hypervisor owns.
        for (what, op) in [("dc-cisw", probe::dc_cisw as fn(u64)), ("dc-csw", probe::dc_csw), ("dc-isw", probe::dc_isw)] {
            for level in 0..2u64 {
                let outcome = attempt(|| {
                    for set in 0..256u64 {
                        for way in 0..4u64 {
                            op((way << 30) | (set << 6) | (level << 1));
                        }
                    }
                    0
                });
                let note = if matches!(outcome, Outcome::Faulted { .. }) { " (faulted)" } else { "" };
                self.report("sysreg", format_args!("{what} L{}{note}", level + 1), Verdict::Denied);
            }
        }
        // TLBI of its own VMID is legal at EL1 (the victim's checksum and heartbeat check that it
        // stays its own); the EL2 forms must be UNDEFINED.
        let outcome = attempt(|| {
            probe::tlbi_vmalle1is();
            0
        });
        let note = if matches!(outcome, Outcome::Faulted { .. }) { " (faulted)" } else { "" };
        self.report("sysreg", format_args!("tlbi-vmalle1is{note}"), Verdict::Denied);
        for (what, op) in [
            ("tlbi-alle1is", probe::tlbi_alle1is as fn()),
            ("tlbi-alle2", probe::tlbi_alle2),
            ("tlbi-vmalls12e1is", probe::tlbi_vmalls12e1is),
        ] {
            let outcome = attempt(|| {
                op();
                0
            });
            self.must_fault("sysreg", format_args!("{what}"), outcome);
        }
        let outcome = attempt(|| {
            probe::tlbi_ipas2e1is(0x4000_0000 >> 12);
            0
        });
        self.must_fault("sysreg", format_args!("tlbi-ipas2e1is"), outcome);
        let outcome = attempt(|| {
            probe::at_s12e1r(0x4000_0000);
            0
        });
        self.must_fault("sysreg", format_args!("at-s12e1r"), outcome);
        // EL2's own registers.
        for (what, read) in [
            ("hcr_el2", probe::hcr_el2 as fn() -> u64),
            ("vttbr_el2", probe::vttbr_el2),
            ("mdcr_el2", probe::mdcr_el2),
        ] {
            let outcome = attempt(read);
            self.must_fault("sysreg", format_args!("mrs {what}"), outcome);
        }
        let outcome = attempt(|| {
            probe::set_vbar_el2(0);
            0
        });
        self.must_fault("sysreg", format_args!("msr vbar_el2"), outcome);
        let outcome = attempt(|| {
            probe::set_hcr_el2(probe::hcr_el2());
            0
        });
        self.must_fault("sysreg", format_args!("msr hcr_el2"), outcome);

        // PMU: the hypervisor keeps the last event counter for itself (MDCR_EL2.HPMN); PMCR_EL0.N
        // as the guest reads it is the index of that counter.
        let pmcr = attempt(probe::pmcr_el0);
        let counters = match pmcr {
            Outcome::Completed(value) => (value >> 11) & 0x1f,
            Outcome::Faulted { .. } => 0,
        };
        let pmcr = match pmcr {
            Outcome::Completed(value) => value,
            Outcome::Faulted { .. } => 0,
        };
        let running = matches!((Self::el2_counter(), Self::el2_counter()), (Some(a), Some(b)) if b > a);
        if running {
            self.pmu("pmcr-reset", || probe::set_pmcr_el0(pmcr | (1 << 1) | (1 << 2)));
            self.pmu("pmcr-disable", || probe::set_pmcr_el0(pmcr & !1));
            self.pmu("pmcntenclr-all", || probe::set_pmcntenclr_el0(u64::from(u32::MAX)));
            self.pmu("pmevcntr-hyp", || {
                probe::set_pmselr_el0(counters);
                probe::set_pmxevtyper_el0(0);
                probe::set_pmxevcntr_el0(0);
            });
        } else {
            say!(
                "{}: the hypervisor's EL2 counter does not advance (QEMU counts instructions only with -icount); pmu counter probes skipped",
                self.name
            );
        }
        let _ = attempt(|| {
            probe::set_pmcr_el0(pmcr);
            0
        });
        // The reserved counter's enable bit and event filter are the hypervisor's: they must
        // read as zero here.
        self.reads_zero("pmcntenset-hyp-bit", || probe::pmcntenset_el0() & (1 << counters));
        self.reads_zero("pmxevtyper-hyp", || {
            probe::set_pmselr_el0(counters);
            probe::pmxevtyper_el0()
        });
        let _ = attempt(|| probe::pmselr_el0() | probe::pmxevcntr_el0() | probe::pmxevtyper_el0());

        // Self-hosted debug: MDSCR_EL1.MDE|KDE, a breakpoint matching EL2 (DBGBCR.HMC, PMC),
        // a watchpoint. The hypervisor traps them (MDCR_EL2.TDA) and they read as zero.
        self.write_sticks("mdscr_el1", (1 << 15) | (1 << 13), probe::set_mdscr_el1, probe::mdscr_el1);
        self.write_sticks("dbgbvr0_el1", 0x4020_0000, probe::set_dbgbvr0_el1, probe::dbgbvr0_el1);
        self.write_sticks("dbgbcr0_el1", (1 << 13) | (0b11 << 1) | 1, probe::set_dbgbcr0_el1, probe::dbgbcr0_el1);
        self.write_sticks("dbgwvr0_el1", 0x4000_0000, probe::set_dbgwvr0_el1, probe::dbgwvr0_el1);
        self.write_sticks("dbgwcr0_el1", (0xff << 5) | (0b11 << 3) | (0b11 << 1) | 1, probe::set_dbgwcr0_el1, probe::dbgwcr0_el1);
        for clear in [probe::set_dbgbcr0_el1 as fn(u64), probe::set_dbgwcr0_el1, probe::set_mdscr_el1] {
            let _ = attempt(|| {
                clear(0);
                0
            });
        }

        // The EL1 physical timer is never the guest's (CNTHCTL_EL2.EL1PCEN = 0).
        let deadline = probe::cntvct_el0().wrapping_add(1 << 40);
        self.write_sticks("cntp_cval_el0", deadline, probe::set_cntp_cval_el0, probe::cntp_cval_el0);
        self.write_sticks("cntp_ctl_el0", 1, probe::set_cntp_ctl_el0, probe::cntp_ctl_el0);
        self.write_sticks("cntp_tval_el0", 0x7fff_0000, probe::set_cntp_tval_el0, probe::cntp_tval_el0);
        let _ = attempt(|| {
            probe::set_cntp_ctl_el0(0);
            0
        });
        // With `physical-counter = "trap"`, CNTPCT_EL0 reads the virtual count.
        let before = probe::cntvct_el0();
        let physical = attempt(probe::cntpct_el0);
        let after = probe::cntvct_el0();
        let escaped = matches!(physical, Outcome::Completed(p) if p < before || p > after);
        let shown = match physical {
            Outcome::Completed(value) => value,
            Outcome::Faulted { .. } => 0,
        };
        self.report("sysreg", format_args!("cntpct_el0 {shown:#x} virtual {before:#x}..{after:#x}"), Verdict::from_escape(escaped));

        // IMPLEMENTATION DEFINED and auxiliary registers (HCR_EL2.TIDCP, TACR): read as zero.
        for (what, read) in [
            ("l2ctlr_el1", probe::l2ctlr_el1 as fn() -> u64),
            ("l2ectlr_el1", probe::l2ectlr_el1),
            ("cpuactlr_el1", probe::cpuactlr_el1),
            ("cpuectlr_el1", probe::cpuectlr_el1),
            ("cbar_el1", probe::cbar_el1),
            ("actlr_el1", probe::actlr_el1),
        ] {
            self.reads_zero(what, read);
        }
        self.write_sticks("l2ectlr_el1", 1 << 31, probe::set_l2ectlr_el1, probe::l2ectlr_el1);
        self.write_sticks("actlr_el1", 1 << 1, probe::set_actlr_el1, probe::actlr_el1);
        let _ = attempt(|| {
            probe::set_l2ctlr_el1(probe::l2ctlr_el1());
            0
        });

        // A WFE storm, bounded by the virtual counter's event stream (CNTKCTL_EL1.EVNTEN, bit 2;
        // EVNTI = 4 in bits 7:4: an event every 32 ticks). The victim's heartbeat is the check.
        let _ = attempt(|| {
            probe::set_cntkctl_el1((4 << 4) | (1 << 2));
            0
        });
        let start = probe::cntvct_el0();
        probe::wfe_storm(WFE_STORM);
        let ticks = probe::cntvct_el0().wrapping_sub(start);
        let _ = attempt(|| {
            probe::set_cntkctl_el1(0);
            0
        });
        self.report("sysreg", format_args!("wfe-storm {WFE_STORM} ticks={ticks}"), Verdict::Denied);
    }

    /// Accesses the hypervisor cannot emulate: each must come back as an injected external
    /// abort (fault-policy "inject") or stop the VM ("stop").
    fn aborts(&mut self) {
        let console = self.own[1].base;
        let outcome = attempt(|| probe::load_pair(console));
        self.must_fault("abort", format_args!("ldp console {console:#x}"), outcome);
        if let Some(gic) = self.gic {
            let outcome = attempt(|| probe::load_pair(gic.distributor.0));
            self.must_fault("abort", format_args!("ldp gicd {:#x}", gic.distributor.0), outcome);
        }
        let targets = self.targets;
        for target in targets.as_slice().iter().take(2) {
            let address = target.range.base;
            if self.own.iter().any(|r| r.contains(address)) {
                continue;
            }
            let outcome = attempt(|| probe::load_pair(address));
            self.must_fault("abort", format_args!("ldp {} {address:#x}", target.name), outcome);
        }
        // Its own device answering with a bus error: the external abort must stay in the VM
        // (taken at EL1 as a synchronous external abort; the hypervisor and the victim go on).
        if let Some(device) = self.error_device {
            let outcome = attempt(|| {
                probe::store32(device, PATTERN);
                0
            });
            self.must_fault("abort", format_args!("w error-device {device:#x}"), outcome);
            let outcome = attempt(|| probe::load32(device));
            self.must_fault("abort", format_args!("r error-device {device:#x}"), outcome);
        }
        // Instruction fetches outside the VM: address 0 (flash), the console frame, and each
        // target's first and last page (the hypervisor's code, the other VMs' RAM, devices).
        let mut fetches = [0u64; 2 + 2 * targets::MAX_TARGETS];
        fetches[1] = console;
        let mut count = 2;
        for target in targets.as_slice() {
            if target.range.size != 0 {
                for address in [target.range.base, target.range.end() - PAGE] {
                    if !fetches[..count].contains(&address) && count < fetches.len() {
                        fetches[count] = address;
                        count += 1;
                    }
                }
            }
        }
        for &address in &fetches[..count] {
            if self.own.iter().any(|r| r.contains(address)) && address != console {
                continue;
            }
            let outcome = attempt(|| probe::execute(address));
            // An instruction abort (EC 0x21, IFSC 0x10) is the injected one.
            let injected = matches!(outcome, Outcome::Faulted { esr, .. } if (esr >> 26) & 0x3f == 0x21 && esr & 0x3f == 0x10);
            match outcome {
                Outcome::Completed(value) => {
                    self.report("abort", format_args!("exec {address:#x} value={value:#x}"), Verdict::Escape)
                }
                Outcome::Faulted { .. } if injected => self.report("abort", format_args!("exec {address:#x}"), Verdict::Denied),
                Outcome::Faulted { esr, .. } => {
                    self.report("abort", format_args!("exec {address:#x} esr={esr:#x}"), Verdict::Denied)
                }
            }
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    say!("attacker: panic: {info}");
    arch::park()
}
