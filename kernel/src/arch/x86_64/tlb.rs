//! TLB shootdown: after the kernel removes a mapping from an address space that may be
//! live on another CPU (a revoked channel holder's pages), every other CPU flushes its
//! non-global translations before the caller goes on, so no CPU keeps reaching a page
//! the process no longer maps.
//!
//! A CPU asks by raising each other online CPU's `PENDING` flag and sending it
//! `TLB_VECTOR`; the handler reloads CR3 and lowers the flag; the asker waits until
//! every flag is down. While it waits it serves its own flag too, so two CPUs shooting
//! at each other with interrupts off cannot wait on each other forever.

use core::sync::atomic::{AtomicBool, Ordering};

use super::percpu::{self, MAX_CPUS};

/// Vector of the TLB shootdown IPI.
pub const TLB_VECTOR: u8 = 0x41;

static PENDING: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Flushes this CPU's non-global TLB entries (a CR3 reload; kernel pages are global
/// or shared by every address space, and stay).
fn flush_local() {
    let (frame, flags) = ::x86_64::registers::control::Cr3::read();
    // SAFETY: writing back the current CR3 changes no mapping; it only drops cached
    // translations of this address space.
    unsafe { ::x86_64::registers::control::Cr3::write(frame, flags) };
}

/// Makes every online CPU (this one included) drop cached user translations; returns
/// once all have. Call with no lock held that another CPU might spin on with
/// interrupts off.
pub fn shootdown_all() {
    let me = percpu::current().id();
    for id in 0..MAX_CPUS {
        match percpu::cpu(id) {
            Some(c) if id != me && c.is_online() => {
                PENDING[id].store(true, Ordering::Release);
                super::apic::send_fixed(c.apic_id(), TLB_VECTOR);
            }
            _ => {}
        }
    }
    flush_local();
    for (id, flag) in PENDING.iter().enumerate() {
        if id == me {
            continue;
        }
        while flag.load(Ordering::Acquire) {
            on_ipi();
            core::hint::spin_loop();
        }
    }
}

/// From the IPI handler (and while waiting in `shootdown_all`): flush if asked to.
pub fn on_ipi() {
    let me = percpu::current().id();
    if PENDING[me].swap(false, Ordering::AcqRel) {
        flush_local();
    }
}
