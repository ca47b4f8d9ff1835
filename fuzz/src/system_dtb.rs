//! The system-description path of the build tool after `dtc`: any bytes as a compiled
//! description, through the FDT reader, the strict parser, device resolution against the
//! board's device tree, placement and the validator the hypervisor also links
//! ([`xtask::check_blob`]).
//!
//! Invariants checked:
//! - every rejection has a message, and a blob the FDT reader refuses is refused as a
//!   malformed device tree (not as something the parser made of it);
//! - a tree the reader accepts survives a write and a re-read unchanged;
//! - an accepted system has 1..=255 VMs with distinct names and VMIDs, every VM has CPUs and
//!   memory, and its plan passes the validator again.

use std::collections::HashSet;
use std::process::Command;
use std::sync::OnceLock;

use xtask::dts::fdt::{self, Node};

/// `platforms/qemu-virt/board.dts`, compiled once.
fn board_dtb() -> &'static [u8] {
    static BOARD: OnceLock<Vec<u8>> = OnceLock::new();
    BOARD.get_or_init(|| {
        let path = xtask::devices::board_dts("qemu-virt");
        let output = Command::new("dtc")
            .args(["-q", "-I", "dts", "-O", "dtb"])
            .arg(&path)
            .output()
            .expect("dtc");
        assert!(output.status.success(), "dtc {}", path.display());
        output.stdout
    })
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let tree = fdt::read(data);
    if let Ok(root) = &tree {
        round_trip(root);
    }
    match xtask::check_blob(data, Some(board_dtb()), &[0xaa; 4096], &[0x55; 4096]) {
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty(), "an empty message for {error:?}");
            if tree.is_err() {
                assert!(
                    matches!(error, xtask::Error::MalformedDtb { .. }),
                    "{error:?}"
                );
            }
        }
        Ok(plan) => {
            assert!(tree.is_ok(), "accepted a blob the reader refuses");
            assert!(
                (1..=255).contains(&plan.vms.len()),
                "{} VMs",
                plan.vms.len()
            );
            let mut names = HashSet::new();
            let mut vmids = HashSet::new();
            for vm in &plan.vms {
                assert!(
                    names.insert(&vm.name) && vmids.insert(vm.vmid),
                    "VM {} twice",
                    vm.name
                );
                assert!(
                    !vm.cpus.is_empty() && !vm.memory.is_empty(),
                    "VM {} without CPUs or memory",
                    vm.name
                );
            }
            let board =
                xtask::pipeline::board(&plan.board).expect("the board it was checked against");
            plan.validate(board)
                .expect("a plan that passed validates again");
        }
    }
}

/// Writes `root` with vm-fdt and reads it back.
fn round_trip(root: &Node) {
    let Ok(mut writer) = vm_fdt::FdtWriter::new() else {
        return;
    };
    if write_node(&mut writer, root).is_err() {
        return; // vm-fdt refuses some names the reader takes (it checks more of the spec)
    }
    let Ok(blob) = writer.finish() else { return };
    let again = fdt::read(&blob).expect("the reader reads what vm-fdt writes");
    assert_eq!(&again, root, "the tree changed in a write and re-read");
}

fn write_node(writer: &mut vm_fdt::FdtWriter, node: &Node) -> Result<(), vm_fdt::Error> {
    let handle = writer.begin_node(&node.name)?;
    for property in &node.properties {
        writer.property(&property.name, &property.value)?;
    }
    for child in &node.children {
        write_node(writer, child)?;
    }
    writer.end_node(handle)
}
