//! zen-abi: the one place where the boot stubs, the kernel, user space and the host
//! tools agree on layouts and numbers. Nothing here has behaviour beyond checked
//! conversions; every type that crosses a boundary is `#[repr(C)]` and its size is
//! asserted at compile time so a change is a deliberate ABI break.
#![no_std]
#![deny(unsafe_code)]

pub mod archive;
pub mod boot;
pub mod cap;
pub mod device;
pub mod image;
pub mod ipc;
pub mod layout;
pub mod syscall;
