//! Links the EL1 binary with the bare-metal guest's linker script, moved to 0xC0200000 (RAM
//! at IPA 0xC000_0000), only when building for the bare-metal target. The attacker's own RAM
//! then lies outside the board's RAM (0x4000_0000..0x8000_0000 on qemu-virt), so every
//! host-physical address of the hypervisor and the other VMs is an IPA it can aim at.
use std::env;
use std::path::PathBuf;

fn main() {
    let dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = dir.join("../baremetal/link.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("TARGET").as_deref() == Ok("aarch64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=--defsym=BASE_ADDRESS=0xC0200000");
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
}
