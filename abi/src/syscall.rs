//! System call numbers, error codes and the calling convention.
//!
//! Convention (x86_64): `syscall` with the number in `rax` and up to six arguments in
//! `rdi, rsi, rdx, r10, r8, r9`; the result comes back in `rax`: a value `>= 0` is
//! success, a value in `-4095..=-1` is a negated [`Error`]. `rcx` and `r11` are
//! clobbered (the CPU uses them for the return address and flags); every other
//! register is preserved. docs/abi.md gives each call's arguments, returns and errors.

/// System call numbers. Checked with `TryFrom<u64>`: an unknown number is
/// [`Error::NoSuchCall`], never a crash.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// exit(code) -> never returns.
    Exit = 0,
    /// write(fd, ptr, len) -> bytes written. fd 1 and 2: the console.
    Write = 1,
    /// read(fd, ptr, len) -> bytes read (blocks for at least one). fd 0: the console.
    Read = 2,
    /// yield() -> 0.
    Yield = 3,
    /// sleep(milliseconds) -> 0.
    Sleep = 4,
    /// uptime() -> milliseconds since boot.
    Uptime = 5,
    /// spawn(name_ptr, name_len, arg_ptr, arg_len, token_ptr, rights) -> pid. Starts a
    /// program of the boot archive with one argument string; if `token_ptr` is not 0,
    /// the child gets a copy of that token with `rights` in slot 0 of its token page
    /// (needs GRANT, as cap_send).
    Spawn = 6,
    /// wait(pid) -> exit code (of a child). Faulted children return FAULT_EXIT_CODE.
    Wait = 7,
    /// kill(pid) -> 0.
    Kill = 8,
    /// map(len) -> address of `len` bytes (rounded up to pages) of zeroed memory.
    Map = 9,
    /// unmap(addr, len) -> 0.
    Unmap = 10,
    /// getpid() -> pid.
    GetPid = 11,
    /// ps(buf_ptr, buf_len) -> bytes written: one [`ProcInfo`] per process.
    Ps = 12,
    /// meminfo(buf_ptr) -> 0: fills a [`MemInfo`].
    MemInfo = 13,
    /// edges(buf_ptr, buf_len) -> records written (12 bytes each).
    Edges = 14,
    /// programs(buf_ptr, buf_len) -> bytes written: NUL-separated names of the boot
    /// archive's programs.
    Programs = 15,
    /// shutdown() -> never returns (powers off; under QEMU exits it).
    Shutdown = 16,
    /// getarg(buf_ptr, buf_len) -> bytes of this process's argument string.
    GetArg = 17,
    /// chan_create() -> `a | b << 16`: token-page slots of the two ends' tokens (all
    /// rights), end A and end B of a new channel owned by the caller.
    ChanCreate = 18,
    /// chan_attach(token_ptr) -> address of the channel's `CHANNEL_PAGES` shared pages,
    /// mapped read-write. Needs SEND or RECV.
    ChanAttach = 19,
    /// msg_send(token_ptr) -> 0: the caller published on its ring; wakes the peer if it
    /// sleeps in msg_recv/msg_poll. Needs SEND.
    MsgSend = 20,
    /// msg_recv(token_ptr, head) -> 0: sleeps while the ring the caller consumes still
    /// has `head` (returns at once if it moved). Needs RECV.
    MsgRecv = 21,
    /// msg_poll(tokens_ptr, count, timeout_ms) -> index of a channel with a message.
    /// `tokens_ptr`: `count` (1..=16) token slots of 64 bytes. Needs RECV on each.
    MsgPoll = 22,
    /// msg_release(token_ptr) -> 0: the caller freed slots of the ring it consumes;
    /// wakes the peer if it waits for room. Needs RECV.
    MsgRelease = 23,
    /// msg_wait_room(token_ptr, tail) -> 0: sleeps while the ring the caller produces
    /// still has `tail`. Needs SEND.
    MsgWaitRoom = 24,
    /// cap_send(chan_token_ptr, token_ptr, rights) -> slot in the peer's token page: a
    /// copy of the token with `rights` (a subset of its rights; needs GRANT on it) for the
    /// process attached to the channel's other end. Needs SEND on the channel.
    CapSend = 25,
    /// cap_revoke(token_ptr) -> 0: every token of the object minted so far becomes
    /// stale; the caller gets a fresh one in the same slot. Needs REVOKE.
    CapRevoke = 26,
    /// cap_drop(slot) -> 0: removes a token from the caller's token page.
    CapDrop = 27,
    /// grant_create(addr, len, rights, chan_token_ptr) -> grant id (non-zero). Shares
    /// the caller's pages `addr .. addr + len` (page-aligned start, memory from `map`)
    /// with the process attached at the channel's other end, which maps them once with
    /// grant_map; the caller keeps its own mapping. `rights`: READ, or READ | WRITE
    /// (needs the pages writable). Needs SEND on the channel. Put the id, `len` and
    /// `rights` in a message as an `ipc::PageGrant`.
    GrantCreate = 28,
    /// grant_map(id, len, rights, chan_token_ptr) -> address: maps a grant made for the
    /// caller and sent on that channel end (needs RECV; another channel's grant is
    /// `Denied`) (its `len` and `rights` must be the grant's, so a message cannot lie
    /// about them),
    /// read-only unless it carries WRITE. A grant maps once; `unmap` removes it. The
    /// pages live until every process that maps them has unmapped them or exited.
    GrantMap = 29,
    /// thread_create(rip, rsp, arg) -> thread id: a new thread of the caller's process
    /// starts in user mode at `rip` with stack pointer `rsp` and `rdi = arg`. All
    /// threads of a process run on one CPU (see docs/abi.md). At most 16 threads.
    ThreadCreate = 30,
    /// thread_exit(code) -> never returns: ends the calling thread; the last thread to
    /// end ends the process with its code. (`exit` ends the whole process.)
    ThreadExit = 31,
    /// thread_join(tid) -> the exit code of thread `tid` of the caller's process, once
    /// it has ended (each exit is reported once).
    ThreadJoin = 32,
    /// set_cpu(cpu) -> 0: the calling process runs on CPU `cpu` (0-based, as the
    /// kernel numbers them at boot) from now on, and so will its future threads. Only
    /// while it has one thread.
    SetCpu = 33,
    /// msg_call(token_ptr, head_seen) -> 0: msg_send and then msg_recv in one trap
    /// (a request and the wait for its answer; a server's reply and the wait for the
    /// next request). Needs SEND and RECV.
    MsgCall = 34,
    /// dev_list(buf_ptr, buf_len) -> bytes written: one [`DeviceInfo`] per PCI function
    /// the kernel found, in address order. Public, as `ps` is.
    DevList = 35,
    /// dev_open(system_token_ptr, address) -> slot of a new device token (READ, WRITE,
    /// MAP, RECV, GRANT) for the PCI function at `address` (`DeviceInfo::address`).
    /// Needs DEVICE on the system token.
    DevOpen = 36,
    /// dev_map(device_token_ptr, bar) -> address: the memory BAR mapped into the caller,
    /// uncached, never executable; pages holding the MSI-X table or pending bits are
    /// left unmapped (the kernel programs those). Needs MAP. The first process to use
    /// a device's token this way (or with dma_alloc, irq_bind) holds the device until
    /// it exits; any other gets `Busy`.
    DevMap = 37,
    /// dma_alloc(device_token_ptr, len) -> address of `len` bytes (rounded up to pages)
    /// of zeroed memory the device may read and write. Needs WRITE.
    DmaAlloc = 38,
    /// dma_addr(device_token_ptr, addr) -> the address the device uses for user
    /// address `addr`, which must lie in memory from dma_alloc for this device.
    /// Needs WRITE.
    DmaAddr = 39,
    /// irq_bind(device_token_ptr, vector, cpu) -> slot of an interrupt token (RECV,
    /// GRANT): MSI-X vector `vector` of the device is delivered to CPU `cpu` and
    /// counted. Needs RECV.
    IrqBind = 40,
    /// irq_wait(interrupt_token_ptr, timeout_ms) -> interrupts counted since the last
    /// irq_wait (at least 1; sleeps until then, `TimedOut` after `timeout_ms`,
    /// `u64::MAX` for never). msg_poll takes interrupt tokens beside channel tokens.
    /// Needs RECV.
    IrqWait = 41,
    /// chan_peer(token_ptr) -> pid of the process attached to receive at the other
    /// end of this channel end, 0 if none (it exited, or never attached). Needs a
    /// token of the channel (any rights).
    ChanPeer = 42,
    /// spawn_image(desc_ptr, token_ptr, rights) -> pid: as spawn, but the program is
    /// the ELF image the [`SpawnImage`] at `desc_ptr` points to in the caller's
    /// memory (at most [`SPAWN_IMAGE_MAX`] bytes, checked like any program; copied
    /// first, its copy charged to the caller while it loads), run under `name`.
    SpawnImage = 43,
    /// chan_destroy(token_ptr) -> 0: the channel the caller created ends: every
    /// token of it goes stale, it leaves the table, every process attached to it
    /// (the caller too) loses its pages, and its sleepers wake to `Denied`. Needs
    /// DESTROY and to be its creator (`Denied` otherwise).
    ChanDestroy = 44,
    /// audit_read(buf_ptr, buf_len, system_token_ptr, nonce_ptr) -> bytes written: the
    /// kernel's audit log, exported (zen-audit's format: genesis with the boot's public
    /// key, a marker for entries lost to the ring, the entries kept, the head signed
    /// with the reader's 16-byte nonce; `nonce_ptr` 0: a zero nonce). Needs AUDIT on
    /// the system token; `BufferTooSmall` below [`AUDIT_EXPORT_MAX`] bytes.
    AuditRead = 45,
    /// call(token_ptr; words in rsi, rdx, r10, r8, r9, r12, r13, r14) -> 0, the reply's
    /// words in the same registers: a 64-byte request in registers to a server thread
    /// waiting in reply_recv at the channel's other end (queued until one does), and
    /// the wait for its reply, in one trap. No pages: the channel need not be attached.
    /// Needs SEND. `Busy`: [`CALLS_IN_FLIGHT`] calls are already in flight to that
    /// end; `NoPeer`: the process that took the call ended without replying;
    /// `Denied`: the channel was revoked or destroyed meanwhile. See [`CALL_REGS`].
    Call = 46,
    /// reply_recv(token_ptr; handle in r15; words in rsi .. r14) -> 0, with the caller's
    /// pid in rdi, the request's reply handle in r15 and its words in rsi .. r14:
    /// replies to the call `handle` names (0: none; taken by this process at this
    /// end, else `InvalidArgument` and nothing else is done), then waits for the next
    /// call to the end, in one trap. Needs RECV. `Busy`: [`SERVERS_WAITING`] threads
    /// already wait at the end (the reply was made); `Denied`: revoked or destroyed
    /// while it waited. With [`REPLY_ONLY`] set in the handle it only replies, and
    /// returns 0 with zeros at once.
    ReplyRecv = 47,
}

/// Highest call number + 1.
pub const SYSCALL_COUNT: u64 = 48;

/// The registers of call and reply_recv's message, in word order (8 words, 64 bytes).
pub const CALL_REGS: [&str; 8] = ["rsi", "rdx", "r10", "r8", "r9", "r12", "r13", "r14"];
/// reply_recv's handle with this bit: reply, do not wait for the next call.
pub const REPLY_ONLY: u64 = 1 << 63;
/// Calls in flight to one channel end at once (queued or being answered).
pub const CALLS_IN_FLIGHT: usize = 8;
/// Server threads waiting in reply_recv at one channel end at once.
pub const SERVERS_WAITING: usize = 4;

/// Entries the kernel's audit log keeps (older ones are overwritten, and counted).
pub const AUDIT_ENTRIES: usize = 1024;
/// The largest export of the audit log: genesis, marker, the entries, the head.
pub const AUDIT_EXPORT_MAX: usize = (AUDIT_ENTRIES + 2) * 96 + 128;

/// Largest image spawn_image takes (2 MiB: its copy is charged to the caller's 4 MiB
/// kernel-memory quota while it loads).
pub const SPAWN_IMAGE_MAX: u64 = 2 << 20;

/// What spawn_image starts: where the image, the name and the argument are.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpawnImage {
    pub image: u64,
    pub image_len: u64,
    pub name: u64,
    pub name_len: u64,
    pub arg: u64,
    pub arg_len: u64,
}

impl SpawnImage {
    pub const SIZE: usize = 48;
    pub fn to_bytes(&self) -> [u8; 48] {
        let mut b = [0u8; 48];
        for (i, v) in [
            self.image,
            self.image_len,
            self.name,
            self.name_len,
            self.arg,
            self.arg_len,
        ]
        .into_iter()
        .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::SIZE {
            return None;
        }
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        Some(SpawnImage {
            image: w(0),
            image_len: w(1),
            name: w(2),
            name_len: w(3),
            arg: w(4),
            arg_len: w(5),
        })
    }
}

impl TryFrom<u64> for Syscall {
    type Error = Error;
    fn try_from(n: u64) -> Result<Self, Error> {
        use Syscall::*;
        const ALL: [Syscall; SYSCALL_COUNT as usize] = [
            Exit,
            Write,
            Read,
            Yield,
            Sleep,
            Uptime,
            Spawn,
            Wait,
            Kill,
            Map,
            Unmap,
            GetPid,
            Ps,
            MemInfo,
            Edges,
            Programs,
            Shutdown,
            GetArg,
            ChanCreate,
            ChanAttach,
            MsgSend,
            MsgRecv,
            MsgPoll,
            MsgRelease,
            MsgWaitRoom,
            CapSend,
            CapRevoke,
            CapDrop,
            GrantCreate,
            GrantMap,
            ThreadCreate,
            ThreadExit,
            ThreadJoin,
            SetCpu,
            MsgCall,
            DevList,
            DevOpen,
            DevMap,
            DmaAlloc,
            DmaAddr,
            IrqBind,
            IrqWait,
            ChanPeer,
            SpawnImage,
            ChanDestroy,
            AuditRead,
            Call,
            ReplyRecv,
        ];
        ALL.get(n as usize).copied().ok_or(Error::NoSuchCall)
    }
}

/// Error codes, returned negated in `rax`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Unknown system call number.
    NoSuchCall = 1,
    /// A pointer argument is null, unmapped, not user memory, or not writable where
    /// the call writes.
    BadAddress = 2,
    /// An argument is out of range (a length too large, an unknown fd, bad UTF-8).
    InvalidArgument = 3,
    /// No such process, or not a child of the caller (or no such thread).
    NoSuchProcess = 4,
    /// No such program in the boot archive.
    NoSuchProgram = 5,
    /// Out of memory or out of process/thread slots.
    NoMemory = 6,
    /// The caller lacks the right to do this.
    Denied = 7,
    /// The buffer is too small for the result.
    BufferTooSmall = 8,
    /// The program is not a valid static-PIE executable.
    BadExecutable = 9,
    /// Every process slot is taken.
    TooManyProcesses = 10,
    /// msg_poll's timeout passed.
    TimedOut = 11,
    /// The channel's other end is not attached (nobody to pass a token to).
    NoPeer = 12,
    /// The device is held by another process (its driver).
    Busy = 13,
}

/// Every error, in number order.
pub const ERRORS: [Error; 13] = [
    Error::NoSuchCall,
    Error::BadAddress,
    Error::InvalidArgument,
    Error::NoSuchProcess,
    Error::NoSuchProgram,
    Error::NoMemory,
    Error::Denied,
    Error::BufferTooSmall,
    Error::BadExecutable,
    Error::TooManyProcesses,
    Error::TimedOut,
    Error::NoPeer,
    Error::Busy,
];

impl Error {
    /// The value a system call returns for this error.
    pub const fn to_ret(self) -> u64 {
        (-(self as i64)) as u64
    }

    /// Decodes a return value: `Ok(value)` or the error.
    pub fn from_ret(ret: u64) -> Result<u64, Error> {
        let signed = ret as i64;
        if !(-4095..0).contains(&signed) {
            return Ok(ret);
        }
        // Codes this ABI version does not know still come back as errors.
        Err(ERRORS
            .get((-signed - 1) as usize)
            .copied()
            .unwrap_or(Error::InvalidArgument))
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Error::NoSuchCall => "no such system call",
            Error::BadAddress => "bad address",
            Error::InvalidArgument => "invalid argument",
            Error::NoSuchProcess => "no such process",
            Error::NoSuchProgram => "no such program",
            Error::NoMemory => "out of memory",
            Error::Denied => "permission denied",
            Error::BufferTooSmall => "buffer too small",
            Error::BadExecutable => "not a valid executable",
            Error::TooManyProcesses => "too many processes",
            Error::TimedOut => "timed out",
            Error::NoPeer => "no process at the channel's other end",
            Error::Busy => "the device is held by another process",
        }
    }
}

/// Exit code reported by `wait` for a process killed by a fault.
pub const FAULT_EXIT_CODE: u64 = 0xdead_0000;
/// Exit code reported by `wait` for a process killed with `kill`.
pub const KILLED_EXIT_CODE: u64 = 0xdead_0001;

/// Longest single read/write/argument the kernel copies at once.
pub const MAX_IO: u64 = 1 << 20;
/// Most pages one process may have mapped by `map`, grants and channels (64 MiB):
/// one process cannot take all memory. Also the largest page grant.
pub const MAP_LIMIT_PAGES: u64 = 16384;

/// One entry of `ps`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcInfo {
    pub pid: u32,
    pub parent: u32,
    /// 0 running, 1 exited (zombie).
    pub state: u32,
    pub threads: u32,
    pub pages: u64,
    pub name: [u8; 16],
    /// Kernel memory charged to the process now (page tables, thread stacks, grants,
    /// channel holdings, wait entries), in bytes.
    pub kmem: u64,
    /// Its kernel-memory quota, in bytes.
    pub kmem_limit: u64,
}
const _: () = assert!(core::mem::size_of::<ProcInfo>() == 56);

impl ProcInfo {
    pub const SIZE: usize = 56;
    /// Little-endian bytes, in field order (what `ps` writes).
    pub fn to_bytes(&self) -> [u8; 56] {
        let mut b = [0u8; 56];
        b[0..4].copy_from_slice(&self.pid.to_le_bytes());
        b[4..8].copy_from_slice(&self.parent.to_le_bytes());
        b[8..12].copy_from_slice(&self.state.to_le_bytes());
        b[12..16].copy_from_slice(&self.threads.to_le_bytes());
        b[16..24].copy_from_slice(&self.pages.to_le_bytes());
        b[24..40].copy_from_slice(&self.name);
        b[40..48].copy_from_slice(&self.kmem.to_le_bytes());
        b[48..56].copy_from_slice(&self.kmem_limit.to_le_bytes());
        b
    }
    pub fn from_bytes(b: &[u8; 56]) -> Self {
        let u64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(x)
        };
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut name = [0u8; 16];
        name.copy_from_slice(&b[24..40]);
        ProcInfo {
            pid: u32_at(0),
            parent: u32_at(4),
            state: u32_at(8),
            threads: u32_at(12),
            pages: u64_at(16),
            name,
            kmem: u64_at(40),
            kmem_limit: u64_at(48),
        }
    }
    /// The name up to its first NUL.
    pub fn name(&self) -> &str {
        let n = self.name.iter().position(|&c| c == 0).unwrap_or(16);
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }
}

/// Result of `meminfo`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MemInfo {
    pub total_frames: u64,
    pub free_frames: u64,
    pub heap_bytes_used: u64,
    pub heap_allocations: u64,
    /// TSC cycles since boot during which every CPU was halted with nothing to run
    /// (the bench subtracts them: under `-icount sleep=off` such time is a clock
    /// jump to the next timer event, not instructions).
    pub idle_tsc: u64,
}
const _: () = assert!(core::mem::size_of::<MemInfo>() == 40);

impl MemInfo {
    pub const SIZE: usize = 40;
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        for (i, v) in [
            self.total_frames,
            self.free_frames,
            self.heap_bytes_used,
            self.heap_allocations,
            self.idle_tsc,
        ]
        .iter()
        .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
    pub fn from_bytes(b: &[u8; 40]) -> Self {
        let w = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(x)
        };
        MemInfo {
            total_frames: w(0),
            free_frames: w(1),
            heap_bytes_used: w(2),
            heap_allocations: w(3),
            idle_tsc: w(4),
        }
    }
}

/// Where each process's token page (`cap::TokenPage`) is mapped, read-only.
pub const TOKEN_PAGE: u64 = 0x20_0000;

/// The user address space: programs are loaded at `USER_BASE`, mappings from `map`
/// come from `USER_MAP_BASE` up, the stack ends at `USER_STACK_TOP`.
pub const USER_BASE: u64 = 0x40_0000;
pub const USER_MAP_BASE: u64 = 0x10_0000_0000;
pub const USER_STACK_TOP: u64 = 0x7fff_ffff_0000;
pub const USER_STACK_SIZE: u64 = 64 * 1024;
/// Everything below this is user space (the lower canonical half).
pub const USER_END: u64 = 0x0000_8000_0000_0000;

/// The end of the user range `va .. va + len`, if all of it is user space (no wrap,
/// nothing at or above `USER_END`): the kernel's check before it copies from or to a
/// process. Proved for every `va` and `len` (tools/prove, `user_copy`).
pub const fn user_range_end(va: u64, len: u64) -> Option<u64> {
    match va.checked_add(len) {
        Some(end) if end <= USER_END => Some(end),
        _ => None,
    }
}

/// How many bytes from `at` (below `end`) lie in `at`'s page: the piece of a user copy
/// the kernel moves through one frame. Proved for every `at < end`: at least one byte,
/// within the page and within the range (tools/prove, `user_copy`).
pub const fn page_piece(at: u64, end: u64) -> u64 {
    let room = 4096 - at % 4096;
    let left = end - at;
    if room < left {
        room
    } else {
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_is_refused() {
        for n in 0..SYSCALL_COUNT {
            assert_eq!(Syscall::try_from(n).unwrap() as u64, n);
        }
        assert_eq!(Syscall::try_from(SYSCALL_COUNT), Err(Error::NoSuchCall));
        assert_eq!(Syscall::try_from(u64::MAX), Err(Error::NoSuchCall));
    }

    #[test]
    fn errors_round_trip_through_return_values() {
        for (i, e) in ERRORS.iter().enumerate() {
            assert_eq!(*e as usize, i + 1);
            assert_eq!(Error::from_ret(e.to_ret()), Err(*e));
        }
        assert_eq!(Error::from_ret(0), Ok(0));
        assert_eq!(Error::from_ret(USER_MAP_BASE), Ok(USER_MAP_BASE));
        assert_eq!(Error::from_ret(u64::MAX - 5000), Ok(u64::MAX - 5000));
        assert_eq!(
            Error::from_ret((-999i64) as u64),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn infos_round_trip_through_bytes() {
        let p = ProcInfo {
            pid: 7,
            parent: 1,
            state: 1,
            threads: 1,
            pages: 99,
            name: *b"shell\0\0\0\0\0\0\0\0\0\0\0",
            kmem: 123_456,
            kmem_limit: 4 << 20,
        };
        let q = ProcInfo::from_bytes(&p.to_bytes());
        assert_eq!(
            (q.pid, q.parent, q.state, q.threads, q.pages, q.name()),
            (7, 1, 1, 1, 99, "shell")
        );
        assert_eq!((q.kmem, q.kmem_limit), (123_456, 4 << 20));
        let m = MemInfo {
            total_frames: 1,
            free_frames: 2,
            heap_bytes_used: 3,
            heap_allocations: 4,
            idle_tsc: 5,
        };
        let n = MemInfo::from_bytes(&m.to_bytes());
        assert_eq!(
            (
                n.total_frames,
                n.free_frames,
                n.heap_bytes_used,
                n.heap_allocations,
                n.idle_tsc
            ),
            (1, 2, 3, 4, 5)
        );
    }
}
