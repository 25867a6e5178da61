//! The kernel's EDGE_REGISTRY: rare events (faults, denials, overflows, allocation
//! failures, spurious interrupts) recorded lock-free from any CPU, read as a whole.
//! Look here when something odd happened; tests assert it stays empty where it should.

use zen_edge::{EdgeKind, EdgeRegistry};

/// Records kept; later ones are counted as dropped.
pub const EDGE_CAPACITY: usize = 256;

pub static EDGE_REGISTRY: EdgeRegistry<EDGE_CAPACITY> = EdgeRegistry::new();

/// Records an event on the calling CPU, stamped with the low 32 bits of the tick
/// counter.
pub fn report(kind: EdgeKind, payload: u32) {
    report_detail(kind, 0, payload);
}

/// Records an event with a 16-bit detail (a vector, an error code).
pub fn report_detail(kind: EdgeKind, detail: u16, payload: u32) {
    let cpu = crate::arch::percpu::current().id() as u8;
    EDGE_REGISTRY.report(kind, cpu, detail, payload, crate::time::ticks() as u32);
}
