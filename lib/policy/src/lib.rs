//! zen-policy: the security policy, written as text, compiled on the host, consulted
//! by the kernel (brief item 48).
//!
//! - [`compile`] (the build tool, on the host): policy text to a table of bytes, or
//!   the first mistake with its line and column ([`CompileError`]).
//! - [`Policy::decode`] (the kernel, at boot): checks the whole table and refuses a
//!   damaged one ([`DecodeError`]); it never misreads one and never panics.
//! - [`Policy`]'s queries: [`Policy::may_spawn`], [`Policy::may_send`],
//!   [`Policy::may_claim`], [`Policy::may_grant`] give a [`Decision`] (allow or deny,
//!   and the source line of the rule that decided, or the default);
//!   [`Policy::memory_limit`] gives a program's kernel-memory quota.
//! - [`table`]: the table's layout.
//!
//! # The language
//!
//! One rule a line; words separated by spaces; `#` starts a comment; blank lines are
//! ignored. `NAME` and `PROGRAM` are program names, `[a-z0-9_-]{1,32}`, or `any`.
//!
//! ```text
//! program NAME may [not] spawn PROGRAM
//! program NAME may [not] send capability KIND to PROGRAM    # KIND: channel, device, system, any
//! program NAME may [not] claim device class XX:YY           # PCI class:subclass in hex, or `any`
//! program NAME may [not] grant pages to PROGRAM
//! program NAME memory SIZE                                  # bytes; K, M, G are 2^10, 2^20, 2^30
//! default allow | default deny                              # at most once; deny if absent
//! ```
//!
//! A request no rule covers gets the default. Of the rules that cover a request, the
//! most specific decides, parts weighed in the order they are written: a rule naming
//! the program beats one for `any` program, whatever follows; then a named target
//! (child, capability kind, device class, receiver) beats `any`, and for `send` the
//! kind counts before the receiver. Between rules equally specific, `may not` beats
//! `may`; between two that agree, the earlier line is the one reported.
//!
//! A program's `memory` rule sets its limit; `program any memory` sets it for the rest;
//! one memory rule per program. Anything else, a misspelt word, a bad name, class or
//! size, a second `default`, a line over 200 characters, stops compilation at the word
//! at fault, e.g. `policy.zen:3:15: expected "spawn", "send", "claim" or "grant",
//! found "spwan"` (the file name is the caller's: `Display` gives `3:15: ...`).
//!
//! An example, `policy.zen`:
//!
//! ```text
//! # Init starts the system; nothing else starts anything but the shell.
//! program init may spawn any
//! program shell may spawn any
//! program shell may not spawn init
//!
//! # Drivers claim their own hardware only.
//! program nvmed may claim device class 01:08
//! program any may not claim device class any
//!
//! # Channels go anywhere; the system token only from init.
//! program any may send capability channel to any
//! program init may send capability system to any
//! program tagfsd may grant pages to nvmed
//!
//! program any memory 4M
//! program tagfsd memory 64M
//! default deny
//! ```
//!
//! ```
//! use zen_policy::{compile, By, CapKind, Policy, Verdict};
//! let text = "program init may spawn any\nprogram shell may not spawn init\n\
//!             program any may send capability channel to any\nprogram any memory 4M\n";
//! let table = compile(text).unwrap();
//! let policy = Policy::decode(&table).unwrap();
//! let d = policy.may_spawn("init", "shell");
//! assert_eq!((d.verdict, d.by), (Verdict::Allow, By::Rule(1)));
//! assert_eq!(policy.may_spawn("shell", "init").by, By::Rule(2));
//! assert_eq!(policy.may_send("nvmed", CapKind::Device, "init").by, By::Default);
//! assert_eq!(policy.memory_limit("shell"), Some(4 << 20));
//! ```
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

mod compile;
mod policy;
pub mod table;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

pub use compile::{compile, CompileError, MAX_LINE, MAX_LINES};
pub use policy::{DecodeError, Policy};

/// The kind of capability a `send` rule is about (its code in the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CapKind {
    /// An IPC channel endpoint.
    Channel = 0,
    /// A device (a PCI function's registers and interrupts).
    Device = 1,
    /// The system token (power, device management).
    System = 2,
}

impl CapKind {
    fn from_u8(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Channel),
            1 => Some(Self::Device),
            2 => Some(Self::System),
            _ => None,
        }
    }
}

/// Allowed or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

/// What decided: the rule on this source line, or the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    Rule(u32),
    Default,
}

/// A query's answer, with its reason (for the audit log and for error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub by: By,
}

impl Decision {
    pub fn allowed(self) -> bool {
        self.verdict == Verdict::Allow
    }
}
