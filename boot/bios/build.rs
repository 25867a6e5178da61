//! Links the stub at 0x7C00 with its own linker script, as a non-PIE executable: the
//! 16-bit code uses absolute 16-bit addresses, which a position-independent link
//! refuses. Only the binary is affected; the library builds normally on the host.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed=linker.ld");
    if std::env::var("TARGET").unwrap().ends_with("-none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
