//! zen-nvme: the NVMe 1.4 controller interface as data, for nvmed.
//!
//! Register offsets and fields, the 64-byte submission entry and 16-byte completion
//! entry, the parts of the identify structures a driver needs, and the PRP list that
//! describes a transfer. No hardware access: nvmed reads and writes the bytes, this
//! crate says what they mean, and every parse of what the controller wrote is
//! checked (a controller is a peer that may lie: a block size of 2^40, a queue size
//! of 0, a maximum transfer beyond memory are refused or clamped here).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

/// Controller registers (BAR 0).
pub mod reg {
    pub const CAP: usize = 0x00;
    pub const VS: usize = 0x08;
    pub const INTMS: usize = 0x0c;
    pub const INTMC: usize = 0x10;
    pub const CC: usize = 0x14;
    pub const CSTS: usize = 0x1c;
    pub const AQA: usize = 0x24;
    pub const ASQ: usize = 0x28;
    pub const ACQ: usize = 0x30;
    /// First doorbell.
    pub const DOORBELLS: usize = 0x1000;
}

/// What CAP says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    /// Largest queue, in entries (MQES + 1, at least 2).
    pub max_queue_entries: u32,
    /// Bytes between doorbells (4 << DSTRD).
    pub doorbell_stride: usize,
    /// How long the controller may take to become ready, in ms (TO x 500).
    pub timeout_ms: u64,
    /// Smallest memory page size, log2 (12 + MPSMIN).
    pub min_page_shift: u32,
    /// Whether the NVM command set is supported.
    pub nvm: bool,
}

impl Cap {
    pub fn parse(cap: u64) -> Cap {
        Cap {
            max_queue_entries: ((cap & 0xffff) as u32 + 1).max(2),
            doorbell_stride: 4 << ((cap >> 32) & 0xf),
            timeout_ms: ((cap >> 24) & 0xff).max(1) * 500,
            min_page_shift: 12 + ((cap >> 48) & 0xf) as u32,
            nvm: (cap >> 37) & 1 == 1,
        }
    }
    /// Offset of queue `qid`'s submission tail doorbell.
    pub fn sq_doorbell(&self, qid: u16) -> usize {
        reg::DOORBELLS + (2 * qid as usize) * self.doorbell_stride
    }
    /// Offset of queue `qid`'s completion head doorbell.
    pub fn cq_doorbell(&self, qid: u16) -> usize {
        reg::DOORBELLS + (2 * qid as usize + 1) * self.doorbell_stride
    }
}

/// CC for an enabled controller: NVM command set, 4 KiB pages, round robin,
/// 64-byte submission and 16-byte completion entries.
pub const CC_ENABLE: u32 = 1 | (6 << 16) | (4 << 20);
/// CSTS bits.
pub const CSTS_READY: u32 = 1;
pub const CSTS_FATAL: u32 = 1 << 1;

/// Opcodes.
pub mod op {
    pub const DELETE_SQ: u8 = 0x00;
    pub const CREATE_SQ: u8 = 0x01;
    pub const DELETE_CQ: u8 = 0x04;
    pub const CREATE_CQ: u8 = 0x05;
    pub const IDENTIFY: u8 = 0x06;
    pub const ABORT: u8 = 0x08;
    pub const SET_FEATURES: u8 = 0x09;
    // I/O
    pub const FLUSH: u8 = 0x00;
    pub const WRITE: u8 = 0x01;
    pub const READ: u8 = 0x02;
    pub const WRITE_ZEROES: u8 = 0x08;
    pub const DSM: u8 = 0x09;
}

/// Feature ids.
pub const FEATURE_QUEUES: u32 = 0x07;

/// A submission queue entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Command {
    pub opcode: u8,
    pub cid: u16,
    pub nsid: u32,
    pub prp1: u64,
    pub prp2: u64,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
}

impl Command {
    pub const SIZE: usize = 64;

    /// The 64 bytes as 8 little-endian words.
    pub fn to_words(&self) -> [u64; 8] {
        let mut w = [0u64; 8];
        w[0] = self.opcode as u64 | (self.cid as u64) << 16 | (self.nsid as u64) << 32;
        w[3] = self.prp1;
        w[4] = self.prp2;
        w[5] = self.cdw10 as u64 | (self.cdw11 as u64) << 32;
        w[6] = self.cdw12 as u64 | (self.cdw13 as u64) << 32;
        w
    }

    pub fn identify(cid: u16, cns: u32, nsid: u32, buf: u64) -> Self {
        Self {
            opcode: op::IDENTIFY,
            cid,
            nsid,
            prp1: buf,
            cdw10: cns,
            ..Self::default()
        }
    }
    /// Create I/O completion queue `qid` of `entries` at `addr`, interrupting on
    /// MSI-X vector `vector`.
    pub fn create_cq(cid: u16, qid: u16, entries: u32, addr: u64, vector: u16) -> Self {
        Self {
            opcode: op::CREATE_CQ,
            cid,
            prp1: addr,
            cdw10: qid as u32 | (entries - 1) << 16,
            cdw11: 0b11 | (vector as u32) << 16,
            ..Self::default()
        }
    }
    /// Create I/O submission queue `qid` of `entries` at `addr`, completing on `cq`.
    pub fn create_sq(cid: u16, qid: u16, entries: u32, addr: u64, cq: u16) -> Self {
        Self {
            opcode: op::CREATE_SQ,
            cid,
            prp1: addr,
            cdw10: qid as u32 | (entries - 1) << 16,
            cdw11: 1 | (cq as u32) << 16,
            ..Self::default()
        }
    }
    /// Ask for `n` I/O queue pairs (the answer says how many the controller gives).
    pub fn set_queues(cid: u16, n: u16) -> Self {
        let n = n.max(1) as u32 - 1;
        Self {
            opcode: op::SET_FEATURES,
            cid,
            cdw10: FEATURE_QUEUES,
            cdw11: n | n << 16,
            ..Self::default()
        }
    }
    /// Read or write `blocks` blocks at `lba` of namespace `nsid`.
    pub fn rw(write: bool, cid: u16, nsid: u32, lba: u64, blocks: u32, prp: (u64, u64)) -> Self {
        Self {
            opcode: if write { op::WRITE } else { op::READ },
            cid,
            nsid,
            prp1: prp.0,
            prp2: prp.1,
            cdw10: lba as u32,
            cdw11: (lba >> 32) as u32,
            cdw12: blocks.saturating_sub(1) & 0xffff,
            ..Self::default()
        }
    }
    pub fn abort(cid: u16, sqid: u16, target: u16) -> Self {
        Self {
            opcode: op::ABORT,
            cid,
            cdw10: sqid as u32 | (target as u32) << 16,
            ..Self::default()
        }
    }
}

/// A completion queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub result: u32,
    pub sq_head: u16,
    pub sq_id: u16,
    pub cid: u16,
    pub phase: bool,
    /// Status code type and code (0 is success).
    pub status: u16,
}

impl Completion {
    pub const SIZE: usize = 16;

    pub fn parse(w0: u64, w1: u64) -> Self {
        let dw3 = (w1 >> 32) as u32;
        let dw2 = w1 as u32;
        Self {
            result: w0 as u32,
            sq_head: dw2 as u16,
            sq_id: (dw2 >> 16) as u16,
            cid: dw3 as u16,
            phase: (dw3 >> 16) & 1 == 1,
            status: ((dw3 >> 17) & 0x7ff) as u16,
        }
    }
    pub fn ok(&self) -> bool {
        self.status == 0
    }
}

/// What the identify-controller page tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Controller {
    pub serial: [u8; 20],
    pub model: [u8; 40],
    /// Largest transfer, in bytes (clamped to 2 MiB; MDTS 0 means no limit).
    pub max_transfer: u64,
    pub namespaces: u32,
    pub write_zeroes: bool,
    pub deallocate: bool,
    pub volatile_cache: bool,
}

/// Most one transfer moves here, whatever the controller allows: one PRP list page
/// (512 entries of 4 KiB).
pub const MAX_TRANSFER: u64 = 2 << 20;

impl Controller {
    /// Parses the 4096-byte page; `min_page_shift` is CAP's.
    pub fn parse(page: &[u8; 4096], min_page_shift: u32) -> Self {
        let mut serial = [0; 20];
        serial.copy_from_slice(&page[4..24]);
        let mut model = [0; 40];
        model.copy_from_slice(&page[24..64]);
        let mdts = page[77] as u32;
        let max_transfer = if mdts == 0 || mdts + min_page_shift >= 40 {
            MAX_TRANSFER
        } else {
            (1u64 << (mdts + min_page_shift)).min(MAX_TRANSFER)
        };
        let oncs = u16::from_le_bytes([page[520], page[521]]);
        Self {
            serial,
            model,
            max_transfer,
            namespaces: u32::from_le_bytes([page[516], page[517], page[518], page[519]]),
            write_zeroes: oncs & (1 << 3) != 0,
            deallocate: oncs & (1 << 2) != 0,
            volatile_cache: page[525] & 1 != 0,
        }
    }
}

/// What the identify-namespace page tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub blocks: u64,
    /// log2 of the block size, 9..=16 (refused otherwise).
    pub block_shift: u32,
}

impl Namespace {
    /// `None` for an inactive namespace (size 0) or a format this driver does not
    /// serve (metadata per block, a block size outside 512 B ..= 64 KiB).
    pub fn parse(page: &[u8; 4096]) -> Option<Self> {
        let blocks = u64::from_le_bytes(page[0..8].try_into().ok()?);
        let nlbaf = page[25] as usize;
        let format = (page[26] & 0xf) as usize;
        if blocks == 0 || format > nlbaf {
            return None;
        }
        let f = 128 + 4 * format;
        let lbaf = u32::from_le_bytes(page[f..f + 4].try_into().ok()?);
        let metadata = lbaf & 0xffff;
        let shift = (lbaf >> 16) & 0xff;
        (metadata == 0 && (9..=16).contains(&shift)).then_some(Self {
            blocks,
            block_shift: shift,
        })
    }
}

/// The PRP entries for `len` bytes of data whose pages' device addresses `page(i)`
/// gives (data starts at offset `first_offset` in page 0): `(prp1, prp2)`, and the
/// entries of the PRP list (when more than two pages; `prp2` must then be pointed at
/// the list by the caller, who writes `list` there). `None` when `len` is 0 or needs
/// more entries than one list page holds.
pub fn prps(
    len: u64,
    first_offset: u64,
    page: impl Fn(usize) -> u64,
    list: &mut [u64; 512],
) -> Option<(u64, u64, usize)> {
    if len == 0 || first_offset >= 4096 {
        return None;
    }
    let pages = (first_offset + len).div_ceil(4096) as usize;
    let prp1 = page(0) + first_offset;
    match pages {
        1 => Some((prp1, 0, 0)),
        2 => Some((prp1, page(1), 0)),
        n if n - 1 <= 512 => {
            for (i, e) in list.iter_mut().take(n - 1).enumerate() {
                *e = page(i + 1);
            }
            Some((prp1, 0, n - 1))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
