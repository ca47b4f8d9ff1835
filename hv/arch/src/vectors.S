// EL2 exception vectors and the world switch into and out of a guest.
//
// enter_guest(regs) saves the hypervisor's callee-saved registers on its own stack, records
// the stack pointer and `regs` in this CPU's PerCpu block, loads the guest's x0-x30, ELR and
// SPSR, and erets. Any exception from the guest comes back through a lower-EL vector, which
// stores the guest's registers and the syndrome (ESR, FAR, HPFAR) into the same `regs`, then
// unwinds to enter_guest's caller with x0 = the exception kind. One capture, no decoding here.

.equ GREGS_ELR, 31 * 8
.equ GREGS_ESR, 33 * 8
.equ PER_CPU_HOST_SP, {per_cpu_host_sp}
.equ PER_CPU_GUEST_REGS, {per_cpu_guest_regs}
.equ PER_CPU_FAULT_SP, {per_cpu_fault_sp}

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
    // Lower EL, AArch64: the guest.
    guest_vector 0
    guest_vector 1
    guest_vector 2
    guest_vector 3
    // Lower EL, AArch32: HCR_EL2.RW = 1 makes EL1 AArch64, so only a bug lands here.
    guest_vector 0
    guest_vector 1
    guest_vector 2
    guest_vector 3

.section .text, "ax"
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
