//! Entry and panic.

use crate::process;

core::arch::global_asm!(
    r#"
    .text
    .global _start
_start:
    xor ebp, ebp
    and rsp, -16
    call {start}
    ud2
    "#,
    start = sym start,
);

extern "Rust" {
    /// Defined by `zen_std::main!` in the program.
    fn __zen_main() -> u64;
}

extern "C" fn start() -> ! {
    // SAFETY: `__zen_main` is the safe function `main!` generates; a program without
    // `main!` fails to link rather than calling garbage.
    let code = unsafe { __zen_main() };
    process::exit(code)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::eprintln!("panic: {}", info);
    process::exit(101)
}
