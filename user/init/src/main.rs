//! init: the first process. Starts the services `system.toml` declares, in order
//! (the table is compiled in by build.rs): a driver service once per device of its
//! class, holding that device's token; a service with `system` rights gets the
//! system token with those; one with `disks` gets a read-only block connection to
//! each instance of that driver; a store server (`root`) a read-write connection
//! confined to the first TagFS root partition on that driver's disks; one with
//! `store` a connection to that store. Each service is watched by a thread of its own and
//! started again when it ends, if it is declared `restart` (not when it dies at once
//! five times in a row: a crash loop is reported and left).
//!
//! Capabilities go over a bootstrap channel (zen-std `boot`). init keeps each
//! driver's first connection, through which it asks for the clients' connections.
//!
//! With an argument (`arg=` on the kernel command line) init runs that program
//! instead, as its only service, restarted when it ends (the old behaviour).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use zen_abi::cap::Rights;
use zen_std::block::Client;
use zen_std::chan::{self, Channel};
use zen_std::prelude::*;
use zen_std::tagfs::Store;
use zen_std::{boot, dev, process, thread, time};

zen_std::main!(main);

/// One declared service (see lib/sysdecl).
pub struct Service {
    pub name: &'static str,
    pub program: &'static str,
    /// PCI (class, subclass) of the devices it drives, one instance each.
    pub devices: Option<(u8, u8)>,
    /// Rights of the system token it gets (0: none).
    pub system: u64,
    /// The driver service whose disks it reads.
    pub disks: Option<&'static str>,
    /// A store server: the driver whose TagFS root partition it serves.
    pub root: Option<&'static str>,
    /// The store service it uses.
    pub store: Option<&'static str>,
    pub restart: bool,
}

include!(concat!(env!("OUT_DIR"), "/system.rs"));

/// Each running driver instance's first connection: (service name, device, client).
static DRIVERS: spin::Mutex<Vec<(&'static str, u32, Client)>> = spin::Mutex::new(Vec::new());
/// Each running store server's first connection: (service name, connection).
static STORES: spin::Mutex<Vec<(&'static str, Store)>> = spin::Mutex::new(Vec::new());

fn main() -> i32 {
    let arg = process::arg();
    if !arg.is_empty() {
        return run_one(&arg);
    }
    let mut watchers = Vec::new();
    for svc in SERVICES {
        let instances: Vec<Option<u32>> = match svc.devices {
            Some((class, sub)) => dev::list()
                .unwrap_or_default()
                .iter()
                .filter(|d| (d.class, d.subclass) == (class, sub))
                .map(|d| Some(d.address))
                .collect(),
            None => vec![None],
        };
        if instances.is_empty() {
            println!("init: {}: no device for it", svc.name);
        }
        for device in instances {
            // The first start here, in order (a client needs its driver's connection);
            // the watcher restarts it.
            let pid = match start(svc, device) {
                Ok(pid) => pid,
                Err(why) => {
                    println!("init: cannot start {}: {why}", svc.name);
                    continue;
                }
            };
            match thread::spawn(move || watch(svc, device, pid)) {
                Ok(h) => watchers.push(h),
                Err(e) => println!("init: no watcher for {}: {}", svc.name, e.as_str()),
            }
        }
    }
    for w in watchers {
        let _ = w.join();
    }
    println!("init: every service has ended");
    0
}

/// Waits for the instance at `pid` and starts it again while it should run.
fn watch(svc: &'static Service, device: Option<u32>, mut pid: u32) -> u64 {
    let mut quick_deaths = 0;
    loop {
        let started = time::uptime_ms();
        let code = process::wait(pid).unwrap_or(u64::MAX);
        if svc.root.is_some() {
            STORES.lock().retain(|(n, _)| *n != svc.name);
        }
        if let Some(d) = device {
            // Its connection went with it.
            DRIVERS
                .lock()
                .retain(|(n, dev, _)| !(*n == svc.name && *dev == d));
        }
        if !svc.restart {
            return code;
        }
        quick_deaths = if time::uptime_ms() - started < 1000 {
            quick_deaths + 1
        } else {
            0
        };
        if quick_deaths >= 5 {
            println!(
                "init: {} keeps dying (code {code:#x}); not starting it again",
                svc.name
            );
            return code;
        }
        if code != 0 {
            println!(
                "init: {} ended with code {code:#x}, starting it again",
                svc.name
            );
        }
        pid = loop {
            match start(svc, device) {
                Ok(p) => break p,
                Err(why) => {
                    println!("init: cannot start {}: {why}", svc.name);
                    time::sleep_ms(1000);
                }
            }
        };
    }
}

/// Starts one instance of `svc` (for `device`, if a driver) and gives it what the
/// declaration says.
fn start(svc: &'static Service, device: Option<u32>) -> Result<u32, String> {
    let e = |what: &'static str| move |x: zen_std::Error| format!("{what}: {}", x.as_str());
    let (a, b) = chan::create().map_err(e("channel"))?;
    let pid = chan::spawn_with_cap(svc.program, "", b, Rights::SEND | Rights::RECV);
    let _ = b.drop_token();
    let pid = match pid {
        Ok(p) => p,
        Err(x) => {
            let _ = a.drop_token();
            return Err(e("spawn")(x));
        }
    };
    let attached = Channel::attach(a).map_err(e("attach"));
    let _ = a.drop_token();
    let r = (|| {
        let mut ch = attached?;
        if let Some(addr) = device {
            let sys = chan::system_cap().ok_or("init has no system token")?;
            let tok = dev::open(sys, addr).map_err(e("dev_open"))?;
            let r = boot::give(&mut ch, "device", tok, Rights::DEVICE_ALL);
            let _ = tok.drop_token();
            r.map_err(e("give the device"))?;
        }
        if svc.system != 0 {
            let sys = chan::system_cap().ok_or("init has no system token")?;
            boot::give(
                &mut ch,
                "system",
                sys,
                Rights::from_bits_truncate(svc.system),
            )
            .map_err(e("give the system token"))?;
        }
        if let Some(driver) = svc.disks {
            let mut drivers = DRIVERS.lock();
            for (_, _, c) in drivers.iter_mut().filter(|(n, _, _)| *n == driver) {
                let end = c
                    .connect(zen_std::block::connect::READ_ONLY)
                    .map_err(e("connect to a disk"))?;
                let r = boot::give(&mut ch, "disk", end, Rights::SEND | Rights::RECV);
                let _ = end.drop_token();
                r.map_err(e("give a disk"))?;
            }
        }
        if let Some(driver) = svc.root {
            match root_partition(driver) {
                Ok(end) => {
                    let r = boot::give(&mut ch, "disk", end, Rights::SEND | Rights::RECV);
                    let _ = end.drop_token();
                    r.map_err(e("give the root partition"))?;
                }
                // It starts anyway and says the store is unavailable.
                Err(why) => println!("init: {}: {why}", svc.name),
            }
        }
        if let Some(name) = svc.store {
            let mut stores = STORES.lock();
            match stores.iter_mut().find(|(n, _)| *n == name) {
                Some((_, s)) => {
                    let end = s
                        .share(zen_std::tagfs::rights::ALL, "")
                        .map_err(|x| format!("connect to the store: {}", x.as_str()))?;
                    let r = boot::give(&mut ch, "store", end, Rights::SEND | Rights::RECV);
                    let _ = end.drop_token();
                    r.map_err(e("give the store"))?;
                }
                None => println!("init: {}: the store {name} is not running", svc.name),
            }
        }
        boot::end(&mut ch).map_err(e("end"))?;
        if svc.root.is_some() {
            // A store server: its first connection is ours.
            let s = Store::adopt(ch).map_err(|x| format!("store connection: {}", x.as_str()))?;
            STORES.lock().push((svc.name, s));
            return Ok::<(), String>(());
        }
        if let Some(d) = device {
            // A driver: its first connection is ours.
            let c = Client::new(ch, 10_000).map_err(e("open the driver's connection"))?;
            DRIVERS.lock().push((svc.name, d, c));
        }
        Ok::<(), String>(())
    })();
    if let Err(why) = r {
        let _ = process::kill(pid);
        let _ = process::wait(pid);
        return Err(why);
    }
    Ok(pid)
}

/// A read-write connection confined to the first TagFS root partition on the disks
/// of `driver`'s instances.
fn root_partition(driver: &str) -> Result<chan::Cap, String> {
    let mut drivers = DRIVERS.lock();
    for (_, _, c) in drivers.iter_mut().filter(|(n, _, _)| *n == driver) {
        let parts = c
            .partitions()
            .map_err(|x| format!("partitions: {}", x.as_str()))?;
        if let Some(i) = parts
            .iter()
            .position(|p| p.type_guid == zen_std::block::ZEN_ROOT_TYPE)
        {
            return c
                .connect(zen_std::block::connect::with_partition(i as u32 + 1))
                .map_err(|x| format!("connect to the root partition: {}", x.as_str()));
        }
    }
    Err(format!("no TagFS root partition on the disks of {driver}"))
}

/// `arg=PROGRAM`: that program alone, with the system token's POWER, restarted when
/// it ends.
fn run_one(program: &str) -> i32 {
    loop {
        let started = match chan::system_cap() {
            Some(cap) => chan::spawn_with_cap(program, "", cap, Rights::POWER),
            None => process::spawn(program, ""),
        };
        let pid = match started {
            Ok(pid) => pid,
            Err(e) => {
                eprintln!("init: cannot start {program}: {}", e.as_str());
                return 1;
            }
        };
        match process::wait(pid) {
            Ok(0) => {}
            Ok(code) => eprintln!("init: {program} ended with code {code:#x}, starting it again"),
            Err(e) => eprintln!("init: wait for {program}: {}", e.as_str()),
        }
    }
}
