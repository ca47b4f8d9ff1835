//! A driver for the SBSA Generic UART, the PL011 subset that Tessera emulates and that QEMU's
//! `virt` PL011 also implements. Transmit is polled; receive is polled, or (`rt=1` with a
//! UART interrupt in the device tree) signalled by the receive and receive-timeout interrupts.
//!
//! Registers: Arm Base System Architecture (DEN 0094) Appendix B "Generic UART", and the
//! PL011 TRM (DDI 0183G) §3.3 for the bit layouts.

use core::convert::Infallible;

use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields![u32,
    /// UARTDR, data register (DDI 0183G §3.3.1).
    DR [
        DATA OFFSET(0) NUMBITS(8) []
    ],
    /// UARTFR, flag register (DDI 0183G §3.3.3).
    FR [
        /// Transmit FIFO empty.
        TXFE OFFSET(7) NUMBITS(1) [],
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    /// UARTIMSC/RIS/MIS/ICR interrupt bits (DDI 0183G §3.3.10–13).
    INT [
        /// Receive timeout.
        RT OFFSET(6) NUMBITS(1) [],
        TX OFFSET(5) NUMBITS(1) [],
        RX OFFSET(4) NUMBITS(1) []
    ]
];

register_structs! {
    /// The SBSA Generic UART register frame (DEN 0094 Table B.1).
    pub Registers {
        (0x000 => dr: ReadWrite<u32, DR::Register>),
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

/// How many FR polls to wait for TX space before sending anyway (a stuck UART must not hang
/// the guest; a lost character is the lesser harm).
const TX_SPIN_LIMIT: u32 = 1_000_000;

pub struct Uart {
    registers: &'static Registers,
}

impl Uart {
    /// # Safety
    /// `base` must be the address of an SBSA UART or PL011 register frame that stays mapped
    /// (the guest runs with its MMU off, so that is any device address) and that this guest
    /// may drive.
    pub const unsafe fn new(base: usize) -> Self {
        // SAFETY: the caller guarantees `base` is a live register frame; tock-registers only
        // does volatile accesses through this reference.
        let registers = unsafe { &*(base as *const Registers) };
        Self { registers }
    }

    /// Masks all UART interrupts (polled mode; `rt=1` unmasks receive later).
    pub fn init(&self) {
        self.registers.imsc.set(0);
    }

    /// Unmasks the receive (RXIM) and receive-timeout (RTIM) interrupts, so that a byte in the
    /// receive FIFO raises the UART's line whether or not the FIFO is enabled.
    pub fn enable_rx_interrupt(&self) {
        self.registers.icr.write(INT::RX::SET + INT::RT::SET);
        self.registers.imsc.modify(INT::RX::SET + INT::RT::SET);
    }

    /// Clears the receive interrupts after the FIFO was drained (UARTICR).
    pub fn clear_rx_interrupt(&self) {
        self.registers.icr.write(INT::RX::SET + INT::RT::SET);
    }

    pub fn write_byte(&self, byte: u8) {
        for _ in 0..TX_SPIN_LIMIT {
            if !self.registers.fr.is_set(FR::TXFF) {
                break;
            }
            core::hint::spin_loop();
        }
        self.registers.dr.write(DR::DATA.val(u32::from(byte)));
    }

    /// A received byte, if any (no waiting).
    pub fn try_read_byte(&self) -> Option<u8> {
        if self.registers.fr.is_set(FR::RXFE) {
            None
        } else {
            Some(self.registers.dr.read(DR::DATA) as u8)
        }
    }
}

impl embedded_io::ErrorType for Uart {
    type Error = Infallible;
}

impl embedded_io::Write for Uart {
    fn write(&mut self, bytes: &[u8]) -> Result<usize, Infallible> {
        for &byte in bytes {
            self.write_byte(byte);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        for _ in 0..TX_SPIN_LIMIT {
            if self.registers.fr.is_set(FR::TXFE) {
                break;
            }
            core::hint::spin_loop();
        }
        Ok(())
    }
}

impl embedded_io::ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(!self.registers.fr.is_set(FR::RXFE))
    }
}

/// A `core::fmt` writer on the UART that turns `\n` into `\r\n` (for `writeln!`).
pub struct Console(pub Uart);

impl core::fmt::Write for Console {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        for byte in text.bytes() {
            if byte == b'\n' {
                self.0.write_byte(b'\r');
            }
            self.0.write_byte(byte);
        }
        Ok(())
    }
}
