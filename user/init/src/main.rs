//! init: the first process. Starts the shell (or the program named by its argument)
//! and starts it again if it ends, so the console always has a shell.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use zen_abi::cap::Rights;
use zen_std::chan;
use zen_std::prelude::*;
use zen_std::process;

zen_std::main!(main);

fn main() -> i32 {
    let arg = process::arg();
    let program = if arg.is_empty() {
        "shell"
    } else {
        arg.as_str()
    };
    loop {
        // The shell may power the machine off (POWER, not GRANT: it cannot pass it on).
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
