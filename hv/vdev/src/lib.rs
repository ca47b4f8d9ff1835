//! Virtual devices as pure state machines: no unsafe, no heap, no hardware, host-tested.
//!
//! - [`mmio`]: the access vocabulary (widths, errors) every device model speaks.
//! - [`sbsa_uart`]: the Arm SBSA/BSA Generic UART a guest sees.
//! - [`console_mux`]: many guests' consoles multiplexed onto the one physical UART.
//!
//! A device model answers a trapped access and updates its state; the hypervisor core does
//! the trapping, the interrupt injection and the physical I/O.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod console_mux;
pub mod mmio;
pub mod sbsa_uart;
pub mod vgic;
