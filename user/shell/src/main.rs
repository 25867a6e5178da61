//! The shell: a line editor on the serial console (history, arrow keys, tab completion
//! of commands and program names) and the commands below.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use zen_abi::cap::{ObjectType, Rights};
use zen_lineedit::{Editor, Event};
use zen_std::block::Client;
use zen_std::prelude::*;
use zen_std::tagfs::Store;
use zen_std::{chan, console, dev, mem, process, time};

mod audit;
mod store;

zen_std::main!(main);

/// (name, arguments, what it does)
const COMMANDS: &[(&str, &str, &str)] = &[
    ("help", "", "list the commands"),
    ("ps", "", "list processes"),
    ("mem", "", "physical memory and kernel heap"),
    ("edges", "", "the kernel's EDGE_REGISTRY of rare events"),
    (
        "audit",
        "[N | export [NONCE]]",
        "the kernel's audit log, checked, its newest N entries; or in hex, signed with NONCE",
    ),
    ("caps", "", "this shell's capability tokens"),
    (
        "devices",
        "",
        "PCI functions: ids, class, the driver that holds each",
    ),
    (
        "disks",
        "",
        "the disks this shell was given, and their partitions",
    ),
    (
        "channel",
        "",
        "create a channel (its two end tokens appear in caps)",
    ),
    ("echo", "WORDS...", "print the words"),
    (
        "run",
        "PROGRAM [ARG] [&]",
        "start a program of the boot archive; wait unless &",
    ),
    ("programs", "", "list the programs of the boot archive"),
    ("kill", "PID", "end a process started from this shell"),
    ("uptime", "", "time since boot"),
    ("shutdown", "", "power off"),
];

fn main() -> i32 {
    // What init gave us (system.toml): the system token, read-only disks. Started
    // any other way (`run shell`), there is no bootstrap channel and nothing given.
    let (mut disks, store): (Vec<Client>, Option<Store>) = match zen_std::boot::receive(5_000) {
        Ok(g) => (
            g.disks
                .iter()
                .filter_map(|&c| {
                    let ch = chan::Channel::attach(c).ok();
                    let _ = c.drop_token();
                    Client::new(ch?, 5_000).ok()
                })
                .collect(),
            g.store.and_then(|c| match Store::connect(c) {
                Ok(s) => Some(s),
                Err(e) => {
                    println!("shell: the store is unavailable: {}", e.as_str());
                    None
                }
            }),
        ),
        Err(_) => (Vec::new(), None),
    };
    // The completion closure reads tag names from the store between commands.
    let store = core::cell::RefCell::new(store);
    println!("Zen OS shell. Type `help` for the commands.");
    let programs = process::programs().unwrap_or_default();
    let complete = |word: &str, first: bool| -> Vec<String> {
        if first {
            COMMANDS
                .iter()
                .chain(store::COMMANDS)
                .map(|c| String::from(c.0))
                .filter(|c| c.starts_with(word))
                .collect()
        } else {
            // Program names, and the store's tags.
            let mut words: Vec<String> = programs
                .iter()
                .filter(|p| p.starts_with(word))
                .cloned()
                .collect();
            if let Some(s) = store.borrow_mut().as_mut() {
                words.extend(s.tags(word).unwrap_or_default().into_iter().map(|(t, _)| t));
            }
            words
        }
    };
    let mut ed = Editor::new("zen> ");
    print!("{}", ed.prompt());
    let mut buf = [0u8; 64];
    let mut out = Vec::new();
    loop {
        let n = match console::read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("shell: console: {}", e.as_str());
                return 1;
            }
        };
        for &b in &buf[..n] {
            let ev = ed.feed(b, &complete, &mut out);
            let _ = console::write(&out);
            out.clear();
            match ev {
                Event::Line(line) => {
                    let line = line.trim();
                    let mut w = line.split_whitespace();
                    let cmd = w.next().unwrap_or("");
                    let rest: Vec<&str> = w.collect();
                    let mut st = store.borrow_mut();
                    if !store::execute(&mut st, cmd, &rest) {
                        execute(line, &mut disks, &mut st);
                    }
                    print!("{}", ed.prompt());
                }
                Event::Cancelled => print!("{}", ed.prompt()),
                Event::Pending => {}
            }
        }
    }
}

/// Starts `name`: from the boot archive, or else the store's `program:NAME`.
fn start(name: &str, arg: &str, store: &mut Option<Store>) -> Result<u32, String> {
    match process::spawn(name, arg) {
        Err(zen_std::Error::NoSuchProgram) if store.is_some() => {
            store.as_mut().map_or(Err(String::new()), |s| {
                s.spawn(name, arg, None).map_err(|e| match e {
                    zen_std::tagfs::StoreError::Refused(zen_std::tagfs::Status::NotFound, _) => {
                        String::from("no such program, in the boot archive or the store")
                    }
                    e => format!("from the store: {}", e.as_str()),
                })
            })
        }
        other => other.map_err(|e| String::from(e.as_str())),
    }
}

fn execute(line: &str, disks: &mut [Client], store: &mut Option<Store>) {
    let mut words = line.split_whitespace();
    let Some(cmd) = words.next() else { return };
    let rest: Vec<&str> = words.collect();
    match cmd {
        "help" => {
            for (name, args, what) in COMMANDS.iter().chain(store::COMMANDS) {
                println!("  {:<9} {:<14} {}", name, args, what);
            }
        }
        "ps" => match process::list() {
            Ok(list) => {
                println!("  PID PARENT STATE    THREADS PAGES KMEM/QUOTA KiB NAME");
                for p in list {
                    let state = if p.state == 0 { "running" } else { "exited" };
                    let kmem = format!("{}/{}", p.kmem.div_ceil(1024), p.kmem_limit / 1024);
                    println!(
                        "{:>5} {:>6} {:<8} {:>7} {:>5} {:>14} {}",
                        p.pid,
                        p.parent,
                        state,
                        p.threads,
                        p.pages,
                        kmem,
                        p.name()
                    );
                }
            }
            Err(e) => println!("ps: {}", e.as_str()),
        },
        "mem" => match mem::info() {
            Ok(m) => {
                println!(
                    "memory: {} KiB free of {} KiB",
                    m.free_frames * 4,
                    m.total_frames * 4
                );
                println!(
                    "kernel heap: {} bytes in {} allocations",
                    m.heap_bytes_used, m.heap_allocations
                );
            }
            Err(e) => println!("mem: {}", e.as_str()),
        },
        "edges" => match mem::edges() {
            Ok(list) if list.is_empty() => println!("no edge events"),
            Ok(list) => {
                for e in list {
                    println!(
                        "{:<20} cpu {} detail {:#06x} payload {:#010x} at tick {}",
                        mem::edge_kind_name(e.kind),
                        e.cpu,
                        e.detail,
                        e.payload,
                        e.stamp
                    );
                }
            }
            Err(e) => println!("edges: {}", e.as_str()),
        },
        "audit" => audit::show(&rest),
        "caps" => caps(),
        "devices" => devices(),
        "disks" => list_disks(disks),
        "channel" => match chan::create() {
            Ok((a, b)) => println!("channel created: end tokens in slots {} and {}", a.0, b.0),
            Err(e) => println!("channel: {}", e.as_str()),
        },
        "echo" => println!("{}", rest.join(" ")),
        "programs" => {
            match process::programs() {
                Ok(p) => println!("{}", p.join("  ")),
                Err(e) => println!("programs: {}", e.as_str()),
            }
            if let Some(s) = store.as_mut() {
                match s.programs() {
                    Ok(p) if !p.is_empty() => println!("in the store: {}", p.join("  ")),
                    Ok(_) => {}
                    Err(e) => println!("programs in the store: {}", e.as_str()),
                }
            }
        }
        "run" => {
            let Some(name) = rest.first() else {
                println!("usage: run PROGRAM [ARG]");
                return;
            };
            let background = rest.last() == Some(&"&");
            let args = if background {
                &rest[1..rest.len() - 1]
            } else {
                &rest[1..]
            };
            let arg = args.join(" ");
            if background {
                match start(name, &arg, store) {
                    Ok(pid) => println!("started {name} as process {pid}"),
                    Err(e) => println!("run: {name}: {e}"),
                }
                return;
            }
            match start(name, &arg, store) {
                Ok(pid) => match process::wait(pid) {
                    Ok(0) => {}
                    Ok(process::FAULT_EXIT_CODE) => println!("{name}: killed by a fault"),
                    Ok(process::KILLED_EXIT_CODE) => println!("{name}: killed"),
                    Ok(code) => println!("{name}: exit code {code}"),
                    Err(e) => println!("run: wait: {}", e.as_str()),
                },
                Err(e) => println!("run: {name}: {e}"),
            }
        }
        "kill" => match rest.first().and_then(|p| p.parse::<u32>().ok()) {
            // Killed children are reaped here (a background `run` has no other waiter).
            Some(pid) => match process::kill(pid).and_then(|()| process::wait(pid)) {
                Ok(code) => println!("killed {pid} (exit code {code:#x})"),
                Err(e) => println!("kill: {pid}: {}", e.as_str()),
            },
            None => println!("usage: kill PID"),
        },
        "uptime" => {
            let ms = time::uptime_ms();
            println!("up {}.{:03} s", ms / 1000, ms % 1000);
        }
        "shutdown" => {
            println!("shutting down");
            let e = process::shutdown(0);
            println!(
                "shutdown: {} (this shell holds no system token)",
                e.as_str()
            );
        }
        _ => println!("{cmd}: unknown command (try `help`)"),
    }
}

/// The token page: one line per live token. A channel object is `id << 1 | end`.
fn caps() {
    let tokens = chan::caps();
    if tokens.is_empty() {
        println!("no capabilities");
        return;
    }
    println!("SLOT TYPE      OBJECT      GEN MAC        RIGHTS");
    for (slot, t) in tokens {
        let b = t.binding;
        let ty = ObjectType::try_from(b.object_type);
        let object = match ty {
            Ok(ObjectType::Channel) => {
                format!(
                    "{} end {}",
                    b.object >> 1,
                    ["A", "B"][(b.object & 1) as usize]
                )
            }
            _ => format!("{}", b.object),
        };
        let mac: String = t.token.mac[..4]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        println!(
            "{:>4} {:<9} {:<10} {:>4} {}.. {}",
            slot.0,
            ty.map_or("unknown", |t| t.name()),
            object,
            b.generation,
            mac,
            Rights::from_bits_truncate(t.token.rights)
        );
    }
}

/// `devices`: every PCI function the kernel found.
fn devices() {
    let list = match dev::list() {
        Ok(l) => l,
        Err(e) => return println!("devices: {}", e.as_str()),
    };
    println!("ADDRESS      VENDOR:DEV  CLASS                 MSI-X  IOMMU     DRIVER");
    for d in list {
        let a = d.address;
        let driver = if d.holder == 0 {
            String::from("-")
        } else {
            let name = process::list().ok().and_then(|l| {
                l.into_iter()
                    .find(|p| p.pid == d.holder)
                    .map(|p| String::from(p.name()))
            });
            format!("{} ({})", d.holder, name.unwrap_or_default())
        };
        println!(
            "{:04x}:{:02x}:{:02x}.{}  {:04x}:{:04x}   {:<21} {:>5}  {:<9} {}",
            a >> 16,
            (a >> 8) & 0xff,
            (a >> 3) & 31,
            a & 7,
            d.vendor,
            d.device,
            zen_pci::class_name(d.class, d.subclass),
            d.msix_vectors,
            if d.flags & zen_abi::device::flags::CONFINED != 0 {
                "confined"
            } else {
                "-"
            },
            driver
        );
    }
}

/// `disks`: each disk given to this shell, with its partitions.
fn list_disks(disks: &mut [Client]) {
    if disks.is_empty() {
        return println!("no disks (none was given to this shell)");
    }
    for (i, c) in disks.iter_mut().enumerate() {
        let g = c.geometry;
        let mib = |blocks: u64| blocks * g.block_size as u64 / (1 << 20);
        println!(
            "disk {i}: {} blocks of {} bytes ({} MiB), largest transfer {} KiB{}",
            g.blocks,
            g.block_size,
            mib(g.blocks),
            g.max_blocks as u64 * g.block_size as u64 / 1024,
            if g.features & zen_std::block::features_read_only() != 0 {
                ", read-only"
            } else {
                ""
            }
        );
        match c.partitions() {
            Ok(parts) if parts.is_empty() => println!("  no partitions"),
            Ok(parts) => {
                for (k, p) in parts.iter().enumerate() {
                    println!(
                        "  {}  {:<11} {:<16} first {:>8}  {:>6} MiB",
                        k + 1,
                        zen_std::block::type_name(&p.type_guid),
                        p.name(),
                        p.first,
                        mib(p.blocks)
                    );
                }
            }
            Err(e) => println!("  partitions: {}", e.as_str()),
        }
    }
}
