//! The per-step profile of the IPC path (issue 12): where a round trip's instructions
//! go, measured, not guessed.
//!
//! Built only with the `profile` feature (`cargo xtask bench --only ipc-profile`
//! builds that kernel beside the others); without it every `mark` is an empty inline
//! function and costs nothing. Under `-icount shift=0` the TSC advances once per guest
//! instruction, so the difference between two marks is the instructions between them.
//! Each mark charges the instructions since the previous mark on its CPU to the step
//! it closes, whichever thread made the previous one: a direct switch is the step from
//! the last mark of the thread that parks to the first of the thread that resumes, and
//! the user-mode part of a round trip (the program, zen-std and the entry and exit
//! stubs) is the step from a system call's last mark to the next one's first.
//! [`report`] prints the totals at shutdown.

/// The steps, in the order a `msg_call` passes them.
#[derive(Clone, Copy)]
#[repr(usize)]
pub enum Step {
    /// User mode, with the entry and exit stubs: closed at the start of `dispatch`.
    User,
    /// `dispatch` up to the call's own code: finding the caller, decoding the number.
    Dispatch,
    /// Reading the token named by its slot (the kernel's own copy).
    Token,
    /// Finding the channel and checking the token against it.
    Check,
    /// Waking the peer (finding it on the wait queue, taking it off).
    Wake,
    /// Getting ready to sleep: the quota charge, registering on the wait queue,
    /// rechecking the ring.
    Prepare,
    /// The direct switch's first part: both threads' states under their locks and the
    /// scheduler's hand-off (task::park_handing_off up to `run_next`).
    Park,
    /// `run_next` up to the stack switch: address space, kernel stack, FPU registers,
    /// the CPU's current thread and owner.
    Swap,
    /// The rest of the switch to the other thread (the stack switch, the previous
    /// thread released, the way out of its park), up to its first mark.
    Switch,
    /// After waking: the wait entry gone, the ring and the generation checked again.
    Resume,
    /// `dispatch` after the call: dropping what it held, the audit and kill checks.
    Tail,
    /// A grant_create call up to its policy question: dispatch, the token, the channel
    /// (no marks of their own on this call).
    Grant,
    /// The policy's answer to a grant.
    Policy,
    /// The rest of grant_create: the pages shared, the grant listed.
    Share,
    /// Recording the grant in the audit log.
    Audit,
    /// Whatever ran before an audit checkpoint's signature (closed just before it).
    BeforeSign,
    /// An audit checkpoint's ed25519 signature.
    Sign,
}

/// Number of steps.
pub const STEPS: usize = 17;
const NAMES: [&str; STEPS] = [
    "user", "dispatch", "token", "check", "wake", "prepare", "park", "swap", "switch", "resume",
    "tail", "grant", "policy", "share", "audit", "presign", "sign",
];

#[cfg(feature = "profile")]
mod imp {
    use super::STEPS;
    use core::sync::atomic::{AtomicU64, Ordering};

    const CPUS: usize = 8;
    pub static LAST: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
    pub static TOTAL: [[AtomicU64; STEPS]; CPUS] =
        [const { [const { AtomicU64::new(0) }; STEPS] }; CPUS];
    pub static COUNT: [[AtomicU64; STEPS]; CPUS] =
        [const { [const { AtomicU64::new(0) }; STEPS] }; CPUS];

    #[inline]
    pub fn mark(step: usize) {
        let cpu = crate::task::this_cpu().min(CPUS - 1);
        let now = crate::arch::cpu::rdtsc();
        let last = LAST[cpu].swap(now, Ordering::Relaxed);
        if last != 0 {
            TOTAL[cpu][step].fetch_add(now - last, Ordering::Relaxed);
            COUNT[cpu][step].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Closes `step` on this CPU (nothing without the `profile` feature).
#[inline(always)]
pub fn mark(step: Step) {
    #[cfg(feature = "profile")]
    imp::mark(step as usize);
    #[cfg(not(feature = "profile"))]
    let _ = step;
}

/// Prints the totals of CPU 0 (`zen: bench prof_STEP=instructions
/// prof_STEP_marks=N ...`, then `zen: bench profile done`), if the kernel was built
/// to keep them.
pub fn report() {
    #[cfg(feature = "profile")]
    {
        use core::sync::atomic::Ordering;
        // A few steps a line: a console line holds 512 bytes.
        for (chunk, names) in NAMES.chunks(4).enumerate() {
            let mut line = alloc::string::String::from("zen: bench");
            for (j, name) in names.iter().enumerate() {
                let i = chunk * 4 + j;
                let t = imp::TOTAL[0][i].load(Ordering::Relaxed);
                let n = imp::COUNT[0][i].load(Ordering::Relaxed);
                line.push_str(&alloc::format!(" prof_{name}={t} prof_{name}_marks={n}"));
            }
            crate::kprintln!("{}", line);
        }
        crate::kprintln!("zen: bench profile done");
    }
    #[cfg(not(feature = "profile"))]
    let _ = NAMES;
}
