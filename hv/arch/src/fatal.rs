//! Fail-stop: what happens when the hypervisor itself panics or takes an exception at EL2.
//!
//! The first CPU to fail sends [`HALT_SGI`] to every other CPU (they take it even from a
//! guest, since HCR_EL2.IMO routes physical IRQs to EL2, and halt), writes the reason and
//! its CPU state to the console UART through a direct, lock-free, bounded path (the console
//! lock may be held by the code that failed), logs the same, and halts. It never reboots.
//! A second failure on any CPU while this runs halts that CPU without a report.

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// The SGI that stops every other CPU (SGI 0 is the kernel's kick).
pub const HALT_SGI: u32 = 15;

/// The failing CPU's index, `usize::MAX` while none has failed.
static FAILING: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The console writer registered with [`set_console`] (a `fn(&[u8])`), or null.
static CONSOLE: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Registers the direct console writer the report goes to. It must not take a lock and
/// must be bounded (the PL011 driver's `write_byte` polls at most `POLL_LIMIT` times).
pub fn set_console(write: fn(&[u8])) {
    CONSOLE.store(write as *mut (), Ordering::Release);
}

fn console() -> Option<fn(&[u8])> {
    let raw = CONSOLE.load(Ordering::Acquire);
    // SAFETY: the only non-null value ever stored is a `fn(&[u8])` cast by `set_console`.
    (!raw.is_null()).then(|| unsafe { core::mem::transmute::<*mut (), fn(&[u8])>(raw) })
}

/// True once some CPU has failed: the others must not enter a guest again.
pub fn stopping() -> bool {
    FAILING.load(Ordering::Acquire) != usize::MAX
}

/// Why the hypervisor stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'a> {
    /// A Rust panic; `message` is the panic's text when it is a plain string.
    Panic { message: &'a str, file: &'a str, line: u32 },
    /// An exception taken from EL2 (`kind`: 0 synchronous, 1 IRQ, 2 FIQ, 3 SError);
    /// `stack_overflow` when the faulting address (FAR_EL2) is in a stack guard page.
    Exception { kind: u64, stack_overflow: bool },
}

/// The failing CPU's registers at the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuState {
    pub cpu: usize,
    pub esr: u64,
    pub far: u64,
    pub elr: u64,
    pub spsr: u64,
    pub sp: u64,
}

/// Writes pieces of the report straight through (no buffer, no `core::fmt`: the report runs
/// on an emergency stack and must fit the image budget).
struct Report<'o, O: FnMut(&[u8])> {
    out: &'o mut O,
}

impl<O: FnMut(&[u8])> Report<'_, O> {
    fn text(&mut self, text: &str) -> &mut Self {
        (self.out)(text.as_bytes());
        self
    }

    /// Starts a `[hv] FATAL:` line (on a line of its own, whatever the console was doing).
    fn line(&mut self) -> &mut Self {
        self.text("\r\n[hv] FATAL: ")
    }

    fn hex(&mut self, value: u64) -> &mut Self {
        let mut digits = *b"0x0000000000000000";
        let count = (64 - value.leading_zeros()).div_ceil(4).max(1) as usize;
        for (at, digit) in digits[2..2 + count].iter_mut().enumerate() {
            *digit = b"0123456789abcdef"[((value >> (4 * (count - 1 - at))) & 0xf) as usize];
        }
        (self.out)(&digits[..2 + count]);
        self
    }

    fn decimal(&mut self, value: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = value;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        (self.out)(&digits[at..]);
        self
    }
}

/// Writes the report (three `[hv] FATAL:` lines) through `out`. Pure, host-tested.
pub fn report(reason: &Reason<'_>, state: &CpuState, out: &mut impl FnMut(&[u8])) {
    let mut r = Report { out };
    let cpu = state.cpu as u64;
    r.line();
    match *reason {
        Reason::Panic { message, file, line } => {
            r.text("hypervisor panic on CPU ").decimal(cpu).text(": ").text(message);
            r.text(" at ").text(file).text(":").decimal(u64::from(line));
        }
        Reason::Exception { kind, stack_overflow } => {
            let what = ["synchronous exception", "IRQ", "FIQ", "SError"][kind.min(3) as usize];
            r.text("hypervisor ").text(what).text(" at EL2 on CPU ").decimal(cpu);
            if stack_overflow {
                r.text(": stack overflow");
            }
        }
    }
    r.line().text("CPU ").decimal(cpu);
    let registers = [
        (" ESR_EL2=", state.esr),
        (" FAR_EL2=", state.far),
        (" ELR_EL2=", state.elr),
        (" SPSR_EL2=", state.spsr),
        (" SP=", state.sp),
    ];
    for (name, value) in registers {
        r.text(name).hex(value);
    }
    r.line().text("all CPUs halted\r\n");
}

/// Stops the system: halts the others, reports, halts this CPU. Never returns.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn fail_stop(reason: &Reason<'_>, state: &CpuState) -> ! {
    if FAILING.compare_exchange(usize::MAX, state.cpu, Ordering::AcqRel, Ordering::Acquire).is_err() {
        // Another CPU is reporting, or this one failed again while reporting.
        halt_here();
    }
    crate::gic_cpu::send_sgi_to_others(HALT_SGI);
    // On a direct-interrupt VM's CPUs the halt SGI is Group 0 (FIQ to EL2, which the guest
    // cannot mask); a Group 1 SGI does not reach them, nor a Group 0 one the others.
    crate::gic_cpu::send_sgi0_to_others(HALT_SGI);
    if let Some(write) = console() {
        report(reason, state, &mut |bytes| write(bytes));
    }
    let (what, file, line, stack_overflow) = match *reason {
        Reason::Panic { message, file, line } => (message, file, line, false),
        Reason::Exception { stack_overflow, .. } => ("EL2 exception", "", 0, stack_overflow),
    };
    let registers = [state.esr, state.far, state.elr, state.spsr, state.sp];
    defmt::error!(
        "hypervisor failed on CPU {=usize}: {=str} {=str}:{=u32} (stack overflow: {=bool}); ESR_EL2, FAR_EL2, ELR_EL2, SPSR_EL2, SP = {=[?]:#x}; all CPUs halted",
        state.cpu, what, file, line, stack_overflow, &registers[..]
    );
    halt_here()
}

/// This CPU's registers now (for a panic, which has no exception syndrome of its own; ESR,
/// FAR, ELR and SPSR are those of the last exception taken to EL2).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn capture() -> CpuState {
    use aarch64_cpu::registers::{ELR_EL2, ESR_EL2, FAR_EL2, Readable, SPSR_EL2};
    let sp: u64;
    // SAFETY: reads the stack pointer; no memory effect.
    unsafe { core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    CpuState {
        cpu: crate::cpu::index(),
        esr: ESR_EL2.get(),
        far: FAR_EL2.get(),
        elr: ELR_EL2.get(),
        spsr: SPSR_EL2.get(),
        sp,
    }
}

/// Halts this CPU for good: every interrupt masked, WFI forever.
#[cfg(target_arch = "aarch64")]
pub fn halt_here() -> ! {
    // SAFETY: masking interrupts on this CPU has no memory effect.
    unsafe { core::arch::asm!("msr daifset, #0xf", options(nomem, nostack, preserves_flags)) };
    loop {
        aarch64_cpu::asm::wfi();
    }
}

#[cfg(not(target_arch = "aarch64"))]
pub fn halt_here() -> ! {
    panic!("halt on a host build")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(reason: Reason<'_>) -> String {
        let state = CpuState { cpu: 1, esr: 0x9600_0047, far: 0x4029_f008, elr: 0x4020_1234, spsr: 0x3c9, sp: 0 };
        let mut out = String::new();
        report(&reason, &state, &mut |bytes| out.push_str(core::str::from_utf8(bytes).unwrap()));
        out
    }

    #[test]
    fn panic_report_names_message_location_and_registers() {
        assert_eq!(
            text(Reason::Panic { message: "boom", file: "hv/kernel/src/run.rs", line: 42 }),
            "\r\n[hv] FATAL: hypervisor panic on CPU 1: boom at hv/kernel/src/run.rs:42\
             \r\n[hv] FATAL: CPU 1 ESR_EL2=0x96000047 FAR_EL2=0x4029f008 ELR_EL2=0x40201234 SPSR_EL2=0x3c9 SP=0x0\
             \r\n[hv] FATAL: all CPUs halted\r\n"
        );
    }

    #[test]
    fn exception_report_says_stack_overflow() {
        let out = text(Reason::Exception { kind: 0, stack_overflow: true });
        assert!(out.starts_with("\r\n[hv] FATAL: hypervisor synchronous exception at EL2 on CPU 1: stack overflow\r\n"), "{out}");
        let out = text(Reason::Exception { kind: 7, stack_overflow: false });
        assert!(out.starts_with("\r\n[hv] FATAL: hypervisor SError at EL2 on CPU 1\r\n"), "{out}");
    }

    #[test]
    fn numbers_at_their_extremes() {
        let mut out = Vec::new();
        let mut push = |bytes: &[u8]| out.extend_from_slice(bytes);
        let mut r = Report { out: &mut push };
        r.hex(0).text(" ").hex(u64::MAX).text(" ").decimal(0).text(" ").decimal(u64::MAX);
        assert_eq!(String::from_utf8(out).unwrap(), "0x0 0xffffffffffffffff 0 18446744073709551615");
    }
}
