//! Passed-through devices: the board's device tree (`platforms/<board>/board.dts`), the nodes a
//! VM names in `devices = "/<path>", …`, and raw `device@N` nodes, resolved into windows,
//! SPIs and the node each guest's device tree gets.
//!
//! What is read from a board node (Devicetree Specification v0.4, 2.3.5 and 2.4):
//! - `reg`, in the parent's `#address-cells`/`#size-cells` (defaults 2 and 1); every ancestor
//!   must translate 1:1 (`ranges;` empty, or the root);
//! - `interrupts`, in the effective `interrupt-parent`'s `#interrupt-cells`, which must be a
//!   GICv3 with 3 cells (`arm,gic-v3.yaml`: `<type number flags>`, type 0 = SPI);
//! - `compatible`, to decide whether the device can do DMA (see [`NO_DMA_COMPATIBLES`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_config::{DeviceAccess, MemRange, PAGE_SIZE};

use crate::dts::fdt::{self, Node, Property};
use crate::dts::{DeviceDesc, SubPage, VmDesc};
use crate::error::{Error, Result};

/// Properties that refer to other nodes (clocks, resets, power domains, IOMMUs, pin control,
/// DMA controllers, MSI controllers) or only make sense in the board's tree: the guest has
/// none of those nodes, so they are dropped from the guest's copy with a warning.
const DROPPED: &[&str] = &[
    "clocks",
    "clock-names",
    "assigned-clocks",
    "assigned-clock-rates",
    "assigned-clock-parents",
    "resets",
    "reset-names",
    "power-domains",
    "power-domain-names",
    "iommus",
    "iommu-map",
    "dmas",
    "dma-names",
    "msi-parent",
    "pinctrl-names",
    "pinctrl-0",
    "pinctrl-1",
    "pinctrl-2",
];

/// Compatibles of devices that cannot master the bus. Any other device is taken to do DMA
/// and needs `dma-unrestricted` (there is no SMMU yet, so a DMA-capable device in a VM can
/// write any RAM of the board).
pub const NO_DMA_COMPATIBLES: &[&str] = &["arm,pl031", "arm,pl061", "arm,pl011", "arm,sbsa-uart"];

/// First cell of a GIC interrupt specifier: 0 = SPI (`arm,gic-v3.yaml`).
const GIC_SPI: u32 = 0;
const FIRST_SPI: u32 = 32;

/// One passed-through device, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassDevice {
    /// The board path (`/virtio_mmio@a003e00`) or the raw node's path (`/vms/rt/device@0`).
    pub source: String,
    /// Its register windows, in `reg` order.
    pub windows: Vec<Window>,
    /// GIC INTIDs of its SPIs.
    pub spis: Vec<u32>,
    /// The guest's copy of the node: name and properties (`reg`, `interrupt-parent` added
    /// by the guest DTB writer). `None` for raw devices.
    pub guest_node: Option<GuestNode>,
    /// Its reset sequence (`reset-writes`), offsets from its first window.
    pub reset_writes: Vec<tessera_config::ResetWrite>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub pa: u64,
    pub ipa: u64,
    pub size: u64,
    pub access: DeviceAccess,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestNode {
    pub name: String,
    pub properties: Vec<Property>,
}

/// `platforms/<board>/board.dts` of this workspace.
pub fn board_dts(board: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../platforms").join(board).join("board.dts")
}

/// Compiles and reads the board's device tree.
pub fn load_board(board: &str) -> Result<Node> {
    let path = board_dts(board);
    // The board tree is QEMU's own, decompiled: dtc's lint about its raw clock phandles is noise.
    let output = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb"])
        .arg(&path)
        .output()
        .map_err(|source| Error::Spawn { program: "dtc (install it with scripts/setup-host.sh)".into(), source })?;
    if !output.status.success() {
        return Err(Error::Dtc { stderr: format!("{}: {}", path.display(), String::from_utf8_lossy(&output.stderr)) });
    }
    fdt::read(&output.stdout)
}

fn prop<'a>(node: &'a Node, name: &str) -> Option<&'a [u8]> {
    node.properties.iter().find(|p| p.name == name).map(|p| p.value.as_slice())
}

fn cells(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn prop_u32(node: &Node, name: &str) -> Option<u32> {
    prop(node, name).filter(|v| v.len() == 4).map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

fn strings(bytes: &[u8]) -> Vec<String> {
    bytes.split(|&b| b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

/// A number of `count` cells (1 or 2) from the front of `cells`.
fn number(cells: &[u32]) -> Option<u64> {
    match cells {
        [one] => Some(u64::from(*one)),
        [hi, lo] => Some((u64::from(*hi) << 32) | u64::from(*lo)),
        _ => None,
    }
}

/// The nodes from the root to the one at `path` (root first), if it exists.
fn lookup<'a>(root: &'a Node, path: &str) -> Option<Vec<&'a Node>> {
    let mut chain = vec![root];
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let next = chain.last()?.children.iter().find(|c| c.name == part)?;
        chain.push(next);
    }
    (path.starts_with('/')).then_some(chain)
}

fn find_phandle(node: &Node, phandle: u32) -> Option<&Node> {
    if prop_u32(node, "phandle") == Some(phandle) || prop_u32(node, "linux,phandle") == Some(phandle) {
        return Some(node);
    }
    node.children.iter().find_map(|c| find_phandle(c, phandle))
}

/// `#address-cells`/`#size-cells` of `parent`: `default` when absent; an error when present
/// but not one cell (a malformed count must not silently become the default).
fn cell_count(parent: &Node, name: &str, default: u32) -> Result<u32, String> {
    match prop(parent, name) {
        None => Ok(default),
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        Some(value) => {
            let node = if parent.name.is_empty() { "/" } else { parent.name.as_str() };
            Err(format!("`{name}` of `{node}` is {} bytes, not one cell", value.len()))
        }
    }
}

/// The board's `reg` windows of the node at the end of `chain`, as host-physical (base, size).
fn reg_windows(vm: &str, path: &str, chain: &[&Node]) -> Result<Vec<(u64, u64)>> {
    let bad = |why: String| Error::BadDevice { node: vm.into(), device: path.into(), reason: why };
    let node = chain[chain.len() - 1];
    let parent = chain[chain.len() - 2];
    for ancestor in &chain[1..chain.len() - 1] {
        if prop(ancestor, "ranges").is_none_or(|r| !r.is_empty()) {
            return Err(bad(format!("its parent `{}` does not map addresses 1:1 (`ranges;`)", ancestor.name)));
        }
    }
    let address_cells = cell_count(parent, "#address-cells", 2).map_err(&bad)? as usize;
    let size_cells = cell_count(parent, "#size-cells", 1).map_err(&bad)? as usize;
    let reg = prop(node, "reg").ok_or_else(|| bad("it has no `reg`".into()))?;
    let reg = cells(reg);
    let stride = address_cells + size_cells;
    if stride == 0 || !(1..=2).contains(&address_cells) || !(1..=2).contains(&size_cells) || !reg.len().is_multiple_of(stride) {
        return Err(bad(format!("`reg` does not fit #address-cells = {address_cells}, #size-cells = {size_cells}")));
    }
    Ok(reg
        .chunks_exact(stride)
        .filter_map(|entry| Some((number(&entry[..address_cells])?, number(&entry[address_cells..])?)))
        .collect())
}

/// The SPIs of the node at the end of `chain`, checked against its interrupt parent.
fn spis(root: &Node, vm: &str, path: &str, chain: &[&Node]) -> Result<Vec<u32>> {
    let bad = |why: String| Error::BadDevice { node: vm.into(), device: path.into(), reason: why };
    let node = chain[chain.len() - 1];
    if prop(node, "interrupts-extended").is_some() {
        return Err(bad("`interrupts-extended` is not supported".into()));
    }
    let Some(interrupts) = prop(node, "interrupts") else { return Ok(Vec::new()) };
    let phandle = chain
        .iter()
        .rev()
        .find_map(|n| prop_u32(n, "interrupt-parent"))
        .ok_or_else(|| bad("it has `interrupts` but no interrupt parent".into()))?;
    let parent = find_phandle(root, phandle)
        .ok_or_else(|| bad(format!("its `interrupt-parent` <{phandle:#x}> names no node (a dangling phandle)")))?;
    let is_gic_v3 = prop(parent, "compatible").is_some_and(|c| strings(c).iter().any(|s| s == "arm,gic-v3"));
    if !is_gic_v3 || prop_u32(parent, "#interrupt-cells") != Some(3) {
        return Err(bad(format!("its interrupt parent `{}` is not a GICv3 with 3 interrupt cells", parent.name)));
    }
    let specifiers = cells(interrupts);
    if !specifiers.len().is_multiple_of(3) {
        return Err(bad("`interrupts` is not a list of 3-cell specifiers".into()));
    }
    specifiers
        .chunks_exact(3)
        .map(|spec| match spec[0] {
            GIC_SPI => spec[1].checked_add(FIRST_SPI).ok_or_else(|| bad("SPI number out of range".into())),
            _ => Err(bad(format!("interrupt <{} {} {}> is not an SPI", spec[0], spec[1], spec[2]))),
        })
        .collect()
}

/// Every node of the board with a `reg` (top level and below 1:1 parents), as (path, window).
fn board_windows(root: &Node) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    fn walk<'a>(chain: &mut Vec<&'a Node>, path: String, out: &mut Vec<(String, u64, u64)>, node: &'a Node) {
        chain.push(node);
        if chain.len() > 1
            && let Ok(windows) = reg_windows("", &path, chain)
        {
            out.extend(windows.into_iter().map(|(base, size)| (path.clone(), base, size)));
        }
        for child in &node.children {
            walk(chain, format!("{path}/{}", child.name), out, child);
        }
        chain.pop();
    }
    for child in &root.children {
        walk(&mut vec![root], format!("/{}", child.name), &mut out, child);
    }
    out
}

fn page_of(base: u64) -> u64 {
    base - base % PAGE_SIZE
}

/// Resolves every device of `vm` against the board tree `root`.
pub fn resolve(root: &Node, vm: &VmDesc) -> Result<Vec<PassDevice>> {
    let mut out = Vec::new();
    for unlisted in &vm.dma_unrestricted {
        if !vm.devices.contains(unlisted) {
            return Err(Error::BadDevice {
                node: vm.node.clone(),
                device: unlisted.clone(),
                reason: "named in `dma-unrestricted` but not in `devices`".into(),
            });
        }
    }
    for path in &vm.devices {
        let chain = lookup(root, path).filter(|c| c.len() > 1).ok_or_else(|| Error::DeviceNotInBoard {
            node: vm.node.clone(),
            device: path.clone(),
            board_dts: board_dts_name(),
        })?;
        let node = chain[chain.len() - 1];
        let mut windows = Vec::new();
        for (base, size) in reg_windows(&vm.node, path, &chain)? {
            let access = window_access(root, vm, path, base, size)?;
            windows.push(Window { pa: base, ipa: base, size, access });
        }
        let spis = spis(root, &vm.node, path, &chain)?;
        let compatible = prop(node, "compatible").map(strings).unwrap_or_default();
        let no_dma = compatible.iter().any(|c| NO_DMA_COMPATIBLES.contains(&c.as_str()));
        if !no_dma && !vm.dma_unrestricted.contains(path) {
            return Err(Error::DmaPolicyMissing { node: vm.node.clone(), device: path.clone(), compatible: compatible.join(", ") });
        }
        let mut properties = Vec::new();
        for property in &node.properties {
            match property.name.as_str() {
                "reg" | "interrupt-parent" | "phandle" | "linux,phandle" => {}
                name if DROPPED.contains(&name) => eprintln!(
                    "tessera: warning: {}: device {path}: dropped `{name}` (it refers to nodes the guest does not have)",
                    vm.node
                ),
                _ => properties.push(property.clone()),
            }
        }
        let reset_writes = vm
            .device_resets
            .iter()
            .filter(|reset| reset.device == *path)
            .flat_map(|reset| reset.writes.iter().copied())
            .collect();
        out.push(PassDevice {
            source: path.clone(),
            windows,
            spis,
            guest_node: Some(GuestNode { name: node.name.clone(), properties }),
            reset_writes,
        });
    }
    if let Some(reset) = vm.device_resets.iter().find(|reset| !vm.devices.contains(&reset.device)) {
        return Err(Error::BadValue {
            node: reset.node.clone(),
            property: "device".into(),
            value: format!("\"{}\"", reset.device),
            allowed: "a path listed in the VM's `devices`",
        });
    }
    for raw in &vm.raw_devices {
        out.push(raw_device(vm, raw)?);
    }
    Ok(out)
}

fn board_dts_name() -> String {
    "the board's device tree (platforms/<board>/board.dts)".into()
}

/// Map when the window owns its pages; otherwise trap-and-forward if the VM allows it, or an
/// error naming the page and the devices that share it.
fn window_access(root: &Node, vm: &VmDesc, path: &str, base: u64, size: u64) -> Result<DeviceAccess> {
    let window = MemRange::new(base, size);
    if window.is_page_aligned() {
        return Ok(DeviceAccess::Map);
    }
    if vm.sub_page == SubPage::Trap {
        return Ok(DeviceAccess::Trap);
    }
    let page = page_of(base);
    let pages = MemRange::new(page, page_of(base.saturating_add(size).saturating_add(PAGE_SIZE - 1)) - page);
    let sharing: Vec<String> = board_windows(root)
        .into_iter()
        .filter(|(other, b, s)| other != path && MemRange::new(*b, *s).overlaps(&pages))
        .map(|(other, _, _)| other)
        .collect();
    Err(Error::DeviceSharesPage { node: vm.node.clone(), device: path.into(), page, size, sharing })
}

fn raw_device(vm: &VmDesc, raw: &DeviceDesc) -> Result<PassDevice> {
    let access = if MemRange::new(raw.base, raw.size).is_page_aligned() {
        DeviceAccess::Map
    } else if vm.sub_page == SubPage::Trap {
        DeviceAccess::Trap
    } else {
        return Err(Error::DeviceSharesPage {
            node: vm.node.clone(),
            device: raw.node.clone(),
            page: page_of(raw.base),
            size: raw.size,
            sharing: Vec::new(),
        });
    };
    // A raw device states its DMA policy itself (`dma = "none"` or `"unrestricted"`); the
    // layout requires identity-mapped RAM for `"unrestricted"`.
    Ok(PassDevice {
        source: raw.node.clone(),
        windows: vec![Window { pa: raw.base, ipa: raw.guest_base.unwrap_or(raw.base), size: raw.size, access }],
        spis: raw.interrupts.clone(),
        guest_node: None,
        reset_writes: raw.reset_writes.clone(),
    })
}
