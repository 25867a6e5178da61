//! Device interrupts as objects: an MSI-X vector of a device, delivered to one CPU
//! on a vector of the IDT the kernel picked, is counted here and wakes whoever waits
//! for it (`irq_wait`, or `msg_poll` beside its channels). The driver never sees the
//! IDT vector nor writes the MSI-X table: it holds an interrupt token (object: the
//! IDT vector; type `Interrupt`) that the device layer minted when it bound the
//! vector, and a binding that ends (the driver exits) bumps the object's generation,
//! so a token kept from before is stale.
//!
//! Below ipc in the call graph (poll waits on these), above cap; it knows no device.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use zen_abi::cap::{Binding, ObjectType, Rights};
use zen_abi::syscall::Error;

use crate::cap::{Holder, Presented};
use crate::task::{self, WaitQueue};

/// IDT vectors for devices: above the exceptions, the timer (32), the reschedule and
/// TLB IPIs (0x40, 0x41), below the spurious vector (0xff).
pub const FIRST_VECTOR: u8 = 0x50;
pub const LAST_VECTOR: u8 = 0xef;
const COUNT: usize = (LAST_VECTOR - FIRST_VECTOR) as usize + 1;

/// One IDT vector's binding.
pub struct Irq {
    /// Interrupts since the holder last took them.
    pending: AtomicU64,
    /// Bumped at every bind and every release: tokens of an earlier binding are stale.
    generation: AtomicU64,
    /// The process it is bound for, 0 while free.
    holder: AtomicU32,
    pub queue: WaitQueue,
}

impl Irq {
    const fn new() -> Self {
        Self {
            pending: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            holder: AtomicU32::new(0),
            queue: WaitQueue::new(),
        }
    }
    /// Interrupts are waiting to be taken.
    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire) != 0
    }
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

static IRQS: [Irq; COUNT] = [const { Irq::new() }; COUNT];

fn slot(vector: u8) -> Option<&'static Irq> {
    IRQS.get(vector.checked_sub(FIRST_VECTOR)? as usize)
}

/// Takes a free vector for `pid`; the vector and its new generation.
pub fn alloc(pid: u32) -> Option<(u8, u64)> {
    for (i, irq) in IRQS.iter().enumerate() {
        if irq
            .holder
            .compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            irq.pending.store(0, Ordering::Release);
            let generation = irq.generation.fetch_add(1, Ordering::AcqRel) + 1;
            return Some((FIRST_VECTOR + i as u8, generation));
        }
    }
    None
}

/// Ends the binding of `vector` (its source is masked already): its tokens go stale
/// and its waiters wake (to `Denied`).
pub fn free(vector: u8) {
    if let Some(irq) = slot(vector) {
        irq.generation.fetch_add(1, Ordering::AcqRel);
        irq.queue.wake_all(|| {});
        irq.holder.store(0, Ordering::Release);
    }
}

/// From the interrupt handler (before EOI): count it, wake the waiters. An interrupt
/// on a vector bound to nobody (a device masked too late) is only counted as edge.
pub fn on_vector(vector: u8) {
    match slot(vector) {
        Some(irq) if irq.holder.load(Ordering::Acquire) != 0 => {
            irq.pending.fetch_add(1, Ordering::AcqRel);
            irq.queue.wake_all(|| {});
        }
        _ => crate::edge::report_detail(zen_edge::EdgeKind::SpuriousInterrupt, vector as u16, 0),
    }
}

/// The binding of a genuine interrupt token of `pid` for `vector` at `generation`.
pub fn binding(vector: u8, pid: u32, generation: u64) -> Binding {
    zen_cap::binding(vector as u64, ObjectType::Interrupt, pid, generation)
}

/// What an interrupt token names, if it is genuine, the caller's, current and has
/// `need`: the vector's object and the generation it was checked at.
pub fn check(
    me: &dyn Holder,
    tok: &Presented,
    need: Rights,
    call: u16,
) -> Result<(&'static Irq, u64), Error> {
    let object = tok.binding.object;
    let irq = u8::try_from(object)
        .ok()
        .and_then(slot)
        .ok_or_else(|| crate::cap::denied(call, object, zen_cap::CapError::UnknownObject))?;
    let generation = irq.generation();
    let expected = binding(object as u8, me.pid(), generation);
    crate::cap::verify(me, tok, &expected, need)
        .map_err(|e| crate::cap::denied(call, object, e))?;
    Ok((irq, generation))
}

/// irq_wait: the interrupts counted since the last take (at least one), sleeping
/// until there is one; `TimedOut` after `timeout_ms` (0: at once, without sleeping;
/// `u64::MAX`: never), `Denied` once the binding ended.
pub fn wait(
    me: &dyn Holder,
    tok: &Presented,
    timeout_ms: u64,
    killed: &dyn Fn() -> bool,
) -> Result<u64, Error> {
    let (irq, generation) = check(me, tok, Rights::RECV, 41)?;
    let deadline = crate::time::ticks().saturating_add(crate::time::ms_to_ticks(timeout_ms));
    let thread = task::current();
    loop {
        let stale = || irq.generation() != generation;
        let waiter = irq
            .queue
            .prepare_as(&thread, || !stale() && !irq.is_pending())
            .map_err(|_| Error::NoMemory)?;
        if stale() {
            return Err(Error::Denied);
        }
        let Some(_waiter) = waiter else {
            return Ok(irq.pending.swap(0, Ordering::AcqRel).max(1));
        };
        if killed() {
            return Err(Error::InvalidArgument);
        }
        if timeout_ms == 0 {
            // A look, not a wait.
            return Err(Error::TimedOut);
        }
        if timeout_ms == u64::MAX {
            task::park();
        } else {
            if crate::time::ticks() >= deadline {
                return Err(Error::TimedOut);
            }
            task::park_until(deadline);
        }
    }
}
