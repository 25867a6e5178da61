//! Processes: exit, spawn, wait, kill, the process table, the boot archive's programs.

use crate::sys::{call_into, call_reading};
use crate::Result;
use alloc::string::String;
use alloc::vec::Vec;
use zen_abi::syscall::{Error, ProcInfo, Syscall};

pub use zen_abi::syscall::{FAULT_EXIT_CODE, KILLED_EXIT_CODE};

/// What `main` may return.
pub trait Termination {
    fn code(self) -> u64;
}
impl Termination for () {
    fn code(self) -> u64 {
        0
    }
}
impl Termination for i32 {
    fn code(self) -> u64 {
        self as u64
    }
}
impl Termination for u64 {
    fn code(self) -> u64 {
        self
    }
}

/// Ends this process with `code`.
pub fn exit(code: u64) -> ! {
    let _ = call_reading(Syscall::Exit, [code, 0, 0, 0, 0, 0]);
    unreachable!("exit returned")
}

/// Starts program `name` of the boot archive with one argument string; its pid.
pub fn spawn(name: &str, arg: &str) -> Result<u32> {
    let a = [
        name.as_ptr() as u64,
        name.len() as u64,
        arg.as_ptr() as u64,
        arg.len() as u64,
        0,
        0,
    ];
    call_reading(Syscall::Spawn, a).map(|p| p as u32)
}

/// Waits for child `pid` to end; its exit code.
pub fn wait(pid: u32) -> Result<u64> {
    call_reading(Syscall::Wait, [pid as u64, 0, 0, 0, 0, 0])
}

/// Kills `pid` (this process or a descendant).
pub fn kill(pid: u32) -> Result<()> {
    call_reading(Syscall::Kill, [pid as u64, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Runs this process (and its future threads) on CPU `cpu` from now on. Only while
/// it has one thread; `InvalidArgument` for a CPU that is not online.
pub fn set_cpu(cpu: usize) -> Result<()> {
    call_reading(Syscall::SetCpu, [cpu as u64, 0, 0, 0, 0, 0]).map(|_| ())
}

/// This process's id.
pub fn id() -> u32 {
    call_reading(Syscall::GetPid, [0; 6]).unwrap_or(0) as u32
}

/// This process's argument string.
pub fn arg() -> String {
    let mut buf = alloc::vec![0u8; 4096];
    let n = call_into(Syscall::GetArg, &[], &mut buf, &[]).unwrap_or(0) as usize;
    buf.truncate(n);
    String::from_utf8(buf).unwrap_or_default()
}

/// Grows a buffer until a listing call fits.
fn listing(call: Syscall) -> Result<Vec<u8>> {
    let mut cap = 1024;
    loop {
        let mut buf = alloc::vec![0u8; cap];
        match call_into(call, &[], &mut buf, &[]) {
            Ok(n) => {
                buf.truncate(n as usize);
                return Ok(buf);
            }
            Err(Error::BufferTooSmall) if cap < 1 << 20 => cap *= 4,
            Err(e) => return Err(e),
        }
    }
}

/// The process table.
pub fn list() -> Result<Vec<ProcInfo>> {
    let b = listing(Syscall::Ps)?;
    Ok(b.chunks_exact(ProcInfo::SIZE)
        .map(|c| ProcInfo::from_bytes(c.try_into().expect("ProcInfo::SIZE bytes")))
        .collect())
}

/// Names of the programs in the boot archive.
pub fn programs() -> Result<Vec<String>> {
    let b = listing(Syscall::Programs)?;
    Ok(b.split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

/// Powers off (under QEMU: exits it; `code` 0 is success). Needs the system token's
/// POWER right (`chan::system_cap`); returns only if refused (`Denied` without it).
pub fn shutdown(code: u64) -> crate::Error {
    let Some(cap) = crate::chan::system_cap() else {
        return crate::Error::Denied;
    };
    if let Err(e) = cap.token() {
        return e;
    }
    match call_reading(Syscall::Shutdown, [code, cap.addr(), 0, 0, 0, 0]) {
        Err(e) => e,
        Ok(_) => crate::Error::InvalidArgument,
    }
}

/// The kernel's audit log, exported (zen-audit's format: check it with
/// `zen_audit::verify`), its head signed with `nonce` (pass a fresh one and compare
/// the report's: an older export cannot pass for this one). Needs the system
/// token's AUDIT right (`Denied` without it).
pub fn audit_log(nonce: [u8; 16]) -> crate::Result<alloc::vec::Vec<u8>> {
    let cap = crate::chan::system_cap().ok_or(crate::Error::Denied)?;
    cap.token()?;
    let mut buf = alloc::vec![0u8; zen_abi::syscall::AUDIT_EXPORT_MAX];
    let n = crate::sys::call_into(
        Syscall::AuditRead,
        &[],
        &mut buf,
        &[cap.addr(), nonce.as_ptr() as u64],
    )?;
    buf.truncate(n as usize);
    Ok(buf)
}

/// Gives up the CPU.
pub fn yield_now() {
    let _ = call_reading(Syscall::Yield, [0; 6]);
}
