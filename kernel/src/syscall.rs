//! The system-call table: decodes a call (number checked through `Syscall::try_from`),
//! checks its arguments and runs it. docs/abi.md is the contract; each arm below cites
//! the errors it can return.
//!
//! Tokens are copied in here, once per call (`token`, `tokens`): the subsystems get
//! the copy, so a thread changing the token in memory mid-call changes nothing.
//!
//! User pointers are never dereferenced: `copy_in`/`copy_out` go through the process's
//! page tables (arch::user), so a null, unmapped or kernel address is `BadAddress`,
//! and lengths are bounded before anything is allocated.

use alloc::vec::Vec;
use zen_abi::syscall::{Error, MemInfo, Syscall, MAX_IO};

use crate::arch::{self, apic, cpu};
use crate::audit;
use crate::proc::{self, Process};
use crate::task;
use alloc::sync::Arc;
use zen_audit::Kind;

type SysResult = Result<u64, Error>;

/// Entry from the arch layer: `nr` and six arguments; returns the value for `rax`.
/// Inlined into the entry's one caller, so the arguments stay where they arrived.
#[inline(always)]
pub fn dispatch(nr: u64, a: [u64; 6]) -> u64 {
    crate::prof::mark(crate::prof::Step::User);
    let Some(me) = proc::current() else {
        return Error::Denied.to_ret();
    };
    if nr == Syscall::Exit as u64 {
        // Nothing may stay referenced on this stack: it is never unwound.
        drop(me);
        proc::exit_current(a[0]);
    }
    if nr == Syscall::ThreadExit as u64 {
        drop(me);
        proc::thread_exit(a[0]);
    }
    let r = match Syscall::try_from(nr) {
        Ok(call) => run(&me, call, a),
        Err(e) => Err(e),
    };
    // Entries this call recorded may have made an audit checkpoint due: made here,
    // by the caller, with no lock held.
    audit::checkpoint_if_due(me.pid());
    // A kill that came during the call ends the process before it returns to user
    // mode (`proc::check_killed`, without looking the caller up again).
    if me.killed() {
        drop(me);
        proc::check_killed();
    }
    let ret = match r {
        Ok(v) => v,
        Err(e) => e.to_ret(),
    };
    crate::prof::mark(crate::prof::Step::Tail);
    ret
}

/// Entry from the arch layer for call and reply_recv, whose message is in registers:
/// reads the frame, runs the call, and rewrites every register of the frame (the
/// reply, or zeros on an error) so none carries a kernel value back.
pub fn dispatch_call(f: &mut arch::syscall::CallFrame) {
    crate::prof::mark(crate::prof::Step::User);
    let Some(me) = proc::current() else {
        f.rax = Error::Denied.to_ret();
        return;
    };
    let reply_recv = f.rax == Syscall::ReplyRecv as u64;
    crate::prof::mark(crate::prof::Step::Dispatch);
    let r = token(&me, f.rdi).and_then(|t| {
        crate::prof::mark(crate::prof::Step::Token);
        if reply_recv {
            crate::ipc::call::reply_recv(&*me, &t, f.r15, &f.words)
                .map(|r| (r.from, r.handle, r.msg))
        } else {
            crate::ipc::call::call(&*me, &t, &f.words).map(|m| (0, f.r15, m))
        }
    });
    audit::checkpoint_if_due(me.pid());
    if me.killed() {
        drop(me);
        proc::check_killed();
    }
    match r {
        Ok((from, handle, msg)) => {
            f.rax = 0;
            f.rdi = u64::from(from);
            f.r15 = handle;
            f.words = msg;
        }
        Err(e) => {
            f.rax = e.to_ret();
            f.rdi = 0;
            f.words = [0; 8];
            if reply_recv {
                f.r15 = 0;
            }
        }
    }
    crate::prof::mark(crate::prof::Step::Tail);
}

fn copy_in(me: &Process, ptr: u64, len: u64) -> Result<Vec<u8>, Error> {
    if len > MAX_IO {
        return Err(Error::InvalidArgument);
    }
    me.with_space(|s| s.copy_from(ptr, len as usize))?
        .ok_or(Error::BadAddress)
}

fn copy_out(me: &Process, ptr: u64, data: &[u8]) -> Result<(), Error> {
    me.with_space(|s| s.copy_to(ptr, data))?
        .ok_or(Error::BadAddress)
}

fn str_in(me: &Process, ptr: u64, len: u64, max: u64) -> Result<alloc::string::String, Error> {
    if len > max {
        return Err(Error::InvalidArgument);
    }
    alloc::string::String::from_utf8(copy_in(me, ptr, len)?).map_err(|_| Error::InvalidArgument)
}

/// Copies a result to a user buffer of `cap` bytes: `BufferTooSmall` if it does not fit.
fn out_buf(me: &Process, ptr: u64, cap: u64, data: &[u8]) -> SysResult {
    if (data.len() as u64) > cap {
        return Err(Error::BufferTooSmall);
    }
    copy_out(me, ptr, data)?;
    Ok(data.len() as u64)
}

/// Passes the token at `tok` to a child being spawned, and records the pass.
fn pass_to_child(
    me: &Arc<Process>,
    tok: u64,
    rights: u64,
    child: &dyn crate::ipc::Party,
    call: Syscall,
) -> Result<(), Error> {
    let slot = token(me, tok)?;
    let at = crate::ipc::pass_token(&**me, &slot, rights, child, call as u16)?;
    let b = slot.binding;
    audit::record(
        Kind::CapPassed,
        [b.object, u64::from(b.object_type), rights, at],
    );
    Ok(())
}

fn run(me: &Arc<Process>, call: Syscall, a: [u64; 6]) -> SysResult {
    match call {
        Syscall::Exit | Syscall::ThreadExit => unreachable!("handled in dispatch"),
        // The entry sends these to `dispatch_call`; no argument list carries them.
        Syscall::Call | Syscall::ReplyRecv => Err(Error::NoSuchCall),
        Syscall::Write => {
            // fd 1 and 2: the console. BadAddress, InvalidArgument.
            if a[0] != 1 && a[0] != 2 {
                return Err(Error::InvalidArgument);
            }
            // The copy is kernel memory held while the console drains: charged.
            let _charge = crate::mm::quota::Charge::take(me.quota_ref(), a[2].min(MAX_IO))?;
            let bytes = copy_in(me, a[1], a[2])?;
            crate::console::write_bytes(&bytes);
            Ok(bytes.len() as u64)
        }
        Syscall::Read => {
            // fd 0: the console; blocks for one byte, returns what is there after it.
            if a[0] != 0 {
                return Err(Error::InvalidArgument);
            }
            if a[2] == 0 {
                return Ok(0);
            }
            let len = a[2].min(MAX_IO);
            // Check the buffer before blocking, so a bad one fails at once.
            me.with_space(|s| {
                a[1].checked_add(len).is_some()
                    && (0..len)
                        .step_by(4096)
                        .chain([len - 1])
                        .all(|o| s.is_writable(a[1] + o))
            })?
            .then_some(())
            .ok_or(Error::BadAddress)?;
            let mut got = Vec::new();
            loop {
                while (got.len() as u64) < len {
                    match arch::serial::read_byte() {
                        Some(b) => got.push(b),
                        None => break,
                    }
                }
                if !got.is_empty() {
                    break;
                }
                // The console is polled (no UART interrupt yet): look again next tick.
                if !task::sleep_until(crate::time::ticks() + 1, || me.killed()) {
                    return Err(Error::InvalidArgument);
                }
            }
            copy_out(me, a[1], &got)?;
            Ok(got.len() as u64)
        }
        Syscall::Yield => {
            task::yield_now();
            Ok(0)
        }
        Syscall::Sleep => {
            task::sleep_until(
                crate::time::ticks().saturating_add(crate::time::ms_to_ticks(a[0])),
                || me.killed(),
            );
            Ok(0)
        }
        Syscall::Uptime => Ok(cpu::rdtsc() / (apic::tsc_hz() / 1000).max(1)),
        Syscall::Spawn => {
            let name = str_in(me, a[0], a[1], zen_abi::archive::NAME_MAX as u64)?;
            if a[3] > 4096 {
                return Err(Error::InvalidArgument);
            }
            let arg = copy_in(me, a[2], a[3])?;
            let (tok, rights) = (a[4], a[5]);
            proc::spawn_with(&name, &arg, Some(me), |child| {
                if tok != 0 {
                    pass_to_child(me, tok, rights, child, Syscall::Spawn)?;
                }
                Ok(())
            })
            .map(u64::from)
        }
        Syscall::Wait => proc::wait(me, pid_arg(a[0])?),
        Syscall::Kill => {
            let pid = pid_arg(a[0])?;
            // Refused kills too (args[1]: the error; 0 when it was done).
            let r = proc::kill(me, pid);
            match r {
                Ok(()) => audit::record(Kind::Kill, [u64::from(pid), 0, 0, 0]),
                Err(e) => audit::refused(Kind::Kill, [u64::from(pid), e as u64, 0, 0]),
            }
            r.map(|()| 0)
        }
        Syscall::Map => proc::map(me, a[0]),
        Syscall::Unmap => proc::unmap(me, a[0], a[1]).map(|()| 0),
        Syscall::GetPid => Ok(me.pid() as u64),
        Syscall::Ps => {
            let bytes: Vec<u8> = proc::list().iter().flat_map(|p| p.to_bytes()).collect();
            out_buf(me, a[0], a[1], &bytes)
        }
        Syscall::MemInfo => {
            let (allocs, bytes) = arch::heap::stats();
            let m = MemInfo {
                total_frames: crate::mm::total_frames(),
                free_frames: crate::mm::free_frames(),
                heap_bytes_used: bytes as u64,
                heap_allocations: allocs as u64,
                idle_tsc: crate::task::idle_tsc(),
            };
            copy_out(me, a[0], &m.to_bytes())?;
            Ok(0)
        }
        Syscall::Edges => {
            let recs: Vec<u8> = crate::edge::EDGE_REGISTRY
                .iter()
                .flat_map(|r| r.to_bytes())
                .collect();
            out_buf(me, a[0], a[1], &recs).map(|n| n / 12)
        }
        Syscall::Programs => {
            let mut names = Vec::new();
            for (n, _) in proc::archive().iter().flat_map(|a| a.iter()) {
                names.extend_from_slice(n.as_bytes());
                names.push(0);
            }
            out_buf(me, a[0], a[1], &names)
        }
        Syscall::Shutdown => {
            // The machine is everybody's: only a holder of the system token's POWER
            // right (init, and whom init gives it) may turn it off.
            crate::cap::check_system(
                &**me,
                &token(me, a[1])?,
                zen_abi::cap::Rights::POWER,
                Syscall::Shutdown as u16,
            )?;
            audit::record(Kind::Shutdown, [a[0], 0, 0, 0]);
            audit::checkpoint(true);
            crate::prof::report();
            crate::kprintln!(
                "zen: shutdown by process {} ({}), code {}",
                me.pid(),
                me.name(),
                a[0]
            );
            crate::console::flush();
            cpu::qemu_exit(if a[0] == 0 {
                cpu::QemuExit::Success
            } else {
                cpu::QemuExit::Failure
            })
        }
        Syscall::GetArg => out_buf(me, a[0], a[1], me.arg()),
        Syscall::ChanCreate => crate::ipc::create(&**me),
        Syscall::ChanAttach => crate::ipc::attach(&**me, &token(&**me, a[0])?),
        Syscall::MsgSend => crate::ipc::wake(&**me, &token(&**me, a[0])?, false),
        Syscall::MsgRelease => crate::ipc::wake(&**me, &token(&**me, a[0])?, true),
        Syscall::MsgRecv => crate::ipc::wait(&**me, &token(&**me, a[0])?, a[1], false),
        Syscall::MsgWaitRoom => crate::ipc::wait(&**me, &token(&**me, a[0])?, a[1], true),
        Syscall::MsgCall => {
            crate::prof::mark(crate::prof::Step::Dispatch);
            let t = token(&**me, a[0])?;
            crate::prof::mark(crate::prof::Step::Token);
            crate::ipc::call(&**me, &t, a[1])
        }
        Syscall::MsgPoll => crate::ipc::poll(&**me, &tokens(&**me, a[0], a[1])?, a[2]),
        Syscall::CapSend => {
            let what = token(&**me, a[0])?;
            let slot = crate::ipc::cap_send(&**me, &what, &token(&**me, a[1])?, a[2])?;
            let b = what.binding;
            audit::record(
                Kind::CapPassed,
                [b.object, u64::from(b.object_type), a[2], slot],
            );
            Ok(slot)
        }
        Syscall::CapRevoke => {
            let t = token(&**me, a[0])?;
            let r = crate::ipc::revoke(&**me, &t)?;
            audit::record(Kind::CapRevoked, [t.binding.object, 0, 0, 0]);
            Ok(r)
        }
        Syscall::CapDrop => me
            .remove_token(usize::try_from(a[0]).map_err(|_| Error::InvalidArgument)?)
            .map(|()| 0),
        Syscall::GrantCreate => {
            let r = crate::ipc::grant::grant_create(&**me, a[0], a[1], a[2], &token(&**me, a[3])?);
            match r {
                Ok(id) => {
                    crate::prof::mark(crate::prof::Step::Share);
                    audit::record(Kind::GrantMade, [id, a[1], a[2], 0]);
                    crate::prof::mark(crate::prof::Step::Audit);
                }
                Err(e) => audit::refused(Kind::GrantRefused, [a[1], a[2], e as u64, 0]),
            }
            r
        }
        Syscall::GrantMap => {
            crate::ipc::grant::grant_map(&**me, a[0], a[1], a[2], &token(&**me, a[3])?)
        }
        Syscall::ThreadCreate => proc::thread_create(me, a[0], a[1], a[2]),
        Syscall::ThreadJoin => proc::thread_join(me, tid_arg(a[0])?),
        Syscall::SetCpu => proc::set_cpu(me, cpu_arg(a[0])?).map(|()| 0),
        Syscall::DevList => {
            let bytes: Vec<u8> = crate::dev::list()
                .iter()
                .flat_map(|d| d.to_bytes())
                .collect();
            out_buf(me, a[0], a[1], &bytes)
        }
        Syscall::DevOpen => crate::dev::open(&**me, &token(&**me, a[0])?, a[1]),
        Syscall::DevMap => crate::dev::map_bar(&**me, &token(&**me, a[0])?, a[1]),
        Syscall::DmaAlloc => crate::dev::dma_alloc(&**me, &token(&**me, a[0])?, a[1]),
        Syscall::DmaAddr => crate::dev::dma_addr(&**me, &token(&**me, a[0])?, a[1]),
        Syscall::IrqBind => crate::dev::irq_bind(&**me, &token(&**me, a[0])?, a[1], a[2]),
        Syscall::ChanPeer => crate::ipc::peer(&**me, &token(&**me, a[0])?),
        Syscall::ChanDestroy => crate::ipc::destroy(&**me, &token(&**me, a[0])?),
        Syscall::AuditRead => {
            // The log is about everyone: only a holder of AUDIT on the system token.
            crate::cap::check_system(
                &**me,
                &token(me, a[2])?,
                zen_abi::cap::Rights::AUDIT,
                Syscall::AuditRead as u16,
            )?;
            if a[1] < zen_abi::syscall::AUDIT_EXPORT_MAX as u64 {
                return Err(Error::BufferTooSmall);
            }
            // The export is made on the kernel heap: charged while it lives.
            let _c = crate::mm::quota::Charge::take(
                me.quota_ref(),
                zen_abi::syscall::AUDIT_EXPORT_MAX as u64,
            )?;
            let mut nonce = [0u8; zen_audit::NONCE_LEN];
            if a[3] != 0 {
                nonce.copy_from_slice(&copy_in(me, a[3], zen_audit::NONCE_LEN as u64)?);
            }
            let log = audit::export(nonce).ok_or(Error::NoMemory)?;
            out_buf(me, a[0], a[1], &log)
        }
        Syscall::SpawnImage => {
            let d = copy_in(me, a[0], zen_abi::syscall::SpawnImage::SIZE as u64)?;
            let d = zen_abi::syscall::SpawnImage::from_bytes(&d).ok_or(Error::BadAddress)?;
            let name = str_in(me, d.name, d.name_len, zen_abi::archive::NAME_MAX as u64)?;
            if d.arg_len > 4096 || d.image_len > zen_abi::syscall::SPAWN_IMAGE_MAX {
                return Err(Error::InvalidArgument);
            }
            let arg = copy_in(me, d.arg, d.arg_len)?;
            // The copy is kernel memory the caller causes: charged while it lives.
            let _charge = crate::mm::quota::Charge::take(me.quota_ref(), d.image_len)?;
            let image = me
                .with_space(|s| s.copy_from(d.image, d.image_len as usize))?
                .ok_or(Error::BadAddress)?;
            let (tok, rights) = (a[1], a[2]);
            proc::spawn_image_with(&image, &name, &arg, me, |child| {
                if tok != 0 {
                    pass_to_child(me, tok, rights, child, Syscall::SpawnImage)?;
                }
                Ok(())
            })
            .map(u64::from)
        }
        Syscall::IrqWait => crate::irq::wait(&**me, &token(&**me, a[0])?, a[1], &|| me.killed()),
    }
}

// Arguments are decoded here, once, into the types the layers below take: process
// and thread ids, CPU numbers, tokens (copied in). Pointers stay addresses: nothing
// below dereferences one, every access goes through the caller's page tables.

fn pid_arg(v: u64) -> Result<u32, Error> {
    u32::try_from(v).map_err(|_| Error::NoSuchProcess)
}

fn tid_arg(v: u64) -> Result<u32, Error> {
    u32::try_from(v).map_err(|_| Error::NoSuchProcess)
}

fn cpu_arg(v: u64) -> Result<usize, Error> {
    usize::try_from(v).map_err(|_| Error::InvalidArgument)
}

/// The token at user address `ptr`, copied once. The address of a slot of the
/// caller's own token page (how zen-std names its tokens) is read from the kernel's
/// copy: genuine by construction, so no MAC to compute and no page walk; any other
/// address is read through the page tables and its MAC decides. Every check and use
/// below reads this copy, never the user's memory again.
fn token(me: &Process, ptr: u64) -> Result<crate::cap::Presented, Error> {
    match zen_abi::cap::slot_at(ptr) {
        Some(i) => Ok(crate::cap::token_at(me, i)),
        None => crate::cap::token_in(me, ptr),
    }
}

/// `count` tokens at `ptr` (msg_poll), copied in one go.
fn tokens(me: &Process, ptr: u64, count: u64) -> Result<Vec<crate::cap::Presented>, Error> {
    use zen_abi::cap::TokenSlot;
    if count == 0 || count > crate::ipc::POLL_MAX {
        return Err(Error::InvalidArgument);
    }
    let bytes = copy_in(me, ptr, count * TokenSlot::SIZE as u64)?;
    Ok(bytes
        .chunks_exact(TokenSlot::SIZE)
        .map(|c| crate::cap::presented_bytes(c.try_into().expect("64-byte chunks")))
        .collect())
}
