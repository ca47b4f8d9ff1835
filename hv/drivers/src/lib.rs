//! Drivers for the devices the hypervisor itself owns (its console UART, the physical GIC).
//!
//! Registers are declared from the manuals with tock-registers. The only `unsafe` is where a
//! driver is bound to an address: the caller promises the address is that device's frame,
//! mapped as Device memory, and used by nobody else.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod gicv3;
pub mod pl011;

/// Upper bound on polls of a hardware status bit before a wait gives up (every wait in the
/// hypervisor is bounded). At QEMU's speed and on real cores this is far beyond any
/// legitimate wait (a UART FIFO slot, a GIC register write to take effect).
pub const POLL_LIMIT: u32 = 1_000_000;
