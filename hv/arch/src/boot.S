// Tessera EL2 entry points: the arm64 Image header, the primary CPU's entry from the
// loader (QEMU -kernel, U-Boot booti) and the secondary CPUs' entry from PSCI CPU_ON.
//
// Register use: x19 holds the DTB address (primary) or the CPU index (secondary), x20 the
// load base. Only PC-relative addressing (adrp/add) is used before relocation.

.equ STACK_SIZE, {stack_size}
// The linker script sizes the .stacks section from this symbol.
.global __tessera_stack_size
.set __tessera_stack_size, STACK_SIZE
.equ EMERGENCY_STACK_SIZE, {emergency_stack_size}
.global __tessera_emergency_stack_size
.set __tessera_emergency_stack_size, EMERGENCY_STACK_SIZE
.equ MAX_CPUS, {max_cpus}
.equ PAGE, 4096
.equ PER_CPU_FAULT_SP, {per_cpu_fault_sp}
.equ PER_CPU_SIZE, {per_cpu_size}
.equ PER_CPU_INDEX, {per_cpu_index}
.equ R_AARCH64_RELATIVE, 1027
// CPTR_EL2 (DDI 0487 D23.2.33): RES1 bits (which include TZ = 1, SVE traps, and TSM = 1, SME
// traps), TFP = 0 (FP/SIMD does not trap), TTA = 1 (bit 20: trace registers trap).
.equ CPTR_EL2_LOW, 0x33ff
.equ CPTR_EL2_TTA_HIGH, 0x10

.section .text.head, "ax"
.global _start
_start:
    b       primary_entry          // code0
    .long   0                      // code1
    .quad   0                      // text_offset: 0 => loaders put us at a 2 MiB boundary
    .quad   __image_size           // image_size: loaded bytes + BSS + stacks
    .quad   0xa                    // flags: little-endian, 4 KiB pages, anywhere in RAM
    .quad   0                      // res2
    .quad   0                      // res3
    .quad   0                      // res4
    .ascii  "ARM\x64"              // magic
    .long   0                      // res5 (no PE/COFF header)

.section .text.boot, "ax"
primary_entry:
    mov     x19, x0
    msr     daifset, #0xf
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    park                   // not entered at EL2: nothing we can do, not even print

    // Apply our own R_AARCH64_RELATIVE relocations: *(base + off) = base + addend.
    adrp    x20, _start
    add     x20, x20, :lo12:_start
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
1:  cmp     x1, x2
    b.hs    2f
    ldp     x3, x4, [x1], #16      // r_offset, r_info
    ldr     x5, [x1], #8           // r_addend
    cmp     x4, #R_AARCH64_RELATIVE
    b.ne    park                   // any other relocation is a build error we cannot fix here
    add     x5, x5, x20
    str     x5, [x20, x3]
    b       1b
2:
    // Clear BSS (the stacks need no clearing).
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
3:  cmp     x1, x2
    b.hs    4f
    stp     xzr, xzr, [x1], #16
    b       3b
4:
    mov     x0, #0
    bl      cpu_common_setup
    mov     x0, x19
    mov     x1, x20
    bl      tessera_arch_primary       // never returns

// x0 = CPU index. Per-CPU pointer, emergency and run-time stacks, vectors, FP at EL2.
// Clobbers x0-x5. Stack slot layout (each slot a guard page, then the stack): see link.ld.
cpu_common_setup:
    adrp    x1, TESSERA_PER_CPU
    add     x1, x1, :lo12:TESSERA_PER_CPU
    mov     x2, #PER_CPU_SIZE
    madd    x1, x0, x2, x1
    str     x0, [x1, #PER_CPU_INDEX]
    msr     tpidr_el2, x1
    // x3 = one run-time slot, x2 = the stacks area.
    mov     x3, #((PAGE + STACK_SIZE) >> 12)
    lsl     x3, x3, #12
    adrp    x2, __stacks_start
    add     x2, x2, :lo12:__stacks_start
    add     x4, x0, #1
    madd    x5, x4, x3, x2             // top of this CPU's run-time stack
    mov     sp, x5
    mov     x5, #MAX_CPUS
    madd    x2, x5, x3, x2             // the emergency stacks follow the run-time ones
    mov     x5, #((PAGE + EMERGENCY_STACK_SIZE) >> 12)
    lsl     x5, x5, #12
    madd    x5, x4, x5, x2             // top of this CPU's emergency stack
    str     x5, [x1, #PER_CPU_FAULT_SP]
    adrp    x1, tessera_el2_vectors
    add     x1, x1, :lo12:tessera_el2_vectors
    msr     vbar_el2, x1
    mov     x1, #CPTR_EL2_LOW
    movk    x1, #CPTR_EL2_TTA_HIGH, lsl #16
    msr     cptr_el2, x1
    isb
    ret

// Secondary CPUs enter here from PSCI CPU_ON with the MMU off and x0 = our CPU index.
.global tessera_secondary_entry
tessera_secondary_entry:
    msr     daifset, #0xf
    mov     x19, x0
    bl      cpu_common_setup
    // Turn the MMU on with the tables and settings the primary published.
    adrp    x1, TESSERA_MMU_BOOT
    add     x1, x1, :lo12:TESSERA_MMU_BOOT
    ldp     x2, x3, [x1]           // mair, tcr
    ldp     x4, x5, [x1, #16]      // ttbr0, sctlr
    msr     mair_el2, x2
    msr     tcr_el2, x3
    msr     ttbr0_el2, x4
    isb
    tlbi    alle2
    dsb     nsh
    isb
    msr     sctlr_el2, x5
    isb
    mov     x0, x19
    bl      tessera_arch_secondary     // never returns

park:
    wfe
    b       park
