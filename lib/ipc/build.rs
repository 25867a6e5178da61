//! Declares the `loom` cfg, so `RUSTFLAGS="--cfg loom"` model-checking builds are
//! recognised rather than warned about (the workspace lints table can't carry check-cfg).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
