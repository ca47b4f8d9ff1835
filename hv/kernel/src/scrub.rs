//! Scrubbing a VM's RAM: what must be clean before its first instruction is zeroed at load,
//! the rest on first touch.
//!
//! At load (boot and every restart) each 2 MiB block of the VM's RAM that holds part of its
//! image, DTB or initrd is zeroed before they are copied in; so is RAM that stage 2 maps with
//! 4 KiB pages, and all RAM of a VM with passed-through devices (a device could DMA into
//! RAM the guest has not touched yet). Every other block is *parked*
//! (`tessera_core::stage2::set_block_parked`): its descriptor is invalid, so the guest's
//! first access to it, by any vCPU, including a stage-1 table walk, takes a stage-2 fault.
//! [`on_stage2_fault`] zeroes the block and only then makes it valid; the access is retried.
//! The guest can therefore never read a byte that a previous run, another VM or the boot
//! firmware left there, and a VM starts after scrubbing only what it is loaded into
//! (`first_guest_insn_ms`). The price is one fault and one 2 MiB scrub per block, paid when
//! the guest first needs it.
//!
//! Lock: `run::STAGE2_POOL` is held while a block is zeroed and unparked, so two vCPUs that
//! fault on one block scrub it once. It is taken with no other lock held.

use core::sync::atomic::{AtomicUsize, Ordering};

use tessera_config::{MemRange, Vm};
use tessera_core::stage2::{self, BLOCK_SIZE};

use crate::run::STAGE2_POOL;
use crate::vm::MAX_VMS;

/// Each VM's tables in `STAGE2_POOL`: first index and count (0: not built).
static FIRST_TABLE: [AtomicUsize; MAX_VMS] = [const { AtomicUsize::new(0) }; MAX_VMS];
static TABLE_COUNT: [AtomicUsize; MAX_VMS] = [const { AtomicUsize::new(0) }; MAX_VMS];

/// Records where VM `index`'s stage-2 tables are in the pool (at boot, after building them).
pub fn record_tables(index: usize, first: usize, count: usize) {
    if let (Some(first_slot), Some(count_slot)) = (FIRST_TABLE.get(index), TABLE_COUNT.get(index)) {
        first_slot.store(first, Ordering::Relaxed);
        count_slot.store(count, Ordering::Release);
    }
}

/// What the VM is loaded with, as IPA ranges: the blocks holding them are scrubbed at once.
fn loaded_ranges(vm: &Vm<'_>) -> [Option<MemRange>; 3] {
    [
        Some(MemRange::new(vm.image.load_ipa, vm.image.bytes.len() as u64)),
        Some(MemRange::new(vm.dtb_ipa, vm.dtb.len() as u64)),
        vm.initrd.map(|initrd| MemRange::new(initrd.ipa, initrd.bytes.len() as u64)),
    ]
}

fn overlaps(a: &MemRange, b: &MemRange) -> bool {
    a.size != 0 && b.size != 0 && a.base < b.base.saturating_add(b.size) && b.base < a.base.saturating_add(a.size)
}

/// Scrubs what VM `index` needs before its first instruction and parks the rest of its RAM
/// (see the module docs). The VM must not be running. Invalidates the guest TLBs when a
/// block that was live is parked (a restart).
pub fn scrub_for_load(index: usize, vm: &Vm<'_>) -> Result<(), &'static str> {
    let loaded = loaded_ranges(vm);
    let lazy_allowed = vm.devices.is_empty();
    let first = FIRST_TABLE.get(index).map_or(0, |f| f.load(Ordering::Relaxed));
    let count = TABLE_COUNT.get(index).map_or(0, |c| c.load(Ordering::Acquire));
    let mut pool = STAGE2_POOL.lock();
    let pool_pa = pool.as_ptr() as u64;
    let tables = pool.get_mut(first..first + count).unwrap_or(&mut []);
    let tables_pa = pool_pa + (first as u64) * stage2::PAGE_SIZE;
    let mut parked_live = false;
    for region in vm.memory {
        let mut offset = 0;
        while offset < region.size {
            let ipa = region.ipa + offset;
            let pa = region.pa + offset;
            // Up to the next 2 MiB boundary of the IPA (stage 2 maps whole blocks only where
            // IPA and PA are both aligned and a whole block remains).
            let step = (BLOCK_SIZE - ipa % BLOCK_SIZE).min(region.size - offset);
            let chunk = MemRange::new(ipa, step);
            let eager = !lazy_allowed || loaded.iter().flatten().any(|range| overlaps(range, &chunk));
            let block = step == BLOCK_SIZE && stage2::block_parked(tables, tables_pa, ipa).is_some();
            if block && !eager {
                if let Some((_, was_parked)) = stage2::set_block_parked(tables, tables_pa, ipa, true) {
                    parked_live |= !was_parked;
                }
            } else {
                tessera_arch::phys::zero(pa, step).map_err(|_| "RAM refused")?;
                if block {
                    stage2::set_block_parked(tables, tables_pa, ipa, false);
                }
            }
            offset += step;
        }
    }
    drop(pool);
    if parked_live {
        tessera_arch::cache::invalidate_guest_tlbs_all();
    }
    Ok(())
}

/// A stage-2 fault of VM `index` at `ipa`: if it is in a parked block of its RAM, zeroes the
/// block, makes it valid and returns true (the guest retries the access). Also true when
/// another vCPU got there first. False when `ipa` is not in a block of the VM's RAM: the
/// caller handles the fault as before.
pub fn on_stage2_fault(index: usize, vm: &Vm<'_>, ipa: u64) -> bool {
    if !vm.memory.iter().any(|region| region.ipa_range().contains(ipa)) {
        return false;
    }
    let first = FIRST_TABLE.get(index).map_or(0, |f| f.load(Ordering::Relaxed));
    let count = TABLE_COUNT.get(index).map_or(0, |c| c.load(Ordering::Acquire));
    let mut pool = STAGE2_POOL.lock();
    let pool_pa = pool.as_ptr() as u64;
    let Some(tables) = pool.get_mut(first..first + count) else { return false };
    let tables_pa = pool_pa + (first as u64) * stage2::PAGE_SIZE;
    let block_ipa = ipa - ipa % BLOCK_SIZE;
    match stage2::block_parked(tables, tables_pa, block_ipa) {
        Some((pa, true)) => {
            if tessera_arch::phys::zero(pa, BLOCK_SIZE).is_err() {
                return false;
            }
            // Zeroes and their clean are complete (`zero` ends with DSB SY) before the
            // descriptor turns valid; an invalid descriptor is never in a TLB.
            stage2::set_block_parked(tables, tables_pa, block_ipa, false);
            tessera_arch::cache::publish_stage2_update();
            true
        }
        Some((_, false)) => true,
        None => false,
    }
}
