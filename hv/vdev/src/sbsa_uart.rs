//! The SBSA Generic UART: the PL011 subset that Arm BSA/SBSA define, as a pure state machine.
//!
//! # What is modelled
//!
//! The register frame of the Arm BSA (DEN 0094) Appendix B "Generic UART" (the same subset is
//! in SBSA (DEN 0029) "Generic UART"), with the PL011 bit layouts of the PrimeCell UART
//! (PL011) Technical Reference Manual, r1p5, DDI 0183G, chapter 3:
//!
//! | offset | register          | guest access     | widths     |
//! |--------|-------------------|------------------|------------|
//! | 0x000  | `UARTDR`          | read/write       | 8, 16, 32  |
//! | 0x004  | `UARTRSR/UARTECR` | read/write       | 8, 16, 32  |
//! | 0x018  | `UARTFR`          | read-only        | 8, 16, 32  |
//! | 0x038  | `UARTIMSC`        | read/write       | 16, 32     |
//! | 0x03C  | `UARTRIS`         | read-only        | 16, 32     |
//! | 0x040  | `UARTMIS`         | read-only        | 16, 32     |
//! | 0x044  | `UARTICR`         | write-only       | 16, 32     |
//! | 0xFE0–0xFFC | `UARTPeriphID0–3`, `UARTPCellID0–3` | read-only | 8, 16, 32 |
//!
//! The widths are those the Generic UART register table allows. 64-bit accesses are refused
//! everywhere.
//!
//! # Decisions (where the specifications leave room or a model must differ)
//!
//! - **Refused accesses.** Any other offset in the 4 KiB frame (the rest of the PL011:
//!   `UARTIBRD`, `UARTLCR_H`, `UARTCR`, `UARTIFLS`, `UARTDMACR`, ...), an access that does not
//!   start at a register's first byte, a width the register does not allow, or an offset past
//!   the frame is an [`MmioError`]; the caller injects an abort. The device is advertised as
//!   `arm,sbsa-uart`, whose drivers never touch the PL011-only registers.
//! - **Read-only and write-only registers.** Writes to `UARTFR`, `UARTRIS`, `UARTMIS` and the
//!   ID registers are ignored (no abort), as a PL011 ignores them. Reads of the write-only
//!   `UARTICR` return 0.
//! - **ID registers.** They read as a PL011 r1p5 does (`UARTPeriphID0–3` = `0x11, 0x10, 0x34,
//!   0x00`, `UARTPCellID0–3` = `0x0D, 0xF0, 0x05, 0xB1`; DDI 0183G §3.3.15–3.3.16). The
//!   revision field (`UARTPeriphID2[7:4]` = 3, r1p5) is the one that tells a PL011 driver the
//!   FIFOs are 32 deep, which is what this model has. The Generic UART does not require the ID
//!   registers, but a guest that probes them must not fault.
//! - **No line errors.** Bytes arrive from the hypervisor, not from a wire: `UARTDR[11:8]` and
//!   `UARTRSR` always read 0, and a write to `UARTECR` has no effect. The hypervisor never
//!   overruns the RX FIFO: [`SbsaUart::push_rx`] refuses a byte when it is full, and the
//!   caller keeps it (see `console_mux::InputQueue`).
//! - **TX.** A write to `UARTDR` appends `[7:0]` to the TX FIFO; the hypervisor empties it
//!   with [`SbsaUart::drain_tx`] before returning to the guest, so `UARTFR.BUSY` and `TXFF`
//!   read 0 and `TXFE` reads 1 on the guest's next look. A write while the FIFO is full is
//!   lost, as on a PL011, and counted ([`SbsaUart::tx_dropped`]).
//! - **Interrupts are level-sensitive conditions**, recomputed from the FIFO levels:
//!   - `TXRIS` while the TX FIFO holds at most [`TX_TRIGGER_LEVEL`] (half of 32) entries. The
//!     Generic UART has no `UARTIFLS`, so the level is fixed; half is the PL011's reset value.
//!   - `RXRIS` while the RX FIFO holds at least one entry.
//!   - `RTRIS` (receive timeout) also while the RX FIFO holds at least one entry: a PL011
//!     raises it after 32 bit periods of an idle line, and with no baud clock the line is
//!     idle as soon as the byte is in.
//!   - every other `UARTRIS` bit (modem status, framing/parity/break/overrun errors) is 0.
//!
//!   `UARTMIS = UARTRIS & UARTIMSC`, and [`SbsaUart::irq_level`] is `UARTMIS != 0`. A write
//!   to `UARTICR` clears latched interrupts, but none of these three is latched: while its
//!   condition holds it reads as set again at once. This differs from a PL011, where `ICR`
//!   silences TX/RX until the FIFO next crosses its trigger level; level semantics cannot
//!   lose an interrupt, and Linux's PL011/SBSA driver neither relies on `ICR` for them (it
//!   masks `TXIM` when it has nothing to send and empties the RX FIFO) nor breaks with them.
//! - [`SbsaUart::reset`] returns to the power-on state: both FIFOs empty, `UARTIMSC` = 0.

use heapless::Deque;

use crate::mmio::{MmioError, Width};

/// Size of the register frame: one 4 KiB page (BSA Appendix B, Generic UART).
pub const FRAME_SIZE: u64 = 0x1000;

/// Entries in each FIFO: a PL011 r1p5 has 32-entry FIFOs (DDI 0183G; r1p4 and
/// earlier had 16), and the ID registers say r1p5.
pub const FIFO_DEPTH: usize = 32;

/// `TXRIS` is set while the TX FIFO holds at most this many entries. The Generic UART has no
/// `UARTIFLS`; we fix the level at the PL011's reset value, "half full" (DDI 0183G §3.3.9).
pub const TX_TRIGGER_LEVEL: usize = FIFO_DEPTH / 2;

/// Register offsets in the frame (BSA Appendix B, Generic UART; DDI 0183G Table 3-1).
pub mod offset {
    /// Data Register, DDI 0183G §3.3.1.
    pub const UARTDR: u64 = 0x000;
    /// Receive Status Register (read) / Error Clear Register (write), DDI 0183G §3.3.2.
    pub const UARTRSR_UARTECR: u64 = 0x004;
    /// Flag Register, DDI 0183G §3.3.3.
    pub const UARTFR: u64 = 0x018;
    /// Interrupt Mask Set/Clear Register, DDI 0183G §3.3.10.
    pub const UARTIMSC: u64 = 0x038;
    /// Raw Interrupt Status Register, DDI 0183G §3.3.11.
    pub const UARTRIS: u64 = 0x03C;
    /// Masked Interrupt Status Register, DDI 0183G §3.3.12.
    pub const UARTMIS: u64 = 0x040;
    /// Interrupt Clear Register, DDI 0183G §3.3.13.
    pub const UARTICR: u64 = 0x044;
    /// `UARTPeriphID0`; `UARTPeriphID1–3` and `UARTPCellID0–3` follow every 4 bytes up to
    /// 0xFFC. DDI 0183G §3.3.15–3.3.16.
    pub const UARTPERIPHID0: u64 = 0xFE0;
}

/// `UARTFR` bits (DDI 0183G §3.3.3). CTS, DSR, DCD and RI (bits 0–2, 8) read 0.
pub mod flag {
    /// UART busy transmitting.
    pub const BUSY: u32 = 1 << 3;
    /// Receive FIFO empty.
    pub const RXFE: u32 = 1 << 4;
    /// Transmit FIFO full.
    pub const TXFF: u32 = 1 << 5;
    /// Receive FIFO full.
    pub const RXFF: u32 = 1 << 6;
    /// Transmit FIFO empty.
    pub const TXFE: u32 = 1 << 7;
}

/// Interrupt bits, the same in `UARTIMSC`, `UARTRIS`, `UARTMIS` and `UARTICR`
/// (DDI 0183G §3.3.10–3.3.13).
pub mod interrupt {
    /// Receive interrupt (`RXIM`/`RXRIS`/`RXMIS`/`RXIC`).
    pub const RX: u32 = 1 << 4;
    /// Transmit interrupt (`TXIM`/`TXRIS`/`TXMIS`/`TXIC`).
    pub const TX: u32 = 1 << 5;
    /// Receive timeout interrupt (`RTIM`/`RTRIS`/`RTMIS`/`RTIC`).
    pub const RT: u32 = 1 << 6;
    /// The implemented bits, `[10:0]`; the rest are reserved and read as 0.
    pub const ALL: u32 = 0x7FF;
}

/// The ID register values of a PL011 r1p5, from 0xFE0 to 0xFFC (DDI 0183G §3.3.15–3.3.16):
/// part number 0x011, designer 0x41 (Arm), revision 3, then the PrimeCell preamble.
const ID_REGISTERS: [u32; 8] = [0x11, 0x10, 0x34, 0x00, 0x0D, 0xF0, 0x05, 0xB1];

/// [`SbsaUart::push_rx`] refused a byte: the RX FIFO is full. The byte was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RxFull;

/// A register of the frame, decoded from an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Register {
    Dr,
    RsrEcr,
    Fr,
    Imsc,
    Ris,
    Mis,
    Icr,
    /// `UARTPeriphID0–3` then `UARTPCellID0–3`, indexed 0..8.
    Id(usize),
}

impl Register {
    /// Decodes an access: which register, and whether it allows this width.
    fn decode(offset: u64, width: Width) -> Result<Register, MmioError> {
        if offset >= FRAME_SIZE {
            return Err(MmioError::OutsideFrame {
                offset,
                frame_size: FRAME_SIZE,
            });
        }
        let register = match offset {
            offset::UARTDR => Register::Dr,
            offset::UARTRSR_UARTECR => Register::RsrEcr,
            offset::UARTFR => Register::Fr,
            offset::UARTIMSC => Register::Imsc,
            offset::UARTRIS => Register::Ris,
            offset::UARTMIS => Register::Mis,
            offset::UARTICR => Register::Icr,
            // 0xFE0..0x1000 holds eight word registers; the frame check above bounds it.
            // The index is at most (0xFFC - 0xFE0) / 4 = 7.
            id if id >= offset::UARTPERIPHID0 && id.is_multiple_of(4) => {
                Register::Id(((id - offset::UARTPERIPHID0) / 4) as usize)
            }
            _ => return Err(MmioError::BadOffset { offset }),
        };
        let allowed = match width {
            Width::Byte => !matches!(
                register,
                Register::Imsc | Register::Ris | Register::Mis | Register::Icr
            ),
            Width::Half | Width::Word => true,
            Width::Double => false,
        };
        if allowed {
            Ok(register)
        } else {
            Err(MmioError::BadWidth { offset, width })
        }
    }
}

/// One guest's SBSA Generic UART.
#[derive(Debug)]
pub struct SbsaUart {
    /// Bytes for the guest, oldest first.
    rx: Deque<u8, FIFO_DEPTH>,
    /// Bytes from the guest, not yet drained by the hypervisor, oldest first.
    tx: Deque<u8, FIFO_DEPTH>,
    /// `UARTIMSC[10:0]`.
    imsc: u32,
    /// Bytes the guest wrote to `UARTDR` while the TX FIFO was full (lost).
    tx_dropped: u32,
}

impl Default for SbsaUart {
    fn default() -> Self {
        Self::new()
    }
}

impl SbsaUart {
    /// A UART in its power-on state.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            rx: Deque::new(),
            tx: Deque::new(),
            imsc: 0,
            tx_dropped: 0,
        }
    }

    /// Back to the power-on state (a VM restart): both FIFOs emptied, all interrupts masked,
    /// the drop counter cleared.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// A guest read. A `UARTDR` read takes the oldest RX byte (0 when the FIFO is empty).
    ///
    /// # Errors
    /// [`MmioError`] when no register of this frame allows this access.
    pub fn mmio_read(&mut self, offset: u64, width: Width) -> Result<u64, MmioError> {
        let value = match Register::decode(offset, width)? {
            Register::Dr => self.rx.pop_front().map_or(0, u32::from),
            Register::RsrEcr | Register::Icr => 0,
            Register::Fr => self.flags(),
            Register::Imsc => self.imsc,
            Register::Ris => self.raw_interrupts(),
            Register::Mis => self.masked_interrupts(),
            Register::Id(index) => ID_REGISTERS.get(index).copied().unwrap_or(0),
        };
        Ok(u64::from(value) & width.mask())
    }

    /// A guest write. `value` is truncated to `width`. A `UARTDR` write queues `value[7:0]`
    /// for [`drain_tx`](Self::drain_tx).
    ///
    /// # Errors
    /// [`MmioError`] when no register of this frame allows this access.
    pub fn mmio_write(&mut self, offset: u64, width: Width, value: u64) -> Result<(), MmioError> {
        let value = value & width.mask();
        match Register::decode(offset, width)? {
            Register::Dr => {
                let byte = (value & 0xFF) as u8;
                if self.tx.push_back(byte).is_err() {
                    self.tx_dropped = self.tx_dropped.saturating_add(1);
                }
            }
            // Nothing to clear: no line errors are ever recorded.
            Register::RsrEcr => {}
            Register::Imsc => self.imsc = (value as u32) & interrupt::ALL,
            // All three implemented sources are level conditions; see the module docs.
            Register::Icr => {}
            Register::Fr | Register::Ris | Register::Mis | Register::Id(_) => {}
        }
        Ok(())
    }

    /// Whether a store at `offset` with `width` is a plain transmit (`UARTDR`, a width the
    /// register takes) that, with the TX FIFO empty, leaves the model exactly as it was once
    /// [`drain_tx`](Self::drain_tx) has handed the byte on: the kernel may then give the
    /// byte to the console directly (the MMIO round trip's fast path).
    #[must_use]
    pub fn is_plain_tx(&self, offset: u64, width: Width) -> bool {
        self.tx.is_empty() && matches!(Register::decode(offset, width), Ok(Register::Dr))
    }

    /// Hands every byte in the TX FIFO to `out`, oldest first, and empties it. The hypervisor
    /// calls this right after a guest write to `UARTDR`.
    pub fn drain_tx(&mut self, mut out: impl FnMut(u8)) {
        while let Some(byte) = self.tx.pop_front() {
            out(byte);
        }
    }

    /// Offers a byte to the guest.
    ///
    /// # Errors
    /// [`RxFull`] when the RX FIFO is full; the byte was not taken and the caller keeps it.
    pub fn push_rx(&mut self, byte: u8) -> Result<(), RxFull> {
        self.rx.push_back(byte).map_err(|_| RxFull)
    }

    /// How many more bytes [`push_rx`](Self::push_rx) would take now.
    #[must_use]
    pub fn rx_space(&self) -> usize {
        FIFO_DEPTH - self.rx.len()
    }

    /// Bytes waiting in the TX FIFO (0 whenever the hypervisor has drained it).
    #[must_use]
    pub fn tx_len(&self) -> usize {
        self.tx.len()
    }

    /// Bytes the guest wrote while the TX FIFO was full, since power-on or [`reset`](Self::reset).
    #[must_use]
    pub fn tx_dropped(&self) -> u32 {
        self.tx_dropped
    }

    /// The level of the UART's interrupt line (`UARTINTR`, DDI 0183G §3.4.6): `UARTMIS != 0`.
    #[must_use]
    pub fn irq_level(&self) -> bool {
        self.masked_interrupts() != 0
    }

    /// `UARTFR` (DDI 0183G §3.3.3).
    fn flags(&self) -> u32 {
        let mut flags = 0;
        if self.rx.is_empty() {
            flags |= flag::RXFE;
        }
        if self.rx.is_full() {
            flags |= flag::RXFF;
        }
        if self.tx.is_empty() {
            flags |= flag::TXFE;
        } else {
            // Data not yet drained counts as being transmitted.
            flags |= flag::BUSY;
        }
        if self.tx.is_full() {
            flags |= flag::TXFF;
        }
        flags
    }

    /// `UARTRIS` (DDI 0183G §3.3.11): see the module docs for the conditions.
    fn raw_interrupts(&self) -> u32 {
        let mut raw = 0;
        if !self.rx.is_empty() {
            raw |= interrupt::RX | interrupt::RT;
        }
        if self.tx.len() <= TX_TRIGGER_LEVEL {
            raw |= interrupt::TX;
        }
        raw
    }

    /// `UARTMIS` (DDI 0183G §3.3.12).
    fn masked_interrupts(&self) -> u32 {
        self.raw_interrupts() & self.imsc
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    const ALL_WIDTHS: [Width; 4] = [Width::Byte, Width::Half, Width::Word, Width::Double];

    fn read(uart: &mut SbsaUart, offset: u64) -> u64 {
        uart.mmio_read(offset, Width::Word).unwrap()
    }

    fn write(uart: &mut SbsaUart, offset: u64, value: u64) {
        uart.mmio_write(offset, Width::Word, value).unwrap();
    }

    fn drained(uart: &mut SbsaUart) -> Vec<u8> {
        let mut bytes = Vec::new();
        uart.drain_tx(|b| bytes.push(b));
        bytes
    }

    #[test]
    fn power_on_state() {
        let mut uart = SbsaUart::new();
        assert_eq!(
            read(&mut uart, offset::UARTFR),
            u64::from(flag::TXFE | flag::RXFE)
        );
        assert_eq!(read(&mut uart, offset::UARTIMSC), 0);
        assert_eq!(read(&mut uart, offset::UARTRIS), u64::from(interrupt::TX));
        assert_eq!(read(&mut uart, offset::UARTMIS), 0);
        assert_eq!(read(&mut uart, offset::UARTRSR_UARTECR), 0);
        assert_eq!(read(&mut uart, offset::UARTDR), 0);
        assert!(!uart.irq_level());
        assert_eq!(uart.rx_space(), FIFO_DEPTH);
        assert_eq!(uart.tx_len(), 0);
    }

    /// Every width on every register: the allowed ones answer, the others are refused.
    #[test]
    fn width_table() {
        let byte_ok = [offset::UARTDR, offset::UARTRSR_UARTECR, offset::UARTFR];
        let byte_refused = [
            offset::UARTIMSC,
            offset::UARTRIS,
            offset::UARTMIS,
            offset::UARTICR,
        ];
        let ids = (0..8).map(|i| offset::UARTPERIPHID0 + 4 * i);
        for off in byte_ok.into_iter().chain(byte_refused).chain(ids) {
            for width in ALL_WIDTHS {
                let allowed = match width {
                    Width::Byte => !byte_refused.contains(&off),
                    Width::Half | Width::Word => true,
                    Width::Double => false,
                };
                let mut uart = SbsaUart::new();
                let r = uart.mmio_read(off, width);
                let w = uart.mmio_write(off, width, 0);
                if allowed {
                    assert!(r.is_ok() && w.is_ok(), "{off:#x} {width:?}");
                } else {
                    let e = MmioError::BadWidth { offset: off, width };
                    assert_eq!(r, Err(e));
                    assert_eq!(w, Err(e));
                }
            }
        }
    }

    #[test]
    fn unimplemented_and_unaligned_offsets_are_refused() {
        // PL011-only registers, reserved space, and offsets inside a register.
        for off in [
            0x001, 0x002, 0x008, 0x019, 0x020, 0x024, 0x028, 0x02C, 0x030, 0x034, 0x048, 0x800,
            0xFDC, 0xFE1, 0xFFE, 0xFFF,
        ] {
            let mut uart = SbsaUart::new();
            assert_eq!(
                uart.mmio_read(off, Width::Byte),
                Err(MmioError::BadOffset { offset: off })
            );
            assert_eq!(
                uart.mmio_write(off, Width::Word, 1),
                Err(MmioError::BadOffset { offset: off })
            );
        }
    }

    #[test]
    fn offsets_past_the_frame_are_refused() {
        for off in [FRAME_SIZE, FRAME_SIZE + offset::UARTFR, u64::MAX] {
            let e = MmioError::OutsideFrame {
                offset: off,
                frame_size: FRAME_SIZE,
            };
            let mut uart = SbsaUart::new();
            assert_eq!(uart.mmio_read(off, Width::Word), Err(e));
            assert_eq!(uart.mmio_write(off, Width::Word, 0), Err(e));
        }
    }

    #[test]
    fn id_registers_read_as_pl011_r1p5_and_ignore_writes() {
        let mut uart = SbsaUart::new();
        for (i, expected) in ID_REGISTERS.iter().enumerate() {
            let off = offset::UARTPERIPHID0 + 4 * i as u64;
            write(&mut uart, off, 0xFFFF_FFFF);
            assert_eq!(read(&mut uart, off), u64::from(*expected));
            assert_eq!(
                uart.mmio_read(off, Width::Byte).unwrap(),
                u64::from(*expected)
            );
        }
        // Part number 0x011, revision 3 (r1p5: 32-deep FIFOs).
        assert_eq!(
            read(&mut uart, 0xFE0) | (read(&mut uart, 0xFE4) & 0xF) << 8,
            0x011
        );
        assert_eq!(read(&mut uart, 0xFE8) >> 4, 3);
    }

    #[test]
    fn dr_write_goes_to_tx_and_drains_in_order() {
        let mut uart = SbsaUart::new();
        uart.mmio_write(offset::UARTDR, Width::Byte, u64::from(b'h'))
            .unwrap();
        uart.mmio_write(offset::UARTDR, Width::Half, 0xAB00 | u64::from(b'i'))
            .unwrap();
        // Upper bits of a word write are not data.
        uart.mmio_write(offset::UARTDR, Width::Word, 0xFFFF_FF00 | u64::from(b'!'))
            .unwrap();
        assert_eq!(uart.tx_len(), 3);
        let fr = read(&mut uart, offset::UARTFR) as u32;
        assert_eq!(fr & (flag::TXFE | flag::BUSY), flag::BUSY);
        assert_eq!(drained(&mut uart), b"hi!");
        let fr = read(&mut uart, offset::UARTFR) as u32;
        assert_eq!(fr & (flag::TXFE | flag::BUSY | flag::TXFF), flag::TXFE);
        assert_eq!(drained(&mut uart), b"");
    }

    #[test]
    fn tx_fifo_full_edge() {
        let mut uart = SbsaUart::new();
        for i in 0..FIFO_DEPTH {
            assert_eq!(
                read(&mut uart, offset::UARTFR) as u32 & flag::TXFF,
                0,
                "at {i}"
            );
            write(&mut uart, offset::UARTDR, i as u64);
        }
        assert_eq!(
            read(&mut uart, offset::UARTFR) as u32 & flag::TXFF,
            flag::TXFF
        );
        // One more is lost, as on a PL011, and counted.
        write(&mut uart, offset::UARTDR, 0xEE);
        assert_eq!(uart.tx_dropped(), 1);
        let expected: Vec<u8> = (0..FIFO_DEPTH as u8).collect();
        assert_eq!(drained(&mut uart), expected);
        assert_eq!(read(&mut uart, offset::UARTFR) as u32 & flag::TXFF, 0);
    }

    #[test]
    fn rx_fifo_edges_and_dr_reads() {
        let mut uart = SbsaUart::new();
        for i in 0..FIFO_DEPTH {
            assert_eq!(uart.rx_space(), FIFO_DEPTH - i);
            uart.push_rx(b'a' + (i % 26) as u8).unwrap();
            let fr = read(&mut uart, offset::UARTFR) as u32;
            assert_eq!(fr & flag::RXFE, 0);
            assert_eq!(fr & flag::RXFF != 0, i == FIFO_DEPTH - 1);
        }
        assert_eq!(uart.rx_space(), 0);
        assert_eq!(uart.push_rx(b'x'), Err(RxFull));
        // A byte read pops too, and the error bits [11:8] are 0 for any width.
        assert_eq!(
            uart.mmio_read(offset::UARTDR, Width::Byte).unwrap(),
            u64::from(b'a')
        );
        assert_eq!(
            uart.mmio_read(offset::UARTDR, Width::Half).unwrap(),
            u64::from(b'b')
        );
        assert_eq!(read(&mut uart, offset::UARTFR) as u32 & flag::RXFF, 0);
        assert_eq!(uart.rx_space(), 2);
        for _ in 2..FIFO_DEPTH {
            assert_eq!(read(&mut uart, offset::UARTDR) & 0xF00, 0);
        }
        assert_eq!(
            read(&mut uart, offset::UARTFR) as u32 & flag::RXFE,
            flag::RXFE
        );
        // Empty: reads 0 and stays empty.
        assert_eq!(read(&mut uart, offset::UARTDR), 0);
        assert_eq!(uart.rx_space(), FIFO_DEPTH);
    }

    #[test]
    fn rsr_ecr_reads_zero_and_ecr_write_is_harmless() {
        let mut uart = SbsaUart::new();
        uart.push_rx(1).unwrap();
        write(&mut uart, offset::UARTRSR_UARTECR, 0xFF);
        assert_eq!(read(&mut uart, offset::UARTRSR_UARTECR), 0);
        assert_eq!(read(&mut uart, offset::UARTDR), 1);
    }

    #[test]
    fn read_only_registers_ignore_writes() {
        let mut uart = SbsaUart::new();
        write(&mut uart, offset::UARTIMSC, u64::from(interrupt::TX));
        for off in [offset::UARTFR, offset::UARTRIS, offset::UARTMIS] {
            let before = read(&mut uart, off);
            write(&mut uart, off, 0xFFFF_FFFF);
            assert_eq!(read(&mut uart, off), before, "{off:#x}");
        }
        assert_eq!(read(&mut uart, offset::UARTICR), 0, "write-only reads as 0");
    }

    #[test]
    fn imsc_keeps_only_implemented_bits() {
        let mut uart = SbsaUart::new();
        write(&mut uart, offset::UARTIMSC, 0xFFFF_FFFF);
        assert_eq!(read(&mut uart, offset::UARTIMSC), u64::from(interrupt::ALL));
        uart.mmio_write(offset::UARTIMSC, Width::Half, 0x1_0010)
            .unwrap();
        assert_eq!(uart.mmio_read(offset::UARTIMSC, Width::Half).unwrap(), 0x10);
    }

    #[test]
    fn tx_interrupt_follows_the_trigger_level() {
        let mut uart = SbsaUart::new();
        write(&mut uart, offset::UARTIMSC, u64::from(interrupt::TX));
        assert!(uart.irq_level(), "empty TX FIFO is below the trigger level");
        for i in 0..FIFO_DEPTH {
            let ris = read(&mut uart, offset::UARTRIS) as u32;
            assert_eq!(ris & interrupt::TX != 0, i <= TX_TRIGGER_LEVEL, "at {i}");
            write(&mut uart, offset::UARTDR, 0);
        }
        assert!(!uart.irq_level());
        assert_eq!(read(&mut uart, offset::UARTMIS), 0);
        uart.drain_tx(|_| {});
        assert!(uart.irq_level());
        assert_eq!(read(&mut uart, offset::UARTMIS), u64::from(interrupt::TX));
    }

    #[test]
    fn rx_and_timeout_interrupts_while_data_present() {
        let mut uart = SbsaUart::new();
        uart.push_rx(b'q').unwrap();
        let ris = read(&mut uart, offset::UARTRIS) as u32;
        assert_eq!(ris, interrupt::RX | interrupt::RT | interrupt::TX);
        // Masked: raw status shows it, the line stays low.
        assert!(!uart.irq_level());
        write(&mut uart, offset::UARTIMSC, u64::from(interrupt::RT));
        assert!(uart.irq_level());
        assert_eq!(read(&mut uart, offset::UARTMIS), u64::from(interrupt::RT));
        write(
            &mut uart,
            offset::UARTIMSC,
            u64::from(interrupt::RX | interrupt::RT),
        );
        assert_eq!(
            read(&mut uart, offset::UARTMIS),
            u64::from(interrupt::RX | interrupt::RT)
        );
        // Emptying the FIFO deasserts both.
        assert_eq!(read(&mut uart, offset::UARTDR), u64::from(b'q'));
        assert!(!uart.irq_level());
        assert_eq!(
            read(&mut uart, offset::UARTRIS) as u32 & (interrupt::RX | interrupt::RT),
            0
        );
    }

    #[test]
    fn icr_does_not_silence_a_condition_that_still_holds() {
        let mut uart = SbsaUart::new();
        uart.push_rx(1).unwrap();
        write(&mut uart, offset::UARTIMSC, u64::from(interrupt::ALL));
        write(&mut uart, offset::UARTICR, u64::from(interrupt::ALL));
        let all = u64::from(interrupt::RX | interrupt::RT | interrupt::TX);
        assert_eq!(read(&mut uart, offset::UARTRIS), all);
        assert_eq!(read(&mut uart, offset::UARTMIS), all);
        uart.mmio_write(offset::UARTICR, Width::Half, all).unwrap();
        assert!(uart.irq_level());
        // Masking is how a guest quietens TX; reading is how it quietens RX.
        write(
            &mut uart,
            offset::UARTIMSC,
            u64::from(interrupt::RX | interrupt::RT),
        );
        let _ = read(&mut uart, offset::UARTDR);
        assert!(!uart.irq_level());
    }

    #[test]
    fn narrow_reads_of_status_registers_are_masked() {
        let mut uart = SbsaUart::new();
        write(&mut uart, offset::UARTIMSC, 0x7FF);
        assert_eq!(
            uart.mmio_read(offset::UARTIMSC, Width::Half).unwrap(),
            0x7FF
        );
        assert_eq!(uart.mmio_read(offset::UARTFR, Width::Byte).unwrap(), 0x90);
    }

    #[test]
    fn reset_returns_to_power_on() {
        let mut uart = SbsaUart::new();
        write(&mut uart, offset::UARTIMSC, u64::from(interrupt::ALL));
        for _ in 0..=FIFO_DEPTH {
            write(&mut uart, offset::UARTDR, b'x'.into());
        }
        uart.push_rx(b'y').unwrap();
        assert!(uart.irq_level());
        uart.reset();
        assert_eq!(read(&mut uart, offset::UARTIMSC), 0);
        assert_eq!(
            read(&mut uart, offset::UARTFR),
            u64::from(flag::TXFE | flag::RXFE)
        );
        assert_eq!(uart.tx_len(), 0);
        assert_eq!(uart.tx_dropped(), 0);
        assert_eq!(uart.rx_space(), FIFO_DEPTH);
        assert!(!uart.irq_level());
    }

    #[test]
    fn plain_tx_is_a_dr_store_with_an_empty_fifo() {
        let mut uart = SbsaUart::new();
        assert!(uart.is_plain_tx(offset::UARTDR, Width::Byte));
        assert!(uart.is_plain_tx(offset::UARTDR, Width::Word));
        assert!(!uart.is_plain_tx(offset::UARTDR, Width::Double));
        assert!(!uart.is_plain_tx(offset::UARTFR, Width::Word));
        assert!(!uart.is_plain_tx(offset::UARTIMSC, Width::Word));
        assert!(!uart.is_plain_tx(0x1000, Width::Byte));
        // The fast path and the model agree: a DR store then a drain leaves the same state.
        let before = format!("{uart:?}");
        uart.mmio_write(offset::UARTDR, Width::Word, u64::from(b'x')).unwrap();
        let mut out = std::vec::Vec::new();
        uart.drain_tx(|byte| out.push(byte));
        assert_eq!(out, b"x");
        assert_eq!(format!("{uart:?}"), before);
        // With bytes still queued (no drain), the fast path would reorder them: refused.
        uart.mmio_write(offset::UARTDR, Width::Byte, u64::from(b'y')).unwrap();
        assert!(!uart.is_plain_tx(offset::UARTDR, Width::Byte));
    }

    mod properties {
        //! Random guests and hosts: the FIFOs keep their bounds and order, the flags and the
        //! interrupt line follow the FIFO levels, reads are masked to their width, and an
        //! offset past the frame is always refused (fuzz/src/sbsa_uart.rs checks the same
        //! against a full reference model).
        use std::collections::VecDeque;

        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Op {
            Read(u64, Width),
            Write(u64, Width, u64),
            Push(u8),
            Drain,
        }

        fn op() -> impl Strategy<Value = Op> {
            let offset = prop_oneof![
                proptest::sample::select(vec![0x000u64, 0x004, 0x018, 0x038, 0x03C, 0x040, 0x044, 0xFE0, 0xFFC]),
                0u64..0x1100,
                any::<u64>(),
            ];
            let width = proptest::sample::select(ALL_WIDTHS.to_vec());
            prop_oneof![
                (offset.clone(), width.clone()).prop_map(|(o, w)| Op::Read(o, w)),
                (offset, width, any::<u64>()).prop_map(|(o, w, v)| Op::Write(o, w, v)),
                // Mostly UARTDR writes and host bytes, to fill the FIFOs.
                any::<u8>().prop_map(|b| Op::Write(offset::UARTDR, Width::Byte, u64::from(b))),
                any::<u8>().prop_map(Op::Push),
                Just(Op::Drain),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn fifos_flags_and_line_stay_consistent(ops in proptest::collection::vec(op(), 1..200)) {
                let mut uart = SbsaUart::new();
                let mut sent = VecDeque::new(); // UARTDR bytes that fit, not yet drained
                let mut rx = 0usize;
                let mut dropped = 0u32;
                for op in ops {
                    match op {
                        Op::Read(offset, width) => match uart.mmio_read(offset, width) {
                            Ok(value) => {
                                prop_assert!(offset < FRAME_SIZE);
                                prop_assert_eq!(value & !width.mask(), 0);
                                if offset == offset::UARTDR && rx > 0 {
                                    rx -= 1;
                                }
                            }
                            Err(MmioError::OutsideFrame { .. }) => prop_assert!(offset >= FRAME_SIZE),
                            Err(_) => prop_assert!(offset < FRAME_SIZE),
                        },
                        Op::Write(offset, width, value) => {
                            let accepted = uart.mmio_write(offset, width, value).is_ok();
                            prop_assert!(!accepted || offset < FRAME_SIZE);
                            if accepted && offset == offset::UARTDR {
                                if sent.len() < FIFO_DEPTH {
                                    sent.push_back(value as u8);
                                } else {
                                    dropped += 1;
                                }
                            }
                        }
                        Op::Push(byte) => {
                            prop_assert_eq!(uart.push_rx(byte).is_ok(), rx < FIFO_DEPTH);
                            rx = (rx + 1).min(FIFO_DEPTH);
                        }
                        Op::Drain => {
                            let mut out = Vec::new();
                            uart.drain_tx(|b| out.push(b));
                            prop_assert_eq!(out, sent.drain(..).collect::<Vec<_>>());
                        }
                    }
                    prop_assert_eq!(uart.tx_len(), sent.len());
                    prop_assert_eq!(uart.rx_space(), FIFO_DEPTH - rx);
                    prop_assert_eq!(uart.tx_dropped(), dropped);
                    let fr = uart.mmio_read(offset::UARTFR, Width::Word).unwrap() as u32;
                    prop_assert_eq!(fr & flag::RXFE != 0, rx == 0);
                    prop_assert_eq!(fr & flag::RXFF != 0, rx == FIFO_DEPTH);
                    prop_assert_eq!(fr & flag::TXFE != 0, sent.is_empty());
                    prop_assert_eq!(fr & flag::TXFF != 0, sent.len() == FIFO_DEPTH);
                    let ris = uart.mmio_read(offset::UARTRIS, Width::Word).unwrap();
                    let imsc = uart.mmio_read(offset::UARTIMSC, Width::Word).unwrap();
                    let mis = uart.mmio_read(offset::UARTMIS, Width::Word).unwrap();
                    prop_assert_eq!(mis, ris & imsc);
                    prop_assert_eq!(uart.irq_level(), mis != 0);
                }
            }
        }
    }
}
