//! Threads of this process.
//!
//! A thread gets its own stack (mapped with an unmapped guard page below it, so an
//! overflow faults instead of running into other memory) and runs a boxed closure;
//! its result is the thread's exit code for [`JoinHandle::join`]. The kernel runs
//! every thread of a process on one CPU (see `thread_create` in docs/abi.md): threads
//! overlap blocking, they do not add parallelism. `process::exit` from any thread ends
//! the whole process; so does a panic or a fault in any thread.

use crate::sys::call_reading;
use crate::Result;
use alloc::boxed::Box;
use zen_abi::syscall::Syscall;

/// Stack size of a new thread.
pub const STACK_SIZE: usize = 64 * 1024;

type Main = Box<dyn FnOnce() -> u64 + Send + 'static>;

/// A running thread; join it to get its code and free its stack.
#[derive(Debug)]
#[must_use = "a dropped JoinHandle leaves the thread running and its stack mapped"]
pub struct JoinHandle {
    tid: u64,
    /// Guard page + stack, mapped by `map` (the guard page then unmapped).
    base: u64,
}

/// Starts `f` on a new thread.
pub fn spawn<F: FnOnce() -> u64 + Send + 'static>(f: F) -> Result<JoinHandle> {
    let total = (STACK_SIZE + 4096) as u64;
    let base = call_reading(Syscall::Map, [total, 0, 0, 0, 0, 0])?;
    let unmap = |addr: u64, len: u64| {
        // SAFETY: memory mapped above, referenced by nothing yet (or, for the stack
        // after a failed create, by no thread).
        unsafe { crate::sys::raw(Syscall::Unmap as u64, [addr, len, 0, 0, 0, 0]) }
    };
    unmap(base, 4096);
    let main: Box<Main> = Box::new(Box::new(f));
    let arg = Box::into_raw(main) as u64;
    // The System V ABI wants rsp + 8 16-byte aligned at a function's first instruction.
    let rsp = base + total - 8;
    match call_reading(
        Syscall::ThreadCreate,
        [
            start as extern "C" fn(u64) -> ! as usize as u64,
            rsp,
            arg,
            0,
            0,
            0,
        ],
    ) {
        Ok(tid) => Ok(JoinHandle { tid, base }),
        Err(e) => {
            // SAFETY: the kernel started no thread, so `arg` is still ours alone.
            drop(unsafe { Box::from_raw(arg as *mut Main) });
            unmap(base + 4096, STACK_SIZE as u64);
            Err(e)
        }
    }
}

/// First code of every thread (`rdi` = the boxed closure).
extern "C" fn start(arg: u64) -> ! {
    // SAFETY: `spawn` passed a pointer from Box::into_raw of a `Box<Main>`, and only
    // this thread takes it back.
    let main = unsafe { Box::from_raw(arg as *mut Main) };
    let code = main();
    exit(code)
}

/// Ends the calling thread with `code` (the process ends with the last thread).
pub fn exit(code: u64) -> ! {
    let _ = call_reading(Syscall::ThreadExit, [code, 0, 0, 0, 0, 0]);
    unreachable!("thread_exit returned")
}

impl JoinHandle {
    /// The kernel's id of the thread.
    pub fn id(&self) -> u64 {
        self.tid
    }

    /// Waits for the thread to end; its code. The stack is freed.
    pub fn join(self) -> Result<u64> {
        let code = call_reading(Syscall::ThreadJoin, [self.tid, 0, 0, 0, 0, 0])?;
        // SAFETY: the thread has ended; nothing uses its stack any more.
        unsafe {
            crate::sys::raw(
                Syscall::Unmap as u64,
                [self.base + 4096, STACK_SIZE as u64, 0, 0, 0, 0],
            )
        };
        Ok(code)
    }
}

/// Joins thread `tid` by its raw id (for tests of the system call itself).
pub fn join_id(tid: u64) -> Result<u64> {
    call_reading(Syscall::ThreadJoin, [tid, 0, 0, 0, 0, 0])
}
