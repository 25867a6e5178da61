//! When the controller does not answer: a command past its deadline is aborted; past
//! it again, the controller is reset and everything in flight fails with `TimedOut`;
//! a reset that fails ends nvmed (init starts it again).

use crate::{Driver, COMMAND_TIMEOUT_MS};
use zen_block::Status;
use zen_nvme::Command;
use zen_std::prelude::*;
use zen_std::process;

impl Driver {
    /// Commands past their deadline: aborted first; past it again, the controller is
    /// reset and everything in flight fails (a hung device never hangs a client).
    pub(crate) fn check_timeouts(&mut self) {
        let now = zen_std::time::uptime_ms();
        let mut reset = false;
        for qi in 0..self.pending.len() {
            for cid in 0..self.pending[qi].len() {
                let Some(p) = self.pending[qi][cid].as_mut() else {
                    continue;
                };
                if p.deadline > now {
                    continue;
                }
                if p.aborted {
                    reset = true;
                    continue;
                }
                p.aborted = true;
                p.deadline = now + COMMAND_TIMEOUT_MS;
                let sq = qi as u16 + 1;
                // The answer does not matter: the command completes (aborted or
                // not) before its new deadline, or the reset comes.
                let _ = self.ctrl.admin(|a| Command::abort(a, sq, cid as u16));
            }
        }
        if reset {
            self.reset();
        }
    }

    /// Resets the controller: every command in flight gets `TimedOut` (its grant
    /// dropped), the queues start empty again.
    fn reset(&mut self) {
        println!("nvmed: a command did not complete; resetting the controller");
        // The commands' pages stay mapped (and reachable by the device) until the
        // reset has stopped it: a command still running must not write into a page
        // that has gone back to its owner, or been freed.
        let mut failed: Vec<crate::Pending> = Vec::new();
        for q in &mut self.pending {
            failed.extend(q.iter_mut().filter_map(|slot| slot.take()));
        }
        if let Err(e) = self.ctrl.reset() {
            // A controller that will not come back: nvmed ends (the kernel stops the
            // device and takes back its memory; init starts nvmed again, which
            // resets it from scratch), after telling everyone.
            println!("nvmed: reset failed: {}; exiting", e.as_str());
            for p in &failed {
                self.reply_to(p.conn, p.gen, p.id, Status::TimedOut);
            }
            process::exit(1);
        }
        for p in failed {
            let (conn, gen, id, pages) = (p.conn, p.gen, p.id, p.pages);
            drop(p);
            self.release_share(conn, gen, pages);
            self.reply_to(conn, gen, id, Status::TimedOut);
        }
    }
}
