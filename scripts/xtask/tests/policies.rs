//! Fault, watchdog and device-reset policies, end to end from a `.dts`: what the tables get,
//! and one test per error, each naming the node (and property).
#![allow(clippy::unwrap_used)]

mod common;

use common::Fixture;
use tessera_config::{ExitAction, FaultPolicy, ResetWrite, Watchdog};
use xtask::Error;

fn fixture(alpha_extra: &str, beta_extra: &str) -> Fixture {
    Fixture::two_vms(alpha_extra, beta_extra)
}

fn message(alpha: &str, beta: &str) -> String {
    fixture(alpha, beta).error().1
}

#[test]
fn restart_fault_policy_and_a_watchdog_reach_the_tables() {
    let plan = fixture(
        r#"fault-policy = "restart"; watchdog-ms = <250>; watchdog-first-ms = <3000>; on-watchdog = "stop";"#,
        r#"watchdog-ms = <100>;"#,
    )
    .check()
    .unwrap();
    let alpha = &plan.vms[0];
    assert_eq!(alpha.fault_policy, FaultPolicy::Restart);
    assert_eq!(
        alpha.watchdog,
        Some(Watchdog { period_ms: 250, first_ms: 3000, action: ExitAction::Stop })
    );
    // Defaults: the first period is the period, an expiry restarts.
    assert_eq!(
        plan.vms[1].watchdog,
        Some(Watchdog { period_ms: 100, first_ms: 100, action: ExitAction::Restart })
    );
    assert_eq!(plan.vms[1].fault_policy, FaultPolicy::Inject);
    // The hypervisor is built with its watchdogs, and the tables insist on it.
    assert_eq!(plan.hypervisor_features(), ["watchdog"]);
    let out = fixture_out(&plan);
    assert!(out.contains("#[cfg(not(feature = \"watchdog\"))]\ncompile_error!("), "{out}");
}

#[test]
fn no_watchdog_by_default() {
    let plan = fixture("", "").check().unwrap();
    assert!(plan.vms.iter().all(|vm| vm.watchdog.is_none()));
    // Nor any watchdog code in the hypervisor.
    assert!(plan.hypervisor_features().is_empty());
    assert!(!fixture_out(&plan).contains("compile_error!"));
}

/// The generated `system.rs` for `plan`.
fn fixture_out(plan: &xtask::layout::Plan) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = xtask::tables::write(plan, &dir.path().join("system.dts"), dir.path()).unwrap();
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn zero_watchdog_period() {
    assert_eq!(
        message("", "watchdog-ms = <0>;"),
        "/vms/beta: watchdog-ms = <0> is not a period of 1..=3600000 ms"
    );
}

#[test]
fn absurd_first_watchdog_period() {
    assert_eq!(
        message("watchdog-ms = <100>; watchdog-first-ms = <4000000>;", ""),
        "/vms/alpha: watchdog-first-ms = <4000000> is not a period of 1..=3600000 ms"
    );
}

#[test]
fn watchdog_options_need_a_period() {
    let (error, text) = fixture(r#"on-watchdog = "stop";"#, "").error();
    assert!(
        matches!(&error, Error::MissingProperty { node, property: "watchdog-ms" } if node == "/vms/alpha"),
        "{text}"
    );
    let (error, _) = fixture("", "watchdog-first-ms = <10>;").error();
    assert!(matches!(&error, Error::MissingProperty { node, property: "watchdog-ms" } if node == "/vms/beta"));
}

#[test]
fn bad_policy_values() {
    let (error, text) = fixture(r#"watchdog-ms = <100>; on-watchdog = "inject";"#, "").error();
    assert!(matches!(&error, Error::BadValue { node, property, .. } if node == "/vms/alpha" && property == "on-watchdog"), "{text}");
    let (error, text) = fixture("", r#"fault-policy = "reboot";"#).error();
    assert!(matches!(&error, Error::BadValue { node, property, .. } if node == "/vms/beta" && property == "fault-policy"), "{text}");
    assert!(text.contains(r#""inject", "stop" or "restart""#), "{text}");
}

const BLK: &str = r#"devices = "/virtio_mmio@a003e00"; dma-unrestricted = "/virtio_mmio@a003e00"; sub-page = "trap";"#;

#[test]
fn reset_writes_of_a_board_device_and_a_raw_device() {
    let alpha = format!("{BLK} reset@0 {{ device = \"/virtio_mmio@a003e00\"; reset-writes = <0x70 0 0x64 1>; }};");
    let raw = r#"device@0 { reg = /bits/ 64 <0x9030000 0x1000>; dma = "none"; reset-writes = <0x10 0xff>; };"#;
    let plan = fixture(&alpha, raw).check().unwrap();
    let table = plan.vms[0].device_table();
    assert_eq!(
        table[0].reset_writes,
        &[ResetWrite { offset: 0x70, value: 0 }, ResetWrite { offset: 0x64, value: 1 }]
    );
    let table = plan.vms[1].device_table();
    assert_eq!(table[0].reset_writes, &[ResetWrite { offset: 0x10, value: 0xff }]);
}

#[test]
fn reset_write_outside_the_device_window() {
    let alpha = format!("{BLK} reset@0 {{ device = \"/virtio_mmio@a003e00\"; reset-writes = <0x200 0>; }};");
    assert_eq!(
        message(&alpha, ""),
        "/vms/alpha: device window 0xa003e00 size 0x200: reset write at offset 0x200 is not a 4-byte aligned register inside the window"
    );
}

#[test]
fn reset_of_a_device_the_vm_does_not_have() {
    let alpha = format!("{BLK} reset@0 {{ device = \"/virtio_mmio@a003c00\"; reset-writes = <0x70 0>; }};");
    let (error, text) = fixture(&alpha, "").error();
    assert!(
        matches!(&error, Error::BadValue { node, property, .. } if node == "/vms/alpha/reset@0" && property == "device"),
        "{text}"
    );
}

#[test]
fn reset_writes_must_be_pairs() {
    let raw = r#"device@0 { reg = /bits/ 64 <0x9030000 0x1000>; dma = "none"; reset-writes = <0x10>; };"#;
    let (error, text) = fixture("", raw).error();
    assert!(
        matches!(&error, Error::BadCells { node, property, .. } if node == "/vms/beta/device@0" && property == "reset-writes"),
        "{text}"
    );
    let alpha = format!("{BLK} reset@0 {{ device = \"/virtio_mmio@a003e00\"; }};");
    let (error, _) = fixture(&alpha, "").error();
    assert!(matches!(&error, Error::MissingProperty { node, property: "reset-writes" } if node == "/vms/alpha/reset@0"));
}
