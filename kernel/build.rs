//! Links the kernel at KERNEL_BASE with our own script (see linker.ld), and puts the
//! boot archive (user programs, built by xtask) where `include_bytes!` finds it.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    if std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    }
    println!("cargo:rerun-if-changed=linker.ld");

    // xtask sets ZEN_ARCHIVE to the archive it wrote. Without it (cargo check, clippy)
    // the kernel gets an empty archive and boots to `zen: ready` without an init.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("archive.bin");
    println!("cargo:rerun-if-env-changed=ZEN_ARCHIVE");
    match std::env::var("ZEN_ARCHIVE") {
        Ok(path) => {
            println!("cargo:rerun-if-changed={path}");
            std::fs::copy(&path, &out).unwrap_or_else(|e| panic!("ZEN_ARCHIVE={path}: {e}"));
        }
        Err(_) => {
            let mut empty = Vec::new();
            zen_abi::archive::write_header(&[], |b| empty.extend_from_slice(b)).unwrap();
            std::fs::write(&out, empty).unwrap();
        }
    }
}
