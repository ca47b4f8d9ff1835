//! A VM's run-time state: its power state, its vCPUs' power states and its emulated UART.
//!
//! A VM is `Running`, `Stopped` or `Restarting`. Every change of VM state bumps its
//! `generation`; a CPU running one of the VM's vCPUs compares generations after each exit and
//! goes back to waiting when they differ. vCPU power follows PSCI: `Off` → `OnPending` (a
//! CPU_ON, or the boot vCPU) → `On` (its CPU picked it up) → `Off`.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use tessera_core::psci::PowerState;
use tessera_vdev::sbsa_uart::SbsaUart;

pub const MAX_VMS: usize = 8;
pub const MAX_VCPUS: usize = tessera_arch::MAX_CPUS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum VmState {
    Running,
    Stopped,
    Restarting,
}

const STATE_RUNNING: u8 = 1;
/// Zero, so that `VMS` starts in BSS and costs no image bytes.
const STATE_STOPPED: u8 = 0;
const STATE_RESTARTING: u8 = 2;

const POWER_OFF: u8 = 0;
const POWER_ON_PENDING: u8 = 1;
const POWER_ON: u8 = 2;
/// A CPU_ON has claimed the slot and is writing the entry point.
const POWER_CLAIMED: u8 = 3;

pub struct VcpuSlot {
    power: AtomicU8,
    /// Entry point and context ID of a pending CPU_ON (or the boot vCPU's entry and DTB).
    pub entry: AtomicU64,
    pub context: AtomicU64,
    /// True while this vCPU's CPU is inside the guest or handling an exit from it (a restart
    /// waits for false before it resets the VM).
    pub in_guest: AtomicBool,
}

impl VcpuSlot {
    const fn new() -> Self {
        Self {
            power: AtomicU8::new(POWER_OFF),
            entry: AtomicU64::new(0),
            context: AtomicU64::new(0),
            in_guest: AtomicBool::new(false),
        }
    }

    pub fn power(&self) -> PowerState {
        match self.power.load(Ordering::Acquire) {
            POWER_ON => PowerState::On,
            POWER_ON_PENDING | POWER_CLAIMED => PowerState::OnPending,
            _ => PowerState::Off,
        }
    }

    /// Records a start request; fails (returning the current state) unless the vCPU is off.
    pub fn request_on(&self, entry: u64, context: u64) -> Result<(), PowerState> {
        // Claim first, so two racing CPU_ONs cannot both write the entry point.
        match self.power.compare_exchange(POWER_OFF, POWER_CLAIMED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                self.entry.store(entry, Ordering::Relaxed);
                self.context.store(context, Ordering::Relaxed);
                // Publish the entry point before the CPU that runs this vCPU can see the request.
                self.power.store(POWER_ON_PENDING, Ordering::Release);
                Ok(())
            }
            Err(_) => Err(self.power()),
        }
    }

    /// Takes a pending start: returns (entry, context) and marks the vCPU on.
    pub fn take_pending(&self) -> Option<(u64, u64)> {
        self.power
            .compare_exchange(POWER_ON_PENDING, POWER_ON, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| (self.entry.load(Ordering::Relaxed), self.context.load(Ordering::Relaxed)))
    }

    pub fn set_off(&self) {
        self.power.store(POWER_OFF, Ordering::Release);
    }
}

pub struct VmRuntime {
    state: AtomicU8,
    generation: AtomicU32,
    pub vcpus: [VcpuSlot; MAX_VCPUS],
    pub uart: spin::Mutex<SbsaUart>,
    /// VTTBR_EL2 for this VM (stage-2 root and VMID), set once at boot.
    pub vttbr: AtomicU64,
    /// CNTVOFF_EL2 for every vCPU of this VM: the physical count when the VM (re)started,
    /// so its virtual counter starts from zero.
    pub cntvoff: AtomicU64,
}

impl VmRuntime {
    const fn new() -> Self {
        Self {
            state: AtomicU8::new(STATE_STOPPED),
            generation: AtomicU32::new(0),
            vcpus: [const { VcpuSlot::new() }; MAX_VCPUS],
            uart: spin::Mutex::new(SbsaUart::new()),
            vttbr: AtomicU64::new(0),
            cntvoff: AtomicU64::new(0),
        }
    }

    pub fn state(&self) -> VmState {
        match self.state.load(Ordering::Acquire) {
            STATE_RUNNING => VmState::Running,
            STATE_RESTARTING => VmState::Restarting,
            _ => VmState::Stopped,
        }
    }

    pub fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    /// Moves the VM to `state`, turns every vCPU off and starts a new generation.
    /// Returns false if the VM was already in `state` (someone else got there first).
    pub fn transition(&self, state: VmState) -> bool {
        let new = match state {
            VmState::Running => STATE_RUNNING,
            VmState::Stopped => STATE_STOPPED,
            VmState::Restarting => STATE_RESTARTING,
        };
        if self.state.swap(new, Ordering::AcqRel) == new {
            return false;
        }
        if state != VmState::Running {
            for slot in &self.vcpus {
                slot.set_off();
            }
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        true
    }
}

pub static VMS: [VmRuntime; MAX_VMS] = [const { VmRuntime::new() }; MAX_VMS];
