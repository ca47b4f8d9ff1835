//! Writing guest memory by physical address (EL2 maps RAM 1:1), for loading images and
//! scrubbing. The hypervisor's own image is never a valid target.

/// Why a physical write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum PhysError {
    /// The range wraps around the address space.
    Overflow,
    /// The range overlaps the hypervisor's own image, BSS or stacks.
    Hypervisor,
}

fn check(pa: u64, len: u64, hv: (u64, u64)) -> Result<(), PhysError> {
    let end = pa.checked_add(len).ok_or(PhysError::Overflow)?;
    if len != 0 && pa < hv.1 && hv.0 < end {
        return Err(PhysError::Hypervisor);
    }
    Ok(())
}

/// True if `[pa, pa + len)` wraps or touches the hypervisor's own image, BSS or stacks.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub(crate) fn touches_hypervisor(pa: u64, len: u64) -> bool {
    check(pa, len, hypervisor_range()).is_err()
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn hypervisor_range() -> (u64, u64) {
    unsafe extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }
    (core::ptr::addr_of!(__image_start) as u64, core::ptr::addr_of!(__image_end) as u64)
}

/// Copies `data` to physical address `pa` and cleans it to the point of coherency (a guest
/// starts with its MMU and caches off).
///
/// The caller passes VM RAM from the validated system tables; this function refuses any
/// range that touches the hypervisor itself.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn copy_to(pa: u64, data: &[u8]) -> Result<(), PhysError> {
    check(pa, data.len() as u64, hypervisor_range())?;
    // SAFETY: EL2 maps all RAM 1:1 as Normal memory; the range does not wrap and does not
    // overlap anything Rust owns (the image, BSS, stacks), so no reference aliases it.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), pa as *mut u8, data.len()) };
    crate::cache::clean_dcache_range(pa, data.len() as u64);
    Ok(())
}

/// The block `DC ZVA` zeroes, in bytes, or `None` if it is prohibited (DCZID_EL0,
/// DDI 0487 D23.2.43: BS = log2 of the size in words, DZP = prohibited).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn zva_block() -> Option<u64> {
    let dczid: u64;
    // SAFETY: reading an identification register has no effect.
    unsafe { core::arch::asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack)) };
    (dczid & (1 << 4) == 0).then(|| 4u64 << (dczid & 0xf))
}

/// Bytes per iteration of the unrolled zero-and-clean loop: eight 64-byte blocks.
const ZERO_CHUNK: u64 = 512;

/// Zeroes `len` bytes at physical address `pa` and cleans them to the point of coherency.
/// Where `DC ZVA` zeroes 64-byte blocks (the cache line `clean_dcache_range` assumes), the
/// 512-byte-aligned middle is zeroed and cleaned line by line in one unrolled loop (three
/// instructions per line: this is what a VM's start costs, `first_guest_insn_ms`); the
/// edges, and every range on a CPU with another block size, take the general path.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn zero(pa: u64, len: u64) -> Result<(), PhysError> {
    check(pa, len, hypervisor_range())?;
    let end = pa + len; // cannot wrap: checked above
    let first = pa.next_multiple_of(ZERO_CHUNK);
    let last = end - end % ZERO_CHUNK;
    if zva_block() != Some(64) || first >= last {
        zero_general(pa, end);
        return Ok(());
    }
    let mut at = first;
    // SAFETY: `[first, last)` lies inside the checked range (RAM mapped at EL2, not the
    // hypervisor's own memory) and is a whole number of 512-byte chunks; each DC ZVA writes
    // zeros to the 64-byte block at `at` and nowhere else, DC CVAC only cleans that line.
    unsafe {
        core::arch::asm!(
            "2:",
            "dc zva, {at}", "dc cvac, {at}", "add {at}, {at}, #64",
            "dc zva, {at}", "dc cvac, {at}", "add {at}, {at}, #64",
            "dc zva, {at}", "dc cvac, {at}", "add {at}, {at}, #64",
            "dc zva, {at}", "dc cvac, {at}", "add {at}, {at}, #64",
            "dc zva, {at}", "dc cvac, {at}", "add {at}, {at}, #64",
            "dc zva, {at}", "dc cvac, {at}", "add {at}, {at}, #64",
            "dc zva, {at}", "dc cvac, {at}", "add {at}, {at}, #64",
            "dc zva, {at}", "dc cvac, {at}", "add {at}, {at}, #64",
            "cmp {at}, {last}",
            "b.lo 2b",
            "dsb sy",
            at = inout(reg) at,
            last = in(reg) last,
            options(nostack),
        );
    }
    let _ = at;
    zero_general(pa, first);
    zero_general(last, end);
    Ok(())
}

/// Zeroes `[pa, end)` (checked by the caller) and cleans it to the point of coherency: whole
/// aligned blocks with `DC ZVA`, the edges byte by byte.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn zero_general(pa: u64, end: u64) {
    if pa >= end {
        return;
    }
    let len = end - pa;
    let (mut head_end, mut tail_start) = (end, end);
    if let Some(block) = zva_block() {
        let first = pa.next_multiple_of(block);
        let last = end - end % block;
        if first < last {
            (head_end, tail_start) = (first, last);
            let mut at = first;
            while at < last {
                // SAFETY: `[at, at + block)` lies inside the checked range (RAM mapped at
                // EL2, not the hypervisor's own memory); DC ZVA writes zeros there and
                // nowhere else.
                unsafe { core::arch::asm!("dc zva, {}", in(reg) at, options(nostack, preserves_flags)) };
                at += block;
            }
        }
    }
    // SAFETY: as in `copy_to`; the two edges lie inside the checked range.
    unsafe {
        core::ptr::write_bytes(pa as *mut u8, 0, (head_end - pa) as usize);
        core::ptr::write_bytes(tail_start as *mut u8, 0, (end - tail_start) as usize);
    }
    crate::cache::clean_dcache_range(pa, len);
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn copy_to(_pa: u64, _data: &[u8]) -> Result<(), PhysError> {
    unimplemented!("host build")
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn zero(_pa: u64, _len: u64) -> Result<(), PhysError> {
    unimplemented!("host build")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_the_hypervisor_and_wrapping_ranges() {
        let hv = (0x4020_0000, 0x4060_0000);
        assert_eq!(check(0x4200_0000, 0x1000, hv), Ok(()));
        assert_eq!(check(0x4000_0000, 0x20_1000, hv), Err(PhysError::Hypervisor));
        assert_eq!(check(0x405f_f000, 1, hv), Err(PhysError::Hypervisor));
        assert_eq!(check(0x4060_0000, 0x1000, hv), Ok(()));
        assert_eq!(check(u64::MAX, 2, hv), Err(PhysError::Overflow));
    }
}
