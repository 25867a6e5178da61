//! Task descriptors: the packed 20-byte entries the run queues hold.
//!
//! A descriptor is everything the scheduler needs to order a task, and nothing else:
//! the kernel keeps the rest of the task (stack, registers, address space) elsewhere and
//! finds it by [`TaskId`]. Packing keeps a whole run queue in a few cache lines.

/// The kernel's name for a task (e.g. its LazyPool slot index).
pub type TaskId = u32;

/// The pass a task advances by per quantum at one ticket. A task with `t` tickets has
/// stride `STRIDE1 / t`. 2^30 keeps the rounding error of `STRIDE1 / t` below 0.01 %
/// for every `t` up to `u16::MAX`, and still fits a `u32` stride at one ticket.
pub const STRIDE1: u32 = 1 << 30;

/// `pin` value meaning "may run on any CPU". Pins are stored as CPU + 1 so that an
/// empty descriptor is all zero bytes: a kernel's static run queues then live in .bss
/// instead of making the kernel image hundreds of KiB larger.
const NO_PIN: u8 = 0;

/// Scheduling class. Real-time tasks always run before stride tasks.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// Round-robin among themselves, ahead of every stride task.
    RealTime = 0,
    /// Proportional share by tickets.
    Stride = 1,
}

/// A runnable task as a run queue holds it: 20 bytes, packed.
///
/// `pass` has two meanings. Inside a queue it is the task's absolute pass on that
/// queue's clock. Outside (as handed back by `block_current`, `remove` or a steal, and
/// as given to `enqueue`) it is the task's *lag*: how far its pass was ahead of the
/// queue's virtual time when it left. A new task has lag 0. Carrying lag rather than
/// pass is what lets a task sleep, or move to another CPU whose clock differs, without
/// gaining or losing its place.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskDesc {
    id: TaskId,
    pass: u64,
    stride: u32,
    tickets: u16,
    class: Class,
    pin: u8,
}

const _: () = assert!(core::mem::size_of::<TaskDesc>() == 20);

impl TaskDesc {
    /// Fills unused ring slots; never handed out.
    pub(crate) const EMPTY: Self = Self::realtime(0);

    /// A stride task with `tickets` (0 is taken as 1: every task makes progress).
    pub const fn stride(id: TaskId, tickets: u16) -> Self {
        let tickets = if tickets == 0 { 1 } else { tickets };
        Self {
            id,
            pass: 0,
            stride: STRIDE1 / tickets as u32,
            tickets,
            class: Class::Stride,
            pin: NO_PIN,
        }
    }

    /// A real-time task.
    pub const fn realtime(id: TaskId) -> Self {
        Self {
            id,
            pass: 0,
            stride: 0,
            tickets: 0,
            class: Class::RealTime,
            pin: NO_PIN,
        }
    }

    /// The same task, pinned to `cpu`: it is only ever queued there and never stolen.
    pub const fn pinned(mut self, cpu: u8) -> Self {
        assert!(cpu != u8::MAX, "CPU 255 is reserved");
        self.pin = cpu + 1;
        self
    }

    /// The same task, unpinned.
    pub const fn unpinned(mut self) -> Self {
        self.pin = NO_PIN;
        self
    }

    /// The same stride task with new tickets; its lag is kept. No effect on real-time.
    pub const fn with_tickets(self, tickets: u16) -> Self {
        match self.class {
            Class::RealTime => self,
            Class::Stride => Self {
                pass: self.pass,
                pin: self.pin,
                ..Self::stride(self.id, tickets)
            },
        }
    }

    /// The task's id.
    pub const fn id(&self) -> TaskId {
        self.id
    }

    /// Absolute pass inside a queue, lag outside; see the type docs.
    pub const fn pass(&self) -> u64 {
        self.pass
    }

    /// `STRIDE1 / tickets` for stride tasks, 0 for real-time.
    pub const fn stride_len(&self) -> u32 {
        self.stride
    }

    /// Tickets (0 for real-time).
    pub const fn tickets(&self) -> u16 {
        self.tickets
    }

    /// The task's class.
    pub const fn class(&self) -> Class {
        self.class
    }

    /// The CPU the task is pinned to, if any.
    pub const fn pin(&self) -> Option<u8> {
        if self.pin == NO_PIN {
            None
        } else {
            Some(self.pin - 1)
        }
    }

    pub(crate) const fn is_rt(&self) -> bool {
        matches!(self.class, Class::RealTime)
    }

    pub(crate) const fn stealable(&self) -> bool {
        self.pin == NO_PIN
    }

    pub(crate) fn set_pass(&mut self, pass: u64) {
        self.pass = pass;
    }
}
