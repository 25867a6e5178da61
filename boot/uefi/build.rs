//! Link options that keep the stub small (it must stay under 8 KiB).
fn main() {
    if std::env::var("TARGET").is_ok_and(|t| t.ends_with("-uefi")) {
        // One section instead of .text + .rdata: saves a 512-byte file-alignment pad
        // and lets the PE headers fit in 512 bytes. Constants are as safe in a
        // read-execute section as in a read-only one; the stub has no writable statics.
        println!("cargo:rustc-link-arg-bins=/MERGE:.rdata=.text");
        // No CodeView record pointing at a .pdb that is never shipped.
        println!("cargo:rustc-link-arg-bins=/DEBUG:NONE");
        // A content hash instead of a time stamp in the PE header: reproducible builds,
        // so a signed stub can be rebuilt and compared byte for byte.
        println!("cargo:rustc-link-arg-bins=/Brepro");
    }
}
