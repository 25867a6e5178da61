//! The architecture layer: the only part of the kernel allowed to use `unsafe`.
//!
//! Each architecture is one module exposing the same names (STYLE.md 8); anything
//! not supported is a compile error, never a silent fallback.
#![allow(unsafe_code)] // reason: this layer is where the kernel touches hardware

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("Zen OS runs on x86_64 only so far");
