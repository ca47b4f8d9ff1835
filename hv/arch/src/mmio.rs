//! Trap-and-forward for passed-through devices that share a page: one device access, done by
//! the hypervisor on the guest's behalf at a physical address.
//!
//! EL2's stage 1 maps everything outside RAM in the first 4 GiB as Device-nGnRE
//! (`mmu::enable_primary`), so a volatile access of the guest's width reaches the device
//! exactly once, in order, as the guest's own access would have.

/// Why a forwarded access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum MmioForwardError {
    /// Not 1, 2, 4 or 8 bytes, or not naturally aligned (Device memory faults on those).
    BadAccess,
    /// Above the 4 GiB that EL2 maps as Device memory.
    OutOfRange,
    /// Inside the hypervisor's own image, BSS or stacks.
    Hypervisor,
}

/// The 4 GiB window EL2 maps (`mmu`).
const MAPPED_LIMIT: u64 = 1 << 32;

fn check(pa: u64, bytes: u64) -> Result<(), MmioForwardError> {
    if !matches!(bytes, 1 | 2 | 4 | 8) || !pa.is_multiple_of(bytes) {
        return Err(MmioForwardError::BadAccess);
    }
    if pa.checked_add(bytes).is_none_or(|end| end > MAPPED_LIMIT) {
        return Err(MmioForwardError::OutOfRange);
    }
    Ok(())
}

/// The checks every forwarded access passes, plus: never the hypervisor's own memory.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn check_target(pa: u64, bytes: u64) -> Result<(), MmioForwardError> {
    check(pa, bytes)?;
    if crate::phys::touches_hypervisor(pa, bytes) {
        return Err(MmioForwardError::Hypervisor);
    }
    Ok(())
}

/// Reads `bytes` (1, 2, 4 or 8) from device register `pa`.
///
/// The caller passes an address inside a device window of the validated system tables
/// (`tessera_config::Device`, never RAM: the validator refuses device windows in RAM), which
/// the VM owns.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn read(pa: u64, bytes: u64) -> Result<u64, MmioForwardError> {
    check_target(pa, bytes)?;
    // SAFETY: `pa` is naturally aligned, below 4 GiB (mapped at EL2) and outside the
    // hypervisor's image, BSS and stacks (checked above), so no Rust object lives there;
    // callers pass a device register from the validated tables.
    let value = unsafe {
        match bytes {
            1 => u64::from(core::ptr::read_volatile(pa as *const u8)),
            2 => u64::from(core::ptr::read_volatile(pa as *const u16)),
            4 => u64::from(core::ptr::read_volatile(pa as *const u32)),
            _ => core::ptr::read_volatile(pa as *const u64),
        }
    };
    Ok(value)
}

/// Writes the low `bytes` (1, 2, 4 or 8) of `value` to device register `pa`; as [`read`].
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn write(pa: u64, bytes: u64, value: u64) -> Result<(), MmioForwardError> {
    check_target(pa, bytes)?;
    // SAFETY: as in `read`: aligned, mapped, outside the hypervisor's memory (checked above),
    // so the write touches no memory Rust owns.
    unsafe {
        match bytes {
            1 => core::ptr::write_volatile(pa as *mut u8, value as u8),
            2 => core::ptr::write_volatile(pa as *mut u16, value as u16),
            4 => core::ptr::write_volatile(pa as *mut u32, value as u32),
            _ => core::ptr::write_volatile(pa as *mut u64, value),
        }
    }
    Ok(())
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn read(_pa: u64, _bytes: u64) -> Result<u64, MmioForwardError> {
    unimplemented!("host build")
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn write(_pa: u64, _bytes: u64, _value: u64) -> Result<(), MmioForwardError> {
    unimplemented!("host build")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_odd_sizes_misalignment_and_high_addresses() {
        assert_eq!(check(0x0a00_3e00, 4), Ok(()));
        assert_eq!(check(0x0a00_3e00, 3), Err(MmioForwardError::BadAccess));
        assert_eq!(check(0x0a00_3e02, 4), Err(MmioForwardError::BadAccess));
        assert_eq!(check(0xffff_fffc, 8), Err(MmioForwardError::BadAccess));
        assert_eq!(check(0x1_0000_0000, 4), Err(MmioForwardError::OutOfRange));
        assert_eq!(check(u64::MAX - 7, 8), Err(MmioForwardError::OutOfRange));
    }
}
