//! Limits: processes that take every thread and all memory they can until refused
//! (`exhaustion`), page tables freed when they empty, and every kernel object a
//! process causes charged to its quota (`ps` shows it).

use crate::{
    check, expect, kill_all, recv_within, run_child, sys, usage_back, usage_settled, Outcome,
};
use zen_abi::cap::Rights;
use zen_abi::syscall::{Error, Syscall};
use zen_std::chan::{self, Channel};
use zen_std::prelude::*;
use zen_std::{mem, process, thread, time};

/// This process's kernel memory charged now, and its quota (from `ps`).
pub(crate) fn kmem() -> Result<(u64, u64), String> {
    let me = process::id();
    process::list()
        .map_err(|e| format!("ps: {e:?}"))?
        .iter()
        .find(|p| p.pid == me)
        .map(|p| (p.kmem, p.kmem_limit))
        .ok_or_else(|| String::from("ps does not list this process"))
}

pub fn map_unmap_frees_page_tables() -> Outcome {
    // Each map takes the next page of the map area: 3000 of them walk across six
    // level-1 tables. Unmapped, each table must go back when it empties.
    let cycle = || -> Result<(), String> {
        let a = sys(Syscall::Map, [4096, 0, 0, 0, 0, 0]).map_err(|e| format!("map: {e:?}"))?;
        sys(Syscall::Unmap, [a, 4096, 0, 0, 0, 0]).map_err(|e| format!("unmap: {e:?}"))?;
        Ok(())
    };
    cycle()?;
    let before = usage_settled()?;
    let (k0, _) = kmem()?;
    for _ in 0..3000 {
        cycle()?;
    }
    let (k1, limit) = kmem()?;
    check(
        &format!("page tables charged {k0} -> {k1} bytes (quota {limit})"),
        k1 <= k0 + 3 * 4096,
    )?;
    usage_back(before, "3000 map/unmap cycles")
}

pub fn grants_are_charged_to_the_sender() -> Outcome {
    // 48 MiB granted again and again: each grant's page list (96 KiB) is kernel
    // memory, so the quota ends it long before the 64-grant limit would.
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let pid = chan::spawn_with_cap("usertests", "echo", b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("{e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("{e:?}"))?;
    let mut buf = [0u8; 8];
    ch.send(b"hi").map_err(|e| format!("{e:?}"))?;
    recv_within(&mut ch, &mut buf, "echo")?;
    let (k0, limit) = kmem()?;
    let m = mem::Shared::new(48 << 20).map_err(|e| format!("map 48 MiB: {e:?}"))?;
    let t = ch.token().to_bytes();
    let mut made = 0;
    let last = loop {
        let r = sys(
            Syscall::GrantCreate,
            [
                m.addr(),
                48 << 20,
                Rights::READ.bits(),
                t.as_ptr() as u64,
                0,
                0,
            ],
        );
        if r.is_err() || made == 64 {
            break r;
        }
        made += 1;
    };
    expect("the quota refuses a grant", last, Err(Error::NoMemory))?;
    let (k1, _) = kmem()?;
    check(
        &format!("{made} grants, refused before 64; kernel memory {k0} -> {k1} of {limit}"),
        made < 64 && made > 0 && k1 > limit / 2 && k1 <= limit,
    )?;
    // The receiver ends without mapping them: the grants are dropped, and their
    // charge goes back to the sender.
    ch.send(b"quit").map_err(|e| format!("{e:?}"))?;
    expect("peer exits", process::wait(pid), Ok(0))?;
    drop(m);
    let (k2, _) = kmem()?;
    check(
        &format!("charge back after the grants and the memory went: {k1} -> {k2} (was {k0})"),
        k2 <= k0 + 4 * 4096,
    )
}

pub(crate) fn exhaustion() -> Outcome {
    // Processes that each take all the threads and memory they may, until the kernel
    // refuses them (threads, the kernel heap, frames, the process table): it must say
    // no, never fall over, and get everything back when they are killed.
    let before = usage_settled()?;
    let mut pids = Vec::new();
    let refused = loop {
        match process::spawn("usertests", "hog") {
            Ok(p) => pids.push(p),
            Err(e) => break e,
        }
        if pids.len() == 40 {
            break Error::InvalidArgument;
        }
        // Let it take its share before the next one starts.
        time::sleep_ms(20);
    };
    let mem = mem::info().map_err(|e| format!("{e:?}"))?;
    println!(
        "usertests: {} hogs, then {refused:?}; {} frames free, kernel heap {} bytes",
        pids.len(),
        mem.free_frames,
        mem.heap_bytes_used
    );
    kill_all(&pids);
    check(
        &format!(
            "{} hogs started before {refused:?}, {} frames free at the peak",
            pids.len(),
            mem.free_frames
        ),
        pids.len() >= 2,
    )?;
    check("the system works after them", run_child("exit 5")? == 5)?;
    usage_back(before, "the hogs")
}

/// Kernel memory charged to process `pid` now (from `ps`).
fn kmem_of(pid: u32) -> Result<u64, String> {
    process::list()
        .map_err(|e| format!("ps: {e:?}"))?
        .iter()
        .find(|p| p.pid == pid)
        .map(|p| p.kmem)
        .ok_or_else(|| format!("ps does not list {pid}"))
}

pub fn revoke_in_a_loop_leaves_no_tables() -> Outcome {
    // A victim attaches every fresh token we pass it, and we revoke each time: each
    // attach takes a fresh range of its map area, so the page tables the revokes
    // empty must go too, or its quota fills with tables it can never free.
    let (ctl_a, ctl_b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let (a, _b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let pid = chan::spawn_with_cap(
        "usertests",
        "attach-each",
        ctl_b,
        Rights::SEND | Rights::RECV,
    )
    .map_err(|e| format!("{e:?}"))?;
    let mut ctl = Channel::attach(ctl_a).map_err(|e| format!("{e:?}"))?;
    let mut buf = [0u8; 8];
    recv_within(&mut ctl, &mut buf, "the victim's ready")?;
    let mut cycle = |i: u32| -> Outcome {
        let slot = a
            .send_over(&ctl, Rights::SEND | Rights::RECV)
            .map_err(|e| format!("cycle {i}: cap_send: {e:?}"))?;
        ctl.send(&[slot.0 as u8]).map_err(|e| format!("{e:?}"))?;
        let n = recv_within(&mut ctl, &mut buf, "the victim's attach")?;
        check(
            &format!("cycle {i}: the victim attached"),
            n == 1 && buf[0] == 1,
        )?;
        a.revoke().map_err(|e| format!("cycle {i}: revoke: {e:?}"))
    };
    for i in 0..20 {
        cycle(i)?;
    }
    let k0 = kmem_of(pid)?;
    for i in 20..400 {
        cycle(i)?;
    }
    let k1 = kmem_of(pid)?;
    ctl.send(&[255]).map_err(|e| format!("{e:?}"))?;
    expect("the victim exits", process::wait(pid), Ok(0))?;
    check(
        &format!("380 attach/revoke cycles: the victim's kernel memory {k0} -> {k1} bytes"),
        k1 <= k0 + 2 * 4096,
    )
}

/// Child modes of this area; `None` if `mode` is not one of them.
pub(crate) fn child(mode: &str) -> Option<i32> {
    Some(match mode {
        "attach-each" => {
            let Ok(mut ctl) = Channel::attach(zen_std::chan::Cap(0)) else {
                return Some(10);
            };
            if ctl.send(b"ready").is_err() {
                return Some(11);
            }
            let mut buf = [0u8; 8];
            loop {
                let Ok(1) = ctl.recv(&mut buf) else {
                    return Some(12);
                };
                if buf[0] == 255 {
                    return Some(0);
                }
                let cap = zen_std::chan::Cap(buf[0] as usize);
                let ok = cap
                    .token()
                    .map(|t| {
                        let b = t.to_bytes();
                        sys(Syscall::ChanAttach, [b.as_ptr() as u64, 0, 0, 0, 0, 0]).is_ok()
                    })
                    .unwrap_or(false);
                // The token page has 63 slots: give this one back.
                let _ = cap.drop_token();
                if ctl.send(&[ok as u8]).is_err() {
                    return Some(13);
                }
            }
        }
        "hog" => {
            // Threads until refused, then memory until refused; then wait to be killed.
            while thread::spawn(|| {
                time::sleep_ms(3_600_000);
                0
            })
            .map(core::mem::forget)
            .is_ok()
            {}
            let mut regions = Vec::new();
            while let Ok(r) = mem::Region::new(1 << 20) {
                regions.push(r);
            }
            time::sleep_ms(3_600_000);
            1
        }
        _ => return None,
    })
}
