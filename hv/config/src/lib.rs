//! The system description as typed data: the board, the VMs and what each is given.
//!
//! The build tool (`cargo xtask`) parses `dts/systems/<board>/<system>.dts` into these types,
//! runs [`validate`] on them, and emits them as `static` tables that the hypervisor links. The
//! hypervisor never parses a description at run time; it may run [`validate`] again on its own
//! tables as a self-check, because this crate is `no_std` and links into the target.
//!
//! Every type borrows (`'a`), so the host can validate data it owns and the target can use
//! `'static` tables with the same code.
#![no_std]
#![forbid(unsafe_code)]

mod addr;
mod board;
mod direct;
mod error;
mod sched;
mod validate;

pub use addr::{MemRange, PAGE_SIZE};
pub use board::{Board, Conduit, CpuDesc, GicDesc, GicVersion, TimerPpis, UartDesc, UartKind};
pub use error::ConfigError;
pub use validate::{MAX_VM_SPIS, MAX_VMS, validate};
pub use direct::DIRECT_RESERVED_SGIS;
pub use sched::{CpuPool, MAX_PERIOD_US, MAX_VCPUS_PER_CPU, MIN_PERIOD_US, RtdsParams, Scheduler};

/// The whole system: which board, where the hypervisor lives, and the VMs.
#[derive(Debug, Clone, Copy)]
pub struct System<'a> {
    /// The board's name as in `platforms/<name>`; must equal [`Board::name`].
    pub board: &'a str,
    /// Host-physical RAM reserved for the hypervisor: its image (with the guest payload that
    /// it keeps as a pristine copy), its BSS, stacks and page tables. No VM memory may
    /// overlap it. The build tool sizes it; the hypervisor checks at boot that it was loaded
    /// inside it.
    pub hv_region: MemRange,
    pub vms: &'a [Vm<'a>],
    /// CPU pools (`/cpupools`). Empty: every CPU is alone in an implicit null pool.
    pub pools: &'a [CpuPool<'a>],
}

/// One VM (partition).
#[derive(Debug, Clone, Copy)]
pub struct Vm<'a> {
    /// Unique, from the system description's node name. Tags the VM's console lines.
    pub name: &'a str,
    /// Stage-2 VMID. The build tool assigns `index + 1`; 0 is never used by a VM.
    pub vmid: u16,
    /// Physical CPU indices (into [`Board::cpus`]). vCPU `i` runs on `cpus[i]`.
    pub cpus: &'a [u32],
    /// Guest RAM regions: IPA → host PA, each page-aligned.
    pub memory: &'a [MemoryRegion],
    /// The emulated SBSA UART, if the VM has a console.
    pub console: Option<Console>,
    /// The guest image, already placed: copied to `load_ipa`, entered at `entry_ipa`.
    pub image: Image<'a>,
    /// The generated guest device tree, copied to `dtb_ipa`; `x0` holds that IPA at entry.
    pub dtb: &'a [u8],
    pub dtb_ipa: u64,
    /// An initial RAM disk (Linux initramfs), if the system gives one: copied to its `ipa`
    /// before the guest starts (and again on restart), its range named in the DTB's
    /// `/chosen/linux,initrd-start` and `linux,initrd-end`.
    pub initrd: Option<Initrd<'a>>,
    /// What the hypervisor does when the guest takes a fault it cannot hand back, such as an
    /// access to an IPA that is neither RAM nor an emulated device.
    pub fault_policy: FaultPolicy,
    /// What PSCI SYSTEM_OFF from the guest does.
    pub on_system_off: ExitAction,
    /// What PSCI SYSTEM_RESET from the guest does.
    pub on_system_reset: ExitAction,
    /// Whether the guest's WFI (and WFE) run natively or trap to the hypervisor.
    pub wfi: WfiPolicy,
    /// Whether EL1 may read the physical counter (CNTPCT_EL0) directly. When not, reads trap
    /// and return the VM's virtual count, so the VM never sees the board's absolute time.
    pub physical_counter: bool,
    /// Physical devices passed through to the VM: their MMIO and their SPIs.
    pub devices: &'a [Device<'a>],
    /// Budget and period of each vCPU, for a VM whose CPUs are in an RTDS pool (and only then).
    pub rtds: Option<RtdsParams>,
    /// The VM's watchdog, if it has one: it must kick it (`TESSERA_WDOG_KICK`) in time.
    pub watchdog: Option<Watchdog>,
    /// How the VM's interrupts reach it: through the virtual CPU interface (trap and
    /// inject), or straight from the physical GIC CPU interface (`docs/direct-mode.md`).
    pub interrupt_mode: InterruptMode,
}

/// How a VM takes its interrupts (`interrupt-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum InterruptMode {
    /// Every physical interrupt is taken at EL2 (HCR_EL2.IMO = 1) and injected through the
    /// list registers of the virtual CPU interface.
    Virtual,
    /// The guest drives the physical GIC CPU interface for its own Group 1 interrupts
    /// (HCR_EL2.IMO = 0, FMO = 1): no EL2 entry on its interrupt path. The hypervisor keeps
    /// Group 0 (FIQ to EL2) for its kick and halt SGIs. Only for VMs that own whole CPUs.
    Direct,
}

/// The CPU that takes the hypervisor's console UART SPI (the kernel routes it to its boot
/// CPU): a direct VM may not own it, because that SPI would be Group 1 on its CPU.
pub const CONSOLE_CPU: u32 = 0;

/// A VM's watchdog (`watchdog-ms`, `watchdog-first-ms`, `on-watchdog`). It runs from the VM's
/// start: the first deadline is `first_ms` after the start, each kick moves the deadline to
/// `period_ms` after the kick. When a deadline passes, the hypervisor applies `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Watchdog {
    /// Milliseconds from a kick to the deadline, 1..=[`MAX_WATCHDOG_MS`].
    pub period_ms: u32,
    /// Milliseconds from the VM's (re)start to the first deadline (a boot takes longer than
    /// a period), 1..=[`MAX_WATCHDOG_MS`].
    pub first_ms: u32,
    /// What an expiry does: restart or stop the VM.
    pub action: ExitAction,
}

/// The longest watchdog period or first period: one hour. Longer is taken for a typo (a
/// microsecond or nanosecond count); a VM that needs no watchdog has none.
pub const MAX_WATCHDOG_MS: u32 = 3_600_000;

/// A physical device passed through to a VM (`devices = "/<path>"` or a raw `device` node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Device<'a> {
    /// Guest-physical base of the register window.
    pub ipa: u64,
    /// Host-physical base of the register window.
    pub pa: u64,
    /// Size of the window in bytes.
    pub size: u64,
    /// How the VM reaches it.
    pub access: DeviceAccess,
    /// The device's interrupts: GIC INTIDs of SPIs, forwarded to the VM HW-linked (the
    /// guest's deactivation deactivates the physical SPI). The virtual INTID equals the
    /// physical one.
    pub spis: &'a [u32],
    /// 32-bit writes the hypervisor makes to the device while the VM is down (stopped or
    /// restarting), in order, to quiesce it (`reset-writes`): a virtio-mmio transport is
    /// reset by writing 0 to its Status register at 0x70.
    pub reset_writes: &'a [ResetWrite],
}

/// One write of a device's reset sequence: `value` to the 32-bit register at `offset` bytes
/// into the device's window (4-byte aligned, inside the window; the validator checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ResetWrite {
    pub offset: u64,
    pub value: u32,
}

impl Device<'_> {
    pub const fn ipa_range(&self) -> MemRange {
        MemRange::new(self.ipa, self.size)
    }
    pub const fn pa_range(&self) -> MemRange {
        MemRange::new(self.pa, self.size)
    }
}

/// How a VM reaches a passed-through device's registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DeviceAccess {
    /// Mapped into the VM's stage 2 as Device-nGnRE memory: the guest touches the device
    /// directly. Base and size must be page aligned.
    Map,
    /// Trap and forward: the window stays unmapped, every access traps, and the hypervisor
    /// performs it on the device if it lies inside the window (the register allow-list);
    /// anything else follows the VM's fault policy. For devices that share a 4 KiB page
    /// with another device (QEMU virt's virtio-mmio transports are 0x200 apart).
    Trap,
}

/// What a guest's WFI/WFE does (HCR_EL2.TWI/TWE, DDI 0487 D23.2.53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WfiPolicy {
    /// The CPU really waits; any interrupt for the VM (or for the hypervisor) wakes it. The
    /// lowest latency, and the CPU is the VM's alone anyway (null scheduler).
    Native,
    /// The hypervisor takes the trap and waits on the vCPU's behalf until the vCPU has an
    /// interrupt pending.
    Trap,
}

/// A guest RAM region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MemoryRegion {
    /// Guest-physical base.
    pub ipa: u64,
    /// Host-physical base.
    pub pa: u64,
    pub size: u64,
}

impl MemoryRegion {
    pub const fn ipa_range(&self) -> MemRange {
        MemRange::new(self.ipa, self.size)
    }
    pub const fn pa_range(&self) -> MemRange {
        MemRange::new(self.pa, self.size)
    }
}

/// An emulated SBSA Generic UART in the VM's IPA space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Console {
    /// IPA of the 4 KiB register frame.
    pub ipa: u64,
    /// The interrupt the UART raises (GIC INTID of an SPI).
    pub intid: u32,
}

/// A guest image and where it goes.
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    /// The image's bytes, carried inside the hypervisor image as a pristine copy.
    pub bytes: &'a [u8],
    pub load_ipa: u64,
    pub entry_ipa: u64,
}

/// An initial RAM disk and where it goes: `bytes` are copied to guest RAM at `ipa`.
#[derive(Debug, Clone, Copy)]
pub struct Initrd<'a> {
    /// The initrd's bytes, carried inside the hypervisor image as a pristine copy.
    pub bytes: &'a [u8],
    pub ipa: u64,
}

impl Initrd<'_> {
    /// The guest-physical range the initrd occupies.
    pub const fn ipa_range(&self) -> MemRange {
        MemRange::new(self.ipa, self.bytes.len() as u64)
    }
}

/// Where a VM's virtual GICv3 sits in its IPA space. Every VM's vGIC is at the board's own
/// GICD and GICR addresses, so a guest written for the board finds it where it expects; the
/// redistributor region holds one frame pair ([`GicDesc::gicr_stride`]) per vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VgicFrames {
    /// The distributor (GICD) frame, 64 KiB (IHI 0069 12.8).
    pub gicd: MemRange,
    /// The redistributors (GICR), vCPU `i`'s at `gicr.base + i * stride`.
    pub gicr: MemRange,
}

/// 64 KiB: the GICv3 distributor's register frame (IHI 0069 12.8).
pub const GICD_FRAME_SIZE: u64 = 0x1_0000;

impl Vm<'_> {
    /// The IPAs of this VM's vGIC on `board`. Saturates on absurd vCPU counts (the validator
    /// refuses those first: a vCPU count is bounded by the board's CPUs).
    pub fn vgic_frames(&self, board: &Board<'_>) -> VgicFrames {
        vgic_frames(board, self.cpus.len())
    }
}

/// The IPAs of the vGIC of a VM with `vcpu_count` vCPUs on `board`; see [`VgicFrames`].
pub fn vgic_frames(board: &Board<'_>, vcpu_count: usize) -> VgicFrames {
    let gicr_size = board.gic.gicr_stride.saturating_mul(vcpu_count as u64);
    VgicFrames {
        gicd: MemRange::new(board.gic.gicd.base, GICD_FRAME_SIZE),
        gicr: MemRange::new(board.gic.gicr.base, gicr_size),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FaultPolicy {
    /// Inject a synchronous external abort into the guest at EL1.
    Inject,
    /// Stop the VM and report it.
    Stop,
    /// Restart the VM from its pristine image and DTB, and report it.
    Restart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ExitAction {
    /// The VM stays stopped; its CPUs idle.
    Stop,
    /// The VM is reloaded from the pristine image and DTB and started again.
    Restart,
}

/// Page-aligned storage for the blobs the build tool embeds (guest images, DTBs), so that a
/// blob can later be mapped in place.
#[repr(C, align(4096))]
#[derive(Debug)]
pub struct PageAligned<T: ?Sized>(pub T);
