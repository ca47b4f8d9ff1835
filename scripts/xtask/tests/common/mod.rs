//! Shared by the integration tests: fixtures in a scratch directory, and an independent
//! device tree reader (fdt-rs) to check what the tool writes.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses part of this

use std::path::{Path, PathBuf};

use fdt_rs::base::{DevTree, DevTreeItem};
use fdt_rs::prelude::{FallibleIterator, PropReader};
use xtask::layout::Plan;
use xtask::{Error, Workspace};

/// A fixture copied into a fresh directory, with `guest.img` beside it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub dts: PathBuf,
}

impl Fixture {
    /// `tests/fixtures/<name>.dts`, with a 4 KiB `guest.img` (no Image header).
    pub fn new(name: &str) -> Self {
        Self::with_image(name, &[0xaa; 4096])
    }

    /// A description with VMs `alpha` (CPU 0, RAM identity mapped at 0x50000000) and `beta`
    /// (CPU 1); `alpha_extra` and `beta_extra` go inside their nodes, before `memory`.
    pub fn two_vms(alpha_extra: &str, beta_extra: &str) -> Self {
        let source = format!(
            r#"/dts-v1/;
/ {{
	compatible = "tessera,system";
	board = "qemu-virt";
	vms {{
		alpha {{
			cpus = <0>;
			image = "guest.img";
			{alpha_extra}
			memory {{ guest-base = /bits/ 64 <0x50000000>; size = /bits/ 64 <0x2000000>; host-base = /bits/ 64 <0x50000000>; }};
		}};
		beta {{
			cpus = <1>;
			image = "guest.img";
			{beta_extra}
			memory {{ guest-base = /bits/ 64 <0x40000000>; size = /bits/ 64 <0x2000000>; }};
		}};
	}};
}};
"#
        );
        let fixture = Self::new("host-overlap"); // for its directory and guest.img; the source is replaced
        std::fs::write(&fixture.dts, source).unwrap();
        fixture
    }

    pub fn with_image(name: &str, image: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("{name}.dts"));
        let dts = dir.path().join(format!("{name}.dts"));
        std::fs::copy(&source, &dts).unwrap();
        std::fs::write(dir.path().join("guest.img"), image).unwrap();
        Self { dir, dts }
    }

    /// Writes `initrd.img` beside the description.
    pub fn with_initrd(self, initrd: &[u8]) -> Self {
        std::fs::write(self.dir.path().join("initrd.img"), initrd).unwrap();
        self
    }

    pub fn check(&self) -> Result<Plan, Error> {
        xtask::check(&Workspace::locate(), &self.dts)
    }

    /// The error, as `cargo xtask` prints it after `error: <file>: `.
    pub fn error(&self) -> (Error, String) {
        let error = self.check().expect_err("the fixture should be rejected");
        let message = error.to_string();
        (error, message)
    }
}

/// An arm64 Image header (booting.rst) followed by zeros, `len` bytes in all.
pub fn arm64_image(text_offset: u64, image_size: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    bytes[8..16].copy_from_slice(&text_offset.to_le_bytes());
    bytes[16..24].copy_from_slice(&image_size.to_le_bytes());
    bytes[56..60].copy_from_slice(b"ARM\x64");
    bytes
}

/// A node of a parsed tree: its name and its properties' raw values, in tree order (flat:
/// children follow their parent).
#[derive(Debug)]
pub struct FlatNode {
    pub name: String,
    pub props: Vec<(String, Vec<u8>)>,
}

impl FlatNode {
    pub fn prop(&self, name: &str) -> Option<&[u8]> {
        self.props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
    pub fn str(&self, name: &str) -> &str {
        let value = self
            .prop(name)
            .unwrap_or_else(|| panic!("{}: no `{name}`", self.name));
        std::str::from_utf8(value.strip_suffix(b"\0").unwrap()).unwrap()
    }
    pub fn strings(&self, name: &str) -> Vec<&str> {
        let value = self.prop(name).unwrap();
        value
            .strip_suffix(b"\0")
            .unwrap()
            .split(|&b| b == 0)
            .map(|s| std::str::from_utf8(s).unwrap())
            .collect()
    }
    pub fn cells(&self, name: &str) -> Vec<u32> {
        let value = self
            .prop(name)
            .unwrap_or_else(|| panic!("{}: no `{name}`", self.name));
        value
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }
    /// Cells read in pairs as 64-bit numbers (`#address-cells = #size-cells = 2`).
    pub fn u64s(&self, name: &str) -> Vec<u64> {
        self.cells(name)
            .chunks_exact(2)
            .map(|p| (u64::from(p[0]) << 32) | u64::from(p[1]))
            .collect()
    }
}

/// Parses `blob` with fdt-rs.
pub fn parse_fdt(blob: &[u8]) -> Vec<FlatNode> {
    // fdt-rs wants a 4-byte aligned buffer exactly `totalsize` long.
    let mut buffer = vec![0u8; blob.len() + 3];
    let start = buffer.as_ptr().align_offset(4);
    buffer[start..start + blob.len()].copy_from_slice(blob);
    let aligned = &buffer[start..start + blob.len()];
    // SAFETY: `aligned` is 4-byte aligned (`align_offset`) and, being the whole blob,
    // exactly `totalsize` long, which is what `DevTree::new` requires.
    let tree = unsafe { DevTree::new(aligned) }.expect("a well-formed FDT");
    let mut nodes: Vec<FlatNode> = Vec::new();
    let mut items = tree.items();
    while let Some(item) = items.next().unwrap() {
        match item {
            DevTreeItem::Node(node) => nodes.push(FlatNode {
                name: node.name().unwrap().to_owned(),
                props: Vec::new(),
            }),
            DevTreeItem::Prop(prop) => {
                let entry = (prop.name().unwrap().to_owned(), prop.raw().to_vec());
                nodes.last_mut().unwrap().props.push(entry);
            }
        }
    }
    nodes
}

pub fn node<'a>(nodes: &'a [FlatNode], name: &str) -> &'a FlatNode {
    nodes
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node `{name}` in {nodes:#?}"))
}
