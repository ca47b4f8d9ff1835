//! Links the Linux program as a static ELF at a user address, only when building for the
//! bare-metal target (no libc needed), so that host builds never see these flags.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("TARGET").as_deref() == Ok("aarch64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=--image-base=0x400000");
        println!("cargo:rustc-link-arg-bins=-e_start");
    }
}
