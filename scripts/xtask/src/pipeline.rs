//! The pipeline: `.dts` → parsed → images → placed → validated → `system.rs` → hypervisor
//! ELF → flat image. Progress goes to stderr.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tessera_config::Board;

use crate::devices;
use crate::dts::{self, ImageSource, SystemDesc};
use crate::error::{Error, Result, io};
use crate::image::{self, ARM64_IMAGE_MAGIC, Arm64Header};
use crate::layout::{self, Plan};
use crate::tables;

/// The target guests are built for (they may use FP/SIMD).
pub const TARGET: &str = "aarch64-unknown-none";

/// The target the hypervisor is built for: no FP/SIMD code at all, so EL2 never touches a
/// guest's FP/SIMD registers and needs not save them on an exit.
pub const HYPERVISOR_TARGET: &str = "aarch64-unknown-none-softfloat";

/// The boards this tool builds for, by `board = "…"` name.
pub fn board(name: &str) -> Result<&'static Board<'static>> {
    static QEMU_VIRT: Board<'static> = tessera_qemu_virt::PLATFORM;
    match name {
        "qemu-virt" => Ok(&QEMU_VIRT),
        _ => Err(Error::UnknownBoard {
            board: name.into(),
            known: "qemu-virt",
        }),
    }
}

/// Environment variable naming cargo features of the platform binary to build with
/// (comma separated); only the HIL tests set it (`fault-test`).
pub const FEATURES_ENV: &str = "TESSERA_HV_FEATURES";

/// Where things are: the workspace root and cargo's target directory.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
}

impl Workspace {
    /// The workspace this tool belongs to (`scripts/xtask/../..`), honouring
    /// `CARGO_TARGET_DIR`.
    pub fn locate() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = root.canonicalize().unwrap_or(root);
        let target_dir =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        Self { root, target_dir }
    }

    /// `target/tessera`: build outputs, run directories and the build lock.
    pub fn tessera_dir(&self) -> PathBuf {
        self.target_dir.join("tessera")
    }

    /// Where the outputs of one system go: `target/tessera/<board>/<system-stem>`.
    pub fn out_dir(&self, board: &str, dts: &Path) -> PathBuf {
        let stem = dts
            .file_stem()
            .map_or_else(|| "system".into(), |s| s.to_string_lossy().into_owned());
        self.tessera_dir().join(board).join(stem)
    }

    /// Takes `target/tessera/build.lock` exclusively until the guard drops: builds of
    /// different systems share cargo's output paths.
    pub fn lock(&self) -> Result<File> {
        let dir = self.tessera_dir();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join("build.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(file)
    }

    fn cargo(&self) -> Command {
        let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        command.current_dir(&self.root);
        command
    }
}

/// What `build` made.
#[derive(Debug)]
pub struct Built {
    pub plan: Plan,
    pub system_rs: PathBuf,
    pub elf: PathBuf,
    pub image: PathBuf,
}

/// Parses and validates `dts`, building any `guest = "…"` images it needs.
pub fn check(ws: &Workspace, dts: &Path) -> Result<Plan> {
    let desc = dts::load(dts)?;
    let board = board(&desc.board)?;
    let needs_cargo = desc
        .vms
        .iter()
        .any(|vm| matches!(vm.image, ImageSource::Guest(_)));
    let _lock = if needs_cargo { Some(ws.lock()?) } else { None };
    plan_and_validate(ws, board, &desc)
}

fn plan_and_validate(ws: &Workspace, board: &Board<'_>, desc: &SystemDesc) -> Result<Plan> {
    place_and_validate(
        board,
        desc,
        || devices::load_board(board.name),
        |vm| Ok((load_image(ws, vm)?, load_initrd(vm)?)),
    )
}

/// Resolves devices, places and validates `desc`. `board_tree` is asked for the board's device
/// tree only if some VM passes a board device through; `files` gives each VM's image and initrd.
fn place_and_validate(
    board: &Board<'_>,
    desc: &SystemDesc,
    board_tree: impl FnOnce() -> Result<dts::fdt::Node>,
    mut files: impl FnMut(&dts::VmDesc) -> Result<(Vec<u8>, Option<Vec<u8>>)>,
) -> Result<Plan> {
    // Counts first: placing builds a device tree per VM and per CPU, so an absurd count
    // (10^6 VMs) would otherwise take minutes before the validator refused it.
    if desc.vms.len() > tessera_config::MAX_VMS {
        return Err(Error::TooManyVms { count: desc.vms.len(), max: tessera_config::MAX_VMS });
    }
    if let Some(vm) = desc.vms.iter().find(|vm| vm.cpus.len() > board.cpus.len()) {
        return Err(Error::TooManyCpus { node: vm.node.clone(), count: vm.cpus.len(), board_cpus: board.cpus.len() });
    }
    let board_tree = if desc.vms.iter().any(|vm| !vm.devices.is_empty()) {
        Some(board_tree()?)
    } else {
        None
    };
    let images = desc
        .vms
        .iter()
        .map(|vm| {
            let (image, initrd) = files(vm)?;
            Ok(layout::VmFiles {
                image,
                initrd,
                devices: match &board_tree {
                    Some(tree) => devices::resolve(tree, vm)?,
                    None => devices::resolve(&dts::fdt::Node::default(), vm)?,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let plan = layout::plan(board, desc, images)?;
    plan.validate(board)?;
    Ok(plan)
}

/// Parses and validates a compiled system description (a DTB) with no `dtc`, `cargo` or file
/// system: the same path as [`check`] after `dtc`, for the fuzzer and the malformed-input tests.
/// Every VM's image is `image` (whether it names `guest` or `image`), and a VM that names an
/// `initrd` gets `initrd`. `board_dtb` stands in for the board's device tree
/// (`platforms/<board>/board.dts`, compiled with `dtc` when `None`).
pub fn check_blob(blob: &[u8], board_dtb: Option<&[u8]>, image: &[u8], initrd: &[u8]) -> Result<Plan> {
    let desc = dts::parse(blob, Path::new("/"))?;
    let board = board(&desc.board)?;
    place_and_validate(
        board,
        &desc,
        || match board_dtb {
            Some(blob) => dts::fdt::read(blob),
            None => devices::load_board(board.name),
        },
        |vm| Ok((image.to_vec(), vm.initrd.as_ref().map(|_| initrd.to_vec()))),
    )
}

fn load_image(ws: &Workspace, vm: &dts::VmDesc) -> Result<Vec<u8>> {
    match &vm.image {
        ImageSource::File(path) => fs::read(path).map_err(|source| Error::ImageUnreadable {
            node: vm.node.clone(),
            path: path.clone(),
            source,
        }),
        ImageSource::Guest(guest) => {
            let package = format!("tessera-guest-{guest}");
            eprintln!("tessera: building guest {package} for {}", vm.node);
            let elf =
                cargo_build(ws, TARGET, &["-p", &package], &[]).map_err(|reason| Error::GuestBuild {
                    node: vm.node.clone(),
                    guest: guest.clone(),
                    reason,
                })?;
            let data = fs::read(&elf).map_err(io(&elf))?;
            image::elf_to_flat(&elf, &data)
        }
    }
}

fn load_initrd(vm: &dts::VmDesc) -> Result<Option<Vec<u8>>> {
    vm.initrd
        .as_ref()
        .map(|path| {
            fs::read(path).map_err(|source| Error::InitrdUnreadable {
                node: vm.node.clone(),
                path: path.clone(),
                source,
            })
        })
        .transpose()
}

/// `--remap-path-prefix` for each crate registry under `$CARGO_HOME/registry/src`, so that the
/// source paths the firmware carries (panic locations) read `crates/heapless-0.9.3/src/...`:
/// the same on every machine, and about 50 bytes shorter each. `None` when there is no
/// registry (or `RUSTFLAGS` is set: the caller's flags win).
fn remap_registry_paths() -> Option<String> {
    if std::env::var_os("RUSTFLAGS").is_some() || std::env::var_os("CARGO_ENCODED_RUSTFLAGS").is_some() {
        return None;
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))?;
    let mut flags: Vec<String> = std::fs::read_dir(home.join("registry").join("src"))
        .ok()?
        .filter_map(|entry| entry.ok())
        .map(|entry| format!("--remap-path-prefix={}=crates", entry.path().display()))
        .collect();
    flags.sort();
    (!flags.is_empty()).then(|| flags.join("\x1f"))
}

/// Runs `cargo build --target <target> --release` with `args` and returns the path of the
/// executable it produced. The error is a reason for the message.
pub(crate) fn cargo_build(
    ws: &Workspace,
    target: &str,
    args: &[&str],
    env: &[(&str, &Path)],
) -> Result<PathBuf, String> {
    let mut command = ws.cargo();
    command
        .args([
            "build",
            "--target",
            target,
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (key, value) in env {
        command.env(key, value);
    }
    if let Some(flags) = remap_registry_paths() {
        command.env("CARGO_ENCODED_RUSTFLAGS", flags);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo exited with {} (its messages are above)",
            output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter_map(|message| message["executable"].as_str().map(PathBuf::from))
        .next_back()
        .ok_or_else(|| "cargo built no executable".into())
}

/// Builds the image for `dts` and returns where everything went.
pub fn build(ws: &Workspace, dts: &Path) -> Result<Built> {
    let dts_abs = dts.canonicalize().map_err(io(dts))?;
    let desc = dts::load(&dts_abs)?;
    let board = board(&desc.board)?;
    let _lock = ws.lock()?;
    let plan = plan_and_validate(ws, board, &desc)?;
    let out_dir = ws.out_dir(board.name, &dts_abs);
    let system_rs = tables::write(&plan, &dts_abs, &out_dir)?;
    eprintln!("tessera: tables in {}", system_rs.display());

    let package = format!("tessera-{}", board.name);
    // The features the system needs (`rtds`), plus test-only ones (e.g. `fault-test`) from
    // the HIL harness; production builds leave the variable unset.
    let mut features: Vec<String> = plan.hypervisor_features().iter().map(|f| f.to_string()).collect();
    features.extend(
        std::env::var(FEATURES_ENV)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(String::from),
    );
    features.sort();
    features.dedup();
    let features = features.join(",");
    eprintln!("tessera: building {package} (features: {features:?})");
    let mut args = vec!["-p", &package, "--bin", &package];
    if !features.is_empty() {
        args.extend(["--features", &features]);
    }
    let built = cargo_build(ws, HYPERVISOR_TARGET, &args, &[("TESSERA_SYSTEM_RS", &system_rs)])
    .map_err(|reason| Error::HypervisorBuild { reason })?;
    let elf = out_dir.join("tessera.elf");
    fs::copy(&built, &elf).map_err(io(&built))?;
    let elf_bytes = fs::read(&elf).map_err(io(&elf))?;
    let flat = image::elf_to_flat(&elf, &elf_bytes)?;
    let image = out_dir.join("tessera.img");
    check_hypervisor_image(board, &plan, &image, &flat)?;
    tables::write_if_changed(&image, &flat)?;
    let sizes = image::section_sizes(&elf, &elf_bytes)?;
    print_summary(&plan, &sizes, flat.len() as u64);
    Ok(Built {
        plan,
        system_rs,
        elf,
        image,
    })
}

/// The image must boot as an arm64 Image and, with its BSS, fit in `hv_region` above the
/// load address.
fn check_hypervisor_image(board: &Board<'_>, plan: &Plan, path: &Path, flat: &[u8]) -> Result<()> {
    let fail = |reason: String| Error::HypervisorImage {
        path: path.to_path_buf(),
        reason,
    };
    let Some(header) = Arm64Header::parse(flat) else {
        return Err(fail(format!(
            "no arm64 Image header (magic {:?} at offset 56): the platform's entry code must start with one",
            String::from_utf8_lossy(&ARM64_IMAGE_MAGIC)
        )));
    };
    let region = plan.hv_region;
    let room = region
        .size
        .saturating_sub(board.default_load_address.saturating_sub(region.base));
    if header.image_size > room {
        return Err(fail(format!(
            "image_size {:#x} does not fit the {room:#x} bytes of the hypervisor region after the load address {:#x}",
            header.image_size, board.default_load_address
        )));
    }
    Ok(())
}

fn print_summary(plan: &Plan, sizes: &image::SectionSizes, image_len: u64) {
    const MIB: f64 = (1 << 20) as f64;
    let mib = |bytes: u64| bytes as f64 / MIB;
    let hv = plan.hv_region;
    eprintln!(
        "tessera: hypervisor {} bytes + {} BSS, payload {} bytes (tables say {}), image {} bytes",
        sizes.file_backed,
        sizes.zero_filled,
        sizes.payload,
        plan.payload_bytes(),
        image_len
    );
    eprintln!(
        "tessera: hv_region {:#x}..{:#x} ({:.1} MiB)",
        hv.base,
        hv.base.saturating_add(hv.size),
        mib(hv.size)
    );
    for vm in &plan.vms {
        eprintln!(
            "tessera: vm {} (vmid {}, cpus {:?}): image {:#x} entry {:#x}, dtb {:#x}",
            vm.name, vm.vmid, vm.cpus, vm.load_ipa, vm.entry_ipa, vm.dtb_ipa
        );
        if let Some(initrd) = &vm.initrd {
            eprintln!(
                "tessera:   initrd {:#x}..{:#x} ({} bytes)",
                vm.initrd_ipa,
                vm.initrd_ipa.saturating_add(initrd.len() as u64),
                initrd.len()
            );
        }
        for r in &vm.memory {
            eprintln!(
                "tessera:   memory ipa {:#x} -> pa {:#x}..{:#x} ({:.1} MiB)",
                r.ipa,
                r.pa,
                r.pa.saturating_add(r.size),
                mib(r.size)
            );
        }
    }
}
