// EL2 exception vectors and the world switch into and out of a guest.
//
// enter_guest(regs) saves the hypervisor's callee-saved registers on its own stack, records
// the stack pointer and `regs` in this CPU's PerCpu block, loads the guest's x0-x30, ELR and
// SPSR, and erets. Any exception from the guest comes back through a lower-EL vector, which
// stores the guest's registers and the syndrome (ESR, FAR, HPFAR) into the same `regs`, then
// unwinds to enter_guest's caller with x0 = the exception kind. One capture, no decoding here,
// except for two fast paths that never leave the vectors (below, `guest_irq`, `guest_wfx`).

.equ GREGS_ELR, 31 * 8
.equ GREGS_ESR, 33 * 8
.equ PER_CPU_HOST_SP, {per_cpu_host_sp}
.equ PER_CPU_GUEST_REGS, {per_cpu_guest_regs}
.equ PER_CPU_FAULT_SP, {per_cpu_fault_sp}
.equ PER_CPU_TIMER_LR, {per_cpu_timer_lr}
.equ PER_CPU_LRS_EMPTY, {per_cpu_lrs_empty}
.equ PER_CPU_STASHED, {per_cpu_stashed}

// GICv3 CPU interface registers go by encoding (IHI 0069 12.2, 12.5): ICC_IAR1_EL1 is
// S3_0_C12_C12_0, ICC_EOIR1_EL1 S3_0_C12_C12_1, ICH_ELRSR_EL2 S3_4_C12_C11_5, ICH_LR0_EL2
// S3_4_C12_C12_0.

.equ EXIT_SYNC, 0
.equ EXIT_IRQ, 1
.equ ESR_EC_WFX, 0x01

.macro guest_vector kind
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mov     x1, #\kind
    b       guest_exit
.endm

// An exception taken from EL2 itself is fatal. The stack may be what faulted (an overflow
// into a guard page), so switch to this CPU's emergency stack before anything is pushed;
// the faulting SP is passed on for the report. x0-x5 are not preserved: this never returns.
.macro self_vector kind
    .balign 0x80
    mov     x0, sp
    mrs     x1, tpidr_el2
    ldr     x1, [x1, #PER_CPU_FAULT_SP]
    mov     sp, x1
    mov     x1, #\kind
    mrs     x2, esr_el2
    mrs     x3, elr_el2
    mrs     x4, far_el2
    mrs     x5, spsr_el2
    b       tessera_el2_self_fault
.endm

.section .text.vectors, "ax"
.balign 0x800
.global tessera_el2_vectors
tessera_el2_vectors:
    // Current EL with SP_EL0: never used.
    self_vector 0
    self_vector 1
    self_vector 2
    self_vector 3
    // Current EL with SP_ELx: a fault in the hypervisor itself.
    self_vector 0
    self_vector 1
    self_vector 2
    self_vector 3
    // Lower EL, AArch64: the guest. Synchronous: a trapped WFI may take the fast path.
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mrs     x0, esr_el2
    lsr     x1, x0, #26
    cmp     x1, #ESR_EC_WFX
    b.eq    guest_wfx
    mov     x1, #EXIT_SYNC
    b       guest_exit
    // IRQ: the forwarded virtual timer may take the fast path.
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    b       guest_irq
    guest_vector 2
    guest_vector 3
    // Lower EL, AArch32: HCR_EL2.RW = 1 makes EL1 AArch64, so only a bug lands here.
    guest_vector 0
    guest_vector 1
    guest_vector 2
    guest_vector 3

.section .text, "ax"

// The forwarding fast path. On a CPU whose kernel has set PER_CPU_TIMER_LR (null-pool CPUs:
// one vCPU, list register 0 reserved for its virtual timer; `gic_cpu::set_timer_fast_path`),
// a physical timer interrupt is acknowledged here, list register 0 is loaded with the value
// the kernel prepared (pending, HW-linked to the physical PPI, the guest's priority) and the
// guest resumes: the guest's EOI deactivates the physical interrupt, so the physical timer
// cannot fire again (and find list register 0 still in use) before the guest is done with it.
// Any other interrupt is stashed (PER_CPU_STASHED) for the kernel, which handles it first
// (`gic_cpu::take_stashed`), and the exit continues as an ordinary IRQ exit.
// On entry the guest's x0, x1 are on the stack.
guest_irq:
    stp     x2, x3, [sp, #-16]!
    mrs     x2, tpidr_el2
    ldr     x3, [x2, #PER_CPU_TIMER_LR]
    cbz     x3, 2f
    mrs     x0, S3_0_C12_C12_0          // ICC_IAR1_EL1
    cmp     w0, w3                      // LR bits [31:0]: the virtual (= physical) INTID
    b.ne    1f
    msr     S3_4_C12_C12_0, x3          // ICH_LR0_EL2
    msr     S3_0_C12_C12_1, x0          // ICC_EOIR1_EL1: priority drop only (EOImode = 1)
    ldp     x2, x3, [sp], #16
    ldp     x0, x1, [sp], #16
    eret
1:  add     x0, x0, #1                  // stashed as INTID + 1 (0: none)
    str     x0, [x2, #PER_CPU_STASHED]
2:  ldp     x2, x3, [sp], #16
    mov     x1, #EXIT_IRQ
    b       guest_exit

// A trapped WFI on a CPU with the fast path (PER_CPU_LRS_EMPTY != 0) and nothing in any list
// register (so nothing the vCPU
// could take now: every pending interrupt of the model is loaded before entry, or is a kick
// away): wait here. If the timer ends the wait, forward it as above and resume the guest after
// its WFI. Anything else (a kick, the console, the watchdog, a spurious wake-up) also completes
// the WFI, is stashed, and the exit goes on as an IRQ exit: the kernel handles the interrupt
// and loads whatever it made pending before the guest resumes after its WFI. (A WFI may always
// complete without an interrupt for the guest, so a wake-up that brought none is a spurious
// one, which guests tolerate by the architecture's rules.) WFE (ISS TI != 0) and every other
// case take the ordinary exit.
// On entry x0 = ESR_EL2 and the guest's x0, x1 are on the stack.
guest_wfx:
    tst     x0, #3                      // ISS.TI: 0 = WFI
    b.ne    3f
    stp     x2, x3, [sp, #-16]!
    mrs     x2, tpidr_el2
    ldr     x1, [x2, #PER_CPU_LRS_EMPTY]
    cbz     x1, 2f                      // 0: no fast path on this CPU
    mrs     x0, S3_4_C12_C11_5          // ICH_ELRSR_EL2
    cmp     x0, x1
    b.ne    2f
    wfi                                 // interrupts are masked at EL2; a pending one ends it
    mrs     x0, S3_0_C12_C12_0          // ICC_IAR1_EL1
    ldr     x3, [x2, #PER_CPU_TIMER_LR]
    cbz     x3, 1f                      // 0: the timer, too, goes to the kernel
    cmp     w0, w3
    b.ne    1f
    msr     S3_4_C12_C12_0, x3          // ICH_LR0_EL2
    msr     S3_0_C12_C12_1, x0          // ICC_EOIR1_EL1
    mrs     x0, elr_el2
    add     x0, x0, #4
    msr     elr_el2, x0
    ldp     x2, x3, [sp], #16
    ldp     x0, x1, [sp], #16
    eret
1:  add     x0, x0, #1                  // stashed as INTID + 1 (0: none)
    str     x0, [x2, #PER_CPU_STASHED]
    mrs     x0, elr_el2                 // the WFI is complete
    add     x0, x0, #4
    msr     elr_el2, x0
    ldp     x2, x3, [sp], #16
    mov     x1, #EXIT_IRQ
    b       guest_exit
2:  ldp     x2, x3, [sp], #16
3:  mov     x1, #EXIT_SYNC
    b       guest_exit

guest_exit:
    // x0, x1 of the guest are on the stack; x1 = kind.
    mrs     x0, tpidr_el2
    ldr     x0, [x0, #PER_CPU_GUEST_REGS]
    stp     x2, x3, [x0, #16]
    stp     x4, x5, [x0, #32]
    stp     x6, x7, [x0, #48]
    stp     x8, x9, [x0, #64]
    stp     x10, x11, [x0, #80]
    stp     x12, x13, [x0, #96]
    stp     x14, x15, [x0, #112]
    stp     x16, x17, [x0, #128]
    stp     x18, x19, [x0, #144]
    stp     x20, x21, [x0, #160]
    stp     x22, x23, [x0, #176]
    stp     x24, x25, [x0, #192]
    stp     x26, x27, [x0, #208]
    stp     x28, x29, [x0, #224]
    str     x30, [x0, #240]
    mov     x19, x1
    ldp     x2, x3, [sp], #16
    stp     x2, x3, [x0]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [x0, #GREGS_ELR]
    mrs     x2, esr_el2
    mrs     x3, far_el2
    stp     x2, x3, [x0, #GREGS_ESR]
    mrs     x2, hpfar_el2
    str     x2, [x0, #GREGS_ESR + 16]
    mov     x0, x19
    // Back on the hypervisor's stack exactly as enter_guest left it.
    ldp     x19, x20, [sp], #16
    ldp     x21, x22, [sp], #16
    ldp     x23, x24, [sp], #16
    ldp     x25, x26, [sp], #16
    ldp     x27, x28, [sp], #16
    ldp     x29, x30, [sp], #16
    ret

.global tessera_enter_guest
tessera_enter_guest:
    stp     x29, x30, [sp, #-16]!
    stp     x27, x28, [sp, #-16]!
    stp     x25, x26, [sp, #-16]!
    stp     x23, x24, [sp, #-16]!
    stp     x21, x22, [sp, #-16]!
    stp     x19, x20, [sp, #-16]!
    mrs     x1, tpidr_el2
    mov     x2, sp
    str     x2, [x1, #PER_CPU_HOST_SP]
    str     x0, [x1, #PER_CPU_GUEST_REGS]
    ldp     x2, x3, [x0, #GREGS_ELR]
    msr     elr_el2, x2
    msr     spsr_el2, x3
    ldp     x2, x3, [x0, #16]
    ldp     x4, x5, [x0, #32]
    ldp     x6, x7, [x0, #48]
    ldp     x8, x9, [x0, #64]
    ldp     x10, x11, [x0, #80]
    ldp     x12, x13, [x0, #96]
    ldp     x14, x15, [x0, #112]
    ldp     x16, x17, [x0, #128]
    ldp     x18, x19, [x0, #144]
    ldp     x20, x21, [x0, #160]
    ldp     x22, x23, [x0, #176]
    ldp     x24, x25, [x0, #192]
    ldp     x26, x27, [x0, #208]
    ldp     x28, x29, [x0, #224]
    ldr     x30, [x0, #240]
    ldp     x0, x1, [x0]
    eret
