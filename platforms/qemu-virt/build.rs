//! Links the hypervisor binary (linker script, position independence, defmt) and brings in
//! the system tables that `cargo xtask build` generated (`TESSERA_SYSTEM_RS`). Without them
//! (a plain `cargo build`), an empty system is used: the binary links but has no VM to run.
use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-env-changed=TESSERA_SYSTEM_RS");
    let tables = match env::var_os("TESSERA_SYSTEM_RS") {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        }
        None => String::from(
            "/// No system was given (plain `cargo build`): nothing to run.\n\
             pub static SYSTEM: tessera_config::System<'static> = tessera_config::System {\n\
             board: \"qemu-virt\", hv_region: tessera_config::MemRange::new(0x4000_0000, 0x0100_0000), vms: &[], pools: &[] };\n",
        ),
    };
    fs::write(out.join("system.rs"), tables).expect("writing system.rs into OUT_DIR");

    // The hypervisor is built for aarch64-unknown-none-softfloat (no FP/SIMD at EL2).
    let target = env::var("TARGET").unwrap_or_default();
    if target.starts_with("aarch64-unknown-none") {
        let link = manifest.join("../../hv/arch/link.ld");
        println!("cargo:rerun-if-changed={}", link.display());
        println!("cargo:rustc-link-arg-bins=-T{}", link.display());
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
        println!("cargo:rustc-link-arg-bins=--pie");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
        println!("cargo:rustc-link-arg-bins=-znotext");
    }
}
