//! Kernel threads: creation, the switch path, yield, sleep, park/unpark, exit, join.
//!
//! Policy lives in zen-sched (stride + real-time classes, per-CPU queues, stealing);
//! this module keeps the thread objects (in a LazyPool, so the kernel never grows past
//! `MAX_THREADS`) and does the switching.
//!
//! Invariants that make SMP switching safe:
//! - All of it runs with interrupts off on the calling CPU.
//! - A thread's `on_cpu` flag is set while some CPU runs on its stack. It is cleared by
//!   the CPU that switched away, *after* the switch (in `finish_switch`, on the next
//!   thread's stack). A CPU about to resume a thread waits for the flag to clear, so a
//!   thread that another CPU already re-queued or woke is never resumed before its
//!   registers are saved. It waits a bounded time only (then it runs its idle thread
//!   and picks again): it holds its own thread's flag meanwhile, so two CPUs each
//!   waiting for the thread the other is leaving would wait for ever.
//! - A thread's `Inner` lock is taken before any run-queue lock. Blocking (state =
//!   Blocked, descriptor out of the queue) happens under `Inner`, and waking checks
//!   the state under `Inner`, so a wake-up cannot slip between the two (no lost
//!   wake-ups); a wake-up that comes first leaves `wake_pending`, which `park` consumes.
//!
//! A little over 500 lines: the switch path, park/unpark, exit and join share the
//! invariants above and the private thread state, and reading them in one file is how
//! those invariants are checked; the hand-off, sleeping, spawning and wait queues are in
//! their own files.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use spin::Mutex;
use zen_pool::{Handle, LazyPool};
use zen_sched::{Removal, Scheduler, TaskDesc};

use crate::arch::{self, apic, cpu, percpu, switch};

mod handoff;
mod sleep;
mod spawn;
mod wait;
pub use handoff::{park_handing_off, Handoff};
#[cfg(feature = "ktest")]
pub use sleep::sleep_ticks;
pub use sleep::{park_until, sleep_until};
pub use spawn::{spawn, spawn_user, JoinHandle, Options};
pub use wait::{WaitQueue, Waiter};

/// Most threads alive at once.
pub const MAX_THREADS: usize = 256;
const STACK_BYTES: usize = 32 * 1024;
/// Tickets of a thread that does not ask for a share.
pub const DEFAULT_TICKETS: u16 = 100;

static SCHED: Scheduler<{ percpu::MAX_CPUS }, MAX_THREADS> = Scheduler::new();
static THREADS: Mutex<LazyPool<Arc<Thread>, MAX_THREADS>> = Mutex::new(LazyPool::new());
static READY: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In a run queue or running.
    Runnable,
    /// Out of every queue until `unpark`.
    Blocked,
    /// Finished; waiting to be joined.
    Exited,
}

/// Where a new thread starts.
enum Entry {
    /// A kernel closure; its result is the exit code.
    Kernel(Box<dyn FnOnce() -> u64 + Send>),
    /// User mode at `rip` with stack `rsp`. Not a closure: entering user mode never
    /// returns, so a boxed closure would never be freed.
    User { rip: u64, rsp: u64, arg: u64 },
}

struct Inner {
    state: State,
    /// An `unpark` arrived while the thread was not blocked: the next `park` returns.
    wake_pending: bool,
    /// The scheduler descriptor (with its lag) while the thread is in no queue.
    desc: Option<TaskDesc>,
    exit_code: Option<u64>,
    joiner: Option<Arc<Thread>>,
    entry: Option<Entry>,
    /// Nobody joins it: its slot is freed when it exits (user threads).
    detached: bool,
}

impl Inner {
    /// A runnable thread's state, before it first runs.
    fn new(entry: Option<Entry>, detached: bool) -> Self {
        Inner {
            state: State::Runnable,
            wake_pending: false,
            desc: None,
            exit_code: None,
            joiner: None,
            entry,
            detached,
        }
    }
}

/// A kernel thread.
pub struct Thread {
    handle: Handle,
    /// What it is, for a debugger's eyes (`p *thread` in gdb); nothing reads it.
    #[allow(dead_code)]
    name: &'static str,
    /// Stack pointer saved by the last switch away from this thread.
    saved_rsp: AtomicU64,
    /// Some CPU is running on this thread's stack (see the module invariants).
    on_cpu: AtomicBool,
    /// CPU it last ran on: where a wake-up queues it.
    last_cpu: AtomicU32,
    /// Timer ticks that interrupted this thread: the CPU share it was given.
    pub ticks_run: AtomicU64,
    inner: Mutex<Inner>,
    /// What this thread runs for (a process, to the layer above), which gives the
    /// address space it runs in; `None` for kernel threads,
    /// which run on the kernel's own tables.
    owner: Option<Arc<dyn Owner>>,
    /// Top of the kernel stack: where entries from user mode land.
    kstack_top: u64,
    /// Its x87/SSE registers while it is switched out; user threads only (kernel code
    /// is soft-float). Switched in `schedule`, see `arch::fpu`.
    fpu: Option<Box<arch::fpu::FpuArea>>,
    /// Owned kernel stack; `None` for a CPU's idle thread, which runs on the stack
    /// the CPU booted with.
    _stack: Option<Box<[u64]>>,
}

/// What a user thread runs for, as the scheduler sees it: an address space to load.
/// The process layer implements it (task never names a process) and gets its own type
/// back from the running thread by upcasting to `Any` (no call through the vtable).
pub trait Owner: core::any::Any + Send + Sync {
    /// Level-4 table to run on (the kernel's once the address space is gone).
    fn root(&self) -> u64;
    /// The process id, for records of who did what (0: not a process).
    fn pid(&self) -> u32 {
        0
    }
    /// Takes one of the owner's audited refusals; `false` once its budget is spent
    /// (see `audit::REFUSALS_PER_PROCESS`). The kernel's own: never limited.
    fn audit_refusal(&self) -> bool {
        true
    }
}

/// The thread each CPU runs, and what it runs for (kept apart so that finding the
/// caller of a system call is one reference count, not a lock and a downcast of the
/// thread).
static CURRENT: arch::cpulocal::CpuArc<Thread> = arch::cpulocal::CpuArc::new();
static OWNER: arch::cpulocal::CpuArc<dyn Owner> = arch::cpulocal::CpuArc::new();
/// The thread each CPU just switched away from, until `finish_switch` (on the next
/// thread's stack) lets other CPUs run it.
static PREV: arch::cpulocal::CpuArc<Thread> = arch::cpulocal::CpuArc::new();

/// Per-CPU switching state, one cache line each.
#[repr(align(64))]
struct CpuState {
    idle: Mutex<Option<Arc<Thread>>>,
    /// Sleeping threads of this CPU with their wake-up tick.
    sleepers: Mutex<Vec<(u64, Arc<Thread>)>>,
    /// TSC when the running thread was picked, to charge partial quanta on yield.
    picked_at: AtomicU64,
}

impl CpuState {
    const fn new() -> Self {
        Self {
            idle: Mutex::new(None),
            sleepers: Mutex::new(Vec::new()),
            picked_at: AtomicU64::new(0),
        }
    }
}

static CPUS: [CpuState; percpu::MAX_CPUS] = [const { CpuState::new() }; percpu::MAX_CPUS];

/// Why a thread could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    TooManyThreads,
    NoSuchCpu,
    QueueFull,
    /// No heap for the thread's stack.
    NoMemory,
}

/// Runs `f` with interrupts off on this CPU, restoring the previous state after.
fn irqs_off<R>(f: impl FnOnce() -> R) -> R {
    let were = cpu::interrupts_enabled();
    cpu::disable_interrupts();
    let r = f();
    if were {
        cpu::enable_interrupts();
    }
    r
}

pub fn this_cpu() -> usize {
    percpu::current().id()
}

fn lookup(id: u32) -> Option<Arc<Thread>> {
    THREADS.lock().get_by_index(id).map(|(_, t)| t.clone())
}

/// Makes the calling CPU's current context its idle thread. Each CPU calls this once
/// before it schedules anything (the boot CPU from `kmain`, the others in `ap_main`).
pub fn init_cpu() {
    let me = this_cpu();
    let idle = Arc::new(Thread {
        handle: Handle::from_raw(u64::MAX),
        name: "idle",
        saved_rsp: AtomicU64::new(0),
        on_cpu: AtomicBool::new(true),
        last_cpu: AtomicU32::new(me as u32),
        ticks_run: AtomicU64::new(0),
        inner: Mutex::new(Inner::new(None, false)),
        owner: None,
        kstack_top: 0,
        fpu: None,
        _stack: None,
    });
    irqs_off(|| {
        *CPUS[me].idle.lock() = Some(idle.clone());
        CURRENT.replace(Some(idle));
        OWNER.replace(None);
    });
    if me == 0 {
        READY.store(true, Ordering::Release);
    }
}

/// The thread running on this CPU. `#[inline]`: every system call asks, and the kernel
/// is built for size (opt-level "s"), which would otherwise keep the call.
#[inline]
pub fn current() -> Arc<Thread> {
    CURRENT
        .get()
        .expect("scheduler not initialised on this CPU")
}

/// What the running thread runs for (`None` for a kernel thread). `#[inline]` as
/// `current` is: both system-call entries ask (with two callers, opt-level "s" kept it
/// out of line, 16 more instructions a getpid).
#[inline]
pub fn current_owner() -> Option<Arc<dyn Owner>> {
    OWNER.get()
}

/// Asks `cpu` to reschedule soon (an IPI if it is another CPU).
fn kick(target: usize) {
    if target != this_cpu() {
        if let Some(c) = percpu::cpu(target) {
            apic::send_fixed(c.apic_id(), arch::interrupts::RESCHED_VECTOR);
        }
    }
}

/// First code of every new thread, entered from `zen_thread_start`.
extern "C" fn thread_entry(_: u64) -> ! {
    finish_switch();
    cpu::enable_interrupts();
    // No reference to ourselves may stay on this frame: a user thread's entry never
    // returns (it leaves through `exit` from a system call or a fault).
    let f = {
        let me = current();
        let f = irqs_off(|| me.inner.lock().entry.take());
        f
    };
    let code = match f {
        Some(Entry::Kernel(f)) => f(),
        Some(Entry::User { rip, rsp, arg }) => crate::arch::syscall::enter_user(rip, rsp, arg),
        None => 0,
    };
    exit(code)
}

/// How long `schedule` waits for a thread another CPU is still leaving (a few
/// hundred instructions there, normally) before it runs its idle thread instead.
const ON_CPU_SPINS: u32 = 1 << 14;

/// Test mode: spins at the start of every `schedule`, to widen its races.
#[cfg(feature = "ktest")]
pub static SCHEDULE_DELAY: AtomicU32 = AtomicU32::new(0);

/// Picks the next thread for this CPU and switches to it. Interrupts must be off.
fn schedule() {
    test_delay();
    schedule_with(SCHED.pick_next(this_cpu()));
}

/// Test mode: the spin of `SCHEDULE_DELAY` before a pick.
fn test_delay() {
    #[cfg(feature = "ktest")]
    for _ in 0..SCHEDULE_DELAY.load(Ordering::Relaxed) {
        core::hint::spin_loop();
    }
}

/// `schedule` once the scheduler has picked `picked` (its `pick_next`, or a yield's
/// `yield_next`).
fn schedule_with(picked: Option<zen_sched::TaskId>) {
    let cpu = this_cpu();
    let mut next = match picked.and_then(lookup) {
        Some(t) => t,
        None => CPUS[cpu].idle.lock().clone().expect("no idle thread"),
    };
    let cur = CURRENT.get().expect("no current thread");
    if Arc::ptr_eq(&cur, &next) {
        CPUS[cpu].picked_at.store(cpu::rdtsc(), Ordering::Relaxed);
        return;
    }
    // Wait for the CPU that last ran `next` to finish saving it, but not for ever: we
    // hold `cur.on_cpu` meanwhile, and that CPU may be waiting for `cur` in turn (each
    // picked a thread the other is still leaving: threads re-pinning themselves to
    // each other's CPUs, or parked threads woken by a third CPU and stolen). Then run
    // the idle thread instead, which no other CPU ever runs, to let go of `cur`;
    // `next` stays our queue's current, so the `pick_next` of the resched IPI we send
    // ourselves re-queues it.
    let mut spins = 0u32;
    while next.on_cpu.load(Ordering::Acquire) {
        spins += 1;
        if spins == ON_CPU_SPINS {
            apic::send_fixed(
                percpu::current().apic_id(),
                arch::interrupts::RESCHED_VECTOR,
            );
            next = CPUS[cpu].idle.lock().clone().expect("no idle thread");
            if Arc::ptr_eq(&cur, &next) {
                return;
            }
            break;
        }
        core::hint::spin_loop();
    }
    run_next(cpu, cur, next);
}

/// Switches this CPU from `cur` to `next`, which the scheduler has just made its
/// current task and whose registers are saved (`on_cpu` clear). Interrupts off.
fn run_next(cpu: usize, cur: Arc<Thread>, next: Arc<Thread>) {
    next.on_cpu.store(true, Ordering::Relaxed);
    next.last_cpu.store(cpu as u32, Ordering::Relaxed);
    let next_rsp = next.saved_rsp.load(Ordering::Relaxed);
    // User threads run on their process's tables, kernel threads on the kernel's (so
    // no CPU keeps a dead process's tables loaded). Entries from user mode land on the
    // thread's own kernel stack.
    let root = next
        .owner
        .as_ref()
        .map_or_else(arch::paging::kernel_root, |p| p.root());
    arch::user::activate_root(root);
    if next.kstack_top != 0 {
        percpu::set_kernel_stack(next.kstack_top);
    }
    arch::fpu::switch(cur.fpu.as_deref(), next.fpu.as_deref());
    // The old values stay referenced (by `cur`), so nothing is freed here.
    OWNER.replace(next.owner.clone());
    CURRENT.replace(Some(next));
    CPUS[cpu].picked_at.store(cpu::rdtsc(), Ordering::Relaxed);
    crate::prof::mark(crate::prof::Step::Swap);
    // `cur` moves into the CPU's `prev` slot: nothing of it stays on this stack, so an
    // exiting thread, which never comes back here, is freed by the next one.
    switch::switch_away(&PREV, cur, |t| &t.saved_rsp, next_rsp);
    // Resumed, perhaps on another CPU.
    finish_switch();
}

/// Completes the switch that brought us here: the previous thread's registers are
/// saved now, so other CPUs may run it.
fn finish_switch() {
    let prev = PREV.replace(None);
    if let Some(p) = prev {
        p.on_cpu.store(false, Ordering::Release);
    }
}

/// Gives up the CPU to the next runnable thread (or keeps it if there is none).
pub fn yield_now() {
    irqs_off(|| {
        let cpu = this_cpu();
        let ran = cpu::rdtsc().saturating_sub(CPUS[cpu].picked_at.load(Ordering::Relaxed));
        let per_tick = (apic::tsc_hz() / crate::TIMER_HZ as u64).max(1);
        let units = ((ran * zen_sched::QUANTUM as u64) / per_tick)
            .clamp(1, zen_sched::QUANTUM as u64) as u32;
        test_delay();
        schedule_with(SCHED.yield_next(cpu, units));
    })
}

/// Blocks until [`unpark`] (returns at once if an unpark came first). May return
/// spuriously: callers re-check their condition in a loop.
pub fn park() {
    irqs_off(park_now)
}

/// `park`, interrupts already off.
fn park_now() {
    let me = current();
    let cpu = this_cpu();
    {
        let mut inner = me.inner.lock();
        if inner.wake_pending {
            inner.wake_pending = false;
            return;
        }
        inner.state = State::Blocked;
        inner.desc = SCHED.block_current(cpu);
    }
    drop(me);
    schedule();
}

/// Wakes `t` if it is parked, else makes its next `park` return at once.
pub fn unpark(t: &Arc<Thread>) {
    irqs_off(|| {
        let mut inner = t.inner.lock();
        inner.wake_pending = true;
        if inner.state != State::Blocked {
            return;
        }
        inner.wake_pending = false;
        let Some(desc) = inner.desc.take() else {
            return;
        };
        inner.state = State::Runnable;
        enqueue_locked(t, inner, desc);
    })
}

/// Queues `t` (made runnable, its `inner` locked) where it last ran and kicks that
/// CPU; a full queue leaves it blocked, with its descriptor, and a record.
fn enqueue_locked(t: &Arc<Thread>, mut inner: spin::MutexGuard<'_, Inner>, desc: TaskDesc) {
    match SCHED.enqueue(t.last_cpu.load(Ordering::Relaxed) as usize, desc) {
        Ok(placed) => {
            drop(inner);
            kick(placed.cpu);
        }
        Err(_) => {
            crate::edge::report(zen_edge::EdgeKind::RunQueueFull, t.handle.index());
            inner.desc = Some(desc);
            inner.state = State::Blocked;
        }
    }
}

/// Moves the calling thread to `cpu` and pins it there.
pub fn pin_current(target: usize) -> Result<(), SpawnError> {
    if percpu::cpu(target).is_none_or(|c| !c.is_online()) {
        return Err(SpawnError::NoSuchCpu);
    }
    irqs_off(|| {
        let cpu = this_cpu();
        let Some(desc) = SCHED.block_current(cpu) else {
            return Err(SpawnError::QueueFull);
        };
        SCHED
            .enqueue(target, desc.pinned(target as u8))
            .map_err(|_| SpawnError::QueueFull)?;
        schedule();
        Ok(())
    })?;
    kick(target);
    Ok(())
}

/// Ends the calling thread with `code`.
pub fn exit(code: u64) -> ! {
    cpu::disable_interrupts();
    let me = current();
    let joiner = {
        let mut inner = me.inner.lock();
        inner.state = State::Exited;
        inner.exit_code = Some(code);
        let _ = SCHED.block_current(this_cpu());
        if inner.detached {
            // This CPU's `current` and the switch below keep the thread (and its stack)
            // alive until the next thread has left it: `finish_switch` drops it.
            THREADS.lock().free(me.handle);
        }
        inner.joiner.take()
    };
    if let Some(j) = joiner {
        unpark(&j);
    }
    drop(me);
    schedule();
    unreachable!("an exited thread was scheduled again");
}

/// Waits for the thread to exit and returns its exit code; frees its slot.
pub fn join(h: JoinHandle) -> u64 {
    let t = h.0;
    loop {
        let done = irqs_off(|| {
            let mut inner = t.inner.lock();
            if inner.state == State::Exited {
                inner.exit_code
            } else {
                inner.joiner = Some(current());
                None
            }
        });
        if let Some(code) = done {
            // Its CPU may still be switching away from its stack.
            while t.on_cpu.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
            irqs_off(|| THREADS.lock().free(t.handle));
            return code;
        }
        park();
    }
}

/// Called from the timer interrupt: wakes due sleepers, and preempts when the
/// running thread's quantum is over.
pub fn on_tick() {
    if !READY.load(Ordering::Acquire) {
        return;
    }
    let cpu = this_cpu();
    match CURRENT.get() {
        Some(t) => t.ticks_run.fetch_add(1, Ordering::Relaxed),
        None => return,
    };
    sleep::wake_due(cpu);
    if SCHED.tick(cpu) {
        schedule();
    }
}

/// Time the whole machine spent idle: the TSC when the current stretch of every
/// online CPU halted began (0: some CPU is working), the cycles of all such stretches
/// since boot, how many CPUs are halted now, and whether each is. Under QEMU's
/// `-icount sleep=off` a machine with nothing to run jumps its clock to the next
/// timer event, so the bench takes these cycles off the total to count only the
/// instructions work took (`MemInfo::idle_tsc`). (A CPU halted while another works
/// costs nothing there: the clock counts the instructions of the working one.)
static ALL_IDLE_SINCE: AtomicU64 = AtomicU64::new(0);
static ALL_IDLE: AtomicU64 = AtomicU64::new(0);
static HALTED: AtomicU32 = AtomicU32::new(0);
static IS_HALTED: [AtomicBool; percpu::MAX_CPUS] =
    [const { AtomicBool::new(false) }; percpu::MAX_CPUS];

/// What a CPU does when it has nothing to run: halt until an interrupt, then look for
/// work (its own queue, or stolen from the busiest other queue).
pub fn idle_loop() -> ! {
    loop {
        cpu::disable_interrupts();
        IS_HALTED[this_cpu()].store(true, Ordering::Relaxed);
        let n = HALTED.fetch_add(1, Ordering::AcqRel) + 1;
        if n as usize >= percpu::online_count() {
            ALL_IDLE_SINCE.store(cpu::rdtsc(), Ordering::Release);
        }
        cpu::enable_interrupts_and_halt();
        // The interrupt that woke us ended the halt (`idle_ends`) before it ran.
        irqs_off(schedule);
    }
}

/// From every interrupt's entry: if this CPU was halted in the idle loop, the halt
/// ends now (the handler's work is not idle time), and with it the machine's.
#[inline]
pub fn idle_ends() {
    if !IS_HALTED[this_cpu()].swap(false, Ordering::Relaxed) {
        return;
    }
    HALTED.fetch_sub(1, Ordering::AcqRel);
    let t = ALL_IDLE_SINCE.swap(0, Ordering::AcqRel);
    if t != 0 {
        ALL_IDLE.fetch_add(cpu::rdtsc().saturating_sub(t), Ordering::Relaxed);
    }
}

/// TSC cycles the whole machine has spent idle since boot.
pub fn idle_tsc() -> u64 {
    ALL_IDLE.load(Ordering::Relaxed)
}

/// Called from the reschedule IPI.
pub fn on_resched() {
    if READY.load(Ordering::Acquire) && CURRENT.is_some() {
        schedule();
    }
}

/// Threads alive (not yet joined).
pub fn thread_count() -> usize {
    irqs_off(|| THREADS.lock().len())
}

/// Removes a waiting thread from its queue (test support for `Removal`).
#[allow(dead_code)]
fn take_from_queue(t: &Thread) -> Removal {
    SCHED.remove(t.handle.index())
}
