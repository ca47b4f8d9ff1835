//! Direct-interrupt VMs (`docs/direct-mode.md`): the decisions the hypervisor still makes for
//! a guest that drives the physical GIC CPU interface itself.
//!
//! Such a guest's writes to `ICC_SGI1R_EL1`, `ICC_SGI0R_EL1` and `ICC_ASGI1R_EL1` trap
//! (`HCR_EL2.FMO` = 1). [`guest_sgi1r`] turns an `ICC_SGI1R_EL1` value into the VM's own
//! vCPUs it may reach; everything else it names is dropped. Its interrupts' priorities are
//! kept in the lower half ([`physical_priority`]) so that the hypervisor's Group 0 always
//! pre-empts an interrupt the guest has acknowledged.

use crate::vcpu;

/// `ICC_SGI1R_EL1` fields (IHI 0069 12.2.22).
const TARGET_LIST_MASK: u64 = 0xffff;
const AFF1_SHIFT: u32 = 16;
const INTID_SHIFT: u32 = 24;
const AFF2_SHIFT: u32 = 32;
const IRM: u64 = 1 << 40;
const RS_SHIFT: u32 = 44;
const AFF3_SHIFT: u32 = 48;

/// What a direct guest's `ICC_SGI1R_EL1` write may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SgiDecision {
    /// The SGI's INTID (0..=15).
    pub intid: u32,
    /// The VM's vCPUs to send it to (bit n = vCPU n, the sender's own bit included if it
    /// named itself). Empty when the INTID is the hypervisor's.
    pub targets: u32,
    /// What was dropped, if anything.
    pub dropped: Option<Dropped>,
}

/// Why (part of) a direct guest's SGI was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Dropped {
    /// The INTID is one the hypervisor keeps on the VM's CPUs (its kick, its halt).
    ReservedIntid,
    /// The target list names an affinity that is none of the VM's vCPUs.
    OutsideVm,
}

/// Decides a direct guest's `ICC_SGI1R_EL1` write from vCPU `sender` of a VM with
/// `vcpu_count` vCPUs: `IRM` = 1 means every other vCPU of the VM (never another VM's CPU);
/// otherwise each bit n of `TargetList` names affinity `Aff3.Aff2.Aff1.(16 × RS + n)`,
/// looked up among the VM's vCPU identities ([`vcpu::vmpidr`]). `reserved` (bit n = SGI n)
/// are the hypervisor's INTIDs: such an SGI goes nowhere.
pub fn guest_sgi1r(value: u64, sender: usize, vcpu_count: usize, reserved: u16) -> SgiDecision {
    let intid = ((value >> INTID_SHIFT) & 0xf) as u32;
    if reserved & (1 << intid) != 0 {
        return SgiDecision { intid, targets: 0, dropped: Some(Dropped::ReservedIntid) };
    }
    let count = vcpu_count.min(32);
    let mut targets = 0u32;
    let mut dropped = None;
    if value & IRM != 0 {
        for vcpu in (0..count).filter(|&v| v != sender) {
            targets |= 1 << vcpu;
        }
    } else {
        let upper = (((value >> AFF3_SHIFT) & 0xff) << 32)
            | (((value >> AFF2_SHIFT) & 0xff) << 16)
            | (((value >> AFF1_SHIFT) & 0xff) << 8);
        let range_base = ((value >> RS_SHIFT) & 0xf) * 16;
        let list = value & TARGET_LIST_MASK;
        for n in (0..16).filter(|n| list & (1 << n) != 0) {
            match vcpu::index_by_mpidr(upper | (range_base + n), count) {
                Some(vcpu) => targets |= 1 << vcpu,
                None => dropped = Some(Dropped::OutsideVm),
            }
        }
    }
    SgiDecision { intid, targets, dropped }
}

/// The lowest (most urgent) priority a direct guest's interrupt gets on the physical GIC.
/// The hypervisor's own Group 0 interrupts on those CPUs are above it (numerically below),
/// so they pre-empt whatever the guest has acknowledged.
pub const GUEST_PRIORITY_FLOOR: u8 = 0x80;

/// The hypervisor's priority for its Group 0 interrupts on a direct VM's CPUs.
pub const HYPERVISOR_PRIORITY: u8 = 0x40;

const _: () = assert!(HYPERVISOR_PRIORITY < GUEST_PRIORITY_FLOOR, "Group 0 must pre-empt every guest priority");

/// The physical priority for a guest-written `priority`: halved into the lower half
/// (0x80..=0xff), so the guest's own order is kept (as far as the halved value can) and no
/// guest interrupt reaches the hypervisor's range.
pub const fn physical_priority(priority: u8) -> u8 {
    GUEST_PRIORITY_FLOOR | (priority >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESERVED: u16 = (1 << 0) | (1 << 15);

    fn sgi1r(intid: u64, list: u64) -> u64 {
        (intid << INTID_SHIFT) | list
    }

    #[test]
    fn targets_among_the_vms_own_vcpus() {
        // vCPUs 0 and 1 (Aff0 0 and 1), SGI 5, from vCPU 0: both named, both sent.
        let decision = guest_sgi1r(sgi1r(5, 0b11), 0, 2, RESERVED);
        assert_eq!(decision, SgiDecision { intid: 5, targets: 0b11, dropped: None });
    }

    #[test]
    fn every_target_list_outside_the_vm_is_dropped() {
        // A 2-vCPU VM: Aff0 2..15 of cluster 0, and every other cluster and range, are not it.
        for n in 2..16 {
            let decision = guest_sgi1r(sgi1r(3, 1 << n), 0, 2, RESERVED);
            assert_eq!(decision.targets, 0, "Aff0 {n}");
            assert_eq!(decision.dropped, Some(Dropped::OutsideVm));
        }
        let other_cluster = sgi1r(3, 0xffff) | (1 << AFF1_SHIFT);
        assert_eq!(guest_sgi1r(other_cluster, 0, 2, RESERVED).targets, 0);
        let other_range = sgi1r(3, 0xffff) | (1 << RS_SHIFT);
        assert_eq!(guest_sgi1r(other_range, 0, 2, RESERVED).targets, 0);
        let aff3 = sgi1r(3, 0b1) | (1 << AFF3_SHIFT);
        assert_eq!(guest_sgi1r(aff3, 0, 2, RESERVED).targets, 0);
        // A list naming its own vCPUs and others: the VM's are sent, the rest dropped.
        let mixed = guest_sgi1r(sgi1r(3, 0xffff), 0, 2, RESERVED);
        assert_eq!(mixed, SgiDecision { intid: 3, targets: 0b11, dropped: Some(Dropped::OutsideVm) });
    }

    #[test]
    fn broadcast_stays_inside_the_vm() {
        let decision = guest_sgi1r(sgi1r(7, 0) | IRM, 1, 3, RESERVED);
        assert_eq!(decision, SgiDecision { intid: 7, targets: 0b101, dropped: None });
        // Alone in its VM: a broadcast reaches no one.
        assert_eq!(guest_sgi1r(sgi1r(7, 0) | IRM, 0, 1, RESERVED).targets, 0);
    }

    #[test]
    fn the_hypervisors_intids_go_nowhere() {
        for intid in [0, 15] {
            for value in [sgi1r(intid, 0b1), sgi1r(intid, 0) | IRM] {
                let decision = guest_sgi1r(value, 0, 2, RESERVED);
                assert_eq!(decision.targets, 0);
                assert_eq!(decision.dropped, Some(Dropped::ReservedIntid));
            }
        }
        for intid in 1..15 {
            assert_eq!(guest_sgi1r(sgi1r(intid, 0b1), 0, 1, RESERVED).targets, 0b1, "SGI {intid}");
        }
    }

    #[test]
    fn guest_priorities_stay_below_the_hypervisors() {
        for priority in 0..=255u8 {
            let physical = physical_priority(priority);
            assert!(physical >= GUEST_PRIORITY_FLOOR, "{priority:#x} -> {physical:#x}");
        }
        // The guest's order is kept.
        assert!(physical_priority(0x10) < physical_priority(0x20));
        assert_eq!(physical_priority(0), 0x80);
        assert_eq!(physical_priority(0xff), 0xff);
    }
}
