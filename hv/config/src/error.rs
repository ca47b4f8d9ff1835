//! Everything that can be wrong with a system description, one variant per failure.
//!
//! Each variant names the VMs involved (by name, which is also the node name under `/vms` in
//! the description), so the build tool can print the node paths. Each has a test in
//! `validate.rs` that produces it.

use core::fmt;

use crate::MemRange;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError<'a> {
    /// The description names a board other than the one it is built for.
    BoardMismatch { system: &'a str, board: &'a str },
    /// There is nothing to run.
    NoVms,
    /// More VMs than 8-bit VMIDs (VMID 0 is never given to a VM).
    TooManyVms { count: usize },
    /// Two VMs share a name.
    DuplicateVmName { name: &'a str },
    /// VMIDs must be unique and non-zero.
    BadVmid { vm: &'a str, vmid: u16 },
    /// A VM with no CPU can never run.
    NoCpus { vm: &'a str },
    /// A CPU index the board does not have.
    CpuNotOnBoard { vm: &'a str, cpu: u32, board_cpus: usize },
    /// One physical CPU given twice (to two VMs, or twice to one: `first == second`).
    CpuAssignedTwice { cpu: u32, first: &'a str, second: &'a str },
    /// A VM with no RAM.
    NoMemory { vm: &'a str },
    /// A region of size 0, or whose base + size overflows.
    BadMemoryRegion { vm: &'a str, ipa: u64, pa: u64, size: u64 },
    /// A region not aligned to 4 KiB (base or size).
    MemoryNotPageAligned { vm: &'a str, ipa: u64, pa: u64, size: u64 },
    /// A VM's host memory is not inside one of the board's RAM banks.
    MemoryOutsideRam { vm: &'a str, region: MemRange },
    /// A VM's host memory overlaps the hypervisor's own region.
    MemoryInHypervisor { vm: &'a str, region: MemRange, hypervisor: MemRange },
    /// Two VMs' host memory overlaps (or two regions of one VM: `first == second`).
    MemoryOverlap { first: &'a str, first_region: MemRange, second: &'a str, second_region: MemRange },
    /// Two things in one VM's IPA space overlap (RAM regions, RAM and the console, RAM or the
    /// console and the vGIC's frames).
    IpaOverlap { vm: &'a str, first: MemRange, second: MemRange },
    /// The hypervisor's region is not inside the board's RAM, or not aligned.
    HypervisorRegionInvalid { region: MemRange },
    /// The image's load address is not in the VM's RAM.
    ImageOutsideMemory { vm: &'a str, load_ipa: u64 },
    /// The image does not fit between its load address and the end of that RAM region.
    ImageTooLarge { vm: &'a str, image_size: u64, room: u64 },
    /// The entry point is not inside the loaded image.
    EntryOutsideImage { vm: &'a str, entry_ipa: u64 },
    /// The guest device tree does not fit in RAM, or overlaps the image.
    DtbPlacement { vm: &'a str, dtb_ipa: u64, dtb_size: u64 },
    /// The initrd is empty, does not fit in one RAM region, or overlaps the image or the DTB.
    InitrdPlacement { vm: &'a str, initrd_ipa: u64, initrd_size: u64 },
    /// A device window of size 0, or whose base + size overflows.
    BadDeviceRegion { vm: &'a str, pa: u64, size: u64 },
    /// A mapped device window (base or size, host or guest) is not 4 KiB aligned.
    DeviceNotPageAligned { vm: &'a str, pa: u64, size: u64 },
    /// A device window overlaps board RAM: passthrough is for MMIO, never for memory.
    DeviceInRam { vm: &'a str, region: MemRange },
    /// One device window given twice (to two VMs, or twice to one: `first == second`).
    DeviceAssignedTwice { first: &'a str, first_region: MemRange, second: &'a str, second_region: MemRange },
    /// A device window overlaps what the hypervisor keeps for itself: its UART or the GIC.
    DeviceOfHypervisor { vm: &'a str, region: MemRange },
    /// A device interrupt is the hypervisor's own (its UART's SPI).
    SpiOfHypervisor { vm: &'a str, intid: u32 },
    /// A device interrupt that is not an SPI (32..=1019).
    DeviceIrqNotSpi { vm: &'a str, intid: u32 },
    /// One SPI owned twice (by two devices, or a device and a console; `first == second`
    /// when inside one VM).
    SpiOwnedTwice { intid: u32, first: &'a str, second: &'a str },
    /// More SPIs in one VM (devices plus console) than its vGIC holds.
    TooManySpis { vm: &'a str, count: usize, max: usize },
    /// A CPU pool without CPUs.
    EmptyPool { pool: &'a str },
    /// A pool names a CPU the board does not have.
    PoolCpuNotOnBoard { pool: &'a str, cpu: u32, board_cpus: usize },
    /// A CPU listed in two pools (or twice in one: `first == second`).
    CpuInTwoPools { cpu: u32, first: &'a str, second: &'a str },
    /// `/cpupools` exists but a vCPU's CPU is in none of them.
    VcpuInNoPool { vm: &'a str, vcpu: usize, cpu: u32 },
    /// A VM on an RTDS CPU without `budget-us`/`period-us`.
    RtdsParamsMissing { vm: &'a str, cpu: u32 },
    /// RTDS parameters on a VM that runs on a null-scheduler CPU.
    RtdsParamsOnNullCpu { vm: &'a str, cpu: u32 },
    /// A zero budget, or a period outside `MIN_PERIOD_US..=MAX_PERIOD_US`.
    BadRtdsParams { vm: &'a str, budget_us: u32, period_us: u32 },
    /// More budget than period.
    BudgetExceedsPeriod { vm: &'a str, budget_us: u32, period_us: u32 },
    /// An RTDS VM whose WFI runs natively would hold its CPU while idle.
    RtdsNeedsTrappedWfi { vm: &'a str },
    /// The sum of budget / period over the vCPUs on one RTDS CPU exceeds 1 (partitioned EDF).
    CpuOverloaded { vm: &'a str, pool: &'a str, cpu: u32, load_ppm: u64 },
    /// More vCPUs on one RTDS CPU than its run queue holds.
    TooManyVcpusOnCpu { vm: &'a str, cpu: u32, max: usize },
    /// A device's reset write is not 4-byte aligned or not inside the device's window.
    BadResetWrite { vm: &'a str, pa: u64, size: u64, offset: u64 },
    /// A watchdog period (`property`: `watchdog-ms` or `watchdog-first-ms`) of zero or above
    /// [`crate::MAX_WATCHDOG_MS`].
    BadWatchdogPeriod { vm: &'a str, property: &'static str, ms: u32 },
    /// A direct-interrupt VM on a board whose GIC is not a GICv3 with Group 0 usable from
    /// Non-secure (`GicDesc::group0_nonsecure`): the hypervisor could not keep a kick the
    /// guest cannot mask.
    DirectNeedsGroup0 { vm: &'a str },
    /// A direct-interrupt VM on a CPU it does not own alone (a CPU of an rtds pool).
    DirectCpuShared { vm: &'a str, cpu: u32 },
    /// A direct-interrupt VM on the CPU that takes the console UART's SPI.
    DirectOnConsoleCpu { vm: &'a str, cpu: u32 },
    /// A direct-interrupt VM with `wfi = "trap"`: a trapped WFI is an EL2 entry, and the
    /// hypervisor cannot see the guest's interrupts to end it.
    DirectTrapsWfi { vm: &'a str },
    /// A direct-interrupt VM with a watchdog: the guest can make its CPUs deaf to the
    /// hypervisor's Group 0 interrupts (ICC_AP1R0_EL1), so the watchdog could not be enforced.
    DirectWithWatchdog { vm: &'a str },
}

impl fmt::Display for ConfigError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = |r: &MemRange| (r.base, r.base.wrapping_add(r.size));
        match self {
            Self::BoardMismatch { system, board } => {
                write!(f, "/: board = \"{system}\", but this is the \"{board}\" board")
            }
            Self::NoVms => write!(f, "/vms: no VM is described"),
            Self::TooManyVms { count } => write!(f, "/vms: {count} VMs, but at most 255 fit in 8-bit VMIDs"),
            Self::DuplicateVmName { name } => write!(f, "/vms/{name}: a second VM has the same name"),
            Self::BadVmid { vm, vmid } => write!(f, "/vms/{vm}: VMID {vmid} is zero or already used"),
            Self::NoCpus { vm } => write!(f, "/vms/{vm}: no CPU is given (property `cpus`)"),
            Self::CpuNotOnBoard { vm, cpu, board_cpus } => write!(
                f,
                "/vms/{vm}: CPU {cpu} does not exist on this board (it has CPUs 0..{})",
                board_cpus.saturating_sub(1)
            ),
            Self::CpuAssignedTwice { cpu, first, second } if first == second => {
                write!(f, "/vms/{first}: CPU {cpu} is listed twice")
            }
            Self::CpuAssignedTwice { cpu, first, second } => {
                write!(f, "/vms/{second}: CPU {cpu} is already given to /vms/{first}")
            }
            Self::NoMemory { vm } => write!(f, "/vms/{vm}: no memory is given"),
            Self::BadMemoryRegion { vm, ipa, pa, size } => write!(
                f,
                "/vms/{vm}: memory region ipa {ipa:#x} pa {pa:#x} size {size:#x} is empty or wraps around the address space"
            ),
            Self::MemoryNotPageAligned { vm, ipa, pa, size } => write!(
                f,
                "/vms/{vm}: memory region ipa {ipa:#x} pa {pa:#x} size {size:#x} is not 4 KiB aligned"
            ),
            Self::MemoryOutsideRam { vm, region } => {
                let (s, e) = r(region);
                write!(f, "/vms/{vm}: memory {s:#x}..{e:#x} is not inside the board's RAM")
            }
            Self::MemoryInHypervisor { vm, region, hypervisor } => {
                let (s, e) = r(region);
                let (hs, he) = r(hypervisor);
                write!(f, "/vms/{vm}: memory {s:#x}..{e:#x} overlaps the hypervisor's own region {hs:#x}..{he:#x}")
            }
            Self::MemoryOverlap { first, first_region, second, second_region } => {
                let (s1, e1) = r(first_region);
                let (s2, e2) = r(second_region);
                write!(
                    f,
                    "/vms/{second}: memory {s2:#x}..{e2:#x} overlaps memory {s1:#x}..{e1:#x} of /vms/{first}"
                )
            }
            Self::IpaOverlap { vm, first, second } => {
                let (s1, e1) = r(first);
                let (s2, e2) = r(second);
                write!(f, "/vms/{vm}: guest-physical {s1:#x}..{e1:#x} overlaps {s2:#x}..{e2:#x}")
            }
            Self::HypervisorRegionInvalid { region } => {
                let (s, e) = r(region);
                write!(f, "/: the hypervisor region {s:#x}..{e:#x} is not 2 MiB aligned inside the board's RAM")
            }
            Self::ImageOutsideMemory { vm, load_ipa } => {
                write!(f, "/vms/{vm}: the image's load address {load_ipa:#x} is not in the VM's memory")
            }
            Self::ImageTooLarge { vm, image_size, room } => write!(
                f,
                "/vms/{vm}: the image is {image_size} bytes but only {room} bytes of the VM's memory lie after its load address"
            ),
            Self::EntryOutsideImage { vm, entry_ipa } => {
                write!(f, "/vms/{vm}: the entry point {entry_ipa:#x} is not inside the loaded image")
            }
            Self::DtbPlacement { vm, dtb_ipa, dtb_size } => write!(
                f,
                "/vms/{vm}: the generated device tree ({dtb_size} bytes at {dtb_ipa:#x}) does not fit in the VM's memory beside its image"
            ),
            Self::InitrdPlacement { vm, initrd_ipa, initrd_size } => write!(
                f,
                "/vms/{vm}: the initrd ({initrd_size} bytes at {initrd_ipa:#x}) is empty, or does not fit in the VM's memory beside its image and device tree"
            ),
            Self::BadDeviceRegion { vm, pa, size } => {
                write!(f, "/vms/{vm}: device window {pa:#x} size {size:#x} is empty or wraps around the address space")
            }
            Self::DeviceNotPageAligned { vm, pa, size } => write!(
                f,
                "/vms/{vm}: device window {pa:#x} size {size:#x} is not 4 KiB aligned, so it cannot be mapped (use sub-page = \"trap\")"
            ),
            Self::DeviceInRam { vm, region } => {
                let (s, e) = r(region);
                write!(f, "/vms/{vm}: device window {s:#x}..{e:#x} overlaps the board's RAM")
            }
            Self::DeviceAssignedTwice { first, first_region, second, second_region } => {
                let (s1, e1) = r(first_region);
                let (s2, e2) = r(second_region);
                write!(
                    f,
                    "/vms/{second}: device window {s2:#x}..{e2:#x} overlaps device window {s1:#x}..{e1:#x} of /vms/{first}"
                )
            }
            Self::DeviceOfHypervisor { vm, region } => {
                let (s, e) = r(region);
                write!(f, "/vms/{vm}: device window {s:#x}..{e:#x} overlaps the hypervisor's UART or the GIC")
            }
            Self::SpiOfHypervisor { vm, intid } => {
                write!(f, "/vms/{vm}: SPI INTID {intid} is the hypervisor's own (its UART)")
            }
            Self::DeviceIrqNotSpi { vm, intid } => {
                write!(f, "/vms/{vm}: device interrupt INTID {intid} is not an SPI (32..=1019)")
            }
            Self::SpiOwnedTwice { intid, first, second } if first == second => {
                write!(f, "/vms/{first}: SPI INTID {intid} is owned twice")
            }
            Self::SpiOwnedTwice { intid, first, second } => {
                write!(f, "/vms/{second}: SPI INTID {intid} is already owned by /vms/{first}")
            }
            Self::TooManySpis { vm, count, max } => {
                write!(f, "/vms/{vm}: {count} SPIs (devices and console), but a vGIC holds at most {max}")
            }
            Self::EmptyPool { pool } => write!(f, "/cpupools/{pool}: no CPU is given (property `cpus`)"),
            Self::PoolCpuNotOnBoard { pool, cpu, board_cpus } => write!(
                f,
                "/cpupools/{pool}: CPU {cpu} does not exist on this board (it has CPUs 0..{})",
                board_cpus.saturating_sub(1)
            ),
            Self::CpuInTwoPools { cpu, first, second } if first == second => {
                write!(f, "/cpupools/{first}: CPU {cpu} is listed twice")
            }
            Self::CpuInTwoPools { cpu, first, second } => {
                write!(f, "/cpupools/{second}: CPU {cpu} is already in /cpupools/{first}")
            }
            Self::VcpuInNoPool { vm, vcpu, cpu } => {
                write!(f, "/vms/{vm}: vCPU {vcpu} runs on CPU {cpu}, which is in no CPU pool")
            }
            Self::RtdsParamsMissing { vm, cpu } => write!(
                f,
                "/vms/{vm}: CPU {cpu} is in an rtds pool, so the VM needs `budget-us` and `period-us`"
            ),
            Self::RtdsParamsOnNullCpu { vm, cpu } => write!(
                f,
                "/vms/{vm}: `budget-us`/`period-us`/`extratime` are given, but CPU {cpu} is not in an rtds pool"
            ),
            Self::BadRtdsParams { vm, budget_us, period_us } => write!(
                f,
                "/vms/{vm}: budget {budget_us} us / period {period_us} us: the budget must be > 0 and the period {}..={} us",
                crate::MIN_PERIOD_US, crate::MAX_PERIOD_US
            ),
            Self::BudgetExceedsPeriod { vm, budget_us, period_us } => {
                write!(f, "/vms/{vm}: budget {budget_us} us exceeds its period {period_us} us")
            }
            Self::RtdsNeedsTrappedWfi { vm } => {
                write!(f, "/vms/{vm}: a VM in an rtds pool must trap WFI (wfi = \"trap\"), or it would hold its CPU while idle")
            }
            Self::CpuOverloaded { vm, pool, cpu, load_ppm } => write!(
                f,
                "/vms/{vm}: CPU {cpu} of /cpupools/{pool} would be loaded to {}.{:06} (sum of budget/period > 1): not schedulable under partitioned EDF",
                load_ppm / 1_000_000, load_ppm % 1_000_000
            ),
            Self::TooManyVcpusOnCpu { vm, cpu, max } => {
                write!(f, "/vms/{vm}: CPU {cpu} would run more than {max} vCPUs")
            }
            Self::BadResetWrite { vm, pa, size, offset } => write!(
                f,
                "/vms/{vm}: device window {pa:#x} size {size:#x}: reset write at offset {offset:#x} is not a 4-byte aligned register inside the window"
            ),
            Self::BadWatchdogPeriod { vm, property, ms } => write!(
                f,
                "/vms/{vm}: {property} = <{ms}> is not a period of 1..={} ms",
                crate::MAX_WATCHDOG_MS
            ),
            Self::DirectNeedsGroup0 { vm } => write!(
                f,
                "/vms/{vm}: interrupt-mode = \"direct\" needs a GICv3 whose Group 0 the hypervisor owns (GICD_CTLR.DS = 1); this board's GIC has not"
            ),
            Self::DirectCpuShared { vm, cpu } => write!(
                f,
                "/vms/{vm}: interrupt-mode = \"direct\" needs CPUs the VM owns alone, but CPU {cpu} is in an rtds pool"
            ),
            Self::DirectOnConsoleCpu { vm, cpu } => write!(
                f,
                "/vms/{vm}: interrupt-mode = \"direct\" on CPU {cpu}, which takes the console UART's interrupt; give the VM other CPUs"
            ),
            Self::DirectTrapsWfi { vm } => write!(
                f,
                "/vms/{vm}: interrupt-mode = \"direct\" needs wfi = \"native\" (a trapped WFI is an EL2 entry the hypervisor cannot end)"
            ),
            Self::DirectWithWatchdog { vm } => write!(
                f,
                "/vms/{vm}: interrupt-mode = \"direct\" and watchdog-ms cannot be combined: a direct guest can hold off the hypervisor's interrupts (ICC_AP1R0_EL1), so the watchdog could not act"
            ),
        }
    }
}
