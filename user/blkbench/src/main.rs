//! blkbench: the NVMe figures of `cargo xtask bench --only nvme`. Boot it as init
//! (`init=blkbench`) with the scratch disk attached (PCI 00:10.0): it starts nvmed on
//! it, runs the workloads bench/linux/blk.c runs on Linux on the same QEMU device
//! (4 KiB random reads and writes at queue depth 1 and 32, 128 KiB sequential reads;
//! on two CPUs the random ones from two processes, one per CPU, each with its own
//! connection), prints `zen: bench nvme_<name>_smp<cpus>=<TSC per I/O>` (under
//! `-icount shift=0` the TSC counts guest instructions, all CPUs'), the same with the
//! time every CPU sat idle taken off (`..._busy=`: under `sleep=off` an idle machine
//! jumps its clock to the next timer event) and `zen: bench done`, and shuts the
//! machine down.
//!
//! Every I/O moves in a page grant of the client's buffer that nvmed gives the device
//! in place, as any client's would.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use zen_abi::cap::Rights;
use zen_std::block::{Client, Op, Status};
use zen_std::chan::{self, Cap, Channel};
use zen_std::prelude::*;
use zen_std::{dev, mem, process, time};

zen_std::main!(main);

/// The scratch disk's place (xtask's `Vm::nvme`).
const SCRATCH: u32 = 0x10 << 3;
/// Where the workloads run, in 4 KiB units: past the GPT, 16 MiB (as blk.c).
const BASE: u64 = 8;
const SPAN: u64 = 4096;

struct Work {
    name: &'static str,
    write: bool,
    qd: usize,
    size: usize,
    seq: bool,
    ops: usize,
}

const WORK: &[Work] = &[
    Work {
        name: "rr4k_qd1",
        write: false,
        qd: 1,
        size: 4096,
        seq: false,
        ops: 512,
    },
    Work {
        name: "rw4k_qd1",
        write: true,
        qd: 1,
        size: 4096,
        seq: false,
        ops: 512,
    },
    Work {
        name: "rr4k_qd32",
        write: false,
        qd: 32,
        size: 4096,
        seq: false,
        ops: 2048,
    },
    Work {
        name: "rw4k_qd32",
        write: true,
        qd: 32,
        size: 4096,
        seq: false,
        ops: 2048,
    },
    Work {
        name: "sr128k",
        write: false,
        qd: 1,
        size: 128 << 10,
        seq: true,
        ops: 64,
    },
];

fn main() -> i32 {
    let arg = process::arg();
    if let Some(rest) = arg.strip_prefix("share ") {
        return share(rest);
    }
    let code = match run() {
        Ok(()) => 0,
        Err(why) => {
            println!("blkbench: {why}");
            1
        }
    };
    println!("zen: bench done");
    if process::id() == 1 {
        let _ = process::shutdown(code as u64);
    }
    code
}

fn cpus() -> usize {
    let n = (0..64).take_while(|&c| process::set_cpu(c).is_ok()).count();
    let _ = process::set_cpu(0);
    n.max(1)
}

fn run() -> Result<(), String> {
    let sys = chan::system_cap().ok_or("no system token")?;
    let d = dev::list()
        .map_err(|e| format!("{e:?}"))?
        .into_iter()
        .find(|d| d.class == 1 && d.subclass == 8 && d.address == SCRATCH)
        .ok_or("no scratch NVMe disk at 00:10.0")?;
    let tok = dev::open(sys, d.address).map_err(|e| format!("dev_open: {e:?}"))?;
    let (_pid, mut c) =
        zen_std::block::spawn_driver("nvmed", "", tok).map_err(|e| format!("nvmed: {e:?}"))?;
    let cpus = cpus();
    for w in WORK {
        let shares = if w.seq { 1 } else { cpus };
        let idle0 = mem::info().map_or(0, |m| m.idle_tsc);
        let t0 = time::cycles();
        let mut kids = Vec::new();
        for s in 1..shares {
            let end = c.connect(0).map_err(|e| format!("connect: {e:?}"))?;
            let a = format!("share {s} {shares} {}", w.name);
            let pid = chan::spawn_with_cap("blkbench", &a, end, Rights::SEND | Rights::RECV);
            let _ = end.drop_token();
            kids.push(pid.map_err(|e| format!("spawn: {e:?}"))?);
        }
        workload(&mut c, w, 0, shares)?;
        for pid in kids {
            let code = process::wait(pid).map_err(|e| format!("{e:?}"))?;
            if code != 0 {
                return Err(format!("{}: a share failed ({code})", w.name));
            }
        }
        let total = time::cycles() - t0;
        let idle = mem::info().map_or(0, |m| m.idle_tsc) - idle0;
        let per = total / w.ops as u64;
        let busy = total.saturating_sub(idle) / w.ops as u64;
        println!("zen: bench nvme_{}_smp{cpus}={per}", w.name);
        println!("zen: bench nvme_{}_smp{cpus}_busy={busy}", w.name);
    }
    Ok(())
}

/// The `share S N NAME` child: share S of N of workload NAME, on CPU S.
fn share(rest: &str) -> i32 {
    let mut p = rest.split(' ');
    let (Some(s), Some(n), Some(name)) = (p.next(), p.next(), p.next()) else {
        return 2;
    };
    let (Ok(s), Ok(n)) = (s.parse::<usize>(), n.parse::<usize>()) else {
        return 2;
    };
    let Some(w) = WORK.iter().find(|w| w.name == name) else {
        return 2;
    };
    let _ = process::set_cpu(s);
    let r = Channel::attach(Cap(0))
        .and_then(|ch| Client::new(ch, 10_000))
        .map_err(|e| format!("{e:?}"))
        .and_then(|mut c| workload(&mut c, w, s, n));
    match r {
        Ok(()) => 0,
        Err(why) => {
            println!("blkbench share {s}: {why}");
            1
        }
    }
}

/// xorshift, as blk.c.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Share `s` of `n` of `w`: its `ops / n` I/Os at `w.qd` in flight.
fn workload(c: &mut Client, w: &Work, s: usize, n: usize) -> Result<(), String> {
    let bs = c.geometry.block_size as u64;
    let per = w.size as u64 / bs;
    let span = SPAN / n as u64;
    let first = (BASE + s as u64 * span) * 4096 / bs;
    let mut rng = Rng(88_172_645_463_325_252 + s as u64);
    let mut at = |i: usize| {
        if w.seq {
            first + i as u64 * per
        } else {
            first + (rng.next() % span) * (4096 / bs)
        }
    };
    let bufs: Vec<mem::Shared> = (0..w.qd)
        .map(|_| mem::Shared::new(w.size))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{e:?}"))?;
    let (op, rights) = if w.write {
        (Op::Write, Rights::READ)
    } else {
        (Op::Read, Rights::READ | Rights::WRITE)
    };
    let ops = w.ops / n;
    let mut ids: Vec<u64> = vec![0; w.qd];
    let mut sent = 0;
    for (k, b) in bufs.iter().enumerate().take(ops.min(w.qd)) {
        ids[k] = c
            .submit(op, at(sent), per as u32, Some((b, rights)))
            .map_err(|e| format!("{e:?}"))?;
        sent += 1;
    }
    let mut done = 0;
    while done < ops {
        let r = c
            .wait(10_000)
            .map_err(|e| format!("{}: {done} of {ops}: {e:?}", w.name))?;
        if r.status != Status::Ok {
            return Err(format!("{}: {:?}", w.name, r.status));
        }
        let k = ids
            .iter()
            .position(|&i| i == r.id)
            .ok_or("a reply to no request")?;
        done += 1;
        if sent < ops {
            ids[k] = c
                .submit(op, at(sent), per as u32, Some((&bufs[k], rights)))
                .map_err(|e| format!("{e:?}"))?;
            sent += 1;
        }
    }
    Ok(())
}
