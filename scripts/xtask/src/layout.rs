//! Placement: where each image and device tree goes in its VM, where the hypervisor lives, and
//! which host memory backs each VM. The result, a [`Plan`], is checked by the validator shared
//! with the hypervisor and then by the checks only the build tool can make (image BSS).

use tessera_config::{
    Device,
    Board, Console, ExitAction, FaultPolicy, Image, Initrd, MemRange, MemoryRegion, PAGE_SIZE,
    InterruptMode, System, Vm, Watchdog, WfiPolicy, validate, vgic_frames,
};

use crate::devices::PassDevice;
use crate::dts::{ConsoleDesc, SystemDesc, VmDesc};
use crate::error::{Error, Result};
use crate::guest_dtb::{GuestDtb, ProbeTarget};
use crate::image::Arm64Header;

/// The block size the hypervisor maps with, and the alignment of everything it allocates.
pub const BLOCK_2M: u64 = 2 << 20;
/// Room in the hypervisor's region beyond its image and payload: BSS, stacks, page tables.
pub const HV_RESERVE: u64 = 8 << 20;

const fn align_down(value: u64, align: u64) -> u64 {
    value - value % align
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    value.checked_next_multiple_of(align)
}

/// The whole system, placed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub board: String,
    pub hv_region: MemRange,
    pub vms: Vec<VmPlan>,
    pub pools: Vec<crate::dts::PoolDesc>,
}

/// One VM, placed.
#[derive(Debug, Clone)]
pub struct VmPlan {
    pub name: String,
    /// `/vms/<node name>`, for messages.
    pub node: String,
    pub vmid: u16,
    pub cpus: Vec<u32>,
    pub memory: Vec<MemoryRegion>,
    pub console: Option<Console>,
    pub image: Vec<u8>,
    pub load_ipa: u64,
    pub entry_ipa: u64,
    /// Bytes the image occupies once running: its length, or the Image header's
    /// `image_size` (which counts BSS) if larger.
    pub image_footprint: u64,
    pub dtb: Vec<u8>,
    pub dtb_ipa: u64,
    /// The initrd's bytes, if the VM has one, loaded at `initrd_ipa`.
    pub initrd: Option<Vec<u8>>,
    /// 2 MiB aligned, after the image's footprint, in the first memory region (0 without an
    /// initrd).
    pub initrd_ipa: u64,
    pub fault_policy: FaultPolicy,
    pub on_system_off: ExitAction,
    pub on_system_reset: ExitAction,
    pub wfi: WfiPolicy,
    pub physical_counter: bool,
    pub watchdog: Option<Watchdog>,
    pub interrupt_mode: InterruptMode,
    /// Passed-through devices, resolved against the board's device tree.
    pub devices: Vec<PassDevice>,
    pub rtds: Option<tessera_config::RtdsParams>,
}

/// The files one VM is given, read: its image and its initrd; and its devices, resolved.
#[derive(Debug, Clone, Default)]
pub struct VmFiles {
    pub image: Vec<u8>,
    pub initrd: Option<Vec<u8>>,
    pub devices: Vec<PassDevice>,
}

/// Places `desc` on `board`. `files[i]` holds the bytes of VM `i`'s image and initrd.
pub fn plan(board: &Board<'_>, desc: &SystemDesc, files: Vec<VmFiles>) -> Result<Plan> {
    let mut vms = desc
        .vms
        .iter()
        .zip(files)
        .enumerate()
        .map(|(index, (vm, files))| place_vm(board, index, vm, files, &desc.vms))
        .collect::<Result<Vec<_>>>()?;
    let payload = vms.iter().map(VmPlan::payload_bytes).sum();
    let hv_region = hypervisor_region(board, payload);
    allocate_host_memory(board, hv_region, &desc.vms, &mut vms)?;
    for (vm_desc, vm) in desc.vms.iter().zip(&vms) {
        check_dma_identity(vm_desc, vm)?;
    }
    fill_probe_targets(board, hv_region, &desc.vms, &mut vms)?;
    Ok(Plan {
        board: desc.board.clone(),
        hv_region,
        vms,
        pools: desc.pools.clone(),
    })
}

/// A device that does DMA is programmed with guest-physical addresses and, with no SMMU to
/// translate them, uses them as host-physical ones: the VM's RAM must then be identity
/// mapped (`host-base` = `guest-base`), or its DMA would land in someone else's memory.
fn check_dma_identity(desc: &VmDesc, vm: &VmPlan) -> Result<()> {
    let does_dma = !desc.dma_unrestricted.is_empty()
        || desc.raw_devices.iter().any(|d| d.dma == crate::dts::DmaPolicy::Unrestricted);
    match vm.memory.iter().find(|r| r.ipa != r.pa) {
        Some(region) if does_dma => Err(Error::DmaNeedsIdentityRam { node: desc.node.clone(), ipa: region.ipa, pa: region.pa }),
        _ => Ok(()),
    }
}

fn place_vm(board: &Board<'_>, index: usize, desc: &VmDesc, files: VmFiles, all: &[VmDesc]) -> Result<VmPlan> {
    let VmFiles { image, initrd, devices } = files;
    let node = || desc.node.clone();
    let memory: Vec<MemoryRegion> = desc
        .memory
        .iter()
        .map(|m| MemoryRegion {
            ipa: m.guest_base,
            pa: m.host_base.unwrap_or(0),
            size: m.size,
        })
        .collect();
    let console = match desc.console {
        ConsoleDesc::None => None,
        ConsoleDesc::Uart {
            guest_base,
            interrupt,
        } => Some(Console {
            ipa: guest_base.unwrap_or(board.default_console_ipa),
            intid: interrupt.unwrap_or(board.default_console_intid),
        }),
    };
    // With no memory there is nowhere to place anything; the validator reports `NoMemory`.
    let base = memory.first().map_or(0, |r| r.ipa);
    let (load_ipa, entry_ipa, image_footprint) = match Arm64Header::parse(&image) {
        Some(header) => {
            if desc.load_offset.is_some() || desc.entry_offset.is_some() {
                return Err(Error::OffsetsWithImageHeader { node: node() });
            }
            if !base.is_multiple_of(BLOCK_2M) {
                return Err(Error::ImageBaseNotAligned { node: node(), base });
            }
            let load = base
                .checked_add(header.text_offset)
                .ok_or(Error::ImageOutsideMemory {
                    node: node(),
                    load_ipa: u64::MAX,
                })?;
            (load, load, header.image_size.max(image.len() as u64))
        }
        None => {
            let load_offset = desc.load_offset.unwrap_or(0);
            let entry_offset = desc.entry_offset.unwrap_or(load_offset);
            let load = base.checked_add(load_offset);
            let entry = base.checked_add(entry_offset);
            let (Some(load), Some(entry)) = (load, entry) else {
                return Err(Error::ImageOutsideMemory {
                    node: node(),
                    load_ipa: u64::MAX,
                });
            };
            (load, entry, image.len() as u64)
        }
    };
    let loaded = MemRange::new(load_ipa, image_footprint);
    let initrd_ipa = match &initrd {
        Some(bytes) => place_initrd(desc, &memory, &loaded, bytes.len() as u64)?,
        None => 0,
    };
    let initrd_range = initrd
        .as_ref()
        .map(|bytes| MemRange::new(initrd_ipa, bytes.len() as u64));
    // Probe targets need host addresses, which are allocated later: a placeholder list of the
    // same length and names keeps the tree's size, and `fill_probe_targets` rewrites it.
    let placeholder = desc.probe_targets.then(|| {
        let unplaced: Vec<(String, Vec<MemoryRegion>)> = all
            .iter()
            .map(|vm| (vm.name.clone(), vm.memory.iter().map(|_| MemoryRegion { ipa: 0, pa: 0, size: 0 }).collect()))
            .collect();
        probe_targets(board, MemRange::new(0, 0), index, &unplaced, &memory)
    });
    let dtb = guest_dtb(board, desc, &memory, console, initrd_range, &devices, placeholder.as_deref())?;
    let taken = [Some(loaded), initrd_range];
    // Without a slot the DTB is put at the RAM base, where the validator (or, if the clash is
    // only with BSS, `Plan::check_footprints`) will refuse it.
    let dtb_ipa = memory
        .first()
        .and_then(|first| dtb_slot(first, &taken, dtb.len() as u64))
        .unwrap_or(base);
    Ok(VmPlan {
        name: desc.name.clone(),
        node: node(),
        vmid: u16::try_from(index + 1).unwrap_or(u16::MAX),
        cpus: desc.cpus.clone(),
        memory,
        console,
        image,
        load_ipa,
        entry_ipa,
        image_footprint,
        dtb,
        dtb_ipa,
        initrd,
        initrd_ipa,
        fault_policy: desc.fault_policy,
        on_system_off: desc.on_system_off,
        on_system_reset: desc.on_system_reset,
        wfi: desc.wfi,
        physical_counter: desc.physical_counter,
        watchdog: desc.watchdog,
        interrupt_mode: desc.interrupt_mode,
        devices,
        rtds: desc.rtds,
    })
}

/// The guest's device tree, as [`GuestDtb`] builds it.
fn guest_dtb(
    board: &Board<'_>,
    desc: &VmDesc,
    memory: &[MemoryRegion],
    console: Option<Console>,
    initrd: Option<MemRange>,
    devices: &[PassDevice],
    probe_targets: Option<&[ProbeTarget]>,
) -> Result<Vec<u8>> {
    GuestDtb {
        vm_name: &desc.name,
        bootargs: &desc.bootargs,
        memory,
        vcpu_count: desc.cpus.len(),
        console,
        vgic: vgic_frames(board, desc.cpus.len()),
        maintenance_intid: board.gic.maintenance_intid,
        timer: board.timer,
        initrd,
        devices,
        probe_targets,
        console_interrupt: desc.interrupt_mode == InterruptMode::Virtual,
    }
    .build()
    .map_err(|e| Error::GuestDtb {
        node: desc.node.clone(),
        reason: e.to_string(),
    })
}

/// What VM `index` is told to aim at: the hypervisor's region, every other VM's RAM, its own
/// RAM's host addresses (`self`), the board's RAM banks and the devices the hypervisor keeps
/// (its UART, the GIC's distributor, redistributors and ITS). `vms` holds every VM's name and
/// memory, in order.
fn probe_targets(
    board: &Board<'_>,
    hv_region: MemRange,
    index: usize,
    vms: &[(String, Vec<MemoryRegion>)],
    own: &[MemoryRegion],
) -> Vec<ProbeTarget> {
    let target = |name: &str, range: MemRange| ProbeTarget { name: name.to_owned(), range };
    let mut targets = vec![target("hypervisor", hv_region)];
    for (other, (name, memory)) in vms.iter().enumerate() {
        if other != index {
            targets.extend(memory.iter().map(|r| target(name, r.pa_range())));
        }
    }
    targets.extend(own.iter().map(|r| target("self", r.pa_range())));
    targets.extend(board.ram.iter().map(|bank| target("ram", *bank)));
    targets.push(target("uart", MemRange::new(board.uart.base, board.uart.size)));
    targets.push(target("gicd", board.gic.gicd));
    targets.push(target("gicr", board.gic.gicr));
    targets.extend(board.gic.its.map(|its| target("its", its)));
    targets
}

/// Rewrites the device tree of every VM with `test-probe-targets` now that host memory is
/// allocated. The tree keeps its size (same entries and names), so nothing placed moves.
fn fill_probe_targets(board: &Board<'_>, hv_region: MemRange, descs: &[VmDesc], vms: &mut [VmPlan]) -> Result<()> {
    let memory: Vec<(String, Vec<MemoryRegion>)> = vms.iter().map(|vm| (vm.name.clone(), vm.memory.clone())).collect();
    for (index, (desc, vm)) in descs.iter().zip(vms.iter_mut()).enumerate() {
        if !desc.probe_targets {
            continue;
        }
        let targets = probe_targets(board, hv_region, index, &memory, &vm.memory);
        let initrd = vm.initrd.as_ref().map(|bytes| MemRange::new(vm.initrd_ipa, bytes.len() as u64));
        let dtb = guest_dtb(board, desc, &vm.memory, vm.console, initrd, &vm.devices, Some(&targets))?;
        if dtb.len() != vm.dtb.len() {
            return Err(Error::GuestDtb {
                node: desc.node.clone(),
                reason: format!("probe targets changed the tree's size ({} -> {} bytes)", vm.dtb.len(), dtb.len()),
            });
        }
        vm.dtb = dtb;
    }
    Ok(())
}

/// The initrd's IPA: the first 2 MiB boundary after the image's footprint (Linux's BSS must
/// not be scribbled on, booting.rst), which must leave room for it in the region the image
/// is loaded into.
fn place_initrd(
    desc: &VmDesc,
    memory: &[MemoryRegion],
    image: &MemRange,
    initrd_size: u64,
) -> Result<u64> {
    let region_end = memory
        .iter()
        .find(|r| r.ipa_range().contains(image.base))
        .and_then(|r| r.ipa_range().end());
    let start = image.end().and_then(|end| align_up(end, BLOCK_2M));
    let room = match (start, region_end) {
        (Some(start), Some(end)) => end.saturating_sub(start),
        _ => 0,
    };
    match start {
        Some(start) if initrd_size <= room => Ok(start),
        _ => Err(Error::NoRoomForInitrd {
            node: desc.node.clone(),
            initrd_size,
            room,
        }),
    }
}

/// The highest 2 MiB-aligned address in `region` where `dtb_size` bytes fit without touching
/// any of `taken` (the image, the initrd). The DTB must not cross a 2 MiB boundary
/// (booting.rst), so it starts a block.
fn dtb_slot(region: &MemoryRegion, taken: &[Option<MemRange>], dtb_size: u64) -> Option<u64> {
    if dtb_size == 0 || dtb_size > BLOCK_2M {
        return None;
    }
    let end = region.ipa_range().end()?;
    let mut slot = align_down(end.checked_sub(dtb_size)?, BLOCK_2M);
    while slot >= region.ipa {
        let candidate = MemRange::new(slot, dtb_size);
        if !taken.iter().flatten().any(|t| candidate.overlaps(t)) {
            return Some(slot);
        }
        slot = slot.checked_sub(BLOCK_2M)?;
    }
    None
}

/// The hypervisor's region: from the 2 MiB-aligned start of the RAM bank it is loaded into,
/// up past its load address by the payload plus [`HV_RESERVE`].
fn hypervisor_region(board: &Board<'_>, payload: u64) -> MemRange {
    let load = board.default_load_address;
    let bank = board
        .ram
        .iter()
        .find(|bank| bank.contains(load))
        .or(board.ram.first());
    let base = align_down(bank.map_or(load, |bank| bank.base), BLOCK_2M);
    let size = (load - base.min(load))
        .checked_add(payload)
        .and_then(|s| s.checked_add(HV_RESERVE))
        .and_then(|s| align_up(s, BLOCK_2M))
        .unwrap_or(u64::MAX - BLOCK_2M + 1);
    MemRange::new(base, size)
}

/// Gives each region without `host-base` the first 2 MiB-aligned free RAM after the
/// hypervisor's region, in VM order, skipping the regions that have a `host-base`.
fn allocate_host_memory(
    board: &Board<'_>,
    hv: MemRange,
    descs: &[VmDesc],
    vms: &mut [VmPlan],
) -> Result<()> {
    let mut taken: Vec<MemRange> = descs
        .iter()
        .flat_map(|vm| &vm.memory)
        .filter_map(|m| m.host_base.map(|pa| MemRange::new(pa, m.size)))
        .chain([hv])
        .collect();
    let mut banks = board.ram.to_vec();
    banks.sort_by_key(|bank| bank.base);
    let mut cursor = hv.end().unwrap_or(u64::MAX);
    for (desc, vm) in descs.iter().zip(vms) {
        for (memory, region) in desc.memory.iter().zip(&mut vm.memory) {
            if memory.host_base.is_some() {
                continue;
            }
            // An empty or unaligned size is the validator's to report, not an allocation failure.
            if region.size == 0 || region.size % PAGE_SIZE != 0 {
                region.pa = cursor;
                continue;
            }
            let pa = banks
                .iter()
                .find_map(|bank| fit_in_bank(bank, cursor, region.size, &taken))
                .ok_or_else(|| Error::OutOfRam {
                    node: memory.node.clone(),
                    size: region.size,
                })?;
            region.pa = pa;
            let range = MemRange::new(pa, region.size);
            taken.push(range);
            cursor = range.end().unwrap_or(u64::MAX);
        }
    }
    Ok(())
}

fn fit_in_bank(bank: &MemRange, cursor: u64, size: u64, taken: &[MemRange]) -> Option<u64> {
    let bank_end = bank.end()?;
    let mut start = align_up(cursor.max(bank.base), BLOCK_2M)?;
    loop {
        let candidate = MemRange::new(start, size);
        if candidate.end()? > bank_end {
            return None;
        }
        match taken.iter().find(|t| t.overlaps(&candidate)) {
            Some(clash) => start = align_up(clash.end()?, BLOCK_2M)?,
            None => return Some(start),
        }
    }
}

impl VmPlan {
    /// The VM's devices as the tables hold them: one entry per register window, the
    /// device's SPIs on its first window.
    pub fn device_table(&self) -> Vec<Device<'_>> {
        self.devices
            .iter()
            .flat_map(|device| {
                device.windows.iter().enumerate().map(|(i, w)| Device {
                    ipa: w.ipa,
                    pa: w.pa,
                    size: w.size,
                    access: w.access,
                    spis: if i == 0 { &device.spis[..] } else { &[] },
                    reset_writes: if i == 0 { &device.reset_writes[..] } else { &[] },
                })
            })
            .collect()
    }

    /// Bytes this VM adds to the hypervisor's `.payload` (each blob is page aligned).
    pub fn payload_bytes(&self) -> u64 {
        let page = |len: usize| (len as u64).next_multiple_of(PAGE_SIZE);
        page(self.image.len())
            + page(self.dtb.len())
            + self.initrd.as_ref().map_or(0, |i| page(i.len()))
    }
}

impl Plan {
    pub fn payload_bytes(&self) -> u64 {
        self.vms.iter().map(VmPlan::payload_bytes).sum()
    }

    /// The platform binary's cargo features this system needs: `rtds` when a CPU pool runs
    /// the RTDS scheduler, `watchdog` when a VM has a watchdog. Everything else is left out
    /// of the image.
    pub fn hypervisor_features(&self) -> Vec<&'static str> {
        let mut features = Vec::new();
        if self.pools.iter().any(|pool| pool.scheduler == tessera_config::Scheduler::Rtds) {
            features.push("rtds");
        }
        if self.vms.iter().any(|vm| vm.watchdog.is_some()) {
            features.push("watchdog");
        }
        if self.vms.iter().any(|vm| vm.interrupt_mode == InterruptMode::Direct) {
            features.push("direct");
        }
        features
    }

    /// Calls `f` with the plan as the shared [`System`] type.
    pub fn with_system<R>(&self, f: impl FnOnce(&System<'_>) -> R) -> R {
        let devices: Vec<Vec<Device<'_>>> = self.vms.iter().map(VmPlan::device_table).collect();
        let vms: Vec<Vm<'_>> = self
            .vms
            .iter()
            .zip(&devices)
            .map(|(vm, devices)| Vm {
                name: &vm.name,
                vmid: vm.vmid,
                cpus: &vm.cpus,
                memory: &vm.memory,
                console: vm.console,
                image: Image {
                    bytes: &vm.image,
                    load_ipa: vm.load_ipa,
                    entry_ipa: vm.entry_ipa,
                },
                dtb: &vm.dtb,
                dtb_ipa: vm.dtb_ipa,
                initrd: vm.initrd.as_ref().map(|bytes| Initrd {
                    bytes,
                    ipa: vm.initrd_ipa,
                }),
                fault_policy: vm.fault_policy,
                on_system_off: vm.on_system_off,
                on_system_reset: vm.on_system_reset,
                wfi: vm.wfi,
                physical_counter: vm.physical_counter,
                watchdog: vm.watchdog,
                interrupt_mode: vm.interrupt_mode,
                devices,
                rtds: vm.rtds,
            })
            .collect();
        let pools: Vec<tessera_config::CpuPool<'_>> = self
            .pools
            .iter()
            .map(|p| tessera_config::CpuPool { name: &p.name, cpus: &p.cpus, scheduler: p.scheduler })
            .collect();
        f(&System {
            board: &self.board,
            hv_region: self.hv_region,
            vms: &vms,
            pools: &pools,
        })
    }

    /// Runs the validator the hypervisor also links, then the checks that need what the
    /// tables do not carry (an Image header's BSS).
    pub fn validate(&self, board: &Board<'_>) -> Result<()> {
        self.with_system(|system| {
            validate(board, system).map_err(|e| Error::Invalid {
                message: e.to_string(),
            })
        })?;
        self.vms.iter().try_for_each(VmPlan::check_footprint)
    }
}

impl VmPlan {
    /// The image with its BSS fits after its load address, and the DTB and the initrd stay
    /// clear of it.
    fn check_footprint(&self) -> Result<()> {
        let region = self
            .memory
            .iter()
            .find(|r| r.ipa_range().contains(self.load_ipa));
        let Some(room) = region
            .and_then(|r| r.ipa_range().end())
            .map(|end| end - self.load_ipa)
        else {
            return Err(Error::ImageOutsideMemory {
                node: self.node.clone(),
                load_ipa: self.load_ipa,
            });
        };
        if self.image_footprint > room {
            return Err(Error::ImageTooLarge {
                node: self.node.clone(),
                image_size: self.image_footprint,
                room,
            });
        }
        let running = MemRange::new(self.load_ipa, self.image_footprint);
        if MemRange::new(self.dtb_ipa, self.dtb.len() as u64).overlaps(&running) {
            return Err(Error::NoRoomForDtb {
                node: self.node.clone(),
                dtb_size: self.dtb.len() as u64,
            });
        }
        if let Some(initrd) = &self.initrd
            && MemRange::new(self.initrd_ipa, initrd.len() as u64).overlaps(&running)
        {
            return Err(Error::InitrdOverImage {
                node: self.node.clone(),
                initrd_ipa: self.initrd_ipa,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn dtb_goes_in_the_last_free_2m_slot() {
        let region = MemoryRegion {
            ipa: 0x4000_0000,
            pa: 0,
            size: 32 * MIB,
        };
        let image = MemRange::new(0x4020_0000, 0x1000);
        assert_eq!(dtb_slot(&region, &[Some(image)], 0x800), Some(0x41e0_0000));
        // An image covering the top slot pushes the DTB one block down.
        let big = MemRange::new(0x41e0_0000, 2 * MIB);
        assert_eq!(dtb_slot(&region, &[Some(big)], 0x800), Some(0x41c0_0000));
        // A region ending mid-block: the DTB still starts at a block and fits before the end.
        let odd = MemoryRegion {
            ipa: 0x4000_0000,
            pa: 0,
            size: 3 * MIB,
        };
        assert_eq!(
            dtb_slot(&odd, &[Some(MemRange::new(0x4000_0000, 0x1000))], 0x800),
            Some(0x4020_0000)
        );
        // No slot at all.
        let tiny = MemoryRegion {
            ipa: 0x4000_0000,
            pa: 0,
            size: MIB,
        };
        assert_eq!(
            dtb_slot(&tiny, &[Some(MemRange::new(0x4000_0000, 0x1000))], 0x800),
            None
        );
    }

    /// A plan whose initrd sits in the image's BSS: placement never makes one, but the
    /// check must still catch it (the validator sees only the image's file bytes).
    #[test]
    fn an_initrd_in_the_image_bss_is_refused() {
        let vm = VmPlan {
            name: "linux".into(),
            node: "/vms/linux".into(),
            vmid: 1,
            cpus: vec![0],
            memory: vec![MemoryRegion {
                ipa: 0x4000_0000,
                pa: 0x4800_0000,
                size: 64 * MIB,
            }],
            console: None,
            image: vec![0; 0x1000],
            load_ipa: 0x4000_0000,
            entry_ipa: 0x4000_0000,
            image_footprint: 4 * MIB,
            dtb: vec![0; 0x100],
            dtb_ipa: 0x43e0_0000,
            initrd: Some(vec![0; 0x1000]),
            initrd_ipa: 0x4020_0000,
            fault_policy: FaultPolicy::Inject,
            on_system_off: ExitAction::Stop,
            on_system_reset: ExitAction::Restart,
            wfi: WfiPolicy::Native,
            physical_counter: true,
            watchdog: None,
            interrupt_mode: InterruptMode::Virtual,
            devices: Vec::new(),
            rtds: None,
        };
        let error = vm.check_footprint().unwrap_err();
        assert!(
            matches!(error, Error::InitrdOverImage { ref node, initrd_ipa: 0x4020_0000 } if node == "/vms/linux")
        );
        assert_eq!(
            error.to_string(),
            "/vms/linux: the initrd at 0x40200000 overlaps the image's BSS"
        );
        let clear = VmPlan {
            initrd_ipa: 0x4040_0000,
            ..vm
        };
        assert!(clear.check_footprint().is_ok());
    }

    #[test]
    fn allocation_skips_fixed_regions() {
        let bank = MemRange::new(0x4000_0000, 1024 * MIB);
        let taken = [
            MemRange::new(0x4000_0000, 16 * MIB),
            MemRange::new(0x4100_0000, 3 * MIB),
        ];
        assert_eq!(
            fit_in_bank(&bank, 0x4100_0000, 4 * MIB, &taken),
            Some(0x4140_0000)
        );
        assert_eq!(fit_in_bank(&bank, 0x7fe0_0000, 4 * MIB, &taken), None);
    }
}
