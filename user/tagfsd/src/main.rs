//! tagfsd: the store. TagFS (lib/tagfs) over a block connection to the TagFS root
//! partition (nvmed confines it there), served to clients over channels in the store
//! protocol (lib/storeproto; zen-std's `tagfs` is the client side).
//!
//! init starts it as `system.toml` declares: the bootstrap channel brings the root
//! partition's connection (a `disk`) and stays init's connection, through which init
//! asks for the clients' ones (`Connect`, with each client's rights). A partition
//! never written (its superblocks all zero) is formatted, and the console says so;
//! one that is neither blank nor TagFS that mounts is refused with the engine's
//! reason, and tagfsd stays up answering `Unavailable`, so its clients can say why.
//!
//! One thread serves every connection in turn, one request at a time, so each call
//! is atomic. The engine copies through one 4 KiB buffer per block (no zero copy yet:
//! see the README's store section).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod disk;
mod ops;
mod serve;

use zen_std::block::Client;
use zen_std::chan::Channel;
use zen_std::prelude::*;
use zen_tagfs::{Config, Fs};

zen_std::main!(main);

fn main() -> i32 {
    let given = match zen_std::boot::receive(10_000) {
        Ok(g) => g,
        Err(e) => {
            println!("tagfsd: no bootstrap: {}", e.as_str());
            return 1;
        }
    };
    let store = match given.disks.first() {
        Some(&cap) => open(cap),
        None => Err(String::from("no root partition was given")),
    };
    let fs = match store {
        Ok(fs) => Some(fs),
        Err(why) => {
            println!("tagfsd: the store is unavailable: {why}");
            None
        }
    };
    serve::Server::new(given.chan, fs).run();
    0
}

/// Mounts the root partition behind `cap`, formatting it if it was never written.
fn open(cap: zen_std::chan::Cap) -> Result<Fs<disk::Disk>, String> {
    let ch = Channel::attach(cap).map_err(|e| format!("attach the disk: {}", e.as_str()))?;
    let _ = cap.drop_token();
    let client = Client::new(ch, 10_000).map_err(|e| format!("open the disk: {}", e.as_str()))?;
    let mut d = disk::Disk::new(client)?;
    let mib = zen_tagfs::BlockDevice::block_count(&d) * 4096 >> 20;
    let blank = disk::blank(&mut d).map_err(|e| format!("{e}"))?;
    let fs = if blank {
        println!("tagfsd: the root partition ({mib} MiB) is empty: formatting it as TagFS");
        Fs::format(d, Config::default()).map_err(|e| format!("format: {e}"))?
    } else {
        Fs::mount(d, Config::default())
            .map_err(|e| format!("the root partition is not a TagFS store, or is damaged: {e}"))?
    };
    let s = fs.stats();
    println!(
        "tagfsd: store ready ({mib} MiB): {} objects, {} tags",
        s.objects, s.tags
    );
    Ok(fs)
}
