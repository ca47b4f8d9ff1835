//! The one crate where Tessera touches the CPU directly: entry, vectors, the world switch,
//! EL2 system registers, the EL2 MMU, cache and TLB maintenance, firmware calls, and the log.
//!
//! Everything above this crate is `#![forbid(unsafe_code)]` and calls the safe functions
//! here. Each `unsafe` block below says why it is sound (`// SAFETY:`); `docs/unsafe.md`
//! lists them. On a host build (for `cargo test` of the workspace) the assembly is left out
//! and the hardware functions are stubs that panic: no host test calls them.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
// On a host build the hardware paths are stubs, so their constants look unused.
#![cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]

pub mod cache;
#[cfg(any(feature = "rtds", test))]
pub mod context;
pub mod cpu;
pub mod fatal;
pub mod gic_cpu;
pub mod guest;
#[cfg_attr(not(target_os = "none"), allow(unused))]
pub mod log;
pub mod mmio;
pub mod mmu;
pub mod phys;
pub mod pmu;
pub mod smccc;
pub mod timer;
#[cfg(target_os = "none")]
mod sync;

/// Most physical CPUs the hypervisor supports (per-CPU stacks and blocks are sized by it;
/// `link.ld` reserves 8 stacks).
pub const MAX_CPUS: usize = 8;

/// Each CPU's EL2 stack. Boot-time construction of a VM's vGIC model (about 7 KiB, moved a
/// few times) sets the high-water mark.
pub const STACK_SIZE: usize = 64 * 1024;

/// Each CPU's emergency stack, which the EL2-fault vectors switch to before reporting (the
/// run-time stack may be the thing that overflowed). The report path needs about 1 KiB.
pub const EMERGENCY_STACK_SIZE: usize = 8 * 1024;

/// What the primary CPU knows when the hypervisor's Rust code starts.
#[derive(Debug, Clone, Copy)]
pub struct BootInfo {
    /// Address the loader passed in x0 (the firmware's DTB); not parsed by Tessera.
    pub firmware_dtb: u64,
    /// Where the image was loaded (and runs: EL2 maps RAM 1:1).
    pub load_base: u64,
    /// One past the image's last byte, including BSS and the stacks.
    pub image_end: u64,
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod entry {
    use super::*;

    core::arch::global_asm!(
        include_str!("boot.S"),
        stack_size = const STACK_SIZE,
        emergency_stack_size = const EMERGENCY_STACK_SIZE,
        max_cpus = const MAX_CPUS,
        per_cpu_fault_sp = const core::mem::offset_of!(cpu::PerCpu, fault_sp),
        per_cpu_size = const core::mem::size_of::<cpu::PerCpu>(),
        per_cpu_index = const core::mem::offset_of!(cpu::PerCpu, index),
    );
    core::arch::global_asm!(
        include_str!("vectors.S"),
        per_cpu_host_sp = const core::mem::offset_of!(cpu::PerCpu, host_sp),
        per_cpu_guest_regs = const core::mem::offset_of!(cpu::PerCpu, guest_regs),
        per_cpu_fault_sp = const core::mem::offset_of!(cpu::PerCpu, fault_sp),
        per_cpu_timer_lr = const core::mem::offset_of!(cpu::PerCpu, timer_lr),
        per_cpu_lrs_empty = const core::mem::offset_of!(cpu::PerCpu, lrs_empty),
        per_cpu_stashed = const core::mem::offset_of!(cpu::PerCpu, stashed),
    );

    unsafe extern "C" {
        static __image_end: u8;
    }

    unsafe extern "Rust" {
        /// Provided by the platform binary: the primary CPU's Rust entry, MMU still off.
        fn tessera_main(boot: BootInfo) -> !;
        /// Provided by the platform binary: a secondary CPU's Rust entry, MMU on.
        fn tessera_secondary_main(cpu: usize) -> !;
    }

    /// Called by boot.S on the primary CPU after relocation and BSS clearing.
    #[unsafe(no_mangle)]
    extern "C" fn tessera_arch_primary(dtb: u64, load_base: u64) -> ! {
        let image_end = core::ptr::addr_of!(__image_end) as u64;
        // SAFETY: the platform binary defines `tessera_main` with exactly this signature; it
        // is called once, on the primary CPU, as the contract in its doc says.
        unsafe { tessera_main(BootInfo { firmware_dtb: dtb, load_base, image_end }) }
    }

    /// Called by boot.S on a secondary CPU once its MMU is on.
    #[unsafe(no_mangle)]
    extern "C" fn tessera_arch_secondary(cpu: usize) -> ! {
        // SAFETY: as above; `cpu` is the index the primary passed to PSCI CPU_ON.
        unsafe { tessera_secondary_main(cpu) }
    }

    /// An exception taken from EL2 itself: a hypervisor bug. The vector has switched to
    /// this CPU's emergency stack; `sp` is the stack pointer at the fault. Fail-stop.
    #[unsafe(no_mangle)]
    extern "C" fn tessera_el2_self_fault(sp: u64, kind: u64, esr: u64, elr: u64, far: u64, spsr: u64) -> ! {
        let layout = mmu::layout();
        // A push into a guard page faults with FAR_EL2 in it.
        let stack_overflow = mmu::in_stack_guard(&layout, far);
        let state = fatal::CpuState { cpu: cpu::index(), esr, far, elr, spsr, sp };
        fatal::fail_stop(&fatal::Reason::Exception { kind, stack_overflow }, &state)
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        let (file, line) = info.location().map_or(("?", 0), |at| (at.file(), at.line()));
        // A formatted message would need `core::fmt` (too big for the image budget); plain
        // string messages, which `unwrap`/`expect`/bounds checks give, are printed.
        let message = info.message().as_str().unwrap_or("(formatted message)");
        fatal::fail_stop(&fatal::Reason::Panic { message, file, line }, &fatal::capture())
    }
}
