//! The console: every VM's emulated SBSA UART multiplexed onto the board's physical UART.
//!
//! Output: a guest's write to UARTDR lands in its model's TX FIFO, which is drained into the
//! mux right away; the mux writes tagged lines to the physical UART. Input: the physical
//! UART's RX interrupt (routed to CPU 0) feeds the mux, which queues bytes for the focused
//! VM; a VM's RX FIFO is refilled from that queue whenever there is room.
//!
//! Lock order: a VM's `uart` lock before `CONSOLE` (see the crate docs).

use tessera_core::exit::MmioAccess;
use tessera_drivers::pl011::Pl011;
use tessera_vdev::console_mux::{ConsoleMux, Input};
use tessera_vdev::mmio::Width;

use crate::Platform;
use crate::vm::{MAX_VMS, VMS};

struct Console {
    uart: &'static Pl011,
    mux: ConsoleMux<'static, MAX_VMS>,
}

static CONSOLE: spin::Once<spin::Mutex<Console>> = spin::Once::new();

/// The fatal-fault report's path to the console: straight to the UART, without the console
/// lock (the code that failed may hold it). Each byte's wait is bounded by the driver.
fn fatal_write(bytes: &[u8]) {
    if let Some(platform) = crate::PLATFORM.get() {
        bytes.iter().for_each(|&byte| platform.uart.write_byte(byte));
    }
}

/// Sets up the mux with the VMs' names. Called once by the primary CPU.
pub fn init(platform: &'static Platform) {
    tessera_arch::fatal::set_console(fatal_write);
    let mut names: [&'static str; MAX_VMS] = [""; MAX_VMS];
    let count = platform.system.vms.len().min(MAX_VMS);
    for (slot, vm) in names.iter_mut().zip(platform.system.vms.iter()) {
        *slot = vm.name;
    }
    match ConsoleMux::new(&names[..count]) {
        Ok(mux) => {
            CONSOLE.call_once(|| spin::Mutex::new(Console { uart: &platform.uart, mux }));
        }
        Err(_) => defmt::error!("console mux refused the VM names; guest consoles are silent"),
    }
}

/// Routes the physical UART's interrupt to this CPU and enables RX interrupts.
pub fn enable_input(platform: &'static Platform, mpidr: u64) {
    if crate::vgic::enable_physical_spi(platform, platform.board.uart.intid, mpidr).is_err() {
        defmt::error!("console interrupt not enabled: GIC timeout");
    }
    platform.uart.enable_rx_interrupt();
}

fn write_out(uart: &Pl011) -> impl FnMut(&[u8]) + '_ {
    move |bytes| {
        for &byte in bytes {
            uart.write_byte(byte);
        }
    }
}

/// Writes a `[hv]` line about `vm` on the console: `VM <vm>: <action> (<why>)`.
pub fn hv_notice(vm: &str, action: &str, why: &str) {
    let Some(console) = CONSOLE.get() else { return };
    let mut console = console.lock();
    let Console { uart, mux } = &mut *console;
    let mut line: heapless::Vec<u8, 128> = heapless::Vec::new();
    for part in [b"VM ".as_slice(), vm.as_bytes(), b": ", action.as_bytes(), b" (", why.as_bytes(), b")"] {
        let _ = line.extend_from_slice(&part[..part.len().min(line.capacity() - line.len())]);
    }
    mux.hv_line(&line, &mut write_out(uart));
}

/// The physical UART has input: feed it to the mux, then refill the focused VM's FIFO.
/// Returns, per VM, the new level of its UART's interrupt line (`None`: unchanged).
pub fn on_uart_interrupt() -> [Option<bool>; MAX_VMS] {
    let mut levels = [None; MAX_VMS];
    let Some(console) = CONSOLE.get() else { return levels };
    let mut refill = [false; MAX_VMS];
    {
        let mut console = console.lock();
        let Console { uart, mux } = &mut *console;
        // Bounded: the PL011 FIFO holds at most 32 bytes, and we stop at 64.
        for _ in 0..64 {
            let Some(byte) = uart.read_byte() else { break };
            if let Input::ToVm { vm, .. } = mux.host_input(byte, &mut write_out(uart))
                && let Some(flag) = refill.get_mut(vm)
            {
                *flag = true;
            }
        }
    }
    for (vm, _) in refill.iter().enumerate().filter(|(_, wanted)| **wanted) {
        let mut uart = VMS[vm].uart.lock();
        console.lock().mux.refill_input(vm, |byte| uart.push_rx(byte).is_ok());
        levels[vm] = Some(uart.irq_level());
    }
    levels
}

fn width(access: &MmioAccess) -> Width {
    access.width
}

/// The MMIO fast path: a guest store to its `UARTDR` with nothing queued in its UART model
/// (`SbsaUart::is_plain_tx`) goes straight to the mux, since pushing it through the model and
/// draining it again would leave the model, and its interrupt line, as they are. Returns
/// false (nothing done) when the store needs `guest_access`.
pub fn guest_tx_fast(vm: usize, offset: u64, width: Width, value: u64) -> bool {
    let Some(runtime) = VMS.get(vm) else { return false };
    let uart = runtime.uart.lock();
    if !uart.is_plain_tx(offset, width) {
        return false;
    }
    let Some(console) = CONSOLE.get() else { return false };
    let mut console = console.lock();
    let Console { uart: physical, mux } = &mut *console;
    let _ = mux.guest_output(vm, value as u8, &mut write_out(physical));
    drop(uart);
    true
}

/// A trapped guest access to its console frame. Returns the raw value for a read and the
/// level of the UART's interrupt line afterwards.
pub fn guest_access(vm: usize, offset: u64, access: &MmioAccess, value: u64) -> Result<(Option<u64>, bool), ()> {
    let runtime = VMS.get(vm).ok_or(())?;
    let mut uart = runtime.uart.lock();
    let console = CONSOLE.get();
    if access.write {
        uart.mmio_write(offset, width(access), value).map_err(|_| ())?;
        if let Some(console) = console {
            let mut console = console.lock();
            let Console { uart: physical, mux } = &mut *console;
            let mut out = write_out(physical);
            uart.drain_tx(|byte| {
                let _ = mux.guest_output(vm, byte, &mut out);
            });
        }
        Ok((None, uart.irq_level()))
    } else {
        let raw = uart.mmio_read(offset, width(access)).map_err(|_| ())?;
        if let Some(console) = console {
            console.lock().mux.refill_input(vm, |byte| uart.push_rx(byte).is_ok());
        }
        Ok((Some(raw), uart.irq_level()))
    }
}
