//! Disks: the NVMe controller as a capability, nvmed serving the block protocol from
//! several processes on both CPUs, every bad request refused, a driver refused what
//! it does not hold, and nvmed killed mid-I/O and started again.
//!
//! The VM has a scratch disk (NVMe, serial `zen-data`). Every block written here
//! describes itself (its LBA, a tag, a pattern of the LBA), so after the VM exits
//! xtask reads the disk file and checks every tagged block it finds, and that it
//! finds as many as the lines `usertests: nvme tagged blocks N` say (each test that
//! writes them has a region of its own, so the counts add up).
//!
//! Over 500 lines: one test per requirement of the driver issue, each with its own
//! client set-up; splitting them would scatter the scratch disk's layout.

use crate::*;
use zen_std::block::{Client, Op, Status};
use zen_std::dev;

const TAG: &[u8; 8] = b"zenblock";
/// Blocks of the scratch disk the tests write self-describing data to: each writer
/// process gets its own `REGION` blocks from `BASE + i * REGION`, between the GPT's
/// scratch ESP (2048..=4095) and its TagFS root (40960..=57343; xtask's
/// `disk::scratch_image`).
const REGION: u64 = 8192;
const BASE: u64 = 4096;
const ROOT_FIRST: u64 = 40960;
const ROOT_BLOCKS: u64 = 16384;

/// The scratch disk's PCI address, 00:10.0 (xtask puts it there; a boot disk, which
/// these tests must never write, sits elsewhere).
const SCRATCH: u32 = 0x10 << 3;

fn nvme() -> Result<zen_abi::device::DeviceInfo, String> {
    dev::list()
        .map_err(|e| format!("dev_list: {e:?}"))?
        .into_iter()
        .find(|d| d.class == 1 && d.subclass == 8 && d.address == SCRATCH)
        .ok_or_else(|| String::from("no NVMe scratch disk at 00:10.0 in dev_list"))
}

/// nvmed, started on the scratch disk, and our connection to it.
struct Nvmed {
    pid: u32,
    client: Client,
    device: Cap,
}

fn start_nvmed() -> Result<Nvmed, String> {
    start_nvmed_with("")
}

fn start_nvmed_with(arg: &str) -> Result<Nvmed, String> {
    let sys = chan::system_cap().ok_or("no system token")?;
    let d = nvme()?;
    let device = dev::open(sys, d.address).map_err(|e| format!("dev_open: {e:?}"))?;
    let (pid, client) = zen_std::block::spawn_driver("nvmed", arg, device).map_err(|e| {
        let _ = device.drop_token();
        format!("start nvmed: {e:?}")
    })?;
    Ok(Nvmed {
        pid,
        client,
        device,
    })
}

impl Nvmed {
    /// Another connection, for a child: the end to give it.
    fn connect(&mut self, read_only: bool) -> Result<Cap, String> {
        self.connect_with(if read_only {
            zen_std::block::connect::READ_ONLY
        } else {
            0
        })
    }

    /// A connection with `Connect` bits `bits` (read-only, a partition).
    fn connect_with(&mut self, bits: u32) -> Result<Cap, String> {
        self.client
            .connect(bits)
            .map_err(|e| format!("connect {bits:#x}: {e:?}"))
    }

    /// Kills nvmed and drops our device token (each start opens a new one).
    fn stop(self) {
        let _ = process::kill(self.pid);
        let _ = process::wait(self.pid);
        let _ = self.device.drop_token();
    }
}

/// Byte `i` of block `lba` as the tests write it.
fn pattern(lba: u64, i: usize) -> u8 {
    match i {
        0..=7 => lba.to_le_bytes()[i],
        8..=15 => TAG[i - 8],
        _ => (lba.wrapping_mul(31) as usize + i * 7 + (lba >> 8) as usize) as u8,
    }
}

fn fill(mem: &mem::Shared, lba: u64, blocks: u32, bs: usize) {
    fill_at(mem, lba, lba, blocks, bs)
}

/// Fills `mem` with the blocks of absolute LBA `abs` on, to be written at `lba` of a
/// connection (a partition's LBAs are relative).
fn fill_at(mem: &mem::Shared, _lba: u64, abs: u64, blocks: u32, bs: usize) {
    let lba = abs;
    let bytes: Vec<u8> = (0..blocks as usize * bs)
        .map(|k| pattern(lba + (k / bs) as u64, k % bs))
        .collect();
    mem.write(0, &bytes).expect("fits");
}

fn verify(mem: &mem::Shared, lba: u64, blocks: u32, bs: usize) -> Outcome {
    // `lba`: the absolute LBA the blocks describe.
    let mut got = vec![0u8; blocks as usize * bs];
    mem.read(0, &mut got);
    for (k, b) in got.iter().enumerate() {
        let want = pattern(lba + (k / bs) as u64, k % bs);
        if *b != want {
            return Err(format!(
                "block {} byte {}: {b:#x}, want {want:#x}",
                lba + (k / bs) as u64,
                k % bs
            ));
        }
    }
    Ok(())
}

/// A small generator for the random LBAs (the same each boot).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Writes then reads back `count` random runs in `[base, base + REGION)`, `depth` at
/// a time in flight; the LBAs it wrote.
fn round_trips(
    c: &mut Client,
    base: u64,
    depth: usize,
    count: usize,
    seed: u64,
) -> Result<Vec<u64>, String> {
    let bs = c.geometry.block_size as usize;
    let mut rng = Rng(seed | 1);
    let mut written = Vec::new();
    let mut done = 0;
    while done < count {
        let n = depth.min(count - done);
        let runs: Vec<(u64, u32)> = (0..n)
            .map(|_| {
                let blocks = 1 + (rng.next() % 16) as u32;
                (base + rng.next() % (REGION - 16), blocks)
            })
            .collect();
        for write in [true, false] {
            let mut mems = Vec::new();
            let mut ids = Vec::new();
            for &(lba, blocks) in &runs {
                let m = mem::Shared::new(blocks as usize * bs).map_err(|e| format!("{e:?}"))?;
                let (op, rights) = if write {
                    fill(&m, lba, blocks, bs);
                    (Op::Write, Rights::READ)
                } else {
                    (Op::Read, Rights::READ | Rights::WRITE)
                };
                ids.push(
                    c.submit(op, lba, blocks, Some((&m, rights)))
                        .map_err(|e| format!("submit: {e:?}"))?,
                );
                mems.push(m);
            }
            let mut answered = 0;
            while answered < n {
                let r = c
                    .wait(10_000)
                    .map_err(|e| format!("depth {depth}: {answered} of {n} answered: {e:?}"))?;
                let i = ids
                    .iter()
                    .position(|&id| id == r.id)
                    .ok_or_else(|| format!("reply to unknown id {}", r.id))?;
                check(
                    &format!("request {i} at depth {depth}: {:?}", r.status),
                    r.status == Status::Ok,
                )?;
                ids[i] = 0;
                answered += 1;
            }
            if !write {
                for (m, &(lba, blocks)) in mems.iter().zip(&runs) {
                    verify(m, lba, blocks, bs)?;
                }
            }
        }
        written.extend(runs.iter().flat_map(|&(lba, b)| lba..lba + b as u64));
        done += n;
    }
    Ok(written)
}

pub(crate) fn devices_are_listed() -> Outcome {
    let d = nvme()?;
    check("the NVMe controller has MSI-X vectors", d.msix_vectors > 1)?;
    check(
        "and BAR 0 to map",
        d.bar_size(0).is_some_and(|s| s >= 0x2000),
    )?;
    let sys = chan::system_cap().ok_or("no system token")?;
    expect(
        "dev_open of no device",
        sys_open(sys.addr(), 0xffff_ffff),
        Err(Error::InvalidArgument),
    )?;
    // Any token but the system's is no right to devices.
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let r = sys_open(a.addr(), d.address as u64);
    let _ = (a.drop_token(), b.drop_token());
    expect("dev_open with a channel token", r, Err(Error::Denied))
}

fn sys_open(tok: u64, address: u64) -> Result<u64, Error> {
    sys(Syscall::DevOpen, [tok, address, 0, 0, 0, 0])
}

pub(crate) fn blocks_round_trip() -> Outcome {
    let mut n = start_nvmed()?;
    let g = n.client.geometry;
    let r = (|| {
        check(&format!("block size {}", g.block_size), g.block_size == 512)?;
        check(&format!("{} blocks", g.blocks), g.blocks >= 4 * REGION)?;
        check("a transfer of 16 blocks fits", g.max_blocks >= 16)?;
        let mut all = Vec::new();
        for depth in [1, 4, 16, 32, 64] {
            all.extend(round_trips(&mut n.client, BASE, depth, 64, depth as u64)?);
        }
        // Two more writers, one on each CPU, through connections of their own.
        let mut kids = Vec::new();
        for i in 1..=2u64 {
            let end = n.connect(false)?;
            let pid = chan::spawn_with_cap(
                "usertests",
                &format!("disk-client {i}"),
                end,
                Rights::SEND | Rights::RECV,
            )
            .map_err(|e| format!("spawn: {e:?}"));
            let _ = end.drop_token();
            let pid = pid?;
            kids.push((i, pid));
        }
        for (i, pid) in kids {
            let code = process::wait(pid).map_err(|e| format!("{e:?}"))?;
            check(&format!("client {i} exited with {code}"), code == 0)?;
            // The child wrote a fixed set; write it here too so the count is known.
            all.extend(round_trips(&mut n.client, BASE + i * REGION, 8, 32, i)?);
        }
        let flush = n
            .client
            .submit(Op::Flush, 0, 0, None)
            .map_err(|e| format!("{e:?}"))?;
        expect(
            "flush",
            n.client.answer(flush).map(|s| s as u64),
            Ok(Status::Ok as u64),
        )?;
        all.sort_unstable();
        all.dedup();
        println!("usertests: nvme tagged blocks {}", all.len());
        Ok(())
    })();
    n.stop();
    r
}

/// The `disk-client N` child: its own connection, on CPU N-1.
pub(crate) fn client(i: u64) -> i32 {
    let _ = process::set_cpu((i - 1) as usize);
    let r = Channel::attach(Cap(0))
        .and_then(|ch| Client::new(ch, 10_000))
        .map_err(|e| format!("{e:?}"))
        .and_then(|mut c| round_trips(&mut c, BASE + i * REGION, 8, 32, i));
    match r {
        Ok(_) => 0,
        Err(why) => {
            println!("disk-client {i}: {why}");
            1
        }
    }
}

pub(crate) fn bad_requests_are_refused() -> Outcome {
    let mut n = start_nvmed()?;
    let r = (|| {
        let g = n.client.geometry;
        let bs = g.block_size as usize;
        let m = mem::Shared::new(4096).map_err(|e| format!("{e:?}"))?;
        let rw = Rights::READ | Rights::WRITE;
        let mut ask =
            |op, lba, blocks, data: Option<(&mem::Shared, Rights)>| -> Result<Status, String> {
                let id = n
                    .client
                    .submit(op, lba, blocks, data)
                    .map_err(|e| format!("{e:?}"))?;
                n.client.answer(id).map_err(|e| format!("{e:?}"))
            };
        let cases: [(&str, Status, Status); 7] = [
            (
                "past the end",
                ask(Op::Read, g.blocks - 1, 2, Some((&m, rw)))?,
                Status::OutOfRange,
            ),
            (
                "no blocks",
                ask(Op::Read, 0, 0, Some((&m, rw)))?,
                Status::OutOfRange,
            ),
            (
                "a wrapping range",
                ask(Op::Write, u64::MAX, 2, Some((&m, Rights::READ)))?,
                Status::OutOfRange,
            ),
            (
                "more than the grant",
                ask(Op::Read, 0, (4096 / bs) as u32 + 1, Some((&m, rw)))?,
                Status::BadGrant,
            ),
            (
                "a write with no grant",
                ask(Op::Write, 0, 1, None)?,
                Status::BadGrant,
            ),
            (
                "a read into a read-only grant",
                ask(Op::Read, 0, 1, Some((&m, Rights::READ)))?,
                Status::BadGrant,
            ),
            (
                "too large",
                ask(Op::Read, 0, g.max_blocks + 1, Some((&m, rw)))?,
                Status::TooLarge,
            ),
        ];
        for (what, got, want) in cases {
            check(&format!("{what}: {got:?}, want {want:?}"), got == want)?;
        }
        // Not a request at all, and an unknown operation.
        n.client
            .submit_raw(b"short")
            .map_err(|e| format!("{e:?}"))?;
        let r = n.client.wait(10_000).map_err(|e| format!("{e:?}"))?;
        check(
            &format!("a short message: {:?}", r.status),
            r.status == Status::BadRequest,
        )?;
        let mut bad = zen_std::block::Request {
            id: 99,
            op: 42,
            lba: 0,
            blocks: 1,
        }
        .to_bytes();
        n.client.submit_raw(&bad).map_err(|e| format!("{e:?}"))?;
        let r = n.client.wait(10_000).map_err(|e| format!("{e:?}"))?;
        check(
            &format!("op 42: {:?}", r.status),
            r.status == Status::BadRequest && r.id == 99,
        )?;
        // Connect from a client connection is not the starter's to give.
        bad[8] = Op::Connect as u8;
        let _ = &mut bad;
        // A read-only connection cannot write.
        let ro = n.connect(true)?;
        let ch = Channel::attach(ro).map_err(|e| format!("{e:?}"));
        let _ = ro.drop_token();
        let mut c = Client::new(ch?, 10_000).map_err(|e| format!("{e:?}"))?;
        let s = c.write(0, 1, &m).map_err(|e| format!("{e:?}"))?;
        check(
            &format!("a write on a read-only connection: {s:?}"),
            s == Status::ReadOnly,
        )?;
        let s = c.read(0, 1, &m).map_err(|e| format!("{e:?}"))?;
        check(&format!("a read on it: {s:?}"), s == Status::Ok)?;
        let id = c
            .submit(Op::Connect, 0, 0, None)
            .map_err(|e| format!("{e:?}"))?;
        let s = c.answer(id).map_err(|e| format!("{e:?}"))?;
        check(
            &format!("connect from a client: {s:?}"),
            s == Status::ReadOnly || s == Status::BadRequest,
        )?;
        // Still serving after all that.
        let s = n.client.read(0, 1, &m).map_err(|e| format!("{e:?}"))?;
        check(&format!("a good read after: {s:?}"), s == Status::Ok)
    })();
    n.stop();
    r
}

pub(crate) fn drivers_get_only_their_device() -> Outcome {
    let mut n = start_nvmed()?;
    let r = (|| {
        let tok = n.device.addr();
        let call = |c, a, b| sys(c, [tok, a, b, 0, 0, 0]);
        // nvmed holds the controller: its other token holders get nothing of it.
        expect(
            "dev_map while nvmed drives it",
            call(Syscall::DevMap, 0, 0),
            Err(Error::Busy),
        )?;
        expect(
            "dma_alloc while nvmed drives it",
            call(Syscall::DmaAlloc, 4096, 0),
            Err(Error::Busy),
        )?;
        expect(
            "irq_bind while nvmed drives it",
            call(Syscall::IrqBind, 1, 0),
            Err(Error::Busy),
        )?;
        expect(
            "dma_addr of nvmed's memory",
            call(Syscall::DmaAddr, 0x1000_0000, 0),
            Err(Error::Busy),
        )?;
        // Not a device token at all, and a made-up one.
        let sys_tok = chan::system_cap().ok_or("no system token")?.addr();
        expect(
            "dev_map with the system token",
            sys(Syscall::DevMap, [sys_tok, 0, 0, 0, 0, 0]),
            Err(Error::Denied),
        )?;
        let mut forged = n.device.token().map_err(|e| format!("{e:?}"))?;
        forged.token.mac[0] ^= 1;
        let b = forged.to_bytes();
        expect(
            "dev_map with a forged token",
            sys(Syscall::DevMap, [b.as_ptr() as u64, 0, 0, 0, 0, 0]),
            Err(Error::Denied),
        )?;
        let mut irq = forged;
        irq.binding.object_type = zen_abi::cap::ObjectType::Interrupt as u32;
        irq.binding.object = 0x50;
        let b = irq.to_bytes();
        expect(
            "irq_wait on a made-up interrupt",
            sys(Syscall::IrqWait, [b.as_ptr() as u64, 0, 0, 0, 0, 0]),
            Err(Error::Denied),
        )?;
        // A child given nothing cannot use our token's bytes (bound to us).
        let code = run_child(&format!(
            "disk-steal {}",
            hex(&n.device.token().map_err(|e| format!("{e:?}"))?.to_bytes())
        ))?;
        check(&format!("the thief child exited {code}"), code == 0)?;
        // BARs that are not memory, or do not exist.
        let d = nvme()?;
        check("BAR 2 is no memory BAR", d.bar_size(2).is_none())?;
        Ok(())
    })();
    let _ = n.client.channel();
    n.stop();
    r
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The `disk-steal HEX` child: presents another process's device token.
pub(crate) fn steal(arg: &str) -> i32 {
    let bytes: Vec<u8> = (0..arg.len() / 2)
        .filter_map(|i| u8::from_str_radix(&arg[2 * i..2 * i + 2], 16).ok())
        .collect();
    let Ok(b) = <[u8; 64]>::try_from(bytes.as_slice()) else {
        return 2;
    };
    let r = sys(Syscall::DevMap, [b.as_ptr() as u64, 0, 0, 0, 0, 0]);
    let d = sys(Syscall::DmaAlloc, [b.as_ptr() as u64, 4096, 0, 0, 0, 0]);
    if r == Err(Error::Denied) && d == Err(Error::Denied) {
        0
    } else {
        println!("disk-steal: dev_map {r:?}, dma_alloc {d:?}");
        1
    }
}

pub(crate) fn killed_driver_restarts() -> Outcome {
    let before = usage_settled()?;
    let mut n = start_nvmed()?;
    let bs = n.client.geometry.block_size as usize;
    // Requests in flight, then the driver dies.
    let mut mems = Vec::new();
    for k in 0..16u64 {
        let m = mem::Shared::new(8 * bs).map_err(|e| format!("{e:?}"))?;
        n.client
            .submit(
                Op::Read,
                BASE + 3 * REGION + k * 8,
                8,
                Some((&m, Rights::READ | Rights::WRITE)),
            )
            .map_err(|e| format!("{e:?}"))?;
        mems.push(m);
    }
    let _ = process::kill(n.pid);
    let _ = process::wait(n.pid);
    let _ = n.device.drop_token();
    // Whatever answers came before the kill, the rest never come: an error, no hang.
    let mut answered = 0;
    let end = loop {
        match n.client.wait(300) {
            Ok(_) => answered += 1,
            Err(e) => break e,
        }
    };
    check(
        &format!("after the kill: {end:?} ({answered} answered)"),
        end == Error::TimedOut && answered <= 16,
    )?;
    drop(mems);
    // The device was released: a new driver gets it, and I/O works again.
    let mut m2 = start_nvmed()?;
    let r = round_trips(&mut m2.client, BASE + 3 * REGION, 4, 8, 77);
    m2.stop();
    let mut lbas = r?;
    lbas.sort_unstable();
    lbas.dedup();
    // A region of its own: xtask adds the counts up.
    println!("usertests: nvme tagged blocks {}", lbas.len());
    // Everything nvmed had comes back: its DMA memory (well over a hundred pages)
    // and its process. What stays is the two channels of ours it served (a channel
    // lives as long as its creator: CHANNEL_PAGES frames each) and their heap blocks,
    // and the page tables our own map area grew by (it only grows upwards).
    let after = usage_settled()?;
    let kept = 2 * zen_abi::ipc::CHANNEL_PAGES as u64 + 4;
    check(
        &format!(
            "free frames {} -> {} (the two channels and our tables keep {kept})",
            before.0, after.0
        ),
        after.0 + kept >= before.0,
    )
}

pub(crate) fn partitions_confine_clients() -> Outcome {
    let mut n = start_nvmed()?;
    let r = (|| {
        let parts = n
            .client
            .partitions()
            .map_err(|e| format!("describe: {e:?}"))?;
        check(&format!("{} partitions", parts.len()), parts.len() == 2)?;
        check(
            "the first is the scratch ESP",
            parts[0].type_guid == zen_std::block::ESP_TYPE && parts[0].name() == "scratch ESP",
        )?;
        // The TagFS root, found by its type.
        let k = parts
            .iter()
            .position(|p| p.type_guid == zen_std::block::ZEN_ROOT_TYPE)
            .ok_or("no TagFS root partition")?;
        check(
            "where xtask put it",
            parts[k].first == ROOT_FIRST && parts[k].blocks == ROOT_BLOCKS,
        )?;
        let end = n.connect_with(zen_std::block::connect::with_partition(k as u32 + 1))?;
        let ch = Channel::attach(end).map_err(|e| format!("{e:?}"));
        let _ = end.drop_token();
        let mut root = Client::new(ch?, 10_000).map_err(|e| format!("open: {e:?}"))?;
        check(
            &format!("the root's client sees {} blocks", root.geometry.blocks),
            root.geometry.blocks == ROOT_BLOCKS,
        )?;
        let bs = root.geometry.block_size as usize;
        let m = mem::Shared::new(8 * bs).map_err(|e| format!("{e:?}"))?;
        // Its block 0 is the disk's ROOT_FIRST.
        fill_at(&m, 0, ROOT_FIRST, 8, bs);
        expect(
            "write at its block 0",
            root.write(0, 8, &m).map(|s| s as u64),
            Ok(Status::Ok as u64),
        )?;
        let back = mem::Shared::new(8 * bs).map_err(|e| format!("{e:?}"))?;
        expect(
            "read it through the whole disk",
            n.client.read(ROOT_FIRST, 8, &back).map(|s| s as u64),
            Ok(Status::Ok as u64),
        )?;
        verify(&back, ROOT_FIRST, 8, bs)?;
        // Nothing outside it: the last block is its last.
        expect(
            "past its end",
            root.read(ROOT_BLOCKS - 1, 2, &back).map(|s| s as u64),
            Ok(Status::OutOfRange as u64),
        )?;
        expect(
            "a write past its end",
            root.write(ROOT_BLOCKS, 1, &m).map(|s| s as u64),
            Ok(Status::OutOfRange as u64),
        )?;
        expect(
            "its last block",
            root.read(ROOT_BLOCKS - 1, 1, &back).map(|s| s as u64),
            Ok(Status::Ok as u64),
        )?;
        // A read-only connection to it reads and cannot write.
        let ro = n.connect_with(
            zen_std::block::connect::with_partition(k as u32 + 1)
                | zen_std::block::connect::READ_ONLY,
        )?;
        let ch = Channel::attach(ro).map_err(|e| format!("{e:?}"));
        let _ = ro.drop_token();
        let mut roc = Client::new(ch?, 10_000).map_err(|e| format!("open: {e:?}"))?;
        check(
            "it says read-only",
            roc.geometry.features & zen_std::block::features_read_only() != 0,
        )?;
        expect(
            "read-only write",
            roc.write(0, 1, &m).map(|s| s as u64),
            Ok(Status::ReadOnly as u64),
        )?;
        expect(
            "read-only read",
            roc.read(0, 8, &back).map(|s| s as u64),
            Ok(Status::Ok as u64),
        )?;
        verify(&back, ROOT_FIRST, 8, bs)?;
        // A partition that does not exist.
        let r = n.connect_with(zen_std::block::connect::with_partition(9));
        check(&format!("partition 9: {r:?}"), r.is_err())?;
        println!("usertests: nvme tagged blocks 8");
        Ok(())
    })();
    n.stop();
    r
}

pub(crate) fn stray_dma_is_stopped() -> Outcome {
    let d = nvme()?;
    check(
        "the scratch disk is confined by the IOMMU (xtask's VMs have one)",
        d.flags & zen_abi::device::flags::CONFINED != 0,
    )?;
    let faults = || {
        mem::edges()
            .map(|e| {
                e.iter()
                    .filter(|r| r.kind == 11 && r.detail == (SCRATCH as u16))
                    .count()
            })
            .unwrap_or(0)
    };
    let before = faults();
    let mut n = start_nvmed_with("stray-dma")?;
    let r = (|| {
        let bs = n.client.geometry.block_size as usize;
        let m = mem::Shared::new(bs).map_err(|e| format!("{e:?}"))?;
        fill(&m, BASE, 1, bs);
        // The device is told to read page 0: the IOMMU stops it. (QEMU's NVMe model
        // completes the command anyway, with what it got instead of page 0, so the
        // status says nothing here; the fault record does.)
        let s = n.client.write(BASE, 1, &m).map_err(|e| format!("{e:?}"))?;
        check(
            &format!("a write from outside its memory: {s:?}"),
            s == Status::DeviceError || s == Status::Ok,
        )?;
        time::sleep_ms(10);
        let after = faults();
        check(
            &format!("IOMMU faults for 00:10.0: {before} before, {after} after"),
            after > before,
        )?;
        // Its own memory still works, and the kernel carries on.
        let s = n.client.read(BASE, 1, &m).map_err(|e| format!("{e:?}"))?;
        check(
            &format!("a read into its own grant: {s:?}"),
            s == Status::Ok,
        )
    })();
    n.stop();
    r
}

pub(crate) fn lost_commands_are_aborted_then_reset() -> Outcome {
    let mut n = start_nvmed_with("lose-reads")?;
    let r = (|| {
        let bs = n.client.geometry.block_size as usize;
        let m = mem::Shared::new(bs).map_err(|e| format!("{e:?}"))?;
        let start = time::uptime_ms();
        // A read the controller never sees: aborted after 2 s, the controller reset
        // after 2 s more, and the client told.
        let id = n
            .client
            .submit(Op::Read, BASE, 1, Some((&m, Rights::READ | Rights::WRITE)))
            .map_err(|e| format!("{e:?}"))?;
        let r = n
            .client
            .wait(15_000)
            .map_err(|e| format!("no answer to a lost read: {e:?}"))?;
        let took = time::uptime_ms() - start;
        check(
            &format!("the lost read: {:?} after {took} ms", r.status),
            r.id == id && r.status == Status::TimedOut,
        )?;
        check(&format!("abort, then reset: {took} ms"), took >= 3_500)?;
        // The controller works after the reset (a block of zeroes: untagged, so the
        // host's count of tagged blocks stays the other tests').
        m.write(0, &vec![0u8; bs]).map_err(|e| format!("{e:?}"))?;
        let s = n
            .client
            .write(BASE + 3 * REGION + REGION - 1, 1, &m)
            .map_err(|e| format!("{e:?}"))?;
        check(&format!("a write after the reset: {s:?}"), s == Status::Ok)
    })();
    n.stop();
    r
}

pub(crate) fn hostile_clients_cost_only_themselves() -> Outcome {
    let mut n = start_nvmed()?;
    let r = (|| {
        let bs = n.client.geometry.block_size as usize;
        // A client that asks and never reads its answers: its ring of replies fills,
        // and nvmed goes on serving the others.
        let greedy = n.connect(false)?;
        let mut g = Channel::attach(greedy).map_err(|e| format!("{e:?}"));
        let _ = greedy.drop_token();
        let g = g.as_mut().map_err(|e| e.clone())?;
        let open = zen_std::block::Request {
            id: 1,
            op: Op::Open as u8,
            lba: 0,
            blocks: 0,
        }
        .to_bytes();
        for _ in 0..40 {
            if g.try_send(&open) != Ok(true) {
                break;
            }
        }
        let m = mem::Shared::new(bs).map_err(|e| format!("{e:?}"))?;
        let s = n
            .client
            .read(BASE, 1, &m)
            .map_err(|e| format!("a read while a client does not read: {e:?}"))?;
        check(
            &format!("a read beside the greedy client: {s:?}"),
            s == Status::Ok,
        )?;
        // Grants on requests that use none are given back, not left in the kernel.
        let before = usage_settled()?;
        for k in 0..20u64 {
            let m = mem::Shared::new(64 << 10).map_err(|e| format!("{e:?}"))?;
            let bad = zen_std::block::Request {
                id: 100 + k,
                op: 42,
                lba: 0,
                blocks: 1,
            };
            n.client
                .channel()
                .send_grant(&m, Rights::READ, &bad.to_bytes())
                .map_err(|e| format!("{e:?}"))?;
            let r = n.client.wait(10_000).map_err(|e| format!("{e:?}"))?;
            check(
                &format!("op 42 with a grant: {:?}", r.status),
                r.status == Status::BadRequest,
            )?;
        }
        usage_back(before, "20 refused requests with 64 KiB grants")?;
        // Clients come and go: their connections' slots are reused (nvmed takes 12).
        for i in 0..14 {
            let end = n
                .connect(false)
                .map_err(|e| format!("connection {i}: {e}"))?;
            let pid =
                chan::spawn_with_cap("usertests", "disk-open", end, Rights::SEND | Rights::RECV);
            let _ = end.drop_token();
            let pid = pid.map_err(|e| format!("{e:?}"))?;
            let code = process::wait(pid).map_err(|e| format!("{e:?}"))?;
            check(&format!("short client {i} exited {code}"), code == 0)?;
        }
        Ok(())
    })();
    n.stop();
    r
}

/// The `disk-open` child: opens its connection and exits.
pub(crate) fn open_and_exit() -> i32 {
    match Channel::attach(Cap(0)).and_then(|ch| Client::new(ch, 10_000)) {
        Ok(_) => 0,
        Err(e) => {
            println!("disk-open: {e:?}");
            1
        }
    }
}

/// A driver's reach is bounded where the kernel hands it out: at most
/// `MAX_VECTORS` (16) interrupt vectors per device, and with the IOMMU its
/// device addresses are slots of its own window (from 4 GiB, contiguous for one
/// DMA range), never the physical addresses of its frames.
pub(crate) fn a_driver_gets_bounded_vectors_and_its_own_window() -> Outcome {
    let sys = chan::system_cap().ok_or("no system token")?;
    let d = nvme()?;
    let device = dev::open(sys, d.address).map_err(|e| format!("dev_open: {e:?}"))?;
    let r = (|| {
        let (a, b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
        let pid = chan::spawn_with_cap("usertests", "disk-vectors", b, Rights::SEND | Rights::RECV)
            .map_err(|e| format!("spawn: {e:?}"));
        let _ = b.drop_token();
        let mut ch = Channel::attach(a).map_err(|e| format!("attach: {e:?}"))?;
        let _ = a.drop_token();
        let pid = pid?;
        zen_std::boot::give(&mut ch, "device", device, Rights::DEVICE_ALL)
            .and_then(|()| zen_std::boot::end(&mut ch))
            .map_err(|e| format!("give the device: {e:?}"))?;
        let code = process::wait(pid).map_err(|e| format!("wait: {e:?}"))?;
        check(
            &format!("the child bound {code} vectors (100 and up: it failed before)"),
            code == 16,
        )
    })();
    let _ = device.drop_token();
    r
}

/// The `disk-vectors` child: drives the scratch disk's controller (stopped first)
/// just far enough to see its device addresses, then binds vectors until refused;
/// exits with how many it got.
pub(crate) fn bind_vectors() -> i32 {
    let Ok(given) = zen_std::boot::receive(5000) else {
        return 100;
    };
    let Some(&cap) = given.devices.first() else {
        return 101;
    };
    let d = dev::Device::new(cap);
    // CC.EN off: whatever the last driver queued stops before bus mastering is on.
    let Ok(regs) = d.map(0) else { return 102 };
    regs.write32(0x14, 0);
    let Ok(m) = d.dma(8192) else { return 103 };
    let (a0, a1) = (m.device_addr(0), m.device_addr(4096));
    if a0 < 1 << 32 || a1 != a0 + 4096 {
        println!("disk-vectors: device addresses {a0:#x} {a1:#x}");
        return 104;
    }
    let mut held = Vec::new();
    for v in 0..64u16 {
        match d.interrupt(v, 0) {
            Ok(i) => held.push(i),
            Err(Error::NoMemory) => return held.len() as i32,
            Err(e) => {
                println!("disk-vectors: vector {v}: {e:?}");
                return 105;
            }
        }
    }
    106
}
