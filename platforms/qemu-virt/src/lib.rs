//! QEMU `virt` (`-M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 4 -m 1G`).
//!
//! Every value here is read from the DTB that QEMU 10.0 dumps for that command line
//! (`-M virt,...,dumpdtb=virt.dtb`); `tests/board_dtb.rs` checks them against it.
#![no_std]
#![forbid(unsafe_code)]

use tessera_config::{
    Board, Conduit, CpuDesc, GicDesc, GicVersion, MemRange, TimerPpis, UartDesc, UartKind,
};

const MIB: u64 = 1 << 20;

/// `-m 1G`: one bank at the virt board's RAM base (`memory@40000000`).
const RAM: [MemRange; 1] = [MemRange::new(0x4000_0000, 1024 * MIB)];

/// `-smp 4`. QEMU virt numbers CPUs with Aff0 = index for the first 16 (GICv3 clusters of 16).
const CPUS: [CpuDesc; 4] = [
    CpuDesc { mpidr: 0 },
    CpuDesc { mpidr: 1 },
    CpuDesc { mpidr: 2 },
    CpuDesc { mpidr: 3 },
];

/// An SPI's INTID is its DT number + 32; a PPI's is its DT number + 16 (IHI 0069 2.2.1).
const fn spi(n: u32) -> u32 {
    n + 32
}
const fn ppi(n: u32) -> u32 {
    n + 16
}

pub const PLATFORM: Board<'static> = Board {
    name: "qemu-virt",
    ram: &RAM,
    cpus: &CPUS,
    // pl011@9000000, interrupts = <GIC_SPI 1 IRQ_TYPE_LEVEL_HIGH>
    uart: UartDesc { kind: UartKind::Pl011, base: 0x0900_0000, size: 0x1000, intid: spi(1) },
    gic: GicDesc {
        version: GicVersion::V3,
        // intc@8000000: reg = <GICD 0x8000000 0x10000>, <GICR 0x80a0000 0xf60000>
        gicd: MemRange::new(0x0800_0000, 0x1_0000),
        gicr: MemRange::new(0x080a_0000, 0xf6_0000),
        gicr_stride: 0x2_0000,
        // its@8080000
        its: Some(MemRange::new(0x0808_0000, 0x2_0000)),
        // interrupts = <GIC_PPI 9 IRQ_TYPE_LEVEL_HIGH>
        maintenance_intid: ppi(9),
        // QEMU virt without `secure=on` has no EL3: its GIC has one security state (DS = 1),
        // so Non-secure EL2 owns Group 0.
        group0_nonsecure: true,
    },
    // timer: interrupts = <PPI 13>, <PPI 14>, <PPI 11>, <PPI 10>
    timer: TimerPpis { secure_phys: ppi(13), nonsecure_phys: ppi(14), virt: ppi(11), hyp_phys: ppi(10) },
    // psci: method = "smc" when virtualization=on (QEMU acts as EL3 firmware).
    psci_conduit: Conduit::Smc,
    // Guests built for virt find their UART where virt has its PL011.
    default_console_ipa: 0x0900_0000,
    default_console_intid: spi(1),
    // QEMU `-kernel` puts an Image with text_offset 0 at RAM base + 2 MiB; U-Boot `booti`
    // runs it in place at any 2 MiB-aligned address (the image is position independent).
    default_load_address: 0x4020_0000,
};
