//! Link options that keep the stub small (it must stay under 8 KiB).
fn main() {
    if std::env::var("TARGET").is_ok_and(|t| t.ends_with("-uefi")) {
        // One section instead of .text + .rdata: saves a 512-byte file-alignment pad
        // and lets the PE headers fit in 512 bytes. Read-only data in a read-execute
        // section is fine for a loader that runs for a few milliseconds.
        println!("cargo:rustc-link-arg-bins=/MERGE:.rdata=.text");
        // No CodeView record pointing at a .pdb that is never shipped.
        println!("cargo:rustc-link-arg-bins=/DEBUG:NONE");
    }
}
