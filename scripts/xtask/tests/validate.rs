//! The shared validator's errors, end to end from a `.dts`: each message names `/vms/<name>`.
#![allow(clippy::unwrap_used)]

mod common;

use common::Fixture;
use xtask::Error;

fn invalid(fixture: &str) -> String {
    match Fixture::new(fixture).error() {
        (Error::Invalid { message }, _) => message,
        (other, _) => panic!("expected a validator error, got: {other}"),
    }
}

#[test]
fn cpu_given_to_two_vms() {
    assert_eq!(
        invalid("cpu-twice"),
        "/vms/beta: CPU 0 is already given to /vms/alpha"
    );
}

#[test]
fn cpu_not_on_board() {
    assert_eq!(
        invalid("cpu-not-on-board"),
        "/vms/alpha: CPU 7 does not exist on this board (it has CPUs 0..3)"
    );
}

#[test]
fn overlapping_host_memory() {
    assert_eq!(
        invalid("host-overlap"),
        "/vms/beta: memory 0x51000000..0x53000000 overlaps memory 0x50000000..0x52000000 of /vms/alpha"
    );
}

#[test]
fn memory_outside_board_ram() {
    assert_eq!(
        invalid("outside-ram"),
        "/vms/alpha: memory 0x20000000..0x22000000 is not inside the board's RAM"
    );
}

#[test]
fn memory_inside_the_hypervisor_region() {
    let message = invalid("in-hypervisor");
    assert!(
        message.starts_with("/vms/alpha: memory 0x40200000..0x42200000 overlaps the hypervisor's own region 0x40000000.."),
        "{message}"
    );
}

#[test]
fn image_larger_than_vm_memory() {
    let fixture = Fixture::with_image("small-memory", &[0x55; 0x2_0000]);
    match fixture.error() {
        (Error::Invalid { message }, _) => assert_eq!(
            message,
            "/vms/alpha: the image is 131072 bytes but only 65536 bytes of the VM's memory lie after its load address"
        ),
        (other, _) => panic!("{other}"),
    }
}

/// dtc refuses two sibling nodes with one name, so duplicate VM names come from unit
/// addresses: the VM name is the node name without it (`alpha@0`, `alpha@1`).
#[test]
fn duplicate_vm_names() {
    assert_eq!(
        invalid("duplicate-names"),
        "/vms/alpha: a second VM has the same name"
    );
}

#[test]
fn rtds_cpu_overloaded() {
    assert_eq!(
        invalid("rtds-overload"),
        "/vms/gamma: CPU 3 of /cpupools/rt would be loaded to 1.000100 (sum of budget/period > 1): not schedulable under partitioned EDF"
    );
}

#[test]
fn rtds_budget_exceeds_period() {
    assert_eq!(invalid("rtds-budget"), "/vms/beta: budget 12000 us exceeds its period 10000 us");
}

#[test]
fn rtds_vcpu_in_no_pool() {
    assert_eq!(invalid("rtds-no-pool"), "/vms/beta: vCPU 0 runs on CPU 3, which is in no CPU pool");
}
