//! hello: the store's sample program. It is in no boot archive: `cargo xtask image`
//! puts it in the root store as an object tagged `program:hello`, and the shell's
//! `run hello` finds it there (zen-std `tagfs::Store::spawn`, the kernel's
//! spawn_image), so programs can be added without rebuilding the kernel.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use zen_std::prelude::*;
use zen_std::process;

zen_std::main!(main);

fn main() -> i32 {
    let arg = process::arg();
    println!(
        "hello from the store (process {}, argument `{arg}`)",
        process::id()
    );
    0
}
