//! A connection of nvmed: a client's channel, the extent it may reach, and the
//! replies its ring had no room for yet.

use zen_block::{Extent, PartInfo, Reply};
use zen_std::chan::Channel;

/// A connection: a client's channel, what it may reach, and the replies its ring
/// had no room for yet (while there are any, its new requests wait: a client that
/// never reads stalls only itself).
pub struct Conn {
    pub chan: Channel,
    pub extent: Extent,
    /// Bumped when the slot is reused for a new client: replies for the old one's
    /// requests go nowhere.
    pub gen: u64,
    /// Its client is gone: not polled, not read, its slot free for a new one.
    pub dead: bool,
    /// Its client was seen attached (a new connection's client attaches after it is
    /// made), and when it was made.
    pub seen: bool,
    pub made: u64,
    /// Pages of its requests' grants in flight (at most `MAX_CONN_PAGES` + one).
    pub inflight: usize,
    pub backlog: alloc::collections::VecDeque<[u8; Reply::SIZE + PartInfo::SIZE]>,
    pub backlog_len: alloc::collections::VecDeque<usize>,
}

impl Conn {
    pub fn new(chan: Channel, extent: Extent, gen: u64) -> Self {
        Conn {
            chan,
            extent,
            gen,
            dead: false,
            seen: false,
            inflight: 0,
            made: zen_std::time::uptime_ms(),
            backlog: Default::default(),
            backlog_len: Default::default(),
        }
    }
    /// Sends `msg` now if there is room and nothing is queued before it, else queues it.
    pub fn send(&mut self, msg: &[u8]) {
        if self.backlog.is_empty() && self.chan.try_send(msg) == Ok(true) {
            return;
        }
        let mut b = [0u8; Reply::SIZE + PartInfo::SIZE];
        b[..msg.len()].copy_from_slice(msg);
        self.backlog.push_back(b);
        self.backlog_len.push_back(msg.len());
    }
    /// Whether its next request would be taken now: alive, no backlog, its share
    /// of pages in flight not used up.
    pub fn ready(&self) -> bool {
        !self.dead && self.backlog.is_empty() && self.inflight < crate::MAX_CONN_PAGES
    }

    /// Sends what it can of the backlog.
    pub fn flush(&mut self) {
        while let (Some(b), Some(&n)) = (self.backlog.front(), self.backlog_len.front()) {
            if self.chan.try_send(&b[..n]) != Ok(true) {
                return;
            }
            self.backlog.pop_front();
            self.backlog_len.pop_front();
        }
    }
}
