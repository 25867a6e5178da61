//! zen-vtd: Intel VT-d (Virtualization Technology for Directed I/O, rev. 3.x) DMA
//! remapping, as data: the ACPI DMAR table, the remapping unit's registers, the root,
//! context and second-level page-table entries, and fault records. The kernel's
//! `arch::x86_64::vtd` does the memory and register accesses; everything here is
//! arithmetic checked on the host.
//!
//! The DMAR table comes from firmware: every structure's length is checked against
//! the table's before it is read, a unit whose registers are not page aligned is
//! refused, and at most [`MAX_UNITS`] units and [`MAX_RESERVED`] reserved regions are
//! kept.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub const MAX_UNITS: usize = 8;
// (A DMAR with more is refused as a whole: see `parse_dmar`.)
pub const MAX_RESERVED: usize = 16;

/// One remapping unit (DRHD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    pub registers: u64,
    pub segment: u16,
    /// Covers every function of its segment not claimed by another unit's scope.
    pub include_all: bool,
    /// Endpoints in its scope (bus, devfn), at most 8 (a real catch-all has none).
    pub scope: [(u8, u8); 8],
    pub scope_len: usize,
}

/// Memory a device must keep reaching (an RMRR: firmware's USB or graphics buffers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    pub bus: u8,
    pub devfn: u8,
    pub base: u64,
    /// Inclusive.
    pub limit: u64,
}

/// What the DMAR table says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dmar {
    /// Host address width (bits of the largest DMA address), HAW + 1.
    pub address_bits: u8,
    pub units: [Option<Unit>; MAX_UNITS],
    pub reserved: [Option<Reserved>; MAX_RESERVED],
}

/// Parses the DMAR table (`table`: all of it, header included).
pub fn parse_dmar(table: &[u8]) -> Result<Dmar, &'static str> {
    if table.len() < 48 || &table[0..4] != b"DMAR" {
        return Err("not a DMAR table");
    }
    let len = u32::from_le_bytes(table[4..8].try_into().unwrap_or([0; 4])) as usize;
    if len < 48 || len > table.len() {
        return Err("DMAR length wrong");
    }
    let t = &table[..len];
    let mut d = Dmar {
        address_bits: t[36].saturating_add(1),
        units: [None; MAX_UNITS],
        reserved: [None; MAX_RESERVED],
    };
    let (mut nu, mut nr) = (0, 0);
    let mut at = 48;
    while at + 4 <= len {
        let kind = u16::from_le_bytes([t[at], t[at + 1]]);
        let slen = u16::from_le_bytes([t[at + 2], t[at + 3]]) as usize;
        if slen < 4 || at + slen > len {
            return Err("DMAR structure runs past the table");
        }
        let s = &t[at..at + slen];
        match kind {
            0 if slen >= 16 => {
                let registers = u64::from_le_bytes(s[8..16].try_into().unwrap_or([0; 8]));
                if registers == 0 || registers % 4096 != 0 {
                    return Err("remapping unit registers not page aligned");
                }
                let mut u = Unit {
                    registers,
                    segment: u16::from_le_bytes([s[6], s[7]]),
                    include_all: s[4] & 1 != 0,
                    scope: [(0, 0); 8],
                    scope_len: 0,
                };
                for (bus, devfn) in scopes(&s[16..]) {
                    if u.scope_len < 8 {
                        u.scope[u.scope_len] = (bus, devfn);
                        u.scope_len += 1;
                    }
                }
                // More units than kept would leave devices behind the rest
                // unconfined while the kernel calls them confined: refuse.
                if nu == MAX_UNITS {
                    return Err("more remapping units than the kernel keeps");
                }
                d.units[nu] = Some(u);
                nu += 1;
            }
            1 if slen >= 24 => {
                let base = u64::from_le_bytes(s[8..16].try_into().unwrap_or([0; 8]));
                let limit = u64::from_le_bytes(s[16..24].try_into().unwrap_or([0; 8]));
                if limit < base {
                    return Err("reserved region ends before it starts");
                }
                for (bus, devfn) in scopes(&s[24..]) {
                    if nr < MAX_RESERVED {
                        d.reserved[nr] = Some(Reserved {
                            bus,
                            devfn,
                            base,
                            limit,
                        });
                        nr += 1;
                    }
                }
            }
            _ => {}
        }
        at += slen;
    }
    Ok(d)
}

/// The endpoints (type 1) of a device-scope list whose path has one hop: (bus,
/// devfn). Scopes through bridges are skipped (they would need the bridge's bus).
fn scopes(mut b: &[u8]) -> impl Iterator<Item = (u8, u8)> + '_ {
    core::iter::from_fn(move || loop {
        if b.len() < 6 {
            return None;
        }
        let (kind, len) = (b[0], b[1] as usize);
        if len < 6 || len > b.len() {
            return None;
        }
        let (s, rest) = b.split_at(len);
        b = rest;
        if kind == 1 && len == 8 {
            return Some((s[5], (s[6] & 31) << 3 | (s[7] & 7)));
        }
    })
}

impl Dmar {
    /// The unit that translates the function at (`segment`, `bus`, `devfn`).
    pub fn unit_for(&self, segment: u16, bus: u8, devfn: u8) -> Option<usize> {
        let units = self
            .units
            .iter()
            .enumerate()
            .filter_map(|(i, u)| Some((i, (*u)?)));
        let mut all = None;
        for (i, u) in units {
            if u.segment != segment {
                continue;
            }
            if u.scope[..u.scope_len].contains(&(bus, devfn)) {
                return Some(i);
            }
            if u.include_all {
                all = Some(i);
            }
        }
        all
    }
}

/// Register offsets.
pub mod reg {
    pub const VER: usize = 0x00;
    pub const CAP: usize = 0x08;
    pub const ECAP: usize = 0x10;
    pub const GCMD: usize = 0x18;
    pub const GSTS: usize = 0x1c;
    pub const RTADDR: usize = 0x20;
    pub const CCMD: usize = 0x28;
    pub const FSTS: usize = 0x34;
    pub const FECTL: usize = 0x38;
    pub const FEDATA: usize = 0x3c;
    pub const FEADDR: usize = 0x40;
    pub const FEUADDR: usize = 0x44;
}

/// GCMD/GSTS bits.
pub const GCMD_TE: u32 = 1 << 31;
pub const GCMD_SRTP: u32 = 1 << 30;
/// Queued invalidation on.
pub const GCMD_QIE: u32 = 1 << 26;
/// Interrupt remapping on.
pub const GCMD_IRE: u32 = 1 << 25;
/// Set the interrupt remapping table pointer (one-shot).
pub const GCMD_SIRTP: u32 = 1 << 24;
/// Compatibility-format interrupts allowed (kept clear: blocked).
pub const GCMD_CFI: u32 = 1 << 23;

/// Queued-invalidation and interrupt-remapping registers.
pub mod qreg {
    pub const IQH: usize = 0x80;
    pub const IQT: usize = 0x88;
    pub const IQA: usize = 0x90;
    pub const IRTA: usize = 0xb8;
}

/// Invalidation queue descriptors (VT-d 6.5.2), as two 64-bit words.
pub mod desc {
    /// Every context-cache entry.
    pub const fn context_global() -> [u64; 2] {
        [0x1 | 1 << 4, 0]
    }
    /// Every IOTLB entry, draining reads and writes first.
    pub const fn iotlb_global() -> [u64; 2] {
        [0x2 | 1 << 4 | 1 << 6 | 1 << 7, 0]
    }
    /// The interrupt entry cache: all of it, or entry `index` only.
    pub const fn iec(index: Option<u16>) -> [u64; 2] {
        match index {
            None => [0x4, 0],
            Some(i) => [0x4 | 1 << 4 | (i as u64) << 32, 0],
        }
    }
    /// Waits for every descriptor before it, then writes `data` to `status` (a
    /// 4-byte aligned physical address).
    pub const fn wait(status: u64, data: u32) -> [u64; 2] {
        [0x5 | 1 << 5 | 1 << 6 | (data as u64) << 32, status & !3]
    }
}

/// An interrupt remapping table entry (VT-d 9.10, remapped format, xAPIC): deliver
/// `vector` to the local APIC `apic_id`, fixed, edge, physical; only requests from
/// `source` (bus << 8 | devfn) may use it.
pub const fn irte(source: u16, apic_id: u8, vector: u8) -> [u64; 2] {
    [
        1 | (vector as u64) << 16 | (apic_id as u64) << 40,
        source as u64 | 1 << 18,
    ]
}

/// The MSI address and data that name remapping table entry `handle`
/// (remappable format, no subhandle).
pub const fn remapped_msi(handle: u16) -> (u64, u32) {
    let h = handle as u64;
    (
        0xfee0_0000 | (h & 0x7fff) << 5 | 1 << 4 | (h >> 15 & 1) << 2,
        0,
    )
}
/// The one-shot command bits, never written back from GSTS.
pub const GCMD_ONE_SHOT: u32 = (1 << 30) | (1 << 29) | (1 << 27) | (1 << 24);
/// CCMD: invalidate the context cache, globally.
pub const CCMD_GLOBAL: u64 = 1 << 63 | 1 << 61;
/// IOTLB register: invalidate, globally, draining reads and writes.
pub const IOTLB_GLOBAL: u64 = 1 << 63 | 1 << 60 | 1 << 49 | 1 << 48;
/// FSTS bits.
pub const FSTS_PFO: u32 = 1;
pub const FSTS_PPF: u32 = 1 << 1;

/// What CAP and ECAP say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Page-table levels to use (3: 39-bit, 4: 48-bit), `None` if neither.
    pub levels: Option<u32>,
    /// Domain ids supported (at least 16).
    pub domains: u32,
    /// Offset and count of the fault recording registers.
    pub fault_offset: usize,
    pub fault_records: usize,
    /// Offset of the IOTLB registers (the invalidate-address one, then IOTLB).
    pub iotlb_offset: usize,
    /// The unit walks tables coherently (else the kernel flushes its cache lines).
    pub coherent: bool,
    /// Caching mode: not-present entries may be cached (every map needs a flush).
    pub caching_mode: bool,
    /// Queued invalidation (ECAP.QI) and interrupt remapping (ECAP.IR).
    pub queued: bool,
    pub remapping: bool,
}

impl Caps {
    pub fn parse(cap: u64, ecap: u64) -> Caps {
        let sagaw = (cap >> 8) & 0x1f;
        let levels = if sagaw & (1 << 2) != 0 {
            Some(4)
        } else if sagaw & (1 << 1) != 0 {
            Some(3)
        } else {
            None
        };
        Caps {
            levels,
            domains: 1 << (4 + 2 * (cap & 7).min(6)),
            fault_offset: ((cap >> 24) & 0x3ff) as usize * 16,
            fault_records: ((cap >> 40) & 0xff) as usize + 1,
            iotlb_offset: ((ecap >> 8) & 0x3ff) as usize * 16,
            coherent: ecap & 1 != 0,
            caching_mode: (cap >> 7) & 1 != 0,
            queued: (ecap >> 1) & 1 != 0,
            remapping: (ecap >> 3) & 1 != 0,
        }
    }
    /// Largest DMA address + 1 the tables reach.
    pub fn reach(&self) -> u64 {
        match self.levels {
            Some(4) => 1 << 48,
            Some(3) => 1 << 39,
            _ => 0,
        }
    }
}

/// A root-table entry (one per bus): present, pointing at the bus's context table.
pub const fn root_entry(context_table: u64) -> [u64; 2] {
    [context_table & !0xfff | 1, 0]
}

/// A context entry (one per device and function): present, translating through the
/// second-level table at `root` with `levels` levels, in domain `domain`.
pub const fn context_entry(root: u64, levels: u32, domain: u16) -> [u64; 2] {
    let aw = if levels == 4 { 2 } else { 1 };
    [root & !0xfff | 1, aw | (domain as u64) << 8]
}

/// Second-level page-table entry bits.
pub const SL_READ: u64 = 1;
pub const SL_WRITE: u64 = 1 << 1;
pub const SL_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// The index into the table at `level` (1: the last) for `iova`.
pub const fn sl_index(iova: u64, level: u32) -> usize {
    ((iova >> (12 + 9 * (level - 1))) & 511) as usize
}

/// A recorded fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The page the device tried to reach.
    pub address: u64,
    /// Requester: bus << 8 | devfn.
    pub source: u16,
    pub reason: u8,
    pub write: bool,
}

/// The fault in one 128-bit fault recording register, if its F bit is set.
pub fn parse_fault(lo: u64, hi: u64) -> Option<Fault> {
    (hi >> 63 == 1).then_some(Fault {
        address: lo & !0xfff,
        source: hi as u16,
        reason: (hi >> 32) as u8,
        // T: 0 for a write request, 1 for a read.
        write: (hi >> 62) & 1 == 0,
    })
}

#[cfg(test)]
mod tests;
