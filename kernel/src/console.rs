//! The kernel console: output to the serial port through a ring buffer.
//!
//! Every writer (kernel messages, a program's `write`) appends whole messages to one
//! ring under a short lock, then drains it. One drainer at a time (the `DRAINING`
//! flag) takes up to [`CHUNK`] bytes per lock hold and writes them to the port with
//! interrupts as its caller had them: on, for a system call; and it writes at most
//! what the ring held when it started, so a writer on another CPU refilling the ring
//! cannot keep it there. So a program printing a megabyte holds nobody's interrupts
//! off for long, and output stays in order (one drainer, first in, first out). Bytes
//! a drainer left behind go out with the next writer or the next timer tick.
//!
//! A program's `write` waits for room (draining itself); a kernel message never
//! waits: if the ring is full its bytes are dropped and counted, and the count is
//! printed when there is room again. Programs may fill the ring only up to
//! [`KERNEL_RESERVE`] bytes from full, so no program's output crowds out the kernel's
//! messages (the audit log's checkpoints among them). A kernel message starts on a
//! line of its own: after a program's unfinished line it begins with a newline, so
//! nothing a program writes can run into it and change how it reads. After a panic or a fatal exception
//! ([`emergency`]) output bypasses the ring: what is in it is written out first, then
//! every message goes straight to the port.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::sync::IrqMutex;

/// Bytes the ring holds.
const RING_BYTES: usize = 16 * 1024;
/// Bytes a drainer writes per lock hold (interrupts stay as the caller had them).
const CHUNK: usize = 64;
/// Bytes of the ring only kernel messages may use.
const KERNEL_RESERVE: usize = 2048;

struct Ring {
    buf: [u8; RING_BYTES],
    /// Index of the oldest byte.
    start: usize,
    len: usize,
    /// Bytes ever appended and ever taken out by a drainer: a writer waits until
    /// `taken` passes the end of its own bytes, whoever takes them.
    pushed: u64,
    taken: u64,
    /// The last byte pushed ended no line (a program's line is unfinished).
    mid_line: bool,
}

impl Ring {
    fn free(&self) -> usize {
        RING_BYTES - self.len
    }

    /// Appends `b`; the caller checked there is room.
    fn push(&mut self, b: u8) {
        let at = (self.start + self.len) % RING_BYTES;
        self.buf[at] = b;
        self.len += 1;
        self.pushed += 1;
    }

    fn pop_into(&mut self, out: &mut [u8]) -> usize {
        let n = self.len.min(out.len());
        for o in out.iter_mut().take(n) {
            *o = self.buf[self.start];
            self.start = (self.start + 1) % RING_BYTES;
        }
        self.len -= n;
        self.taken += n as u64;
        n
    }
}

/// Bytes `b` takes on the wire (`\n` becomes `\r\n`).
fn wire_len(bytes: &[u8]) -> usize {
    bytes.len() + bytes.iter().filter(|&&b| b == b'\n').count()
}

fn push_wire(r: &mut Ring, bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            r.push(b'\r');
        }
        r.push(b);
    }
    if let Some(&last) = bytes.last() {
        r.mid_line = last != b'\n';
    }
}

/// A kernel message into the ring, on a line of its own; false if it did not fit.
fn push_line(r: &mut Ring, bytes: &[u8]) -> bool {
    let fresh = if r.mid_line { &b"\n"[..] } else { &[] };
    if r.free() < wire_len(fresh) + wire_len(bytes) {
        return false;
    }
    push_wire(r, fresh);
    push_wire(r, bytes);
    true
}

static RING: IrqMutex<Ring> = IrqMutex::new(Ring {
    buf: [0; RING_BYTES],
    start: 0,
    len: 0,
    pushed: 0,
    taken: 0,
    mid_line: false,
});
static DRAINING: AtomicBool = AtomicBool::new(false);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static EMERGENCY: AtomicBool = AtomicBool::new(false);
/// Set by `flush` before the machine goes down: programs' writes return at once, so
/// a program writing in a loop cannot keep the ring from emptying.
static CLOSING: AtomicBool = AtomicBool::new(false);

/// If nobody else is draining: writes out at most `budget` bytes of the ring (what
/// was in it when the caller looked, so a writer on another CPU refilling it cannot
/// keep this one here); whether this context drained.
fn try_drain(budget: usize) -> bool {
    if DRAINING.swap(true, Ordering::Acquire) {
        return false;
    }
    let mut left = budget;
    while left > 0 {
        let mut chunk = [0u8; CHUNK];
        let n = RING.lock().pop_into(&mut chunk[..left.min(CHUNK)]);
        if n == 0 {
            break;
        }
        for &b in &chunk[..n] {
            crate::arch::serial::write_byte(b);
        }
        left -= n;
    }
    DRAINING.store(false, Ordering::Release);
    true
}

fn ring_len() -> usize {
    RING.lock().len
}

/// From each CPU's timer tick: a chunk of bytes a drainer left behind (appended while
/// it drained past its budget's end) goes out, so no output waits for the next writer.
pub fn tick() {
    if !EMERGENCY.load(Ordering::Relaxed) && ring_len() > 0 {
        try_drain(CHUNK);
    }
}

/// Formats into a stack buffer first, so a kernel message enters the ring whole (or
/// not at all) under one lock hold.
struct Line {
    buf: [u8; 512],
    len: usize,
    truncated: bool,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.truncated = true;
                return Ok(());
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut line = Line {
        buf: [0; 512],
        len: 0,
        truncated: false,
    };
    let _ = line.write_fmt(args);
    if line.truncated {
        let _ = line.write_str("...\n");
    }
    if EMERGENCY.load(Ordering::Acquire) {
        write_direct(&line.buf[..line.len]);
        return;
    }
    {
        let mut r = RING.lock();
        let lost = DROPPED.load(Ordering::Relaxed);
        let bytes = &line.buf[..line.len];
        if lost != 0 && r.free() >= wire_len(bytes) + 64 {
            let mut note = Line {
                buf: [0; 512],
                len: 0,
                truncated: false,
            };
            let _ = writeln!(note, "zen: {} bytes of console output lost", lost);
            push_line(&mut r, &note.buf[..note.len]);
            DROPPED.store(0, Ordering::Relaxed);
        }
        if !push_line(&mut r, bytes) {
            DROPPED.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
    }
    // One bounded try: if another context drains, the message is behind what it
    // writes or goes out with the next writer or tick. With interrupts off (an
    // interrupt or exception handler) only a chunk: a ring full of a program's output
    // is not written out with interrupts off.
    let budget = if crate::arch::cpu::interrupts_enabled() {
        ring_len()
    } else {
        CHUNK
    };
    try_drain(budget);
}

/// Writes a program's output: waits for room as needed (draining), never drops it.
/// Interrupts stay as the caller has them except for the short lock holds; it returns
/// once its bytes are written, in bounded time (each drain is bounded by the ring's
/// size, and a drainer it waits for is too).
pub fn write_bytes(bytes: &[u8]) {
    if EMERGENCY.load(Ordering::Acquire) || CLOSING.load(Ordering::Acquire) {
        // After a panic the port is the panicking CPU's.
        return;
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        let mine = {
            let mut r = RING.lock();
            // As much as fits, on the wire (a `\n` takes two bytes).
            let mut n = 0;
            let mut need = 0;
            while n < rest.len() {
                let w = if rest[n] == b'\n' { 2 } else { 1 };
                if need + w > r.free().saturating_sub(KERNEL_RESERVE) {
                    break;
                }
                need += w;
                n += 1;
            }
            push_wire(&mut r, &rest[..n]);
            rest = &rest[n..];
            r.pushed
        };
        // Our bytes are in the ring: wait until they are out, draining ourselves when
        // nobody else does (another drainer takes them in order, within its budget).
        loop {
            let (taken, len) = {
                let r = RING.lock();
                (r.taken, r.len)
            };
            if taken >= mine || try_drain(len) {
                break;
            }
            core::hint::spin_loop();
        }
    }
}

/// Writes everything the ring holds now (before QEMU exits): waits for a drainer on
/// another CPU to finish its bounded chunk first, so nothing is written out of order.
/// Programs' output is dropped from here on (the machine is going down).
pub fn flush() {
    CLOSING.store(true, Ordering::Release);
    // What is in the ring now, after any drainer's bounded chunk (no writer refills it
    // any more: `CLOSING`).
    for _ in 0..10_000_000 {
        if try_drain(ring_len()) {
            return;
        }
        core::hint::spin_loop();
    }
    // A drainer that never finished (this CPU interrupted it): write anyway.
    write_out_all();
}

/// Writes out everything in the ring, whoever else drains (only when order no
/// longer matters more than getting the bytes out).
fn write_out_all() {
    let mut chunk = [0u8; CHUNK];
    loop {
        let n = RING.lock().pop_into(&mut chunk);
        if n == 0 {
            return;
        }
        for &b in &chunk[..n] {
            crate::arch::serial::write_byte(b);
        }
    }
}

fn write_direct(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            crate::arch::serial::write_byte(b'\r');
        }
        crate::arch::serial::write_byte(b);
    }
}

/// A panic or fatal exception: flush the ring, then print synchronously from now on
/// (programs' output is dropped from then on, so it cannot keep the ring full).
pub fn emergency() {
    EMERGENCY.store(true, Ordering::Release);
    write_out_all();
}

/// Prints to the kernel console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the kernel console.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::kprint!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
