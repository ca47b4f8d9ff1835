//! Device passthrough: QEMU virt's virtio-mmio transports given to the Linux VM, with Linux's
//! own virtio_mmio, virtio_blk and virtio_net drivers on them, beside the bare-metal guest
//! `rt`, which may not touch them.
//!
//! System: `dts/systems/qemu-virt/passthrough.dts` (`linux` owns `/virtio_mmio@a003e00` and
//! `/virtio_mmio@a003c00`, trapped and forwarded because eight transports share a page; `rt`
//! owns the PL031 RTC). QEMU fills the transports from the top, so the first `-device` is at
//! 0x0a003e00 and the second at 0x0a003c00. Every test is named `passthrough_*`:
//! `cargo test -p hil-tests passthrough` runs exactly these.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hil_tests::{EXPECT_TIMEOUT, QemuOptions, Target, boot_system, mux_switch, workspace_root};

const SYSTEM: &str = "dts/systems/qemu-virt/passthrough.dts";
const LINUX: &str = "linux";
const RT: &str = "rt";
const SHELL_TIMEOUT: Duration = Duration::from_secs(120);
const HARD_TIMEOUT: Duration = Duration::from_secs(300);
/// What the known file on the test disk says.
const KNOWN: &str = "tessera-passthrough-known-file";

/// The kernel and an initramfs with the virtio and ext4 modules (`scripts/fetch-linux.sh`).
fn ensure_linux() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let script = workspace_root().join("scripts/fetch-linux.sh");
        let output = Command::new(&script).output().map_err(|e| format!("{}: {e}", script.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("{} failed: {}", script.display(), String::from_utf8_lossy(&output.stderr)))
        }
    });
    if let Err(reason) = ready {
        panic!("{reason}");
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/setup-host.sh installs e2fsprogs)"));
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A 16 MiB ext4 image holding `/hello.txt` = [`KNOWN`].
fn make_disk(dir: &Path) -> std::path::PathBuf {
    let content = dir.join("content");
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join("hello.txt"), format!("{KNOWN}\n")).unwrap();
    let image = dir.join("disk.img");
    run("mkfs.ext4", &["-q", "-F", "-d", content.to_str().unwrap(), image.to_str().unwrap(), "16M"]);
    image
}

fn wait_for_shell(target: &dyn Target) -> Duration {
    let start = Instant::now();
    target.expect_line_from(LINUX, "TESSERA-LINUX-UP ", SHELL_TIMEOUT).unwrap();
    target.expect_line_from(LINUX, "linux# ", SHELL_TIMEOUT).unwrap();
    start.elapsed()
}

/// Boots the passthrough system with `devices` (extra QEMU arguments) and waits for Linux's
/// shell. Returns the target and when QEMU was started.
fn boot_to_shell<const N: usize>(devices: [String; N]) -> (Box<dyn Target>, Instant) {
    let mut options = QemuOptions::default().hard_timeout(HARD_TIMEOUT);
    options.extra_args.extend(devices);
    let started = Instant::now();
    let target = boot_system(Path::new(SYSTEM), options).unwrap();
    let shell = wait_for_shell(target.as_ref());
    eprintln!("passthrough: shell after {:.1} s", shell.as_secs_f64());
    (target, started)
}

/// Linux mounts the passed-through virtio-blk disk, reads the known file, writes a new one
/// and syncs; `rt`'s read of the same transport aborts and `rt` carries on; `rt` reads its own
/// PL031 RTC (mapped) and takes its match interrupt (HW-linked SPI 34); Linux unmounts and
/// powers off, and the host finds the new file in the image.
#[test]
fn passthrough_virtio_blk_ext4_survives_poweroff() {
    ensure_linux();
    let dir = tempfile::tempdir().unwrap();
    let disk = make_disk(dir.path());
    let (mut target, started) = boot_to_shell([
        "-drive".to_string(),
        format!("file={},if=none,format=raw,id=blk0", disk.display()),
        "-device".into(),
        "virtio-blk-device,drive=blk0".into(),
    ]);

    target.mark();
    target
        .send(
            b"mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && cat /mnt/hello.txt && echo written-by-linux > /mnt/new.txt && sync && echo BLK-DONE\r",
        )
        .unwrap();
    target.expect_line_from(LINUX, KNOWN, EXPECT_TIMEOUT * 4).unwrap();
    target.expect_line_from(LINUX, "BLK-DONE", EXPECT_TIMEOUT * 4).unwrap();

    // The transport is not rt's: its read aborts (fault-policy inject), and rt carries on.
    target.mark();
    target.send(&mux_switch(1)).unwrap();
    target.send(b"peek a003e00\r").unwrap();
    target.expect_line_from(RT, "abort caught at 0xa003e00", EXPECT_TIMEOUT).unwrap();
    target.send(b"ping\r").unwrap();
    target.expect_line_from(RT, "pong", EXPECT_TIMEOUT).unwrap();
    // rt's own device, the PL031 RTC (mapped): its data register RTCDR counts seconds.
    target.send(b"peek 9010000\r").unwrap();
    let rtc = target.expect_line_from(RT, "peek 0x9010000 = 0x", EXPECT_TIMEOUT).unwrap();
    let now = rtc.rsplit("0x").next().and_then(|hex| u32::from_str_radix(hex.trim(), 16).ok()).unwrap();
    assert!(now > 0, "the RTC counts: {rtc}");
    // And its interrupt (SPI 2, INTID 34), HW-linked to rt: enable it in rt's vGIC (IHI 0069:
    // GICD_IGROUPR1 Group 1 for INTIDs 33 (the console) and 34, GICD_IPRIORITYR8 0x80 for
    // 32..35, GICD_ISENABLER1 bit 2; GICD_IROUTER34 resets to vCPU 0), then set the PL031's
    // match register RTCMR two seconds ahead and its mask RTCIMSC (PL031 TRM 3.3).
    for command in [
        "poke 8000084 6".to_string(),
        "poke 8000420 80808080".into(),
        "poke 8000104 4".into(),
        format!("poke 9010004 {:x}", now + 2),
        "poke 9010010 1".into(),
    ] {
        target.send(format!("{command}\r").as_bytes()).unwrap();
        target.expect_line_from(RT, "poke done", EXPECT_TIMEOUT).unwrap();
    }
    target.expect_line_from(RT, "rt: irq 34 taken and masked", EXPECT_TIMEOUT * 2).unwrap();
    target.send(b"poke 901001c 1\r").unwrap(); // RTCICR: clear the match interrupt
    target.expect_line_from(RT, "poke done", EXPECT_TIMEOUT).unwrap();

    // The owner keeps working.
    target.send(&mux_switch(0)).unwrap();
    target.mark();
    target.send(b"cat /mnt/new.txt && umount /mnt && echo UMOUNT-DONE\r").unwrap();
    target.expect_line_from(LINUX, "written-by-linux", EXPECT_TIMEOUT * 4).unwrap();
    target.expect_line_from(LINUX, "UMOUNT-DONE", EXPECT_TIMEOUT * 4).unwrap();
    target.send(b"poweroff -f\r").unwrap();
    target.expect_line("SYSTEM_OFF", EXPECT_TIMEOUT * 4).unwrap();
    target.kill();
    drop(target);

    let new = run("debugfs", &["-R", "cat /new.txt", disk.to_str().unwrap()]);
    assert_eq!(new.trim(), "written-by-linux", "the guest's write reached the disk image");
    eprintln!("passthrough: virtio-blk test took {:.1} s", started.elapsed().as_secs_f64());
}

/// Linux's virtio_net drives the passed-through virtio-net device on QEMU user networking
/// whose only host-side entry is the test's loopback `hostfwd`. (Not `restrict=on`: libslirp
/// then drops every UDP datagram the guest sends, the echoes included. Instead IPv6 is off on
/// both sides, the guest gets an address on 10.0.2.0/24 and no default route, and runs
/// nothing that sends but `udp-echo`, which answers only the sender; QEMU's `filter-dump`
/// captures the NIC's traffic, and the test asserts that every frame the guest sent was ARP
/// for the gateway or an echo to 10.0.2.2, where hostfwd traffic comes from.) The guest echoes UDP
/// (`udp-echo`, guests/linux-udp-echo); the test sends datagrams to the forwarded port and checks every
/// payload comes back.
#[test]
fn passthrough_virtio_net_udp_echo() {
    use std::net::UdpSocket;
    ensure_linux();
    // A free loopback port for QEMU's forward (bound and released: a tiny race, retried by
    // nothing; the port is fresh from the kernel's ephemeral range).
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Every frame on the guest's network, as QEMU saw it, for the check at the end.
    let pcap = std::env::temp_dir().join(format!("tessera-net-{}-{port}.pcap", std::process::id()));
    let (mut target, started) = boot_to_shell([
        "-netdev".to_string(),
        format!("user,id=n0,restrict=off,ipv6=off,hostfwd=udp:127.0.0.1:{port}-:7777"),
        "-object".into(),
        format!("filter-dump,id=dump0,netdev=n0,file={}", pcap.display()),
        "-device".into(),
        "virtio-net-device,netdev=n0".into(),
    ]);

    target.mark();
    // QEMU's user network: the guest is 10.0.2.15/24; no route leads anywhere else.
    target
        .send(
            b"echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && (udp-echo &) && echo NET-UP\r",
        )
        .unwrap();
    target.expect_line_from(LINUX, "NET-UP", EXPECT_TIMEOUT * 4).unwrap();

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let forward = format!("127.0.0.1:{port}");
    let mut buffer = [0u8; 2048];
    let echoed = |socket: &UdpSocket, payload: &[u8], buffer: &mut [u8]| -> bool {
        socket.send_to(payload, &forward).unwrap();
        loop {
            match socket.recv_from(buffer) {
                Ok((n, _)) if &buffer[..n] == payload => return true,
                Ok(_) => continue, // a late echo of an earlier try
                Err(_) => return false,
            }
        }
    };
    // The first datagram may beat the listener: retry it for a while.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !echoed(&socket, b"tessera-hello", &mut buffer) {
        if Instant::now() >= deadline {
            // What the guest saw, for the failure message.
            target.mark();
            target
                .send(b"grep virtio /proc/interrupts; ip neigh; cat /sys/class/net/eth0/statistics/rx_packets /sys/class/net/eth0/statistics/tx_packets; ps | grep udp; echo DIAG-DONE\r")
                .unwrap();
            let _ = target.expect_line_from(LINUX, "DIAG-DONE", EXPECT_TIMEOUT * 4);
            let text: Vec<String> =
                target.console().stream_from(LINUX, 0).lines().rev().take(12).map(str::to_owned).collect();
            panic!("no echo from the guest on 127.0.0.1:{port}; guest state (last lines first):\n{}", text.join("\n"));
        }
    }
    let first_echo = started.elapsed();
    let sizes = [1usize, 17, 64, 500, 1000, 1400];
    for (i, size) in sizes.iter().enumerate() {
        let payload: Vec<u8> = (0..*size).map(|b| (b as u8).wrapping_mul(31).wrapping_add(i as u8)).collect();
        let mut tries = 0;
        while !echoed(&socket, &payload, &mut buffer) {
            tries += 1;
            assert!(tries < 3, "datagram {i} ({size} bytes) not echoed");
        }
    }
    for i in 0..20u32 {
        let payload = format!("datagram-{i}-{}", "x".repeat(i as usize * 10));
        assert!(
            echoed(&socket, payload.as_bytes(), &mut buffer) || echoed(&socket, payload.as_bytes(), &mut buffer),
            "{payload} not echoed"
        );
    }
    // The interface counted the traffic, and the owner is still at its shell.
    target.mark();
    target.send(b"cat /sys/class/net/eth0/statistics/rx_packets; echo NET-DONE\r").unwrap();
    target.expect_line_from(LINUX, "NET-DONE", EXPECT_TIMEOUT * 4).unwrap();
    target.kill();
    drop(target);

    // The guest sent nothing to any address but the test's: every frame it put on the wire
    // is ARP for the gateway, or UDP from its echo port to 10.0.2.2 (where QEMU's hostfwd
    // traffic comes from).
    let frames = guest_frames(&std::fs::read(&pcap).unwrap());
    let _ = std::fs::remove_file(&pcap);
    let udp_echoes = frames.iter().filter(|frame| matches!(frame, GuestFrame::UdpToGateway)).count();
    let stray: Vec<&GuestFrame> = frames
        .iter()
        .filter(|frame| !matches!(frame, GuestFrame::UdpToGateway | GuestFrame::ArpForGateway))
        .collect();
    assert!(stray.is_empty(), "the guest sent frames elsewhere: {stray:?}");
    assert!(udp_echoes >= 27, "only {udp_echoes} echoes seen on the wire");
    eprintln!(
        "passthrough: first echo {:.1} s after QEMU start, whole test {:.1} s",
        first_echo.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// A frame the guest sent, as far as the network check cares.
#[derive(Debug, PartialEq, Eq)]
enum GuestFrame {
    /// UDP from port 7777 to 10.0.2.2 (QEMU's gateway, the source of hostfwd traffic).
    UdpToGateway,
    /// An ARP request or reply about 10.0.2.2.
    ArpForGateway,
    /// Anything else: the ethertype, and the IPv4 destination and protocol if IPv4.
    Other { ethertype: u16, ipv4_dst: Option<[u8; 4]>, protocol: Option<u8> },
}

/// QEMU's MAC address for the first NIC (52:54:00:12:34:56).
const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const GATEWAY: [u8; 4] = [10, 0, 2, 2];

/// The frames in a pcap capture (libpcap format, little-endian, Ethernet) whose source MAC
/// is the guest's.
fn guest_frames(pcap: &[u8]) -> Vec<GuestFrame> {
    assert!(pcap.len() >= 24 && pcap[..4] == [0xd4, 0xc3, 0xb2, 0xa1], "not a little-endian pcap");
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let captured = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..(at + 16 + captured).min(pcap.len())];
        at += 16 + captured;
        if frame.len() < 14 || frame[6..12] != GUEST_MAC {
            continue;
        }
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let payload = &frame[14..];
        let classified = match ethertype {
            0x0806 if payload.len() >= 28 && payload[24..28] == GATEWAY => GuestFrame::ArpForGateway,
            0x0800 if payload.len() >= 24 => {
                let header = usize::from(payload[0] & 0xf) * 4;
                let dst: [u8; 4] = payload[16..20].try_into().unwrap();
                let protocol = payload[9];
                let source_port = payload.get(header..header + 2).map(|p| u16::from_be_bytes([p[0], p[1]]));
                if dst == GATEWAY && protocol == 17 && source_port == Some(7777) {
                    GuestFrame::UdpToGateway
                } else {
                    GuestFrame::Other { ethertype, ipv4_dst: Some(dst), protocol: Some(protocol) }
                }
            }
            _ => GuestFrame::Other { ethertype, ipv4_dst: None, protocol: None },
        };
        frames.push(classified);
    }
    frames
}
