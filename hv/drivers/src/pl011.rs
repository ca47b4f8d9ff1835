//! Arm PrimeCell UART (PL011) r1p5, DDI 0183G: the hypervisor's physical console.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

use crate::POLL_LIMIT;

register_bitfields![u32,
    /// UARTFR, DDI 0183G 3.3.3.
    FR [
        TXFE OFFSET(7) NUMBITS(1) [],
        RXFF OFFSET(6) NUMBITS(1) [],
        TXFF OFFSET(5) NUMBITS(1) [],
        RXFE OFFSET(4) NUMBITS(1) [],
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    /// UARTIMSC / UARTMIS / UARTICR interrupt bits, DDI 0183G 3.3.10-3.3.13.
    INT [
        RT OFFSET(6) NUMBITS(1) [],
        TX OFFSET(5) NUMBITS(1) [],
        RX OFFSET(4) NUMBITS(1) []
    ]
];

register_structs! {
    /// PL011 register frame, DDI 0183G table 3-1.
    Pl011Registers {
        (0x000 => dr: ReadWrite<u32>),
        (0x004 => rsr_ecr: ReadWrite<u32>),
        (0x008 => _reserved0),
        (0x018 => fr: ReadOnly<u32, FR::Register>),
        (0x01c => _reserved1),
        (0x038 => imsc: ReadWrite<u32, INT::Register>),
        (0x03c => ris: ReadOnly<u32, INT::Register>),
        (0x040 => mis: ReadOnly<u32, INT::Register>),
        (0x044 => icr: WriteOnly<u32, INT::Register>),
        (0x048 => @END),
    }
}

/// The PL011 as the hypervisor uses it: firmware (or QEMU) has set the baud rate and line
/// format; we transmit by polling and receive on interrupt.
pub struct Pl011 {
    registers: &'static Pl011Registers,
}

// SAFETY: every access is a single volatile MMIO load or store, so sharing the driver
// between CPUs cannot break memory safety; the kernel serializes use (its console lock) so
// that bytes do not interleave.
unsafe impl Sync for Pl011 {}
// SAFETY: as for `Sync`: moving the handle to another CPU moves only an address.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// # Safety
    /// `base` is the physical (= EL2 virtual) address of a PL011 frame mapped as Device
    /// memory, and no other code accesses that UART.
    pub const unsafe fn new(base: u64) -> Self {
        // SAFETY: per the caller's contract the frame is a live PL011 for 'static.
        Self { registers: unsafe { &*(base as *const Pl011Registers) } }
    }

    /// Sends one byte, waiting (bounded) for FIFO space; a byte that cannot be sent after
    /// `POLL_LIMIT` polls is dropped rather than hanging the hypervisor.
    pub fn write_byte(&self, byte: u8) {
        for _ in 0..POLL_LIMIT {
            if !self.registers.fr.is_set(FR::TXFF) {
                self.registers.dr.set(byte as u32);
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// Takes one received byte, if any.
    pub fn read_byte(&self) -> Option<u8> {
        if self.registers.fr.is_set(FR::RXFE) {
            None
        } else {
            Some((self.registers.dr.get() & 0xff) as u8)
        }
    }

    /// Raises the interrupt for received data and receive timeout.
    pub fn enable_rx_interrupt(&self) {
        self.registers.icr.write(INT::RX::SET + INT::RT::SET);
        self.registers.imsc.write(INT::RX::SET + INT::RT::SET);
    }
}

impl embedded_io::ErrorType for Pl011 {
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for Pl011 {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        for &byte in buf {
            self.write_byte(byte);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
