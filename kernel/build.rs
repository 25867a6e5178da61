//! Links the kernel at KERNEL_BASE with our own script (see linker.ld). The boot
//! archive of user programs is not part of the build: xtask appends it to the flat
//! image in `zenos.bin`, after `__kernel_end` (see `arch::boot_archive`).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    if std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    }
    println!("cargo:rerun-if-changed=linker.ld");
}
