//! zen-tagfs: the TagFS engine — a tag-indexed, log-structured, copy-on-write object store.
//!
//! Objects have an id, content and a set of tags (`word` or `key:value`). The engine runs
//! over any [`BlockDevice`] (4 KiB blocks) and is `no_std` + `alloc`, so the same code runs
//! in the `tagfsd` server, in the host tool and in host tests. The on-disk format is
//! specified in `docs/tagfs.md`; the module map:
//!
//! - [`device`]: the block-device trait and an in-memory device.
//! - [`meta`]: `ObjectMeta`, the 12-byte packed object record, and the limits it implies.
//! - [`index`]: the cuckoo hash table from tag to posting set.
//! - [`query`]: the boolean query language (parser with positioned errors, evaluator).
//! - `codec`, `journal`, `log`, `checkpoint`: byte encoding, journal entries, the segment
//!   log with its superblocks, and the checkpoint image.
//! - `object`: `Object` and `Extent`, the in-memory records `fs`, `checkpoint` and
//!   `store` share (so none of them imports another in a circle).
//! - [`fs`]: [`Fs`], the API (create, read, write, truncate, add_tag, remove_tag, query,
//!   meta, delete, sync) and the cleaner.
//! - `direct`: `Fs::read_into`, reads the device puts straight into the caller's memory
//!   where the content is block-aligned (zero copy), checked like any other.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

mod checkpoint;
mod codec;
pub mod device;
mod direct;
mod fs;
#[cfg(test)]
mod fuzz_tests;
pub mod index;
mod journal;
mod log;
pub mod meta;
mod object;
pub mod query;
mod store;

pub use device::{BlockDevice, Buffer, MemDevice, Memory, Run, BLOCK_SIZE};
pub use direct::ReadInto;
pub use fs::{CheckReport, Config, Fs, FsStats};
pub use meta::{ObjectId, ObjectMeta};
pub use query::QueryError;

use alloc::string::String;
use core::fmt;

/// Everything the engine can refuse. A corrupt image is always an `Err`, never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The block device failed (its own message).
    Io(String),
    /// The image is not TagFS or is damaged; the text says what and where.
    Corrupt(String),
    /// No such object.
    NotFound(ObjectId),
    /// A tag that is empty, too long, contains whitespace, `(`, `)` or `*`, or is a keyword.
    InvalidTag(String),
    /// A query that does not parse.
    Query(QueryError),
    /// A limit of the format was reached (see `meta`): the text names it.
    Limit(&'static str),
    /// The device is full even after cleaning.
    NoSpace,
    /// The device is too small to hold a file system.
    DeviceTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(m) => write!(f, "device error: {m}"),
            Error::Corrupt(m) => write!(f, "corrupt image: {m}"),
            Error::NotFound(id) => write!(f, "no object {id}"),
            Error::InvalidTag(t) => write!(f, "invalid tag {t:?}"),
            Error::Query(e) => write!(f, "{e}"),
            Error::Limit(m) => write!(f, "limit reached: {m}"),
            Error::NoSpace => write!(f, "no space left on device"),
            Error::DeviceTooSmall => write!(f, "device too small for TagFS"),
        }
    }
}

impl From<QueryError> for Error {
    fn from(e: QueryError) -> Self {
        Error::Query(e)
    }
}

/// Result with the engine's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

/// Builds an [`Error::Corrupt`] with a formatted message.
macro_rules! corrupt {
    ($($arg:tt)*) => { $crate::Error::Corrupt(alloc::format!($($arg)*)) };
}
pub(crate) use corrupt;
