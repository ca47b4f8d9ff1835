//! Each VM's virtual GICv3: the pure model (`tessera_vdev::vgic`) plus the glue that loads
//! its list registers around every guest entry, carries out its effects on the physical GIC
//! and kicks the CPUs of vCPUs that have something new pending.
//!
//! The VM's distributor and redistributors sit at the board's own GIC addresses in its IPA
//! space (the build tool describes them there in the guest DTB); neither is mapped, so every
//! access traps here.
//!
//! Lock order: a VM's `uart` lock may be held when its `VGICS` lock is taken, never the
//! reverse; `GICD` (the physical distributor) is innermost.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use tessera_config::{Board, Vm};
use tessera_core::vcpu;
use tessera_drivers::gicv3::GicError;
use tessera_vdev::mmio::{MmioError, Width};
use tessera_vdev::vgic::regs::lr;
use tessera_vdev::vgic::{Effect, OwnedIrq, VgicConfig, WriteOutcome};

use crate::Platform;
use crate::vm::{MAX_VCPUS, MAX_VMS};

/// Most SPIs one VM may own (its console and its passed-through devices' SPIs); the validator
/// holds every VM to it.
const VGIC_SPIS: usize = tessera_config::MAX_VM_SPIS;

pub type Vgic = tessera_vdev::vgic::Vgic<MAX_VCPUS, VGIC_SPIS>;

/// A VM's vGIC model plus what lets the run loop skip flushing and syncing when nothing can
/// have changed: every mutation of the model bumps `epoch`, and `current[vcpu]` records the
/// epoch at which that vCPU's list registers were last written with what a flush loads. While the epoch is the same, flushing again would
/// write the same values. Syncing reads back only the list registers in use, and none when
/// the last flush loaded nothing (the guest cannot have changed an empty one).
pub struct Tracked {
    /// The VM's index (its `QUICK` entry).
    vm: usize,
    model: Vgic,
    epoch: u64,
    current: [Option<u64>; MAX_VCPUS],
    /// The last level given for an emulated line (the console's), so that an unchanged
    /// level, reported after every UART access, neither touches the model nor the epoch.
    last_level: Option<(u32, bool)>,
    /// How many list registers, from 0, the last flush for each vCPU wrote non-zero: the
    /// next flush writes those and the new ones, and leaves the rest (already 0) alone.
    written: [u8; MAX_VCPUS],
}

impl Tracked {
    /// The model, for a change: the epoch moves on.
    fn changing(&mut self) -> &mut Vgic {
        self.set_epoch(self.epoch.wrapping_add(1));
        &mut self.model
    }

    fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        QUICK[self.vm].epoch.store(epoch, Ordering::Release);
    }

    fn set_current(&mut self, vcpu: usize, epoch: Option<u64>) {
        if let (Some(current), Some(quick)) = (self.current.get_mut(vcpu), QUICK[self.vm].current.get(vcpu)) {
            *current = epoch;
            quick.store(epoch.map_or(0, |epoch| epoch.wrapping_add(1)), Ordering::Relaxed);
        }
    }

    fn set_used(&self, vcpu: usize, used: usize) {
        if let Some(quick) = QUICK[self.vm].used.get(vcpu) {
            quick.store(used as u8, Ordering::Relaxed);
        }
    }
}

static VGICS: [spin::Once<spin::Mutex<Tracked>>; MAX_VMS] = [const { spin::Once::new() }; MAX_VMS];

/// Copies of what the run loop checks on every exit, readable without the VM's vGIC lock:
/// the epoch, each vCPU's `current` (as epoch + 1, 0 for none: all-zero statics stay out of
/// the image, in BSS) and the list registers its last
/// flush filled. Written under the lock. A check that reads a stale epoch misses only a change
/// made by another CPU at that moment, which kicks this vCPU (an exit, another flush) as the
/// change does with the lock too.
struct Quick {
    epoch: AtomicU64,
    current: [AtomicU64; MAX_VCPUS],
    used: [AtomicU8; MAX_VCPUS],
}

static QUICK: [Quick; MAX_VMS] = [const {
    Quick {
        epoch: AtomicU64::new(0),
        current: [const { AtomicU64::new(0) }; MAX_VCPUS],
        used: [const { AtomicU8::new(0) }; MAX_VCPUS],
    }
}; MAX_VMS];

/// CPUs whose list register 0 is reserved for the virtual-timer fast path of the vectors
/// (`enable_timer_fast_path`): null-pool CPUs, which run one vCPU for good. The model loads
/// list registers 1.. there; the fast path gets the timer's List Register value from the
/// model at each flush (`Vgic::hw_private_lr`).
static TIMER_FAST_PATH: [AtomicBool; tessera_arch::MAX_CPUS] = [const { AtomicBool::new(false) }; tessera_arch::MAX_CPUS];

/// Reserves this CPU's list register 0 for the virtual-timer fast path (before its vCPU first
/// runs; the fast path itself turns on at the next flush).
pub fn enable_timer_fast_path() {
    if let Some(flag) = TIMER_FAST_PATH.get(tessera_arch::cpu::index()) {
        flag.store(true, Ordering::Relaxed);
        tessera_arch::gic_cpu::enable_wfi_fast_path();
    }
}

/// The first list register the model uses on this CPU.
fn lr_base() -> usize {
    TIMER_FAST_PATH
        .get(tessera_arch::cpu::index())
        .is_some_and(|flag| flag.load(Ordering::Relaxed)) as usize
}

/// Serializes the read-modify-write register updates on the physical distributor.
static GICD: spin::Mutex<()> = spin::Mutex::new(());

/// Size of the distributor frame (IHI 0069 12.9) and of one redistributor's two frames.
pub const GICD_FRAME: u64 = 0x1_0000;
pub const GICR_FRAME_PAIR: u64 = 0x2_0000;

/// Creates VM `index`'s vGIC (or resets it on a restart).
pub fn init(platform: &Platform, index: usize) -> bool {
    let vm = &platform.system.vms[index];
    if let Some(existing) = VGICS[index].get() {
        let mut tracked = existing.lock();
        tracked.changing().reset();
        for vcpu in 0..MAX_VCPUS {
            tracked.set_current(vcpu, None);
            tracked.set_used(vcpu, 0);
        }
        tracked.last_level = None;
        tracked.written = [u8::MAX; MAX_VCPUS];
        return true;
    }
    let mut mpidrs = [0u64; MAX_VCPUS];
    let count = vm.cpus.len().min(MAX_VCPUS);
    for (i, mpidr) in mpidrs.iter_mut().enumerate().take(count) {
        *mpidr = vcpu::vmpidr(i);
    }
    let timer = platform.board.timer.virt;
    let ppis = [OwnedIrq { intid: timer, hw: Some(timer) }];
    let mut spis = [OwnedIrq { intid: 0, hw: None }; VGIC_SPIS];
    let mut spi_count = 0;
    if let Some(console) = vm.console {
        spis[0] = OwnedIrq { intid: console.intid, hw: None };
        spi_count = 1;
    }
    // Passed-through devices' SPIs: virtual INTID = physical INTID, HW-linked.
    for &intid in vm.devices.iter().flat_map(|d| d.spis) {
        if let Some(slot) = spis.get_mut(spi_count) {
            *slot = OwnedIrq { intid, hw: Some(intid) };
            spi_count += 1;
        }
    }
    let config = VgicConfig { mpidrs: &mpidrs[..count], ppis: &ppis, spis: &spis[..spi_count] };
    match Vgic::new(&config) {
        Ok(vgic) => {
            VGICS[index].call_once(|| spin::Mutex::new(Tracked {
                    vm: index,
                    model: vgic,
                    epoch: 0,
                    current: [None; MAX_VCPUS],
                    last_level: None,
                    written: [u8::MAX; MAX_VCPUS],
                }));
            true
        }
        Err(error) => {
            defmt::error!("VM {=str}: vGIC not built: {}", vm.name, error);
            false
        }
    }
}

fn vgic(index: usize) -> Option<&'static spin::Mutex<Tracked>> {
    VGICS.get(index).and_then(spin::Once::get)
}

/// Where the VM's trapped GIC frames are: `(GICD base, GICR base)`.
pub fn frames(board: &Board<'_>) -> (u64, u64) {
    (board.gic.gicd.base, board.gic.gicr.base)
}

/// Loads vCPU `vcpu`'s pending interrupts into this CPU's list registers before entry.
pub fn flush(vm_index: usize, vcpu_index: usize, timer: u32) {
    let (Some(quick), Some(vgic)) = (QUICK.get(vm_index), vgic(vm_index)) else { return };
    let current = quick.current.get(vcpu_index).map(|c| c.load(Ordering::Relaxed));
    if current == Some(quick.epoch.load(Ordering::Acquire).wrapping_add(1)) {
        // Nothing changed since the last flush (most exits): no lock taken.
        return;
    }
    let tracked = vgic.lock();
    let Some(current) = tracked.current.get(vcpu_index).copied() else { return };
    if current == Some(tracked.epoch) {
        // Nothing changed since the list registers (and the interface) were written with
        // what this flush would write. (Checked first: this is most exits.)
        return;
    }
    flush_now(tracked, vcpu_index, timer);
}

/// The flush proper, kept out of line so that the check above, which most exits stop at,
/// stays small (no large prologue).
#[inline(never)]
fn flush_now(mut tracked: spin::MutexGuard<'_, Tracked>, vcpu_index: usize, timer: u32) {
    let base = lr_base();
    let count = tessera_arch::gic_cpu::list_register_count().saturating_sub(base);
    if base != 0 {
        // The fast path's value follows the guest's configuration of its timer PPI, which
        // only a change of the model (a new epoch, hence this flush) can alter.
        let fast = tracked.model.hw_private_lr(vcpu_index, timer);
        tessera_arch::gic_cpu::set_timer_fast_path(fast);
        retarget_pending_timer(&mut tracked, vcpu_index, timer, fast);
    }
    let (flush, write) = {
        // Written as the model produces them (no zeroed staging array: this is every flush).
        let flush = tracked.model.flush_with(vcpu_index, count, |n, lr| tessera_arch::gic_cpu::write_lr(base + n, lr));
        if flush.used != 0 || flush.more_pending {
            // Loading changed the model (pending state moved into list registers).
            let epoch = tracked.epoch.wrapping_add(1);
            tracked.set_epoch(epoch);
        }
        let epoch = tracked.epoch;
        tracked.set_current(vcpu_index, Some(epoch));
        tracked.set_used(vcpu_index, flush.used);
        // Whatever the CPU held at boot (`u8::MAX`) is cleared once; after that only the list
        // registers the last flush filled can be non-zero.
        let write = usize::from(tracked.written[vcpu_index]).max(flush.used).min(count);
        tracked.written[vcpu_index] = flush.used as u8;
        drop(tracked);
        (flush, write)
    };
    // The ones the last flush filled and this one did not.
    for n in flush.used..write {
        tessera_arch::gic_cpu::write_lr(base + n, 0);
    }
    tessera_arch::gic_cpu::set_virtual_interface(true, flush.more_pending);
}

/// A timer interrupt the vectors loaded into list register 0 that the guest has not taken
/// yet follows the guest's configuration as one the model holds would: a new priority is
/// written into it (else a guest that masked it by priority would never see it again), and
/// if the guest disabled the PPI or Group 1 (`fast` = 0) the pending state goes to the model,
/// which keeps it until the guest enables it again. Runs on the vCPU's own CPU, at a flush.
fn retarget_pending_timer(tracked: &mut Tracked, vcpu_index: usize, timer: u32, fast: u64) {
    let lr0 = tessera_arch::gic_cpu::read_lr(0);
    let pending_only = lr0 & (lr::PENDING | lr::ACTIVE) == lr::PENDING;
    if !pending_only || lr0 == fast {
        return;
    }
    if fast != 0 {
        tessera_arch::gic_cpu::write_lr(0, fast);
    } else {
        tessera_arch::gic_cpu::write_lr(0, 0);
        // The physical interrupt stays active (HW-linked): only this vCPU can take it.
        let _ = tracked.changing().hw_fired(timer, vcpu_index);
    }
}

/// Forgets what vCPU `vcpu_index`'s list registers hold: after a context switch on an RTDS
/// CPU they hold another vCPU's, so the next flush must run and write all of them.
#[cfg(feature = "rtds")]
pub fn forget_flush(vm_index: usize, vcpu_index: usize) {
    if let Some(vgic) = vgic(vm_index) {
        let mut tracked = vgic.lock();
        tracked.set_current(vcpu_index, None);
        if let Some(written) = tracked.written.get_mut(vcpu_index) {
            *written = u8::MAX;
        }
    }
}

/// Reads the list registers back after an exit; returns vCPUs to kick.
pub fn sync(vm_index: usize, vcpu_index: usize) -> u32 {
    let quick_used = QUICK.get(vm_index).and_then(|quick| quick.used.get(vcpu_index));
    if quick_used.is_none_or(|used| used.load(Ordering::Relaxed) == 0) {
        // Nothing loaded (most exits): no lock taken.
        return 0;
    }
    let Some(vgic) = vgic(vm_index) else { return 0 };
    let tracked = vgic.lock();
    // Only the list registers the last flush filled can hold anything; with none filled,
    // the guest cannot have changed any.
    let used = tracked.model.lrs_in_use(vcpu_index);
    if used == 0 {
        return 0;
    }
    sync_now(tracked, vcpu_index, used)
}

/// The sync proper, out of line like `flush_now`.
#[inline(never)]
fn sync_now(mut tracked: spin::MutexGuard<'_, Tracked>, vcpu_index: usize, used: usize) -> u32 {
    let base = lr_base();
    let read = |n: usize| (n < used).then(|| tessera_arch::gic_cpu::read_lr(base + n));
    let kick = tracked.changing().sync_with(vcpu_index, read);
    tracked.set_used(vcpu_index, 0);
    kick
}

/// A HW-linked physical interrupt (the virtual timer) fired while `vcpu` ran here.
pub fn hw_fired(vm_index: usize, vcpu_index: usize, intid: u32) -> u32 {
    vgic(vm_index).map_or(0, |vgic| vgic.lock().changing().hw_fired(intid, vcpu_index))
}

/// An emulated device's interrupt line changed.
pub fn set_level(vm_index: usize, intid: u32, level: bool) -> u32 {
    vgic(vm_index).map_or(0, |vgic| {
        let mut tracked = vgic.lock();
        if tracked.last_level == Some((intid, level)) {
            return 0;
        }
        tracked.last_level = Some((intid, level));
        tracked.changing().set_level(intid, level)
    })
}

/// The guest wrote ICC_SGI1R_EL1.
pub fn send_sgi(vm_index: usize, sender: usize, value: u64) -> u32 {
    vgic(vm_index).map_or(0, |vgic| vgic.lock().changing().send_sgi(sender, value))
}

/// The priority the guest gave `intid` in its vGIC (an SPI in the distributor; an SGI or
/// PPI in vCPU `vcpu_index`'s redistributor), for a direct VM's physical GIC.
pub fn priority(vm_index: usize, vcpu_index: usize, intid: u32) -> Option<u8> {
    let tracked = vgic(vm_index)?.lock();
    let word = u64::from(intid & !3);
    let value = if intid < 32 {
        // GICR_IPRIORITYR<n>, in the SGI frame (IHI 0069 12.10.19).
        tracked.model.redist_read(vcpu_index, 0x1_0400 + word, Width::Word).ok()?
    } else {
        // GICD_IPRIORITYR<n> (IHI 0069 12.9.28).
        tracked.model.dist_read(0x400 + word, Width::Word).ok()?
    };
    Some((value >> (8 * (intid % 4))) as u8)
}

/// GICR_ISENABLER0 of vCPU `vcpu_index` as the guest set it in its vGIC (bit n = SGI/PPI n
/// enabled), for a direct VM's physical redistributor.
pub fn private_enables(vm_index: usize, vcpu_index: usize) -> Option<u32> {
    let tracked = vgic(vm_index)?.lock();
    // GICR_ISENABLER0, in the SGI frame (IHI 0069 12.10.14).
    tracked.model.redist_read(vcpu_index, 0x1_0100, Width::Word).ok().map(|value| value as u32)
}

/// True if `vcpu` has an interrupt to take (wakes it from a trapped WFI).
pub fn has_pending(vm_index: usize, vcpu_index: usize) -> bool {
    vgic(vm_index).is_some_and(|vgic| vgic.lock().model.has_pending(vcpu_index))
}

/// `has_pending` for the vCPU running on this CPU, whose virtual timer the fast path may have
/// made pending in list register 0 (the model does not know about it).
pub fn has_pending_here(vm_index: usize, vcpu_index: usize) -> bool {
    (lr_base() != 0 && tessera_arch::gic_cpu::read_lr(0) & lr::PENDING != 0)
        || has_pending(vm_index, vcpu_index)
}

/// Which trapped frame an IPA falls in.
pub enum Frame {
    Distributor { offset: u64 },
    Redistributor { vcpu: usize, offset: u64 },
}

pub fn frame_of(board: &Board<'_>, vm: &Vm<'_>, ipa: u64) -> Option<Frame> {
    let (gicd, gicr) = frames(board);
    if ipa >= gicd && ipa - gicd < GICD_FRAME {
        return Some(Frame::Distributor { offset: ipa - gicd });
    }
    let gicr_size = GICR_FRAME_PAIR * vm.cpus.len() as u64;
    if ipa >= gicr && ipa - gicr < gicr_size {
        let offset = ipa - gicr;
        return Some(Frame::Redistributor {
            vcpu: (offset / GICR_FRAME_PAIR) as usize,
            offset: offset % GICR_FRAME_PAIR,
        });
    }
    None
}

/// A trapped guest access to its GIC frames. Returns the value read, if a read, and the
/// vCPUs to kick.
pub fn access(
    platform: &Platform,
    vm_index: usize,
    vcpu_index: usize,
    frame: Frame,
    width: Width,
    write: Option<u64>,
) -> Result<(Option<u64>, u32), MmioError> {
    let Some(vgic) = vgic(vm_index) else { return Err(MmioError::BadOffset { offset: 0 }) };
    let outcome: WriteOutcome = {
        let mut tracked = vgic.lock();
        match (frame, write) {
            (Frame::Distributor { offset }, None) => {
                return Ok((Some(tracked.model.dist_read(offset, width)?), 0));
            }
            (Frame::Redistributor { vcpu, offset }, None) => {
                return Ok((Some(tracked.model.redist_read(vcpu, offset, width)?), 0));
            }
            (Frame::Distributor { offset }, Some(value)) => {
                tracked.changing().dist_write(vcpu_index, offset, width, value)?
            }
            (Frame::Redistributor { vcpu, offset }, Some(value)) => {
                tracked.changing().redist_write(vcpu_index, vcpu, offset, width, value)?
            }
        }
    };
    let vm = &platform.system.vms[vm_index];
    for effect in &outcome.effects {
        if let Err(error) = apply(platform, vm, *effect) {
            defmt::warn!("VM {=str}: physical GIC effect failed: {}", vm.name, gic_error(&error));
        }
    }
    Ok((None, outcome.kick))
}

fn gic_error(error: &GicError) -> &'static str {
    match error {
        GicError::Timeout => "timeout",
        GicError::NoRedistributor { .. } => "no redistributor",
        GicError::Group0Unavailable => "Group 0 is not the hypervisor's",
    }
}

/// Carries out one of the model's effects on the physical distributor. Only SPIs: the
/// HW-linked PPI (the virtual timer) is enabled on every CPU at bring-up.
fn apply(platform: &Platform, vm: &Vm<'_>, effect: Effect) -> Result<(), GicError> {
    let cpu_mpidr = |vcpu: usize| {
        vm.cpus
            .get(vcpu)
            .and_then(|&cpu| platform.board.cpus.get(cpu as usize))
            .map(|desc| desc.mpidr)
    };
    let _gicd = GICD.lock();
    match effect {
        Effect::EnablePhysical { hw_intid, vcpu } if hw_intid >= 32 => match cpu_mpidr(vcpu) {
            Some(mpidr) => platform.gicd.enable_spi(hw_intid, mpidr),
            None => Ok(()),
        },
        Effect::DisablePhysical { hw_intid, .. } if hw_intid >= 32 => platform.gicd.disable_spi(hw_intid),
        Effect::PendPhysical { hw_intid, .. } if hw_intid >= 32 => platform.gicd.set_pending_spi(hw_intid),
        Effect::DeactivatePhysical { hw_intid, .. } if hw_intid >= 32 => platform.gicd.deactivate_spi(hw_intid),
        // A direct VM's timer PPI lives in its CPU's redistributor (`direct.rs`).
        _ => crate::direct::apply_private(platform, vm, effect),
    }
}

/// Enables a physical SPI routed to `mpidr` (the console's, at bring-up).
pub fn enable_physical_spi(platform: &Platform, intid: u32, mpidr: u64) -> Result<(), GicError> {
    let _gicd = GICD.lock();
    platform.gicd.enable_spi(intid, mpidr)
}

/// Takes a stopping or restarting VM's passed-through SPIs back: disabled (a restarted guest
/// enables them again) and deactivated (one the guest had taken but not yet EOIed would
/// otherwise stay active on the physical GIC and never fire again).
pub fn release_device_spis(platform: &Platform, vm: &Vm<'_>) {
    let _gicd = GICD.lock();
    for &intid in vm.devices.iter().flat_map(|d| d.spis) {
        let disabled = platform.gicd.disable_spi(intid);
        let deactivated = platform.gicd.deactivate_spi(intid);
        if let Err(error) = disabled.and(deactivated) {
            defmt::warn!("VM {=str}: SPI {=u32} not released: {}", vm.name, intid, gic_error(&error));
        }
    }
}
