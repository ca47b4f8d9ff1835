//! `udp-echo`: a UDP echo server for Linux on arm64, with no libc: it binds 0.0.0.0:7777 and
//! sends every datagram back to where it came from, forever. The passthrough HIL test
//! (`hil-tests/tests/passthrough.rs`) runs it in the Linux guest's initramfs, because
//! busybox's `nc` there speaks only TCP.
//!
//! Built for `aarch64-unknown-none` (a freestanding static ELF) by `scripts/fetch-linux.sh`;
//! it talks to the kernel through raw system calls (the arm64 Linux ABI: number in x8,
//! arguments in x0-x5, result in x0; numbers from `include/uapi/asm-generic/unistd.h`).
//! On the host this builds as an empty program so that `cargo build/test --workspace` work.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod linux {
    /// `asm-generic/unistd.h`.
    const SYS_WRITE: u64 = 64;
    const SYS_EXIT: u64 = 93;
    const SYS_SOCKET: u64 = 198;
    const SYS_BIND: u64 = 200;
    const SYS_SENDTO: u64 = 206;
    const SYS_RECVFROM: u64 = 207;
    /// `linux/socket.h`, `linux/net.h`.
    const AF_INET: u16 = 2;
    const SOCK_DGRAM: u64 = 2;
    const PORT: u16 = 7777;

    /// `struct sockaddr_in` (`linux/in.h`): family, port and address in network order.
    #[repr(C)]
    struct SockaddrIn {
        family: u16,
        port_be: u16,
        addr_be: u32,
        zero: [u8; 8],
    }

    fn syscall(number: u64, args: [u64; 6]) -> i64 {
        let result: i64;
        // SAFETY: `svc #0` enters the kernel with the arm64 Linux system call ABI; every call
        // made here passes pointers to live buffers of the lengths given (or none), so the
        // kernel reads and writes only memory this program owns.
        unsafe {
            core::arch::asm!(
                "svc #0",
                in("x8") number,
                inlateout("x0") args[0] => result,
                in("x1") args[1],
                in("x2") args[2],
                in("x3") args[3],
                in("x4") args[4],
                in("x5") args[5],
                options(nostack),
            );
        }
        result
    }

    fn exit(code: u64) -> ! {
        syscall(SYS_EXIT, [code, 0, 0, 0, 0, 0]);
        loop {
            core::hint::spin_loop();
        }
    }

    fn say(text: &str) {
        syscall(SYS_WRITE, [1, text.as_ptr() as u64, text.len() as u64, 0, 0, 0]);
    }

    #[unsafe(no_mangle)]
    extern "C" fn _start() -> ! {
        let socket = syscall(SYS_SOCKET, [u64::from(AF_INET), SOCK_DGRAM, 0, 0, 0, 0]);
        if socket < 0 {
            say("udp-echo: socket failed\n");
            exit(1);
        }
        let fd = socket as u64;
        let address = SockaddrIn { family: AF_INET, port_be: PORT.to_be(), addr_be: 0, zero: [0; 8] };
        let size = core::mem::size_of::<SockaddrIn>() as u64;
        if syscall(SYS_BIND, [fd, &raw const address as u64, size, 0, 0, 0]) < 0 {
            say("udp-echo: bind failed\n");
            exit(1);
        }
        say("udp-echo: listening on udp port 7777\n");
        let mut buffer = [0u8; 2048];
        loop {
            let mut peer = SockaddrIn { family: 0, port_be: 0, addr_be: 0, zero: [0; 8] };
            let mut peer_len: u32 = size as u32;
            let received = syscall(
                SYS_RECVFROM,
                [fd, buffer.as_mut_ptr() as u64, buffer.len() as u64, 0, &raw mut peer as u64, &raw mut peer_len as u64],
            );
            if received < 0 {
                continue;
            }
            syscall(SYS_SENDTO, [fd, buffer.as_ptr() as u64, received as u64, 0, &raw const peer as u64, u64::from(peer_len)]);
        }
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        exit(2)
    }
}
