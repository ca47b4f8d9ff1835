//! The generated guest device trees, read back with an independent parser (fdt-rs).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Fixture, node, parse_fdt};

#[test]
fn the_guest_tree_describes_memory_cpus_psci_console_and_chosen() {
    let plan = Fixture::new("valid").check().unwrap();
    let beta = &plan.vms[1];
    let nodes = parse_fdt(&beta.dtb);

    let root = node(&nodes, "");
    assert_eq!(root.cells("#address-cells"), [2]);
    assert_eq!(root.cells("#size-cells"), [2]);
    assert_eq!(root.str("compatible"), "tessera,vm");
    assert_eq!(root.str("model"), "tessera,beta");

    let chosen = node(&nodes, "chosen");
    assert_eq!(chosen.str("bootargs"), "");
    assert_eq!(chosen.str("stdout-path"), "/uart@9000000");

    let memory = node(&nodes, "memory@40000000");
    assert_eq!(memory.str("device_type"), "memory");
    assert_eq!(memory.u64s("reg"), [0x4000_0000, 0x200_0000]);

    let cpus = node(&nodes, "cpus");
    assert_eq!(cpus.cells("#address-cells"), [1]);
    assert_eq!(cpus.cells("#size-cells"), [0]);
    for index in 0..2u32 {
        let cpu = node(&nodes, &format!("cpu@{index}"));
        assert_eq!(cpu.str("device_type"), "cpu");
        assert_eq!(cpu.str("compatible"), "arm,armv8");
        assert_eq!(cpu.cells("reg"), [index], "vCPU index = MPIDR Aff0");
        assert_eq!(cpu.str("enable-method"), "psci");
    }
    assert!(
        nodes.iter().all(|n| n.name != "cpu@2"),
        "beta has two vCPUs"
    );

    let psci = node(&nodes, "psci");
    assert_eq!(psci.strings("compatible"), ["arm,psci-1.0", "arm,psci-0.2"]);
    assert_eq!(psci.str("method"), "hvc");

    let uart = node(&nodes, "uart@9000000");
    assert_eq!(uart.str("compatible"), "arm,sbsa-uart");
    assert_eq!(uart.u64s("reg"), [0x900_0000, 0x1000]);
    assert_eq!(uart.cells("current-speed"), [115_200]);
    assert_eq!(
        uart.cells("interrupts"),
        [0, 1, 4],
        "GIC_SPI 1 (INTID 33), level high"
    );
}

#[test]
fn every_memory_region_console_override_and_bootargs_appear() {
    let plan = Fixture::new("everything").check().unwrap();
    let nodes = parse_fdt(&plan.vms[0].dtb);
    assert_eq!(
        node(&nodes, "memory@80000000").u64s("reg"),
        [0x8000_0000, 0x100_0000]
    );
    assert_eq!(
        node(&nodes, "memory@90000000").u64s("reg"),
        [0x9000_0000, 0x40_0000]
    );
    assert_eq!(
        node(&nodes, "chosen").str("bootargs"),
        "console=ttyAMA0 quiet"
    );
    assert_eq!(node(&nodes, "chosen").str("stdout-path"), "/uart@1c090000");
    assert_eq!(
        node(&nodes, "uart@1c090000").u64s("reg"),
        [0x1c09_0000, 0x1000]
    );
    assert_eq!(node(&nodes, "cpu@1").cells("reg"), [1]);
}

#[test]
fn no_console_means_no_uart_and_no_stdout_path() {
    let plan = Fixture::new("everything").check().unwrap();
    let nodes = parse_fdt(&plan.vms[1].dtb);
    assert!(nodes.iter().all(|n| !n.name.starts_with("uart@")));
    assert_eq!(node(&nodes, "chosen").prop("stdout-path"), None);
}

#[test]
fn probe_targets_name_the_hypervisor_other_vms_and_the_boards_devices() {
    let plan = Fixture::new("probe-targets").check().unwrap();
    let (attacker, victim) = (&plan.vms[0], &plan.vms[1]);
    let chosen_nodes = parse_fdt(&attacker.dtb);
    let chosen = node(&chosen_nodes, "chosen");
    let names = chosen.strings("tessera,probe-target-names");
    let cells = chosen.u64s("tessera,probe-targets");
    assert_eq!(cells.len(), names.len() * 2, "one <base size> pair per name");
    let pairs: Vec<(&str, u64, u64)> = names
        .iter()
        .zip(cells.chunks(2))
        .map(|(name, pair)| (*name, pair[0], pair[1]))
        .collect();
    let hv = plan.hv_region;
    assert_eq!(pairs[0], ("hypervisor", hv.base, hv.size));
    // The victim's two regions at their host addresses (allocated after the tree was first
    // built), then the attacker's own host RAM.
    assert_eq!(pairs[1], ("victim", victim.memory[0].pa, 0x200_0000));
    assert_eq!(pairs[2], ("victim", victim.memory[1].pa, 0x20_0000));
    assert_ne!(victim.memory[0].pa, 0, "host memory was allocated");
    assert_eq!(pairs[3], ("self", attacker.memory[0].pa, 0x200_0000));
    assert_eq!(pairs[4], ("ram", 0x4000_0000, 0x4000_0000));
    assert_eq!(pairs[5], ("uart", 0x900_0000, 0x1000));
    assert_eq!(pairs[6], ("gicd", 0x800_0000, 0x1_0000));
    assert_eq!(pairs[7], ("gicr", 0x80a_0000, 0xf6_0000));
    assert_eq!(pairs[8], ("its", 0x808_0000, 0x2_0000));
    assert_eq!(pairs.len(), 9);

    // Only the VM that asked is told.
    let victim_nodes = parse_fdt(&victim.dtb);
    assert!(node(&victim_nodes, "chosen").prop("tessera,probe-targets").is_none());
}
