//! What a board is: the facts about a SoC that the hypervisor and the build tool need.
//!
//! Each `platforms/<board>` crate holds one `const PLATFORM: Board`. Its values come from the
//! board's device tree (for QEMU `virt`, the DTB QEMU itself dumps) and are checked against it
//! by a test in that crate.

use crate::MemRange;

#[derive(Debug, Clone, Copy)]
pub struct Board<'a> {
    /// Matches `board = "…"` in a system description and the `platforms/<name>` folder.
    pub name: &'a str,
    /// Host-physical RAM banks.
    pub ram: &'a [MemRange],
    /// Physical CPUs, indexed by the CPU numbers a system description uses.
    pub cpus: &'a [CpuDesc],
    /// The UART the hypervisor owns and multiplexes the guests' consoles onto.
    pub uart: UartDesc,
    pub gic: GicDesc,
    pub timer: TimerPpis,
    /// How the hypervisor calls firmware PSCI (CPU_ON, SYSTEM_OFF).
    pub psci_conduit: Conduit,
    /// Where a VM's emulated console sits in its IPA space unless the system says otherwise.
    pub default_console_ipa: u64,
    /// The SPI (as a GIC INTID) an emulated console raises unless the system says otherwise.
    pub default_console_intid: u32,
    /// Where a hypervisor image is loaded by the board's usual loader (QEMU `-kernel`, U-Boot
    /// `booti` at the documented address). The image is position independent; this is only
    /// the default for sizing `System::hv_region`.
    pub default_load_address: u64,
}

/// One physical CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CpuDesc {
    /// MPIDR_EL1 affinity fields (Aff3..Aff0, DDI 0487 D23.2.113), as PSCI CPU_ON takes them.
    pub mpidr: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UartKind {
    /// Arm PrimeCell PL011 (DDI 0183).
    Pl011,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UartDesc {
    pub kind: UartKind,
    pub base: u64,
    pub size: u64,
    /// GIC INTID of the UART's interrupt.
    pub intid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GicVersion {
    V2,
    V3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GicDesc {
    pub version: GicVersion,
    /// Distributor (GICD) frame.
    pub gicd: MemRange,
    /// Redistributor (GICR) region: one RD + SGI frame pair per CPU.
    pub gicr: MemRange,
    /// Bytes between consecutive redistributors (0x20000 for GICv3, IHI 0069 12.10).
    pub gicr_stride: u64,
    /// Interrupt Translation Service frame, if the GIC has one.
    pub its: Option<MemRange>,
    /// INTID of the virtual CPU interface maintenance interrupt (a PPI).
    pub maintenance_intid: u32,
    /// Whether Group 0 is usable from Non-secure EL2: the GIC has a single security state
    /// (`GICD_CTLR.DS` = 1, IHI 0069 12.9.4), as on a board without EL3 firmware owning
    /// Group 0. Direct-interrupt VMs need it: the hypervisor keeps its kick in Group 0.
    pub group0_nonsecure: bool,
}

/// Generic timer PPIs as GIC INTIDs (the DT `arm,armv8-timer` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TimerPpis {
    pub secure_phys: u32,
    pub nonsecure_phys: u32,
    pub virt: u32,
    pub hyp_phys: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Conduit {
    Smc,
    Hvc,
}
