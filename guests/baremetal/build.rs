//! Passes the linker script to the EL1 binary, only when building for the bare-metal target,
//! so that host builds (`cargo test --workspace`) never see it.
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("TARGET").as_deref() == Ok("aarch64-unknown-none") {
        let dir = PathBuf::from(
            env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
        );
        println!(
            "cargo:rustc-link-arg-bins=-T{}",
            dir.join("link.ld").display()
        );
    }
}
