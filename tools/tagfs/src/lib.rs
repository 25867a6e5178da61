//! The host side of TagFS shared by the `tagfs` tool and `cargo xtask image`: a file
//! as a block device, and importing a directory tree with its path, type, extension
//! and year tags.
#![deny(unsafe_code)]

pub mod file_device;
pub mod import;
