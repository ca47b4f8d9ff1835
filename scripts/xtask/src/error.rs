//! Everything `cargo xtask` can fail on, one variant per failure.
//!
//! Each variant that comes from the system description names the node (its full path, such as
//! `/vms/alpha/memory@1`), so the message printed as `error: <system.dts>: <this>` points at the
//! line to fix. Validator errors ([`tessera_config::ConfigError`]) already name `/vms/<name>`;
//! they are carried as their message because they borrow from the tables they were found in.

use std::fmt;
use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum Error {
    /// A file or directory could not be read, written or created.
    Io { path: PathBuf, source: io::Error },
    /// A tool (`dtc`, `cargo`, `qemu-system-aarch64`) could not be started.
    Spawn { program: String, source: io::Error },
    /// `dtc` rejected the source.
    Dtc { stderr: String },
    /// The compiled blob is not a well-formed flattened device tree.
    MalformedDtb { reason: String },
    /// A node the binding does not define.
    UnknownNode { node: String },
    /// A property the binding does not define for this node.
    UnknownProperty { node: String, property: String },
    /// A required property is absent.
    MissingProperty {
        node: String,
        property: &'static str,
    },
    /// A required child node is absent.
    MissingNode { node: String },
    /// A numeric property with the wrong number of cells.
    BadCells {
        node: String,
        property: String,
        expected: &'static str,
        found_bytes: usize,
    },
    /// A property that must be one NUL-terminated string is not.
    NotAString { node: String, property: String },
    /// A string property that is not UTF-8.
    NotUtf8 { node: String, property: String },
    /// A property whose value is not one the binding allows.
    BadValue {
        node: String,
        property: String,
        value: String,
        allowed: &'static str,
    },
    /// Two properties (or a property and a node) that exclude each other are both given.
    Conflict {
        node: String,
        first: &'static str,
        second: &'static str,
    },
    /// A VM has neither `guest` nor `image`.
    NoImage { node: String },
    /// `image = "…"` names a file that cannot be read.
    ImageUnreadable {
        node: String,
        path: PathBuf,
        source: io::Error,
    },
    /// `initrd = "…"` names a file that cannot be read.
    InitrdUnreadable {
        node: String,
        path: PathBuf,
        source: io::Error,
    },
    /// The initrd does not fit in the VM's first memory region after the image (with its BSS).
    NoRoomForInitrd {
        node: String,
        initrd_size: u64,
        room: u64,
    },
    /// The initrd overlaps the running image (its BSS, which the tables do not carry).
    InitrdOverImage { node: String, initrd_ipa: u64 },
    /// `load-offset`/`entry-offset` are given for an image that carries an arm64 Image header,
    /// whose `text_offset` already says where it goes.
    OffsetsWithImageHeader { node: String },
    /// An arm64 Image must sit `text_offset` above a 2 MiB-aligned base (booting.rst).
    ImageBaseNotAligned { node: String, base: u64 },
    /// The image (with its BSS, from the Image header) does not fit in the VM's memory.
    ImageTooLarge {
        node: String,
        image_size: u64,
        room: u64,
    },
    /// The image's load address is not in the VM's first memory region.
    ImageOutsideMemory { node: String, load_ipa: u64 },
    /// No 2 MiB-aligned slot of the first memory region can hold the guest device tree.
    NoRoomForDtb { node: String, dtb_size: u64 },
    /// The guest device tree could not be written.
    GuestDtb { node: String, reason: String },
    /// A memory region without `host-base` does not fit in the board's free RAM.
    OutOfRam { node: String, size: u64 },
    /// `devices = "<path>"` names no node of the board's device tree.
    DeviceNotInBoard { node: String, device: String, board_dts: String },
    /// A device node the tool cannot pass through (its `reg`, `interrupts` or parent).
    BadDevice { node: String, device: String, reason: String },
    /// A device window shares a 4 KiB page with other devices and the VM does not allow
    /// trap-and-forward (`sub-page = "trap"`).
    DeviceSharesPage { node: String, device: String, page: u64, size: u64, sharing: Vec<String> },
    /// A DMA-capable device without `dma-unrestricted`.
    DmaPolicyMissing { node: String, device: String, compatible: String },
    /// A VM with a DMA-capable device whose RAM is not identity mapped.
    DmaNeedsIdentityRam { node: String, ipa: u64, pa: u64 },
    /// The system names a board this tool does not know.
    UnknownBoard { board: String, known: &'static str },
    /// More VMs than VMIDs, refused before any per-VM work.
    TooManyVms { count: usize, max: usize },
    /// A VM lists more CPUs than the board has, refused before any per-VM work.
    TooManyCpus { node: String, count: usize, board_cpus: usize },
    /// The validator shared with the hypervisor rejected the system.
    Invalid { message: String },
    /// Building a guest with cargo failed.
    GuestBuild {
        node: String,
        guest: String,
        reason: String,
    },
    /// Building the hypervisor with cargo failed.
    HypervisorBuild { reason: String },
    /// An ELF file could not be turned into a flat binary.
    Elf { path: PathBuf, reason: String },
    /// The hypervisor image is not a bootable arm64 Image, or does not fit its region.
    HypervisorImage { path: PathBuf, reason: String },
    /// The hypervisor's defmt log could not be decoded.
    Defmt { reason: String },
    /// QEMU failed.
    Qemu { reason: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Spawn { program, source } => write!(f, "cannot run `{program}`: {source}"),
            Self::Dtc { stderr } => write!(f, "dtc failed:\n{}", stderr.trim_end()),
            Self::MalformedDtb { reason } => {
                write!(f, "the compiled device tree is malformed: {reason}")
            }
            Self::UnknownNode { node } => write!(f, "{node}: unknown node"),
            Self::UnknownProperty { node, property } => {
                write!(f, "{node}: unknown property `{property}`")
            }
            Self::MissingProperty { node, property } => {
                write!(f, "{node}: missing required property `{property}`")
            }
            Self::MissingNode { node } => write!(f, "{node}: missing required node"),
            Self::BadCells {
                node,
                property,
                expected,
                found_bytes,
            } => write!(
                f,
                "{node}: property `{property}` must be {expected}, but it has {found_bytes} bytes"
            ),
            Self::NotAString { node, property } => {
                write!(f, "{node}: property `{property}` must be one string")
            }
            Self::NotUtf8 { node, property } => {
                write!(f, "{node}: property `{property}` is not UTF-8")
            }
            Self::BadValue {
                node,
                property,
                value,
                allowed,
            } => {
                write!(
                    f,
                    "{node}: property `{property}` is {value}, but it must be {allowed}"
                )
            }
            Self::Conflict {
                node,
                first,
                second,
            } => {
                write!(f, "{node}: `{first}` and `{second}` cannot both be given")
            }
            Self::NoImage { node } => {
                write!(
                    f,
                    "{node}: give either `guest = \"<name>\"` or `image = \"<path>\"`"
                )
            }
            Self::ImageUnreadable { node, path, source } => {
                write!(f, "{node}: cannot read image {}: {source}", path.display())
            }
            Self::InitrdUnreadable { node, path, source } => {
                write!(f, "{node}: cannot read initrd {}: {source}", path.display())
            }
            Self::NoRoomForInitrd {
                node,
                initrd_size,
                room,
            } => write!(
                f,
                "{node}: the initrd needs {initrd_size} bytes but only {room} bytes of the first memory region lie after the image (2 MiB aligned)"
            ),
            Self::InitrdOverImage { node, initrd_ipa } => write!(
                f,
                "{node}: the initrd at {initrd_ipa:#x} overlaps the image's BSS"
            ),
            Self::OffsetsWithImageHeader { node } => write!(
                f,
                "{node}: `load-offset`/`entry-offset` cannot be given for an arm64 Image (its header's text_offset places it)"
            ),
            Self::ImageBaseNotAligned { node, base } => write!(
                f,
                "{node}: an arm64 Image needs a 2 MiB-aligned RAM base, but the first memory region starts at {base:#x}"
            ),
            Self::ImageTooLarge {
                node,
                image_size,
                room,
            } => write!(
                f,
                "{node}: the image needs {image_size} bytes (with its BSS) but only {room} bytes of the VM's memory lie after its load address"
            ),
            Self::ImageOutsideMemory { node, load_ipa } => {
                write!(
                    f,
                    "{node}: the image's load address {load_ipa:#x} is not in the VM's first memory region"
                )
            }
            Self::NoRoomForDtb { node, dtb_size } => write!(
                f,
                "{node}: no 2 MiB-aligned slot of the first memory region holds the {dtb_size}-byte device tree beside the image"
            ),
            Self::GuestDtb { node, reason } => {
                write!(f, "{node}: cannot generate the guest device tree: {reason}")
            }
            Self::OutOfRam { node, size } => write!(
                f,
                "{node}: no free 2 MiB-aligned {size:#x} bytes of board RAM are left (give `host-base` or less memory)"
            ),
            Self::DeviceNotInBoard { node, device, board_dts } => {
                write!(f, "{node}: device {device} is not a node of {board_dts}")
            }
            Self::BadDevice { node, device, reason } => write!(f, "{node}: device {device} cannot be passed through: {reason}"),
            Self::DeviceSharesPage { node, device, page, size, sharing } => {
                write!(f, "{node}: device {device} ({size:#x} bytes) does not own its 4 KiB page {page:#x}")?;
                if !sharing.is_empty() {
                    write!(f, ", which it shares with {}", sharing.join(", "))?;
                }
                write!(f, "; it cannot be mapped (give the VM `sub-page = \"trap\"` to trap and forward its accesses)")
            }
            Self::DmaPolicyMissing { node, device, compatible } => write!(
                f,
                "{node}: device {device} ({compatible}) can do DMA and there is no SMMU: passing it through lets the VM write any RAM of the board; say so with `dma-unrestricted = \"{device}\"`"
            ),
            Self::DmaNeedsIdentityRam { node, ipa, pa } => write!(
                f,
                "{node}: the VM has a DMA-capable device and no SMMU translates its DMA, so its RAM must be identity mapped, but guest-physical {ipa:#x} is host-physical {pa:#x} (give `host-base` = `guest-base`)"
            ),
            Self::UnknownBoard { board, known } => {
                write!(
                    f,
                    "/: board = \"{board}\" is not a board this tool knows ({known})"
                )
            }
            Self::TooManyVms { count, max } => {
                write!(f, "/vms: {count} VMs, but at most {max} fit in 8-bit VMIDs")
            }
            Self::TooManyCpus { node, count, board_cpus } => {
                write!(f, "{node}: {count} CPUs, but the board has {board_cpus}")
            }
            Self::Invalid { message } => f.write_str(message),
            Self::GuestBuild {
                node,
                guest,
                reason,
            } => {
                write!(f, "{node}: building guest `{guest}` failed: {reason}")
            }
            Self::HypervisorBuild { reason } => {
                write!(f, "building the hypervisor failed: {reason}")
            }
            Self::Elf { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::HypervisorImage { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::Defmt { reason } => write!(f, "defmt log: {reason}"),
            Self::Qemu { reason } => write!(f, "qemu: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. }
            | Self::Spawn { source, .. }
            | Self::ImageUnreadable { source, .. }
            | Self::InitrdUnreadable { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Attaches a path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
