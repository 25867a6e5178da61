//! How a service gets its capabilities: init starts it with a bootstrap channel in
//! `Cap(0)` and sends one message per capability, `device SLOT`, `system SLOT` or
//! `disk SLOT` (the slot of the copy cap_send put in the service's token page), then
//! `end`. After `end` the channel stays the service's line to its starter: nvmed
//! serves the block protocol on it.
//!
//! The starter side ([`give`], [`end`]) is init's (and the tests'); the service side
//! is [`receive`].

use crate::chan::{Cap, Channel};
use crate::{time, Error, Result};
use alloc::vec::Vec;
use zen_abi::cap::Rights;

/// What a service was given.
#[derive(Debug)]
pub struct Given {
    pub chan: Channel,
    pub devices: Vec<Cap>,
    pub system: Option<Cap>,
    pub disks: Vec<Cap>,
    /// A connection to the store (tagfsd), for `tagfs::Store::connect`.
    pub store: Option<Cap>,
}

/// Attaches the bootstrap channel in `Cap(0)` and reads what the starter gives, up
/// to `end` (waiting at most `timeout_ms` for each message).
pub fn receive(timeout_ms: u64) -> Result<Given> {
    let chan = Channel::attach(Cap(0))?;
    // The channel keeps its copy of the token: the slot is free for what comes.
    let _ = Cap(0).drop_token();
    let mut g = Given {
        chan,
        devices: Vec::new(),
        system: None,
        disks: Vec::new(),
        store: None,
    };
    let mut buf = [0u8; 64];
    loop {
        let n = loop {
            if let Some(n) = g.chan.try_recv(&mut buf)? {
                break n;
            }
            crate::chan::poll(&mut [&mut g.chan], timeout_ms)?;
        };
        let text = core::str::from_utf8(&buf[..n]).map_err(|_| Error::InvalidArgument)?;
        let mut words = text.split(' ');
        let kind = words.next().unwrap_or("");
        if kind == "end" {
            return Ok(g);
        }
        let slot = words
            .next()
            .and_then(|w| w.parse::<usize>().ok())
            .map(Cap)
            .ok_or(Error::InvalidArgument)?;
        match kind {
            "device" => g.devices.push(slot),
            "system" => g.system = Some(slot),
            "disk" => g.disks.push(slot),
            "store" => g.store = Some(slot),
            _ => return Err(Error::InvalidArgument),
        }
    }
}

/// Gives `cap` with `rights` to the service at `chan`'s other end as a `kind`
/// (`device`, `system`, `disk`). Waits (up to 5 s) for the service to attach.
pub fn give(chan: &mut Channel, kind: &str, cap: Cap, rights: Rights) -> Result<()> {
    let mut slot = Err(Error::NoPeer);
    for _ in 0..5000 {
        slot = cap.send_over(chan, rights);
        if slot != Err(Error::NoPeer) {
            break;
        }
        time::sleep_ms(1);
    }
    let slot = slot?;
    chan.send(alloc::format!("{kind} {}", slot.0).as_bytes())
}

/// Tells the service everything was given.
pub fn end(chan: &mut Channel) -> Result<()> {
    chan.send(b"end")
}
