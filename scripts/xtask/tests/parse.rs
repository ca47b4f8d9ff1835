//! The strict parser: one test per kind of bad input, each naming the node (and property).
#![allow(clippy::unwrap_used)]

mod common;

use common::Fixture;
use tessera_config::{Console, ExitAction, FaultPolicy, WfiPolicy};
use xtask::Error;

#[test]
fn the_valid_fixture_passes() {
    let plan = Fixture::new("valid").check().unwrap();
    assert_eq!(plan.board, "qemu-virt");
    let names: Vec<_> = plan.vms.iter().map(|vm| vm.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(plan.vms[1].cpus, [1, 2]);
    assert_eq!(plan.vms[0].vmid, 1);
    assert_eq!(plan.vms[1].vmid, 2);
}

#[test]
fn every_optional_property_is_read() {
    let plan = Fixture::new("everything").check().unwrap();
    let alpha = &plan.vms[0];
    assert_eq!(alpha.cpus, [3, 1]);
    assert_eq!(
        alpha.console,
        Some(Console {
            ipa: 0x1c09_0000,
            intid: 37
        })
    );
    assert_eq!(alpha.load_ipa, 0x8008_0000);
    assert_eq!(alpha.entry_ipa, 0x8008_0040);
    assert_eq!(alpha.fault_policy, FaultPolicy::Stop);
    assert_eq!(alpha.on_system_off, ExitAction::Restart);
    assert_eq!(alpha.on_system_reset, ExitAction::Stop);
    assert_eq!(alpha.wfi, WfiPolicy::Trap);
    assert!(!alpha.physical_counter);
    assert_eq!(alpha.memory.len(), 2);
    assert_eq!(alpha.memory[0].pa, 0x6000_0000, "host-base is kept");
    assert_eq!(alpha.memory[1].ipa, 0x9000_0000);
    let beta = &plan.vms[1];
    assert_eq!(beta.console, None);
    assert_eq!(beta.fault_policy, FaultPolicy::Inject, "default");
    assert_eq!(beta.on_system_off, ExitAction::Stop, "default");
    assert_eq!(beta.on_system_reset, ExitAction::Restart, "default");
    assert_eq!(beta.wfi, WfiPolicy::Native, "default");
    assert!(beta.physical_counter, "default");
}

#[test]
fn unknown_property() {
    let (error, message) = Fixture::new("unknown-property").error();
    assert!(
        matches!(&error, Error::UnknownProperty { node, property } if node == "/vms/alpha" && property == "colour")
    );
    assert_eq!(message, "/vms/alpha: unknown property `colour`");
}

#[test]
fn unknown_node() {
    let (error, message) = Fixture::new("unknown-node").error();
    assert!(matches!(&error, Error::UnknownNode { node } if node == "/vms/alpha/disk"));
    assert_eq!(message, "/vms/alpha/disk: unknown node");
}

#[test]
fn bad_cells() {
    let (error, message) = Fixture::new("bad-cells").error();
    assert!(
        matches!(&error, Error::BadCells { node, property, found_bytes: 4, .. }
        if node == "/vms/alpha/memory" && property == "size")
    );
    assert!(
        message.starts_with("/vms/alpha/memory: property `size` must be a 64-bit number"),
        "{message}"
    );
}

#[test]
fn missing_required_property() {
    let (error, message) = Fixture::new("missing-property").error();
    assert!(
        matches!(&error, Error::MissingProperty { node, property: "size" } if node == "/vms/alpha/memory")
    );
    assert_eq!(
        message,
        "/vms/alpha/memory: missing required property `size`"
    );
}

#[test]
fn missing_image_file() {
    let fixture = Fixture::new("missing-image");
    let (error, message) = fixture.error();
    let expected = fixture
        .dir
        .path()
        .canonicalize()
        .unwrap()
        .join("does-not-exist.img");
    assert!(
        matches!(&error, Error::ImageUnreadable { node, path, .. } if node == "/vms/alpha" && *path == expected)
    );
    assert!(
        message.starts_with("/vms/alpha: cannot read image "),
        "{message}"
    );
    assert!(message.contains("does-not-exist.img"), "{message}");
}

#[test]
fn not_utf8() {
    let (error, message) = Fixture::new("not-utf8").error();
    assert!(
        matches!(&error, Error::NotUtf8 { node, property } if node == "/vms/alpha" && property == "bootargs")
    );
    assert_eq!(message, "/vms/alpha: property `bootargs` is not UTF-8");
}

#[test]
fn guest_and_image_conflict() {
    let (error, message) = Fixture::new("guest-and-image").error();
    assert!(matches!(&error, Error::Conflict { node, .. } if node == "/vms/alpha"));
    assert_eq!(
        message,
        "/vms/alpha: `guest` and `image` cannot both be given"
    );
}

#[test]
fn bad_value() {
    let (error, message) = Fixture::new("bad-value").error();
    assert!(
        matches!(&error, Error::BadValue { node, property, .. } if node == "/vms/alpha" && property == "fault-policy")
    );
    assert_eq!(
        message,
        "/vms/alpha: property `fault-policy` is \"ignore\", but it must be \"inject\", \"stop\" or \"restart\""
    );
}

#[test]
fn bad_wfi_policy() {
    let (error, message) = Fixture::new("bad-wfi").error();
    assert!(matches!(&error, Error::BadValue { node, property, .. } if node == "/vms/alpha" && property == "wfi"));
    assert_eq!(message, "/vms/alpha: property `wfi` is \"sleep\", but it must be \"native\" or \"trap\"");
}

#[test]
fn dtc_errors_carry_dtc_messages() {
    let dir = tempfile::tempdir().unwrap();
    let dts = dir.path().join("broken.dts");
    std::fs::write(&dts, "/dts-v1/;\n/ { vms { a { }; a { }; }; };\n").unwrap();
    let error = xtask::check(&xtask::Workspace::locate(), &dts).unwrap_err();
    assert!(
        matches!(&error, Error::Dtc { stderr } if stderr.contains("Duplicate node name")),
        "{error}"
    );
}

#[test]
fn cpu_pools_and_rtds_parameters_are_read() {
    use tessera_config::{RtdsParams, Scheduler};
    let plan = Fixture::new("rtds-pools").check().unwrap();
    let pools: Vec<_> = plan.pools.iter().map(|p| (p.name.as_str(), p.cpus.clone(), p.scheduler)).collect();
    assert_eq!(pools, [("main", vec![0, 1, 2], Scheduler::Null), ("rt", vec![3], Scheduler::Rtds)]);
    assert_eq!(plan.vms[0].rtds, None);
    assert_eq!(plan.vms[1].rtds, Some(RtdsParams { budget_us: 2000, period_us: 10_000, extratime: false }));
    assert_eq!(plan.vms[2].rtds, Some(RtdsParams { budget_us: 7000, period_us: 10_000, extratime: true }));
}

#[test]
fn unknown_pool_scheduler() {
    let (_, message) = Fixture::new("rtds-bad-scheduler").error();
    assert_eq!(message, "/cpupools/rt: property `scheduler` is \"edf\", but it must be \"null\" or \"rtds\"");
}

#[test]
fn budget_without_period() {
    let (_, message) = Fixture::new("rtds-half").error();
    assert_eq!(message, "/vms/beta: missing required property `period-us`");
}

#[test]
fn probe_targets_is_a_flag() {
    let (error, message) = Fixture::new("bad-probe-flag").error();
    assert!(
        matches!(&error, Error::BadCells { node, property, found_bytes: 4, .. }
        if node == "/vms/alpha" && property == "test-probe-targets"),
        "{error:?}"
    );
    assert!(message.contains("test-probe-targets"), "{message}");
}
