//! The hypervisor's own log: defmt frames, kept apart from the guests' console output.
//!
//! Under QEMU the frames go to the semihosting file `hv.defmt` in QEMU's working directory
//! (`-semihosting-config enable=on,target=native`); the host decodes them with the ELF
//! (`cargo xtask run` live, the HIL harness after each step). A board without semihosting
//! uses `Sink::None` until a UART sink exists: semihosting traps there.

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Where log frames go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    None,
    Semihosting,
}

const SINK_NONE: u8 = 0;
const SINK_SEMIHOSTING: u8 = 1;

static SINK: AtomicU8 = AtomicU8::new(SINK_NONE);
/// Semihosting file handle, `usize::MAX` until opened.
static HANDLE: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Chooses the sink; call once the MMU is on. Opening the semihosting file may fail (then
/// nothing is logged).
pub fn init(sink: Sink) {
    if sink == Sink::Semihosting
        && let Some(handle) = semihosting::open_write(b"hv.defmt\0")
    {
        HANDLE.store(handle, Ordering::Relaxed);
        SINK.store(SINK_SEMIHOSTING, Ordering::Release);
    }
}

/// Frame buffer: filled by the encoder, written out at the end of each frame.
struct Buffer {
    bytes: [u8; 256],
    len: usize,
}

impl Buffer {
    fn push(&mut self, data: &[u8]) {
        for &byte in data {
            if self.len == self.bytes.len() {
                self.flush();
            }
            self.bytes[self.len] = byte;
            self.len += 1;
        }
    }

    fn flush(&mut self) {
        if self.len > 0 && SINK.load(Ordering::Acquire) == SINK_SEMIHOSTING {
            semihosting::write(HANDLE.load(Ordering::Relaxed), &self.bytes[..self.len]);
        }
        self.len = 0;
    }
}

/// Logger state; only touched inside the critical section the logger holds.
struct State {
    encoder: defmt::Encoder,
    buffer: Buffer,
    restore: critical_section::RestoreState,
}

static STATE: spin_cell::Cell<State> = spin_cell::Cell::new(State {
    encoder: defmt::Encoder::new(),
    buffer: Buffer { bytes: [0; 256], len: 0 },
    restore: critical_section::RestoreState::invalid(),
});

#[cfg(target_os = "none")]
#[defmt::global_logger]
struct Logger;

#[cfg(target_os = "none")]
// SAFETY: defmt calls acquire/write/flush/release in that order from one context at a time
// per its contract; `acquire` enters a system-wide critical section (see `sync`), so the
// state is never touched by two CPUs at once, and `release` leaves it.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        // SAFETY: paired with the `release` in `Logger::release`, as defmt guarantees.
        let restore = unsafe { critical_section::acquire() };
        // SAFETY: we hold the critical section.
        let state = unsafe { STATE.get() };
        state.restore = restore;
        let State { encoder, buffer, .. } = state;
        encoder.start_frame(|bytes| buffer.push(bytes));
    }

    unsafe fn flush() {
        // SAFETY: defmt calls flush only between acquire and release.
        let state = unsafe { STATE.get() };
        state.buffer.flush();
    }

    unsafe fn release() {
        // SAFETY: between acquire and release.
        let state = unsafe { STATE.get() };
        let State { encoder, buffer, restore } = state;
        encoder.end_frame(|bytes| buffer.push(bytes));
        buffer.flush();
        let restore = *restore;
        // SAFETY: the state saved by the matching acquire.
        unsafe { critical_section::release(restore) };
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: between acquire and release.
        let state = unsafe { STATE.get() };
        let State { encoder, buffer, .. } = state;
        encoder.write(bytes, |bytes| buffer.push(bytes));
    }
}

#[cfg(target_os = "none")]
defmt::timestamp!("{=u64:us}", {
    let frequency = crate::cpu::counter_frequency().max(1);
    let ticks = crate::cpu::counter();
    // Whole seconds and the rest apart: the same value as ticks * 10^6 / frequency, without a
    // 128-bit division (its library routine alone is 780 bytes of the 64 KiB image budget).
    // Exact while frequency < 1.8e13 Hz.
    (ticks / frequency) * 1_000_000 + (ticks % frequency) * 1_000_000 / frequency
});

/// A cell whose contents are only reached inside the logger's critical section.
mod spin_cell {
    use core::cell::UnsafeCell;

    pub struct Cell<T>(UnsafeCell<T>);

    // SAFETY: every access goes through `get`, whose callers hold the system-wide critical
    // section, so there is never concurrent access.
    unsafe impl<T> Sync for Cell<T> {}

    impl<T> Cell<T> {
        pub const fn new(value: T) -> Self {
            Self(UnsafeCell::new(value))
        }

        /// # Safety
        /// The caller holds the system-wide critical section and drops the reference before
        /// leaving it.
        #[allow(clippy::mut_from_ref)]
        pub unsafe fn get(&self) -> &mut T {
            // SAFETY: exclusive by the caller's contract.
            unsafe { &mut *self.0.get() }
        }
    }
}

/// Arm semihosting (IHI 0098/DUI 0471): `HLT #0xF000` with the operation in w0 and a
/// parameter block in x1.
mod semihosting {
    const SYS_OPEN: u64 = 0x01;
    const SYS_WRITE: u64 = 0x05;
    /// Mode 5 = "wb".
    const MODE_WRITE_BINARY: u64 = 5;

    #[cfg(target_arch = "aarch64")]
    fn call(op: u64, params: &[u64]) -> u64 {
        let mut x0 = op;
        // SAFETY: the semihosting host reads `params` (valid for the call) and the buffers
        // they point to; it writes nothing of ours. Only valid when QEMU enables
        // semihosting, which `Sink::Semihosting` promises.
        unsafe {
            core::arch::asm!("hlt #0xf000", inout("x0") x0, in("x1") params.as_ptr(), options(nostack))
        };
        x0
    }

    #[cfg(not(target_arch = "aarch64"))]
    fn call(_op: u64, _params: &[u64]) -> u64 {
        u64::MAX
    }

    /// `name` ends with a NUL.
    pub fn open_write(name: &[u8]) -> Option<usize> {
        let params = [name.as_ptr() as u64, MODE_WRITE_BINARY, (name.len() - 1) as u64];
        let handle = call(SYS_OPEN, &params);
        (handle as i64 >= 0).then_some(handle as usize)
    }

    pub fn write(handle: usize, data: &[u8]) {
        let params = [handle as u64, data.as_ptr() as u64, data.len() as u64];
        call(SYS_WRITE, &params);
    }
}
