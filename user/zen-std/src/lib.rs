//! zen-std: what a Zen OS program links against (the brief's myos_std, item 33).
//!
//! It owns everything a program needs `unsafe` for, so programs themselves are
//! `#![deny(unsafe_code)]`: the entry point (`_start`, which calls the function named
//! by [`main!`]), the panic handler (prints and exits with 101), a global allocator
//! that grows through the `map` system call, the system-call instruction itself, and
//! safe wrappers for every call in `zen_abi::syscall` (processes, threads, time,
//! memory, channels, page grants, capabilities).
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! #![deny(unsafe_code)]
//! use zen_std::prelude::*;
//! zen_std::main!(main);
//! fn main() -> i32 { println!("hello"); 0 }
//! ```
#![no_std]

extern crate alloc;

pub mod block;
pub mod boot;
pub mod call;
pub mod chan;
pub mod console;
pub mod dev;
mod heap;
pub mod mem;
pub mod process;
mod rt;
pub mod simd;
pub mod sys;
pub mod tagfs;
pub mod testing;
pub mod thread;
pub mod time;

pub use alloc::{boxed, collections, format, string, sync, vec};
pub use zen_abi::syscall::Error;

/// `Result` of a system call.
pub type Result<T> = core::result::Result<T, Error>;

/// The usual imports of a program.
pub mod prelude {
    pub use crate::{eprintln, print, println};
    pub use alloc::boxed::Box;
    pub use alloc::format;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

/// Names the program's main function: `fn main() -> i32` (the exit code) or
/// `fn main()` (exit code 0).
#[macro_export]
macro_rules! main {
    ($main:path) => {
        #[export_name = "__zen_main"]
        fn __zen_main() -> u64 {
            $crate::process::Termination::code($main())
        }
    };
}
