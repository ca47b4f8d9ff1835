//! The Tessera hypervisor for QEMU virt: binds the board's devices to drivers and hands
//! them, with the system tables `cargo xtask build` generated, to the kernel.
//!
//! This is wiring only. The `unsafe` here is where a driver is given its address; each says
//! why that address is right.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod firmware {
    use tessera_arch::BootInfo;
    use tessera_drivers::gicv3::{Distributor, GicError, Redistributor};
    use tessera_drivers::pl011::Pl011;
    use tessera_kernel::{LogSink, Platform};
    use tessera_qemu_virt::PLATFORM as BOARD;

    mod tables {
        include!(concat!(env!("OUT_DIR"), "/system.rs"));
    }

    fn redistributor(mpidr: u64) -> Result<Redistributor, GicError> {
        let gic = &BOARD.gic;
        // SAFETY: BOARD.gic.gicr is the virt board's redistributor region (checked against
        // QEMU's DTB by tests/board_dtb.rs), mapped as Device memory by the EL2 MMU, with
        // frames gicr_stride apart; only the hypervisor touches it.
        unsafe { Redistributor::find(gic.gicr.base, gic.gicr.size, gic.gicr_stride, mpidr) }
    }

    fn platform() -> Platform {
        Platform {
            board: &BOARD,
            system: &tables::SYSTEM,
            // SAFETY: BOARD.uart is virt's PL011 (checked against QEMU's DTB), mapped as
            // Device memory; the hypervisor is its only user (guests get emulated UARTs).
            uart: unsafe { Pl011::new(BOARD.uart.base) },
            // SAFETY: BOARD.gic.gicd is virt's distributor (checked against QEMU's DTB),
            // mapped as Device memory, programmed only by the hypervisor.
            gicd: unsafe { Distributor::new(BOARD.gic.gicd.base) },
            redistributor,
            log_sink: LogSink::Semihosting,
        }
    }

    // SAFETY (no_mangle): tessera-arch's boot code calls these two symbols with exactly
    // these signatures; no other item in the binary has these names.
    #[unsafe(no_mangle)]
    fn tessera_main(boot: BootInfo) -> ! {
        tessera_kernel::primary(&BOARD, platform, boot)
    }

    #[unsafe(no_mangle)]
    fn tessera_secondary_main(cpu: usize) -> ! {
        tessera_kernel::secondary(cpu)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
