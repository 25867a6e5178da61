//! Link options that keep the stub small, and the image public key built in.
fn main() {
    pubkey();
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

/// Writes `$OUT_DIR/pubkey.rs`: the ed25519 public key zenos.bin must be signed with,
/// from `ZEN_IMAGE_PUBKEY` (64 hex digits; `cargo xtask` passes the key it signs with).
/// Building the stub with the signature check but without a key is an error: a stub
/// that silently accepted any image would defeat the point.
fn pubkey() {
    println!("cargo:rerun-if-env-changed=ZEN_IMAGE_PUBKEY");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("pubkey.rs");
    let wanted = std::env::var_os("CARGO_FEATURE_SIGNATURE").is_some()
        && std::env::var("TARGET").is_ok_and(|t| t.ends_with("-uefi"));
    let hex = std::env::var("ZEN_IMAGE_PUBKEY").unwrap_or_default();
    let bytes: Option<Vec<u8>> = (hex.len() == 64)
        .then(|| {
            (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .collect()
        })
        .flatten();
    let key = match (bytes, wanted) {
        (Some(b), _) => b,
        (None, false) => vec![0; 32],
        (None, true) => panic!(
            "ZEN_IMAGE_PUBKEY must hold the image signing key's public half as 64 hex digits \
             (got {hex:?}); build the stub with `cargo xtask build`, which sets it"
        ),
    };
    std::fs::write(out, format!("/// The ed25519 public key zenos.bin must be signed with.\npub const IMAGE_PUBLIC_KEY: [u8; 32] = {key:?};\n")).unwrap();
}
