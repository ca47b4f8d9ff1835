//! The system description: compiled by `dtc`, then parsed strictly into [`SystemDesc`].
//!
//! The binding is documented in `dts/bindings/tessera-system.md`. Strict means: a node or
//! property the binding does not define is an error naming its path, as are wrong cell counts,
//! missing required properties and strings that are not UTF-8. Nothing here panics on input.

pub mod fdt;

use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_config::{ExitAction, FaultPolicy, InterruptMode, ResetWrite, RtdsParams, Scheduler, Watchdog, WfiPolicy};

use crate::error::{Error, Result, io};
use fdt::Node;

/// The root's `compatible`.
pub const COMPATIBLE: &str = "tessera,system";

/// A system as described, before anything is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemDesc {
    pub board: String,
    pub vms: Vec<VmDesc>,
    /// `/cpupools/<name>` nodes, in source order (empty without `/cpupools`).
    pub pools: Vec<PoolDesc>,
}

/// `/cpupools/<name> { cpus = <…>; scheduler = "null" | "rtds"; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolDesc {
    pub name: String,
    pub cpus: Vec<u32>,
    pub scheduler: Scheduler,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmDesc {
    /// The node name without its unit address.
    pub name: String,
    /// The node's path, for messages: `/vms/<node name>`.
    pub node: String,
    pub cpus: Vec<u32>,
    pub memory: Vec<MemoryDesc>,
    pub image: ImageSource,
    /// `initrd = "<path>"`, resolved against the description's directory.
    pub initrd: Option<PathBuf>,
    pub bootargs: String,
    pub load_offset: Option<u64>,
    pub entry_offset: Option<u64>,
    pub console: ConsoleDesc,
    pub fault_policy: FaultPolicy,
    pub on_system_off: ExitAction,
    pub on_system_reset: ExitAction,
    pub wfi: WfiPolicy,
    pub physical_counter: bool,
    /// `interrupt-mode = "virtual" | "direct"` (default `"virtual"`).
    pub interrupt_mode: InterruptMode,
    /// `devices = "/<path>", …`: nodes of the board's device tree.
    pub devices: Vec<String>,
    /// `dma-unrestricted = "/<path>", …`: the DMA-capable ones among `devices`.
    pub dma_unrestricted: Vec<String>,
    /// `sub-page`: what to do with a device that does not own its pages.
    pub sub_page: SubPage,
    /// `device@N` children: raw windows and SPIs with no board node.
    pub raw_devices: Vec<DeviceDesc>,
    /// `budget-us`, `period-us`, `extratime`: for a VM in an rtds pool.
    pub rtds: Option<RtdsParams>,
    /// `test-probe-targets;`: an isolation test guest is told the physical ranges to aim at
    /// (`/chosen/tessera,probe-targets`). Test systems only.
    pub probe_targets: bool,
    /// `reset@N` children: reset sequences for devices named in `devices`.
    pub device_resets: Vec<ResetDesc>,
    /// `watchdog-ms`, `watchdog-first-ms` (default: the period), `on-watchdog` (default
    /// `"restart"`).
    pub watchdog: Option<Watchdog>,
}

/// `reset@N { device = "/<board path>"; reset-writes = <offset value …>; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetDesc {
    pub node: String,
    /// The board path, as in the VM's `devices`.
    pub device: String,
    pub writes: Vec<ResetWrite>,
}

/// `sub-page = "reject" | "trap"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubPage {
    Reject,
    Trap,
}

/// A raw device: `device@N { reg = /bits/ 64 <base size>; interrupts = <intid …>; dma = …; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDesc {
    pub node: String,
    pub base: u64,
    pub size: u64,
    pub guest_base: Option<u64>,
    /// GIC INTIDs.
    pub interrupts: Vec<u32>,
    pub dma: DmaPolicy,
    /// `reset-writes = <offset value …>`.
    pub reset_writes: Vec<ResetWrite>,
}

/// A raw device's `dma = "none" | "unrestricted"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaPolicy {
    None,
    Unrestricted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryDesc {
    pub node: String,
    pub guest_base: u64,
    pub size: u64,
    /// `None`: the build tool allocates host memory.
    pub host_base: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// `guest = "<name>"`: the workspace package `tessera-guest-<name>`.
    Guest(String),
    /// `image = "<path>"`, resolved against the description's directory.
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleDesc {
    /// `console = "none"`.
    None,
    /// No `console` node, or one that overrides the board's defaults.
    Uart {
        guest_base: Option<u64>,
        interrupt: Option<u32>,
    },
}

/// Compiles `dts` with `dtc`. Warnings are passed on to stderr; a failure carries dtc's stderr.
pub fn compile(dts: &Path) -> Result<Vec<u8>> {
    let mut command = Command::new("dtc");
    // A unit address without `reg` (`memory@1`) is how the binding numbers sibling nodes.
    command.args(["-I", "dts", "-O", "dtb", "-W", "no-unit_address_vs_reg"]);
    if let Some(dir) = dts.parent().filter(|d| !d.as_os_str().is_empty()) {
        command.arg("-i").arg(dir);
    }
    let output = command.arg(dts).output().map_err(|source| Error::Spawn {
        program: "dtc (install it with scripts/setup-host.sh)".into(),
        source,
    })?;
    if !output.status.success() {
        return Err(Error::Dtc {
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    if !output.stderr.is_empty() {
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(output.stdout)
}

/// Reads and parses the description at `dts` (compiling it first).
pub fn load(dts: &Path) -> Result<SystemDesc> {
    let blob = compile(dts)?;
    let base_dir = dts.parent().map(Path::to_path_buf).unwrap_or_default();
    let base_dir = if base_dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base_dir
    };
    let base_dir = base_dir.canonicalize().map_err(io(&base_dir))?;
    parse(&blob, &base_dir)
}

/// Parses a compiled description. Relative `image` and `initrd` paths are resolved against `base_dir`.
pub fn parse(blob: &[u8], base_dir: &Path) -> Result<SystemDesc> {
    let root = fdt::read(blob)?;
    let mut props = Props::new(&root, "/".into());
    let compatible = props.required_string("compatible")?;
    if compatible != COMPATIBLE {
        return Err(props.bad_value("compatible", &compatible, "\"tessera,system\""));
    }
    let board = props.required_string("board")?;
    props.finish()?;

    let mut vms = None;
    let mut pools = Vec::new();
    for child in &root.children {
        match child.name.as_str() {
            "vms" => vms = Some(parse_vms(child, base_dir)?),
            "cpupools" => pools = parse_pools(child)?,
            _ => {
                return Err(Error::UnknownNode {
                    node: format!("/{}", child.name),
                });
            }
        }
    }
    let vms = vms.ok_or_else(|| Error::MissingNode {
        node: "/vms".into(),
    })?;
    Ok(SystemDesc { board, vms, pools })
}

fn parse_pools(node: &Node) -> Result<Vec<PoolDesc>> {
    Props::new(node, "/cpupools".into()).finish()?;
    node.children
        .iter()
        .map(|pool| {
            let path = format!("/cpupools/{}", pool.name);
            let mut props = Props::new(pool, path.clone());
            let cpus = props.u32_list("cpus")?.ok_or_else(|| props.missing("cpus"))?;
            let scheduler = match props.required_string("scheduler")?.as_str() {
                "null" => Scheduler::Null,
                "rtds" => Scheduler::Rtds,
                other => return Err(props.bad_value("scheduler", other, "\"null\" or \"rtds\"")),
            };
            props.finish()?;
            no_children(pool, &path)?;
            Ok(PoolDesc { name: pool.name.split('@').next().unwrap_or_default().to_owned(), cpus, scheduler })
        })
        .collect()
}

fn parse_vms(node: &Node, base_dir: &Path) -> Result<Vec<VmDesc>> {
    Props::new(node, "/vms".into()).finish()?;
    // Counted before any VM is parsed: an absurd count is refused at once.
    if node.children.len() > tessera_config::MAX_VMS {
        return Err(Error::TooManyVms {
            count: node.children.len(),
            max: tessera_config::MAX_VMS,
        });
    }
    node.children
        .iter()
        .map(|vm| parse_vm(vm, base_dir))
        .collect()
}

fn parse_vm(node: &Node, base_dir: &Path) -> Result<VmDesc> {
    let path = format!("/vms/{}", node.name);
    let name = node.name.split('@').next().unwrap_or_default().to_owned();
    let mut props = Props::new(node, path.clone());
    let cpus = props
        .u32_list("cpus")?
        .ok_or_else(|| props.missing("cpus"))?;
    let guest = props.string("guest")?;
    let image = props.string("image")?;
    let image = match (guest, image) {
        (Some(_), Some(_)) => return Err(props.conflict("guest", "image")),
        (Some(guest), None) => ImageSource::Guest(guest),
        (None, Some(image)) => ImageSource::File(base_dir.join(image)),
        (None, None) => return Err(Error::NoImage { node: path }),
    };
    let initrd = props.string("initrd")?.map(|path| base_dir.join(path));
    let bootargs = props.string("bootargs")?.unwrap_or_default();
    let load_offset = props.u64("load-offset")?;
    let entry_offset = props.u64("entry-offset")?;
    let console_off = props.string("console")?;
    if let Some(value) = &console_off
        && value != "none"
    {
        return Err(props.bad_value("console", value, "\"none\" (or a `console { … }` node)"));
    }
    let fault_policy = match props.string("fault-policy")?.as_deref() {
        None | Some("inject") => FaultPolicy::Inject,
        Some("stop") => FaultPolicy::Stop,
        Some("restart") => FaultPolicy::Restart,
        Some(other) => {
            return Err(props.bad_value("fault-policy", other, "\"inject\", \"stop\" or \"restart\""));
        }
    };
    let watchdog = parse_watchdog(&mut props)?;
    let on_system_off = props.exit_action("on-system-off", ExitAction::Stop)?;
    let on_system_reset = props.exit_action("on-system-reset", ExitAction::Restart)?;
    let wfi = match props.string("wfi")?.as_deref() {
        None | Some("native") => WfiPolicy::Native,
        Some("trap") => WfiPolicy::Trap,
        Some(other) => return Err(props.bad_value("wfi", other, "\"native\" or \"trap\"")),
    };
    let physical_counter = match props.string("physical-counter")?.as_deref() {
        None | Some("allow") => true,
        Some("trap") => false,
        Some(other) => {
            return Err(props.bad_value("physical-counter", other, "\"allow\" or \"trap\""));
        }
    };
    let interrupt_mode = match props.string("interrupt-mode")?.as_deref() {
        None | Some("virtual") => InterruptMode::Virtual,
        Some("direct") => InterruptMode::Direct,
        Some(other) => return Err(props.bad_value("interrupt-mode", other, "\"virtual\" or \"direct\"")),
    };
    let devices = props.string_list("devices")?.unwrap_or_default();
    let dma_unrestricted = props.string_list("dma-unrestricted")?.unwrap_or_default();
    let sub_page = match props.string("sub-page")?.as_deref() {
        None | Some("reject") => SubPage::Reject,
        Some("trap") => SubPage::Trap,
        Some(other) => return Err(props.bad_value("sub-page", other, "\"reject\" or \"trap\"")),
    };
    let budget = props.u32("budget-us")?;
    let period = props.u32("period-us")?;
    let extratime = props.flag("extratime")?;
    let rtds = match (budget, period) {
        (Some(budget_us), Some(period_us)) => Some(RtdsParams { budget_us, period_us, extratime }),
        (None, None) if !extratime => None,
        (None, _) => return Err(props.missing("budget-us")),
        (Some(_), None) => return Err(props.missing("period-us")),
    };
    let probe_targets = props.flag("test-probe-targets")?;
    props.finish()?;

    let mut memory = Vec::new();
    let mut raw_devices = Vec::new();
    let mut device_resets = Vec::new();
    let mut console_node = None;
    for child in &node.children {
        let child_path = format!("{path}/{}", child.name);
        match child.name.split('@').next().unwrap_or_default() {
            "memory" => memory.push(parse_memory(child, child_path)?),
            "device" => raw_devices.push(parse_device(child, child_path)?),
            "reset" => device_resets.push(parse_reset(child, child_path)?),
            "console" if child.name == "console" => {
                console_node = Some(parse_console(child, child_path)?)
            }
            _ => return Err(Error::UnknownNode { node: child_path }),
        }
    }
    let console = match (console_off, console_node) {
        (Some(_), Some(_)) => {
            return Err(Error::Conflict {
                node: path,
                first: "console = \"none\"",
                second: "console { … }",
            });
        }
        (Some(_), None) => ConsoleDesc::None,
        (None, Some(console)) => console,
        (None, None) => ConsoleDesc::Uart {
            guest_base: None,
            interrupt: None,
        },
    };
    Ok(VmDesc {
        name,
        node: path,
        cpus,
        memory,
        image,
        initrd,
        bootargs,
        load_offset,
        entry_offset,
        console,
        fault_policy,
        on_system_off,
        on_system_reset,
        wfi,
        physical_counter,
        interrupt_mode,
        devices,
        dma_unrestricted,
        sub_page,
        raw_devices,
        rtds,
        probe_targets,
        device_resets,
        watchdog,
    })
}

/// `watchdog-ms`, `watchdog-first-ms`, `on-watchdog`: the last two only with the first. The
/// periods' bounds are the validator's (`tessera_config::MAX_WATCHDOG_MS`).
fn parse_watchdog(props: &mut Props<'_>) -> Result<Option<Watchdog>> {
    let period_ms = props.u32("watchdog-ms")?;
    let first_ms = props.u32("watchdog-first-ms")?;
    let action = match props.string("on-watchdog")?.as_deref() {
        None => None,
        Some("restart") => Some(ExitAction::Restart),
        Some("stop") => Some(ExitAction::Stop),
        Some(other) => return Err(props.bad_value("on-watchdog", other, "\"restart\" or \"stop\"")),
    };
    match period_ms {
        Some(period_ms) => Ok(Some(Watchdog {
            period_ms,
            first_ms: first_ms.unwrap_or(period_ms),
            action: action.unwrap_or(ExitAction::Restart),
        })),
        None if first_ms.is_some() || action.is_some() => Err(props.missing("watchdog-ms")),
        None => Ok(None),
    }
}

/// `reset-writes = <offset value …>`: pairs of cells. Offsets are checked against the
/// device's window by the validator.
fn reset_writes(props: &mut Props<'_>) -> Result<Vec<ResetWrite>> {
    let Some(cells) = props.u32_list("reset-writes")? else {
        return Ok(Vec::new());
    };
    if cells.is_empty() || cells.len() % 2 != 0 {
        return Err(props.bad_cells("reset-writes", "pairs of cells (<offset value …>)", cells.len() * 4));
    }
    Ok(cells
        .chunks_exact(2)
        .map(|pair| ResetWrite { offset: u64::from(pair[0]), value: pair[1] })
        .collect())
}

fn parse_reset(node: &Node, path: String) -> Result<ResetDesc> {
    let mut props = Props::new(node, path.clone());
    let device = props.required_string("device")?;
    let writes = reset_writes(&mut props)?;
    if writes.is_empty() {
        return Err(props.missing("reset-writes"));
    }
    props.finish()?;
    no_children(node, &path)?;
    Ok(ResetDesc { node: path, device, writes })
}

fn parse_device(node: &Node, path: String) -> Result<DeviceDesc> {
    let mut props = Props::new(node, path.clone());
    let reg = props.u64_list("reg")?.ok_or_else(|| props.missing("reg"))?;
    let [base, size] = reg[..] else {
        return Err(props.bad_cells("reg", "one 64-bit base and one 64-bit size (/bits/ 64 <base size>)", reg.len() * 8));
    };
    let guest_base = props.u64("guest-base")?;
    let interrupts = props.u32_list("interrupts")?.unwrap_or_default();
    if let Some(bad) = interrupts.iter().find(|i| !SPI_INTIDS.contains(i)) {
        return Err(props.bad_value("interrupts", &bad.to_string(), "SPI INTIDs, 32..=1019"));
    }
    let dma = match props.required_string("dma")?.as_str() {
        "none" => DmaPolicy::None,
        "unrestricted" => DmaPolicy::Unrestricted,
        other => return Err(props.bad_value("dma", other, "\"none\" or \"unrestricted\"")),
    };
    let reset_writes = reset_writes(&mut props)?;
    props.finish()?;
    no_children(node, &path)?;
    Ok(DeviceDesc { node: path, base, size, guest_base, interrupts, dma, reset_writes })
}

fn parse_memory(node: &Node, path: String) -> Result<MemoryDesc> {
    let mut props = Props::new(node, path.clone());
    let guest_base = props
        .u64("guest-base")?
        .ok_or_else(|| props.missing("guest-base"))?;
    let size = props.u64("size")?.ok_or_else(|| props.missing("size"))?;
    let host_base = props.u64("host-base")?;
    props.finish()?;
    no_children(node, &path)?;
    Ok(MemoryDesc {
        node: path,
        guest_base,
        size,
        host_base,
    })
}

/// GIC INTIDs of SPIs (IHI 0069 2.2.1): the only interrupts a device can raise.
const SPI_INTIDS: std::ops::RangeInclusive<u32> = 32..=1019;

fn parse_console(node: &Node, path: String) -> Result<ConsoleDesc> {
    let mut props = Props::new(node, path.clone());
    let guest_base = props.u64("guest-base")?;
    let interrupt = props.u32("interrupt")?;
    if let Some(intid) = interrupt
        && !SPI_INTIDS.contains(&intid)
    {
        return Err(props.bad_value("interrupt", &intid.to_string(), "an SPI's INTID, 32..=1019"));
    }
    props.finish()?;
    no_children(node, &path)?;
    Ok(ConsoleDesc::Uart {
        guest_base,
        interrupt,
    })
}

fn no_children(node: &Node, path: &str) -> Result<()> {
    match node.children.first() {
        Some(child) => Err(Error::UnknownNode {
            node: format!("{path}/{}", child.name),
        }),
        None => Ok(()),
    }
}

/// A node's properties, each taken at most once; [`Props::finish`] reports any left over.
struct Props<'a> {
    node: &'a Node,
    path: String,
    taken: Vec<bool>,
}

impl<'a> Props<'a> {
    fn new(node: &'a Node, path: String) -> Self {
        Self {
            node,
            path,
            taken: vec![false; node.properties.len()],
        }
    }

    fn take(&mut self, name: &str) -> Option<&'a [u8]> {
        let index = self.node.properties.iter().position(|p| p.name == name)?;
        self.taken[index] = true;
        Some(&self.node.properties[index].value)
    }

    fn finish(self) -> Result<()> {
        match self.taken.iter().position(|taken| !taken) {
            Some(index) => Err(Error::UnknownProperty {
                node: self.path,
                property: self.node.properties[index].name.clone(),
            }),
            None => Ok(()),
        }
    }

    fn missing(&self, property: &'static str) -> Error {
        Error::MissingProperty {
            node: self.path.clone(),
            property,
        }
    }

    fn conflict(&self, first: &'static str, second: &'static str) -> Error {
        Error::Conflict {
            node: self.path.clone(),
            first,
            second,
        }
    }

    fn bad_value(&self, property: &str, value: &str, allowed: &'static str) -> Error {
        Error::BadValue {
            node: self.path.clone(),
            property: property.into(),
            value: format!("\"{value}\""),
            allowed,
        }
    }

    fn bad_cells(&self, property: &str, expected: &'static str, found_bytes: usize) -> Error {
        Error::BadCells {
            node: self.path.clone(),
            property: property.into(),
            expected,
            found_bytes,
        }
    }

    fn string(&mut self, name: &str) -> Result<Option<String>> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        let not_a_string = || Error::NotAString {
            node: self.path.clone(),
            property: name.into(),
        };
        let (last, text) = value.split_last().ok_or_else(not_a_string)?;
        if *last != 0 || text.contains(&0) {
            return Err(not_a_string());
        }
        let text = std::str::from_utf8(text).map_err(|_| Error::NotUtf8 {
            node: self.path.clone(),
            property: name.into(),
        })?;
        Ok(Some(text.to_owned()))
    }

    /// A boolean property: present and empty (`name;`) is true, absent is false.
    fn flag(&mut self, name: &str) -> Result<bool> {
        match self.take(name) {
            None => Ok(false),
            Some([]) => Ok(true),
            Some(value) => Err(self.bad_cells(name, "no value (`name;`)", value.len())),
        }
    }

    fn required_string(&mut self, name: &'static str) -> Result<String> {
        self.string(name)?.ok_or_else(|| self.missing(name))
    }

    fn u32(&mut self, name: &str) -> Result<Option<u32>> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        let cell: [u8; 4] = value
            .try_into()
            .map_err(|_| self.bad_cells(name, "one cell (<n>)", value.len()))?;
        Ok(Some(u32::from_be_bytes(cell)))
    }

    /// A 64-bit number: two cells, as `/bits/ 64 <n>` or `<hi lo>` write it.
    fn u64(&mut self, name: &str) -> Result<Option<u64>> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        let cells: [u8; 8] = value
            .try_into()
            .map_err(|_| self.bad_cells(name, "a 64-bit number (/bits/ 64 <n>)", value.len()))?;
        Ok(Some(u64::from_be_bytes(cells)))
    }

    fn u64_list(&mut self, name: &str) -> Result<Option<Vec<u64>>> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        if value.len() % 8 != 0 {
            return Err(self.bad_cells(name, "a list of 64-bit numbers (/bits/ 64 <a b …>)", value.len()));
        }
        Ok(Some(value.chunks_exact(8).map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect()))
    }

    /// A list of NUL-terminated UTF-8 strings (`"a", "b"`).
    fn string_list(&mut self, name: &str) -> Result<Option<Vec<String>>> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        let not_strings = || Error::NotAString { node: self.path.clone(), property: name.into() };
        let (last, body) = value.split_last().ok_or_else(not_strings)?;
        if *last != 0 {
            return Err(not_strings());
        }
        body.split(|&b| b == 0)
            .map(|s| {
                std::str::from_utf8(s)
                    .map(str::to_owned)
                    .map_err(|_| Error::NotUtf8 { node: self.path.clone(), property: name.into() })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn u32_list(&mut self, name: &str) -> Result<Option<Vec<u32>>> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        if value.len() % 4 != 0 {
            return Err(self.bad_cells(name, "a list of 32-bit cells (<a b …>)", value.len()));
        }
        Ok(Some(
            value
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))
    }

    fn exit_action(&mut self, name: &str, default: ExitAction) -> Result<ExitAction> {
        match self.string(name)?.as_deref() {
            None => Ok(default),
            Some("stop") => Ok(ExitAction::Stop),
            Some("restart") => Ok(ExitAction::Restart),
            Some(other) => Err(self.bad_value(name, other, "\"stop\" or \"restart\"")),
        }
    }
}
