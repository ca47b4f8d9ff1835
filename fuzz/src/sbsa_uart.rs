//! The SBSA Generic UART model (`tessera_vdev::sbsa_uart`) against a reference written here
//! from the register table (BSA DEN 0094 Appendix B, PL011 DDI 0183G chapter 3): random guest
//! reads and writes of any offset and width, host bytes pushed in, TX drained.
//!
//! Invariants checked: every access gets the reference's answer (value or which error); both
//! FIFOs stay within 32 bytes and keep their order (the bytes drained are exactly those
//! written to `UARTDR` that fit, the rest are counted as dropped); `push_rx` refuses exactly
//! when the RX FIFO is full; `UARTFR`, `UARTRIS`/`UARTMIS` follow the FIFO levels; the
//! interrupt line is `UARTMIS != 0`.

use std::collections::VecDeque;

use arbitrary::{Arbitrary, Unstructured};
use tessera_vdev::mmio::{MmioError, Width};
use tessera_vdev::sbsa_uart::{FIFO_DEPTH, FRAME_SIZE, SbsaUart, TX_TRIGGER_LEVEL};

use crate::{offset, width};

/// The reference: the same state, kept the obvious way.
#[derive(Default)]
struct Reference {
    rx: VecDeque<u8>,
    tx: VecDeque<u8>,
    imsc: u64,
    dropped: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reg {
    Dr,
    Rsr,
    Fr,
    Imsc,
    Ris,
    Mis,
    Icr,
    Id(u64),
}

const ID: [u64; 8] = [0x11, 0x10, 0x34, 0x00, 0x0D, 0xF0, 0x05, 0xB1];

impl Reference {
    fn decode(offset: u64, width: Width) -> Result<Reg, MmioError> {
        if offset >= FRAME_SIZE {
            return Err(MmioError::OutsideFrame {
                offset,
                frame_size: FRAME_SIZE,
            });
        }
        let reg = match offset {
            0x000 => Reg::Dr,
            0x004 => Reg::Rsr,
            0x018 => Reg::Fr,
            0x038 => Reg::Imsc,
            0x03C => Reg::Ris,
            0x040 => Reg::Mis,
            0x044 => Reg::Icr,
            0xFE0..=0xFFC if offset.is_multiple_of(4) => Reg::Id(ID[((offset - 0xFE0) / 4) as usize]),
            _ => return Err(MmioError::BadOffset { offset }),
        };
        let byte_ok = !matches!(reg, Reg::Imsc | Reg::Ris | Reg::Mis | Reg::Icr);
        match width {
            Width::Double => Err(MmioError::BadWidth { offset, width }),
            Width::Byte if !byte_ok => Err(MmioError::BadWidth { offset, width }),
            _ => Ok(reg),
        }
    }

    fn ris(&self) -> u64 {
        let rx = if self.rx.is_empty() {
            0
        } else {
            (1 << 4) | (1 << 6)
        };
        let tx = if self.tx.len() <= TX_TRIGGER_LEVEL {
            1 << 5
        } else {
            0
        };
        rx | tx
    }

    fn fr(&self) -> u64 {
        let mut fr = 0;
        if self.rx.is_empty() {
            fr |= 1 << 4;
        }
        if self.rx.len() == FIFO_DEPTH {
            fr |= 1 << 6;
        }
        if self.tx.is_empty() {
            fr |= 1 << 7;
        } else {
            fr |= 1 << 3;
        }
        if self.tx.len() == FIFO_DEPTH {
            fr |= 1 << 5;
        }
        fr
    }

    fn read(&mut self, offset: u64, width: Width) -> Result<u64, MmioError> {
        let value = match Self::decode(offset, width)? {
            Reg::Dr => self.rx.pop_front().map_or(0, u64::from),
            Reg::Rsr | Reg::Icr => 0,
            Reg::Fr => self.fr(),
            Reg::Imsc => self.imsc,
            Reg::Ris => self.ris(),
            Reg::Mis => self.ris() & self.imsc,
            Reg::Id(value) => value,
        };
        Ok(value & width.mask())
    }

    fn write(&mut self, offset: u64, width: Width, value: u64) -> Result<(), MmioError> {
        let value = value & width.mask();
        match Self::decode(offset, width)? {
            Reg::Dr if self.tx.len() < FIFO_DEPTH => self.tx.push_back(value as u8),
            Reg::Dr => self.dropped += 1,
            Reg::Imsc => self.imsc = value & 0x7FF,
            _ => {}
        }
        Ok(())
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut uart = SbsaUart::new();
    let mut reference = Reference::default();
    // Unstructured yields zeros once the data runs out: stop there, not at an error.
    while !u.is_empty() {
        let Ok(op) = u8::arbitrary(&mut u) else { break };
        let Ok(()) = step(&mut u, op, &mut uart, &mut reference) else {
            break;
        };
        assert!(
            uart.tx_len() <= FIFO_DEPTH && uart.tx_len() == reference.tx.len(),
            "TX level"
        );
        assert_eq!(uart.rx_space(), FIFO_DEPTH - reference.rx.len(), "RX space");
        assert_eq!(uart.tx_dropped(), reference.dropped, "dropped count");
        assert_eq!(
            uart.irq_level(),
            reference.ris() & reference.imsc != 0,
            "interrupt line"
        );
    }
}

fn step(
    u: &mut Unstructured<'_>,
    op: u8,
    uart: &mut SbsaUart,
    reference: &mut Reference,
) -> arbitrary::Result<()> {
    match op % 6 {
        0 | 1 => {
            let (offset, width) = (offset(u, FRAME_SIZE)?, width(u)?);
            assert_eq!(
                uart.mmio_read(offset, width),
                reference.read(offset, width),
                "read {offset:#x} {width:?}"
            );
        }
        2 | 3 => {
            let (offset, width, value) = (offset(u, FRAME_SIZE)?, width(u)?, u64::arbitrary(u)?);
            assert_eq!(
                uart.mmio_write(offset, width, value),
                reference.write(offset, width, value),
                "write {offset:#x} {width:?} {value:#x}"
            );
        }
        4 => {
            let byte = u8::arbitrary(u)?;
            let fits = reference.rx.len() < FIFO_DEPTH;
            assert_eq!(
                uart.push_rx(byte).is_ok(),
                fits,
                "push_rx with {} queued",
                reference.rx.len()
            );
            if fits {
                reference.rx.push_back(byte);
            }
        }
        _ => {
            let mut drained = Vec::new();
            uart.drain_tx(|byte| drained.push(byte));
            assert_eq!(
                drained,
                reference.tx.drain(..).collect::<Vec<_>>(),
                "drained bytes"
            );
        }
    }
    Ok(())
}
