//! The two ends of one ring: [`Producer`] and [`Consumer`], and their in-place slot
//! views. The protocol is described at the crate root.

use crate::shm::Ordering::{Acquire, Relaxed, Release, SeqCst};
use crate::shm::{fence, AtomicU32, AtomicU64, RingWords, Slot};
use crate::{PageGrant, RingError, Wait, Wakeup, GRANT_SIZE};
use zen_abi::cap::Rights;
use zen_abi::ipc::{SLOT_FLAGS_ALL, SLOT_FLAG_GRANT, SLOT_PAYLOAD, WAITING};

/// Checks a slot array's length (local, trusted: it comes from the caller's own mapping
/// size, never from shared memory) and returns it as the ring capacity.
pub(crate) fn slot_count(slots: usize) -> Result<u32, RingError> {
    if slots == 0 || !slots.is_power_of_two() || slots > 1 << 31 {
        return Err(RingError::Geometry);
    }
    Ok(slots as u32)
}

/// Rights a page grant may carry: mapping rights only.
const GRANT_RIGHTS: Rights = Rights::READ.union(Rights::WRITE);

/// The sending end of a ring. Holds the only trusted copy of `head`.
pub struct Producer<'a> {
    w: RingWords<'a>,
    slots: &'a [Slot],
    n: u32,
    head: u32,
}

/// The receiving end of a ring. Holds the only trusted copy of `tail`.
pub struct Consumer<'a> {
    w: RingWords<'a>,
    slots: &'a [Slot],
    n: u32,
    tail: u32,
}

/// A reserved, unpublished slot. Write the message, then [`SendSlot::publish`].
pub struct SendSlot<'p, 'a> {
    prod: &'p mut Producer<'a>,
    slot: &'a Slot,
    len: u32,
    flags: u32,
}

/// The oldest published message, read in place. [`RecvSlot::release`] hands the slot
/// back to the producer.
pub struct RecvSlot<'c, 'a> {
    cons: &'c mut Consumer<'a>,
    slot: &'a Slot,
    /// Checked copies: the peer may rewrite the slot's header after we looked.
    len: u32,
    flags: u32,
}

impl<'a> Producer<'a> {
    /// Attaches to the producing side of a ring; `slots` must be a power of two long.
    /// Starts from the ring's current `head` (zero on a fresh ring).
    pub fn new(w: RingWords<'a>, slots: &'a [Slot]) -> Result<Self, RingError> {
        let n = slot_count(slots.len())?;
        Ok(Producer {
            w,
            slots,
            n,
            head: w.producer.head.load(Relaxed),
        })
    }

    /// Slots the consumer has not released yet.
    pub fn used(&self) -> Result<u32, RingError> {
        let used = self.head.wrapping_sub(self.w.consumer.tail.load(Acquire));
        if used > self.n {
            return Err(RingError::Corrupt);
        }
        Ok(used)
    }

    /// The next free slot, or `None` if the ring is full.
    pub fn reserve(&mut self) -> Result<Option<SendSlot<'_, 'a>>, RingError> {
        if self.used()? == self.n {
            return Ok(None);
        }
        let slot = &self.slots[(self.head % self.n) as usize];
        Ok(Some(SendSlot {
            prod: self,
            slot,
            len: 0,
            flags: 0,
        }))
    }

    /// Copies `msg` into a new message and publishes it; `None` if the ring is full.
    pub fn send(&mut self, msg: &[u8]) -> Result<Option<Wakeup>, RingError> {
        match self.reserve()? {
            None => Ok(None),
            Some(mut s) => {
                s.write(0, msg)?;
                Ok(Some(s.publish()))
            }
        }
    }

    /// Step 1-3 of the wake-up protocol for a full ring.
    pub fn prepare_wait(&mut self) -> Result<Wait, RingError> {
        self.w.producer.producer_waiting.store(WAITING, Relaxed);
        fence(SeqCst);
        let tail = self.w.consumer.tail.load(Acquire);
        let used = self.head.wrapping_sub(tail);
        if used > self.n {
            return Err(RingError::Corrupt);
        }
        if used < self.n {
            self.end_wait();
            return Ok(Wait::Ready);
        }
        Ok(Wait::Sleep(tail))
    }

    /// Clears our waiting flag (after waking).
    pub fn end_wait(&mut self) {
        self.w.producer.producer_waiting.store(0, Relaxed);
    }

    /// Blocks until a slot is free, calling `sleep(expected_tail)` (the `msg_send`
    /// blocking system call) only when the protocol says the consumer will wake us.
    pub fn wait_writable(&mut self, mut sleep: impl FnMut(u32)) -> Result<(), RingError> {
        while self.used()? == self.n {
            if let Wait::Sleep(expected) = self.prepare_wait()? {
                sleep(expected);
                self.end_wait();
            }
        }
        Ok(())
    }
}

impl<'a> Consumer<'a> {
    /// Attaches to the consuming side of a ring; `slots` must be a power of two long.
    /// Starts from the ring's current `tail` (zero on a fresh ring).
    pub fn new(w: RingWords<'a>, slots: &'a [Slot]) -> Result<Self, RingError> {
        let n = slot_count(slots.len())?;
        Ok(Consumer {
            w,
            slots,
            n,
            tail: w.consumer.tail.load(Relaxed),
        })
    }

    /// Published messages not yet released.
    pub fn available(&self) -> Result<u32, RingError> {
        let avail = self.w.producer.head.load(Acquire).wrapping_sub(self.tail);
        if avail > self.n {
            return Err(RingError::Corrupt);
        }
        Ok(avail)
    }

    /// The oldest message, or `None` if the ring is empty.
    pub fn peek(&mut self) -> Result<Option<RecvSlot<'_, 'a>>, RingError> {
        if self.available()? == 0 {
            return Ok(None);
        }
        let slot = &self.slots[(self.tail % self.n) as usize];
        let len = slot.len.load(Relaxed);
        let flags = slot.flags.load(Relaxed);
        let grant = flags & SLOT_FLAG_GRANT != 0;
        if len as usize > SLOT_PAYLOAD
            || flags & !SLOT_FLAGS_ALL != 0
            || (grant && (len as usize) < GRANT_SIZE)
        {
            return Err(RingError::BadMessage);
        }
        Ok(Some(RecvSlot {
            cons: self,
            slot,
            len,
            flags,
        }))
    }

    /// Copies the oldest message into `out` and releases it; returns its length
    /// (bytes beyond `out.len()` are dropped), or `None` if the ring is empty.
    pub fn recv(&mut self, out: &mut [u8]) -> Result<Option<(usize, Wakeup)>, RingError> {
        match self.peek()? {
            None => Ok(None),
            Some(m) => {
                let len = m.len();
                m.read(0, out);
                Ok(Some((len, m.release())))
            }
        }
    }

    /// Releases the oldest message unread (after [`RingError::BadMessage`]). `None` if
    /// the ring is empty.
    pub fn discard(&mut self) -> Result<Option<Wakeup>, RingError> {
        if self.available()? == 0 {
            return Ok(None);
        }
        Ok(Some(self.advance()))
    }

    fn advance(&mut self) -> Wakeup {
        self.tail = self.tail.wrapping_add(1);
        self.w.consumer.tail.store(self.tail, Release);
        fence(SeqCst);
        wakeup(&self.w.producer.producer_waiting)
    }

    /// Step 1-3 of the wake-up protocol for an empty ring.
    pub fn prepare_wait(&mut self) -> Result<Wait, RingError> {
        self.w.consumer.consumer_waiting.store(WAITING, Relaxed);
        fence(SeqCst);
        let head = self.w.producer.head.load(Acquire);
        let avail = head.wrapping_sub(self.tail);
        if avail > self.n {
            return Err(RingError::Corrupt);
        }
        if avail > 0 {
            self.end_wait();
            return Ok(Wait::Ready);
        }
        Ok(Wait::Sleep(head))
    }

    /// Clears our waiting flag (after waking).
    pub fn end_wait(&mut self) {
        self.w.consumer.consumer_waiting.store(0, Relaxed);
    }

    /// Blocks until a message is available, calling `sleep(expected_head)` (the
    /// `msg_recv` blocking system call) only when the protocol says the producer will
    /// wake us.
    pub fn wait_readable(&mut self, mut sleep: impl FnMut(u32)) -> Result<(), RingError> {
        while self.available()? == 0 {
            if let Wait::Sleep(expected) = self.prepare_wait()? {
                sleep(expected);
                self.end_wait();
            }
        }
        Ok(())
    }
}

/// After our counter store and a SeqCst fence: does the peer wait for it?
fn wakeup(peer_waiting: &AtomicU32) -> Wakeup {
    if peer_waiting.load(Relaxed) != 0 {
        Wakeup::Needed
    } else {
        Wakeup::NotNeeded
    }
}

impl SendSlot<'_, '_> {
    /// Writes `bytes` at payload offset `offset`; the message length grows to cover it.
    pub fn write(&mut self, offset: usize, bytes: &[u8]) -> Result<(), RingError> {
        let end = offset
            .checked_add(bytes.len())
            .filter(|&e| e <= SLOT_PAYLOAD)
            .ok_or(RingError::TooLarge)?;
        store_bytes(&self.slot.data, offset, bytes);
        self.len = self.len.max(end as u32);
        Ok(())
    }

    /// The payload words, to build a message in place (little-endian: byte `i` is in
    /// word `i / 8`); set the length with [`SendSlot::set_len`].
    pub fn words(&self) -> &[AtomicU64] {
        &self.slot.data
    }

    /// Sets the message length in bytes.
    pub fn set_len(&mut self, len: usize) -> Result<(), RingError> {
        if len > SLOT_PAYLOAD || (self.flags & SLOT_FLAG_GRANT != 0 && len < GRANT_SIZE) {
            return Err(RingError::TooLarge);
        }
        self.len = len as u32;
        Ok(())
    }

    /// Puts a page grant at the start of the payload (bytes `0..GRANT_SIZE`).
    pub fn set_grant(&mut self, g: PageGrant) {
        let d = &self.slot.data;
        d[0].store(g.id, Relaxed);
        d[1].store(g.len, Relaxed);
        d[2].store(g.rights, Relaxed);
        self.flags |= SLOT_FLAG_GRANT;
        self.len = self.len.max(GRANT_SIZE as u32);
    }

    /// Makes the message visible to the consumer.
    pub fn publish(self) -> Wakeup {
        let p = self.prod;
        self.slot.len.store(self.len, Relaxed);
        self.slot.flags.store(self.flags, Relaxed);
        p.head = p.head.wrapping_add(1);
        p.w.producer.head.store(p.head, Release);
        fence(SeqCst);
        wakeup(&p.w.consumer.consumer_waiting)
    }
}

impl RecvSlot<'_, '_> {
    /// Message length in bytes (checked: at most [`SLOT_PAYLOAD`]).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies message bytes from `offset` into `out`; returns how many (clipped to the
    /// message length). Copy out anything you check before acting on it: the peer can
    /// still change the slot.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> usize {
        let n = self.len().saturating_sub(offset).min(out.len());
        load_bytes(&self.slot.data, offset, &mut out[..n]);
        n
    }

    /// Payload word `i` within the message, read once.
    pub fn word(&self, i: usize) -> Option<u64> {
        if i.checked_mul(8)? < self.len() {
            Some(self.slot.data.get(i)?.load(Relaxed))
        } else {
            None
        }
    }

    /// The page grant this message carries, checked (non-zero id and length, mapping
    /// rights only), or `None` if it carries none.
    pub fn grant(&self) -> Result<Option<PageGrant>, RingError> {
        if self.flags & SLOT_FLAG_GRANT == 0 {
            return Ok(None);
        }
        let d = &self.slot.data;
        let g = PageGrant {
            id: d[0].load(Relaxed),
            len: d[1].load(Relaxed),
            rights: d[2].load(Relaxed),
        };
        if g.id == 0 || g.len == 0 || g.rights & !GRANT_RIGHTS.bits() != 0 {
            return Err(RingError::BadMessage);
        }
        Ok(Some(g))
    }

    /// Hands the slot back to the producer.
    pub fn release(self) -> Wakeup {
        self.cons.advance()
    }
}

/// Stores `bytes` at byte `offset` of shared `words` (little-endian, as in a slot):
/// how a page grant's memory is written. `TooLarge` (and nothing stored) past the end.
pub fn write_words(words: &[AtomicU64], offset: usize, bytes: &[u8]) -> Result<(), RingError> {
    offset
        .checked_add(bytes.len())
        .filter(|&e| e <= words.len() * 8)
        .ok_or(RingError::TooLarge)?;
    store_bytes(words, offset, bytes);
    Ok(())
}

/// Loads bytes from byte `offset` of shared `words` into `out`; how many (clipped to
/// the end of `words`).
pub fn read_words(words: &[AtomicU64], offset: usize, out: &mut [u8]) -> usize {
    let n = (words.len() * 8).saturating_sub(offset).min(out.len());
    load_bytes(words, offset, &mut out[..n]);
    n
}

/// Stores `bytes` at byte `offset` of `words` (bounds checked by the caller).
///
/// From a word boundary (every message starts at one) whole words go as one store
/// each, in a loop without per-word checks; only a partial word goes byte by byte.
/// Messages are copied on every send, so this is the hot path of a request/reply:
/// a byte loop (or a `memcpy` call per word) would cost more than the system call.
fn store_bytes(words: &[AtomicU64], offset: usize, bytes: &[u8]) {
    let (mut pos, mut src) = (offset, bytes);
    if pos.is_multiple_of(8) {
        let mut stored = 0;
        let from = words.get(pos / 8..).unwrap_or(&[]);
        for (w, c) in from.iter().zip(src.chunks_exact(8)) {
            let word: [u8; 8] = c.try_into().expect("8-byte chunks");
            w.store(u64::from_le_bytes(word), Relaxed);
            stored += 8;
        }
        pos += stored;
        src = &src[stored..];
    }
    while !src.is_empty() {
        let (w, at) = (pos / 8, pos % 8);
        let n = (8 - at).min(src.len());
        // A partial word keeps its other bytes.
        let mut buf = words[w].load(Relaxed).to_le_bytes();
        for (k, b) in src[..n].iter().enumerate() {
            buf[at + k] = *b;
        }
        words[w].store(u64::from_le_bytes(buf), Relaxed);
        pos += n;
        src = &src[n..];
    }
}

/// Loads `out.len()` bytes from byte `offset` of `words` (bounds checked by the caller);
/// whole words at a time from a word boundary, as `store_bytes`.
fn load_bytes(words: &[AtomicU64], offset: usize, out: &mut [u8]) {
    let mut pos = offset;
    let mut done = 0;
    if pos.is_multiple_of(8) {
        // `get`: an offset at or past the end (a clipped read of nothing) slices
        // nothing rather than out of range.
        let from = words.get(pos / 8..).unwrap_or(&[]);
        for (w, c) in from.iter().zip(out.chunks_exact_mut(8)) {
            c.copy_from_slice(&w.load(Relaxed).to_le_bytes());
            done += 8;
        }
        pos += done;
    }
    while done < out.len() {
        let (w, at) = (pos / 8, pos % 8);
        let buf = words[w].load(Relaxed).to_le_bytes();
        let n = (8 - at).min(out.len() - done);
        // A partial word (at most 7 bytes): an indexed loop, not a `memcpy` call.
        #[allow(clippy::manual_memcpy)]
        for k in 0..n {
            out[done + k] = buf[at + k];
        }
        pos += n;
        done += n;
    }
}
