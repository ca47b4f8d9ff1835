//! The guest's unsafe code (with `gic.rs` and `uart.rs`, which bind MMIO frames): entry,
//! exception vectors, system registers (including the GIC CPU interface and the virtual
//! timer), PSCI/SMCCC calls, the IRQ-masking cell and the raw loads and stores behind
//! `peek`/`poke`.
//!
//! Register encodings cite the Arm ARM (DDI 0487); PSCI function IDs cite DEN 0022 (PSCI 1.1);
//! the Image header is Linux's `Documentation/arch/arm64/booting.rst`.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use tessera_guest_baremetal::dt::Conduit;

// The arm64 Image header, then the boot CPU's entry, the secondary entry for PSCI CPU_ON,
// and the EL1 vector table.
//
// Boot CPU: x0 = DTB address; `primary_main` gets it and, as x1, CNTPCT_EL0 as read by the
// first instruction of `primary_entry` (the physical count since reset, for boot-time
// benchmarks: under Tessera the virtual count starts at the VM's start). Secondary: x0 = the PSCI CPU_ON context ID, which the guest
// sets to the CPU's index in the DT; it runs on stack slot index+1 (slot 0 is the boot CPU's).
// Stacks live in `.stack`, sized by `link.ld` (`__stack_size`, `__stack_count`).
global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    b       primary_entry
    .long   0
    .quad   0x200000            // text_offset: loaded at RAM base + 2 MiB
    .quad   __image_size        // image_size, including BSS and stacks
    .quad   0x2                 // flags: little-endian, 4K pages, bit 3 clear (not relocatable)
    .quad   0, 0, 0             // res2..res4
    .ascii  "ARM\x64"           // magic
    .long   0                   // res5: no PE/COFF header

    .section .text.boot, "ax"
primary_entry:
    mrs     x20, cntpct_el0     // the boot stamp (first instruction after the header's branch)
    mov     x19, x0
    msr     daifset, #0xf
    mov     x1, #(3 << 20)      // CPACR_EL1.FPEN = 0b11: no FP/SIMD traps (D19.2.30)
    msr     cpacr_el1, x1
    isb
    mrs     x1, CurrentEL
    cmp     x1, #(1 << 2)       // the guest runs at EL1 only
    b.ne    park
    msr     spsel, #1
    adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    ldr     x2, =__stack_size
    add     sp, x1, x2
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  adrp    x1, vectors
    add     x1, x1, :lo12:vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19
    mov     x1, x20
    bl      primary_main
    b       park

    .global secondary_entry
secondary_entry:
    msr     daifset, #0xf
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    isb
    msr     spsel, #1
    ldr     x2, =__stack_count
    sub     x2, x2, #1
    cmp     x0, x2
    b.hs    park
    adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    ldr     x2, =__stack_size
    add     x3, x0, #2          // top of slot index+1
    madd    x1, x2, x3, x1
    mov     sp, x1
    adrp    x1, vectors
    add     x1, x1, :lo12:vectors
    msr     vbar_el1, x1
    isb
    bl      secondary_main
park:
    wfi
    b       park
    .ltorg

    // 16 entries of 0x80 bytes (D1.10.2). Each saves x0/x1, reads CNTVCT_EL0 at once (the
    // third instruction after the exception: the IRQ vector's timestamp for heartbeat
    // lateness; exception entry is context synchronizing, so no ISB is needed), puts its
    // index in x0 and joins the common path, which saves a `Frame` and calls
    // `el1_exception(index, &mut Frame)`.
    .section .text.vectors, "ax"
    .balign 0x800
vectors:
    .irp index, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .balign 0x80
    sub     sp, sp, #{frame_size}
    stp     x0, x1, [sp, #0]
    mrs     x1, cntvct_el0
    str     x1, [sp, #{entry_count}]
    mov     x0, #\index
    b       exception_common
    .endr

exception_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    str     x30, [sp, #240]
    stp     x1, x2, [sp, #248]
    mov     x1, sp
    bl      el1_exception
    ldp     x1, x2, [sp, #248]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    ldr     x30, [sp, #240]
    ldp     x28, x29, [sp, #224]
    ldp     x26, x27, [sp, #208]
    ldp     x24, x25, [sp, #192]
    ldp     x22, x23, [sp, #176]
    ldp     x20, x21, [sp, #160]
    ldp     x18, x19, [sp, #144]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{frame_size}
    eret
"#,
    frame_size = const core::mem::size_of::<Frame>(),
    entry_count = const core::mem::offset_of!(Frame, entry_count),
);

unsafe extern "C" {
    /// The PSCI CPU_ON entry point above.
    fn secondary_entry();
}

/// What the vector stub saves: x0–x30, ELR_EL1, SPSR_EL1, and CNTVCT_EL0 as read on entry
/// (16-byte multiple for SP alignment).
#[repr(C)]
pub struct Frame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    pub entry_count: u64,
}

const _: () = assert!(core::mem::size_of::<Frame>() == 272);

/// Which of the 16 vectors was taken (`index / 4` is the source, `index % 4` the kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorIndex(pub u64);

impl VectorIndex {
    /// IRQ from the current EL with SP_ELx (offset 0x280): the guest runs with SPSel = 1.
    pub const IRQ_CURRENT_EL_SPX: VectorIndex = VectorIndex(5);

    pub fn kind(self) -> &'static str {
        match self.0 % 4 {
            0 => "sync",
            1 => "irq",
            2 => "fiq",
            _ => "serror",
        }
    }
}

#[unsafe(no_mangle)]
extern "C" fn el1_exception(index: u64, frame: &mut Frame) {
    if VectorIndex(index) == VectorIndex::IRQ_CURRENT_EL_SPX && crate::interrupt(frame.entry_count)
    {
        return;
    }
    let syndrome = Syndrome {
        esr: esr_el1(),
        far: far_el1(),
        elr: frame.elr,
    };
    if crate::exception(VectorIndex(index), syndrome) {
        // Resume after the faulting instruction; for an instruction abort (EC 0x21) there is
        // none to skip, so return to the caller of the branch that got there (x30).
        frame.elr = if syndrome.exception_class() == 0x21 {
            frame.x[30]
        } else {
            frame.elr.wrapping_add(4)
        };
    } else {
        park();
    }
}

/// ESR_EL1, FAR_EL1 and ELR_EL1 of one exception.
#[derive(Debug, Clone, Copy)]
pub struct Syndrome {
    pub esr: u64,
    pub far: u64,
    pub elr: u64,
}

impl Syndrome {
    /// ESR_ELx.EC (D19.2.44).
    pub fn exception_class(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }
    /// ISS.DFSC for data aborts.
    pub fn data_fault_status(&self) -> u64 {
        self.esr & 0x3f
    }
    /// A synchronous external abort on a data access from EL1 (EC 0x25, DFSC 0x10): what the
    /// hypervisor injects for an access outside the VM's memory.
    pub fn is_external_data_abort(&self) -> bool {
        self.exception_class() == 0x25 && self.data_fault_status() == 0x10
    }
}

pub fn park() -> ! {
    loop {
        // SAFETY: wfi only waits; it touches no memory.
        unsafe { asm!("wfi", options(nomem, nostack, preserves_flags)) };
    }
}

macro_rules! read_sysreg {
    ($name:ident, $reg:literal) => {
        pub fn $name() -> u64 {
            let value: u64;
            // SAFETY: reading this register has no side effects and is allowed at EL1.
            unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nomem, nostack, preserves_flags)) };
            value
        }
    };
}

read_sysreg!(esr_el1, "esr_el1");
read_sysreg!(far_el1, "far_el1");
read_sysreg!(mpidr_el1, "mpidr_el1");
read_sysreg!(current_el_raw, "CurrentEL");
read_sysreg!(cntfrq_el0, "cntfrq_el0");

/// Programs hardware breakpoint 0 at `address` (DBGBVR0_EL1; DBGBCR0_EL1 = enabled, EL1,
/// all byte lanes: 0x1e3) and unlocks the OS lock (OSLAR_EL1 = 0), then reads back
/// DBGBVR0_EL1, DBGBCR0_EL1, MDSCR_EL1, OSLSR_EL1 and MDRAR_EL1. MDSCR_EL1.MDE stays as it
/// is, so the breakpoint cannot fire. Under Tessera every one of these traps (MDCR_EL2.TDA,
/// TDOSA, TDRA) and reads as zero.
pub fn debug_registers(address: u64) -> [u64; 5] {
    let (bvr, bcr, mdscr, oslsr, mdrar): (u64, u64, u64, u64, u64);
    // SAFETY: debug register accesses only; with MDSCR_EL1.MDE unchanged (0 after reset)
    // breakpoint 0 generates no debug exception.
    unsafe {
        asm!(
            "msr dbgbvr0_el1, {address}",
            "msr dbgbcr0_el1, {control}",
            "msr oslar_el1, xzr",
            "isb",
            "mrs {bvr}, dbgbvr0_el1",
            "mrs {bcr}, dbgbcr0_el1",
            "mrs {mdscr}, mdscr_el1",
            "mrs {oslsr}, oslsr_el1",
            "mrs {mdrar}, mdrar_el1",
            address = in(reg) address,
            control = in(reg) 0x1e3u64,
            bvr = out(reg) bvr,
            bcr = out(reg) bcr,
            mdscr = out(reg) mdscr,
            oslsr = out(reg) oslsr,
            mdrar = out(reg) mdrar,
            options(nomem, nostack, preserves_flags)
        )
    };
    [bvr, bcr, mdscr, oslsr, mdrar]
}

/// The current exception level (CurrentEL.EL, bits 3:2).
pub fn current_el() -> u64 {
    (current_el_raw() >> 2) & 3
}

/// CNTVCT_EL0, the virtual count, after an ISB so it is not read early (D12.2.2).
pub fn cntvct_el0() -> u64 {
    let value: u64;
    // SAFETY: isb and a counter read have no side effects; EL1 may always read CNTVCT_EL0.
    unsafe {
        asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Masks IRQs (PSTATE.I) and returns the previous DAIF.
pub fn irq_save() -> u64 {
    let daif: u64;
    // SAFETY: reading DAIF and masking IRQs only changes whether interrupts are taken; the
    // compiler must not move memory accesses across it (no `nomem`), so it orders the
    // critical section.
    unsafe {
        asm!("mrs {}, daif", "msr daifset, #2", out(reg) daif, options(nostack, preserves_flags))
    };
    daif
}

/// Restores DAIF as [`irq_save`] returned it.
pub fn irq_restore(daif: u64) {
    // SAFETY: as for `irq_save`; this only restores the mask bits saved there.
    unsafe { asm!("msr daif, {}", in(reg) daif, options(nostack, preserves_flags)) };
}

/// Unmasks IRQs (PSTATE.I = 0).
pub fn irq_enable() {
    // SAFETY: the vectors are installed and the handler is ready before the GIC signals.
    unsafe { asm!("msr daifclr, #2", options(nostack, preserves_flags)) };
}

/// Waits for an interrupt. With IRQs masked this still wakes on a pending one (DDI 0487
/// D1.11.2), which is how the console loop sleeps without missing a wake-up.
pub fn wait_for_interrupt() {
    // SAFETY: wfi only waits; it touches no memory. Not `nomem`: state written by a handler
    // while we slept must be re-read after it.
    unsafe { asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}

/// State shared between the boot CPU's console loop and its IRQ handler. Access goes
/// through [`IrqCell::with`], which masks IRQs, so the two never overlap.
///
/// Only the boot CPU may use it (the secondaries park with IRQs masked and never touch
/// guest state); with that, masking IRQs is mutual exclusion. `with` must not be nested on
/// the same cell (the closures in `guest.rs` call no code that does).
pub struct IrqCell<T>(core::cell::UnsafeCell<T>);

// SAFETY: see the type's documentation: one CPU, and IRQs masked for every access.
unsafe impl<T: Send> Sync for IrqCell<T> {}

impl<T> IrqCell<T> {
    pub const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let daif = irq_save();
        // SAFETY: IRQs are masked, so the handler cannot run; only the boot CPU uses the cell
        // and calls are not nested (type documentation), so this is the only reference.
        let result = f(unsafe { &mut *self.0.get() });
        irq_restore(daif);
        result
    }
}

/// The GICv3 CPU interface, through its system registers (IHI 0069H §12.2; the `S3_…`
/// encodings are from its Table 12-1, so no assembler GIC extension is needed).
pub mod icc {
    use core::arch::asm;

    /// ICC_SRE_EL1 (S3_0_C12_C12_5): SRE, bit 0.
    pub fn enable_system_registers() -> bool {
        let sre: u64;
        // SAFETY: setting ICC_SRE_EL1.SRE selects the system-register interface for this EL;
        // the guest never uses the memory-mapped CPU interface. Read back: a higher EL may
        // keep it RAZ/WI.
        unsafe {
            asm!(
                "mrs {t}, S3_0_C12_C12_5",
                "orr {t}, {t}, #1",
                "msr S3_0_C12_C12_5, {t}",
                "isb",
                "mrs {t}, S3_0_C12_C12_5",
                t = out(reg) sre,
                options(nomem, nostack, preserves_flags)
            )
        };
        sre & 1 == 1
    }

    /// ICC_PMR_EL1 (S3_0_C4_C6_0): the priority mask; 0xff lets every priority through.
    pub fn set_priority_mask(mask: u8) {
        // SAFETY: writing the priority mask only filters which interrupts are signalled.
        unsafe {
            asm!("msr S3_0_C4_C6_0, {}", in(reg) u64::from(mask), options(nomem, nostack, preserves_flags))
        };
    }

    /// ICC_BPR1_EL1 (S3_0_C12_C12_3) = 0 and ICC_CTLR_EL1 (S3_0_C12_C12_4).EOImode (bit 1)
    /// = 0: a write to ICC_EOIR1_EL1 both drops the priority and deactivates.
    pub fn set_eoi_mode_0() {
        // SAFETY: these only change grouping and EOI behaviour of this CPU interface.
        unsafe {
            asm!(
                "msr S3_0_C12_C12_3, xzr",
                "mrs {t}, S3_0_C12_C12_4",
                "bic {t}, {t}, #2",
                "msr S3_0_C12_C12_4, {t}",
                t = out(reg) _,
                options(nomem, nostack, preserves_flags)
            )
        };
    }

    /// ICC_IGRPEN1_EL1 (S3_0_C12_C12_7): Enable, bit 0.
    pub fn enable_group1() {
        // SAFETY: enables signalling of Group 1 interrupts to this CPU; IRQs stay masked in
        // PSTATE until the guest unmasks them.
        unsafe {
            asm!("mov {t}, #1", "msr S3_0_C12_C12_7, {t}", "isb", t = out(reg) _, options(nomem, nostack, preserves_flags))
        };
    }

    /// ICC_IAR1_EL1 (S3_0_C12_C12_0): acknowledges the highest-priority pending Group 1
    /// interrupt.
    pub fn acknowledge() -> u64 {
        let iar: u64;
        // SAFETY: acknowledging changes GIC state (pending -> active), which is the point; the
        // handler ends every acknowledged INTID below 1020 with `end_of_interrupt`.
        unsafe {
            asm!("mrs {}, S3_0_C12_C12_0", out(reg) iar, options(nomem, nostack, preserves_flags))
        };
        iar
    }

    /// Writes `value` to an SGI-generating register: ICC_SGI1R_EL1 (S3_0_C12_C11_5),
    /// ICC_SGI0R_EL1 (S3_0_C12_C11_7) or ICC_ASGI1R_EL1 (S3_0_C12_C11_6) (`gicspray`).
    pub fn write_sgi(register: tessera_guest_baremetal::spray::SgiRegister, value: u64) {
        use tessera_guest_baremetal::spray::SgiRegister;
        // SAFETY: generating an SGI has no memory effect; under Tessera the write traps and
        // the hypervisor decides what is sent (that is what `gicspray` tests).
        unsafe {
            match register {
                SgiRegister::Sgi1r => asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) value, options(nomem, nostack, preserves_flags)),
                SgiRegister::Sgi0r => asm!("msr S3_0_C12_C11_7, {}", "isb", in(reg) value, options(nomem, nostack, preserves_flags)),
                SgiRegister::Asgi1r => asm!("msr S3_0_C12_C11_6, {}", "isb", in(reg) value, options(nomem, nostack, preserves_flags)),
            }
        }
    }

    /// `gicspray`'s writes to the rest of the CPU interface: ICC_PMR_EL1 = 0,
    /// ICC_IGRPEN0_EL1 = 0, ICC_IGRPEN1_EL1 = 0, ICC_BPR0_EL1 = ICC_BPR1_EL1 = 7, then
    /// ICC_EOIR0_EL1, ICC_EOIR1_EL1 and ICC_DIR_EL1 of each INTID in `foreign`. Afterwards
    /// it restores what this guest itself needs (PMR 0xff, BPR1 0, Group 1 on).
    pub fn spray_cpu_interface(foreign: &[u32]) {
        // SAFETY: each write changes only GIC CPU-interface state of this CPU (or traps);
        // none touches memory.
        unsafe {
            asm!(
                "msr S3_0_C4_C6_0, xzr",   // ICC_PMR_EL1
                "msr S3_0_C12_C12_6, xzr", // ICC_IGRPEN0_EL1
                "msr S3_0_C12_C12_7, xzr", // ICC_IGRPEN1_EL1
                "mov {t}, #7",
                "msr S3_0_C12_C8_3, {t}",  // ICC_BPR0_EL1
                "msr S3_0_C12_C12_3, {t}", // ICC_BPR1_EL1
                "isb",
                t = out(reg) _,
                options(nomem, nostack, preserves_flags)
            );
            for &intid in foreign {
                asm!(
                    "msr S3_0_C12_C8_1, {i}",  // ICC_EOIR0_EL1
                    "msr S3_0_C12_C12_1, {i}", // ICC_EOIR1_EL1
                    "msr S3_0_C12_C11_1, {i}", // ICC_DIR_EL1
                    "isb",
                    i = in(reg) u64::from(intid),
                    options(nomem, nostack, preserves_flags)
                );
            }
        }
        set_priority_mask(0xff);
        set_eoi_mode_0();
        enable_group1();
    }

    /// ICC_AP1R0_EL1 (S3_0_C12_C9_0) bit 0: marks priority 0 active, so nothing of lower
    /// urgency is signalled to this CPU any more (`deafen`).
    pub fn deafen() {
        // SAFETY: changes this CPU's active priorities only (it stops taking interrupts).
        unsafe {
            asm!("mov {t}, #1", "msr S3_0_C12_C9_0, {t}", "isb", t = out(reg) _, options(nomem, nostack, preserves_flags))
        };
    }

    /// ICC_EOIR1_EL1 (S3_0_C12_C12_1): priority drop and (EOImode 0) deactivation.
    pub fn end_of_interrupt(intid: u32) {
        // SAFETY: ends an interrupt this CPU acknowledged.
        unsafe {
            asm!("msr S3_0_C12_C12_1, {}", "isb", in(reg) u64::from(intid), options(nomem, nostack, preserves_flags))
        };
    }
}

/// The EL1 virtual timer (DDI 0487 D12.8.18–19: CNTV_CTL_EL0, CNTV_CVAL_EL0).
pub mod virtual_timer {
    use core::arch::asm;

    /// CNTV_CTL_EL0.ENABLE (bit 0); IMASK (bit 1) clear.
    const ENABLE: u64 = 1;

    /// Fires when CNTVCT_EL0 reaches `deadline`.
    pub fn arm(deadline: u64) {
        // SAFETY: programming this EL1 timer only raises its PPI at the deadline.
        unsafe {
            asm!(
                "msr cntv_cval_el0, {d}",
                "msr cntv_ctl_el0, {c}",
                "isb",
                d = in(reg) deadline,
                c = in(reg) ENABLE,
                options(nomem, nostack, preserves_flags)
            )
        };
    }

    /// Stops the timer (and drops its interrupt line).
    pub fn disarm() {
        // SAFETY: as above.
        unsafe {
            asm!(
                "msr cntv_ctl_el0, xzr",
                "isb",
                options(nomem, nostack, preserves_flags)
            )
        };
    }
}

/// MPIDR_EL1 affinity fields Aff3..Aff0, as a DT `cpu` node's `reg` holds them.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// PSCI 1.1 function IDs (DEN 0022, §5.1); SMC64 variants where an address is passed.
pub mod psci {
    pub const CPU_ON_64: u32 = 0xc400_0003;
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
}

/// An SMCCC call with up to three arguments through `conduit`; returns x0.
pub fn smccc(conduit: Conduit, function: u32, a1: u64, a2: u64, a3: u64) -> u64 {
    let mut x0 = u64::from(function);
    match conduit {
        // SAFETY: an SMCCC call (DEN 0028) only changes x0–x17, which are declared clobbered
        // by the C ABI; it does not touch guest memory that Rust owns. The firmware or the
        // hypervisor may stop this VM (SYSTEM_OFF), which needs no Rust-visible cleanup.
        Conduit::Hvc => unsafe {
            asm!("hvc #0", inout("x0") x0, in("x1") a1, in("x2") a2, in("x3") a3, clobber_abi("C"))
        },
        // SAFETY: as above.
        Conduit::Smc => unsafe {
            asm!("smc #0", inout("x0") x0, in("x1") a1, in("x2") a2, in("x3") a3, clobber_abi("C"))
        },
    }
    x0
}

/// An SMCCC call with one argument through `conduit`; returns x0-x6.
pub fn smccc_seven(conduit: Conduit, function: u32, a1: u64) -> [u64; 7] {
    let mut x = [u64::from(function), a1, 0, 0, 0, 0, 0];
    match conduit {
        // SAFETY: as in `smccc`: the call changes only x0-x17 (x0-x6 read back, the rest
        // clobbered by the C ABI).
        Conduit::Hvc => unsafe {
            asm!("hvc #0", inout("x0") x[0], inout("x1") x[1], inout("x2") x[2], inout("x3") x[3],
                inout("x4") x[4], inout("x5") x[5], inout("x6") x[6], clobber_abi("C"))
        },
        // SAFETY: as above.
        Conduit::Smc => unsafe {
            asm!("smc #0", inout("x0") x[0], inout("x1") x[1], inout("x2") x[2], inout("x3") x[3],
                inout("x4") x[4], inout("x5") x[5], inout("x6") x[6], clobber_abi("C"))
        },
    }
    x
}

/// PSCI CPU_ON for `mpidr`, entering `secondary_entry` with x0 = `index`. Returns the PSCI
/// status (0 = success) as a signed value.
pub fn cpu_on(conduit: Conduit, mpidr: u64, index: u64) -> i64 {
    // The MMU is off, so the entry's virtual address is its physical address.
    let entry = secondary_entry as *const () as u64;
    smccc(conduit, psci::CPU_ON_64, mpidr, entry, index) as i64
}

/// A 32-bit store to any address: the `poke` fault probe.
pub fn poke(address: u64, value: u32) {
    // SAFETY: a deliberate store to an address the user chose, written in asm so the compiler
    // assumes nothing about it. Outside guest RAM it faults, and `el1_exception` skips the
    // instruction; inside guest RAM it may corrupt the guest, which is the point of a probe.
    // Misalignment is rejected by the caller (the MMU is off, so memory is Device).
    unsafe {
        asm!("str {v:w}, [{a}]", a = in(reg) address, v = in(reg) value, options(nostack, preserves_flags))
    };
}

/// A 32-bit load from any address: the `peek` probe. A load that aborts returns 0 (the
/// destination register is left as it was zeroed; the handler skips the instruction).
pub fn peek(address: u64) -> u32 {
    let value: u64;
    // SAFETY: as for `poke`, but a load; it may read a device register with side effects,
    // which is the user's intent.
    unsafe {
        asm!("mov {v:x}, #0", "ldr {v:w}, [{a}]", a = in(reg) address, v = out(reg) value, options(nostack, preserves_flags))
    };
    value as u32
}

unsafe extern "C" {
    /// `link.ld`: the image's first byte, the start of its writable part (.data, then BSS and
    /// stacks), and its end.
    static __image_start: u8;
    static __data_start: u8;
    static __image_end: u8;
}

/// The image's start, the start of its writable part, and its end (addresses = IPAs: the
/// MMU is off).
pub fn image_layout() -> (u64, u64, u64) {
    // Only the symbols' addresses are taken; nothing is read through them.
    (
        core::ptr::addr_of!(__image_start) as u64,
        core::ptr::addr_of!(__data_start) as u64,
        core::ptr::addr_of!(__image_end) as u64,
    )
}

/// A 64-bit load from this guest's own RAM (victim mode's checksum).
pub fn read_ram(address: u64) -> u64 {
    // SAFETY: the caller passes an 8-byte aligned address inside the RAM the device tree gave
    // this guest, outside the image's writable part; a volatile read of it has no side effect.
    unsafe { core::ptr::read_volatile(address as *const u64) }
}

/// A 64-bit store to this guest's own free RAM (victim mode's canary).
pub fn write_ram(address: u64, value: u64) {
    // SAFETY: the caller passes an 8-byte aligned address inside this guest's RAM that holds
    // neither the image nor the device tree (`canary::Layout`), so nothing Rust uses changes.
    unsafe { core::ptr::write_volatile(address as *mut u64, value) }
}

/// A `&'static str` that the boot CPU publishes before starting the secondaries.
pub struct SharedStr {
    pointer: AtomicPtr<u8>,
    length: AtomicUsize,
}

impl SharedStr {
    pub const fn new() -> Self {
        Self {
            pointer: AtomicPtr::new(core::ptr::null_mut()),
            length: AtomicUsize::new(0),
        }
    }

    pub fn set(&self, text: &'static str) {
        self.length.store(text.len(), Ordering::Relaxed);
        self.pointer
            .store(text.as_ptr().cast_mut(), Ordering::Release);
    }

    pub fn get(&self) -> &'static str {
        let pointer = self.pointer.load(Ordering::Acquire);
        if pointer.is_null() {
            return "";
        }
        let length = self.length.load(Ordering::Relaxed);
        // SAFETY: `pointer` and `length` come from one `&'static str` in `set`; the release
        // store of the pointer orders the length before it, and a null pointer was handled.
        // The memory is never written after it was published.
        let bytes = unsafe { core::slice::from_raw_parts(pointer, length) };
        core::str::from_utf8(bytes).unwrap_or("")
    }
}

/// The device tree the loader left at `address` (x0 at entry), for the rest of the run.
pub fn device_tree(address: u64) -> Option<&'static [u8]> {
    use tessera_guest_baremetal::dt;
    let pointer = usize::try_from(address).ok()? as *const u8;
    if pointer.is_null() || !pointer.cast::<u32>().is_aligned() {
        return None;
    }
    // SAFETY: the boot protocol (booting.rst; Tessera's VM entry) puts a DTB at x0 in RAM the
    // guest may read and never writes. The header is read first, and the slice is made only as
    // long as the header says.
    let header = unsafe { core::slice::from_raw_parts(pointer, dt::HEADER_SIZE) };
    let size = dt::total_size(header)?;
    // SAFETY: as above; `size` is the blob's own totalsize.
    Some(unsafe { core::slice::from_raw_parts(pointer, size) })
}
