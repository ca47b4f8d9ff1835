//! The QEMU command line and the defmt decoder's failure modes (decoding real frames needs
//! the aarch64 build, so the HIL tests cover that).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use xtask::Error;
use xtask::defmt_log::decode;
use xtask::qemu::Qemu;

#[test]
fn qemu_runs_the_board_the_platform_describes_in_the_run_dir() {
    let mut qemu = Qemu::new("/out/tessera.img", "/run");
    qemu.extra_args = vec!["-s".into()];
    assert_eq!(
        qemu.display(),
        "qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 4 -m 1G \
         -nographic -semihosting-config enable=on,target=native -kernel /out/tessera.img -s"
    );
    assert_eq!(qemu.command().get_current_dir(), Some(Path::new("/run")));
    assert_eq!(qemu.log_path(), Path::new("/run/hv.defmt"));
}

#[test]
fn decoding_without_an_elf_is_an_error() {
    let error = decode(Path::new("/nonexistent/tessera.elf"), &[]).unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error}");
}

#[test]
fn decoding_with_an_elf_that_is_not_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("bogus.elf");
    std::fs::write(&elf, b"not an elf").unwrap();
    let error = decode(&elf, &[1, 2, 3]).unwrap_err();
    assert!(matches!(error, Error::Defmt { .. }), "{error}");
}
