//! The writer of xtask's power-cut test (`qemu::powercut`), booted as init with
//! `arg=powercut` again and again on one scratch disk, and killed at random moments.
//!
//! Each boot starts nvmed and tagfsd on the scratch disk's root partition (formatted
//! on the first boot), resumes after the last object it finds complete, and loops:
//! batches of objects (tagged `powercut` and `seq:N`, content [`content`]`(N)`, then
//! tagged `done`), a sync after each batch, then `powercut: acked N` on the console:
//! objects 0..N are durable. xtask checks, between boots, that every acknowledged
//! object is on the disk file as written.
//!
//! The store's log replays in order, so what survives a cut is a prefix of what was
//! done: at most one object past the complete ones (created, not yet `done`), which
//! the next boot deletes before it goes on.

use crate::*;
use zen_std::tagfs::{rights, Store, StoreError};

const BATCH: u64 = 6;

/// The content of object `n`: its number repeated, 100 to 20,099 bytes.
pub fn content(n: u64) -> Vec<u8> {
    let len = 100 + (n * 997 % 20_000) as usize;
    format!("object {n} ").bytes().cycle().take(len).collect()
}

pub(crate) fn writer() -> i32 {
    let (_nvmed, _device, mut drv) = match store::start_disk(false) {
        Ok(x) => x,
        Err(e) => {
            println!("powercut: {e}");
            return 1;
        }
    };
    let (_tagfsd, mut admin) = match store::start_tagfsd(&mut drv) {
        Ok(x) => x,
        Err(e) => {
            println!("powercut: {e}");
            return 1;
        }
    };
    let r = (|| -> Result<(), StoreError> {
        let cap = admin.share(rights::ALL, "")?;
        let mut s = Store::connect(cap)?;
        for id in s.query("powercut AND NOT done")? {
            s.delete(id)?;
        }
        let mut n = s.query("powercut AND done")?.len() as u64;
        println!("powercut: resume at {n}");
        loop {
            for _ in 0..BATCH {
                let id = s.create(&["powercut", &format!("seq:{n}")])?;
                s.write(id, 0, &content(n))?;
                s.add_tag(id, "done")?;
                n += 1;
            }
            s.sync()?;
            println!("powercut: acked {n}");
        }
    })();
    if let Err(e) = r {
        println!("powercut: store: {e:?}");
    }
    1
}
