//! The disk's partitions: nvmed reads the GPT through zen-gpt before it serves
//! (refused with its reason when invalid: then there are none), and `Describe`
//! tells each.

use crate::Driver;
use zen_block::{Geometry, PartInfo, Reply, Request, Status};
use zen_nvme::Command;
use zen_std::prelude::*;
use zen_std::Error;

impl Driver {
    /// Reads `blocks` blocks at `lba` before serving (queue 1, nothing else in
    /// flight), waiting for the completion.
    fn read_sync(&mut self, lba: u64, blocks: u32) -> Result<Vec<u8>, &'static str> {
        let bs = self.geometry.block_size as usize;
        let bytes = blocks as usize * bs;
        if bytes > 64 << 10 || lba + blocks as u64 > self.geometry.blocks {
            return Err("outside the disk");
        }
        let buf = self.ctrl.dev.dma(bytes).map_err(|_| "no DMA memory")?;
        let mut list = [0u64; 512];
        let (prp1, mut prp2, n) =
            zen_nvme::prps(bytes as u64, 0, |i| buf.device_addr(i * 4096), &mut list)
                .ok_or("too large")?;
        if n > 0 {
            for (i, e) in list[..n].iter().enumerate() {
                self.prp_lists[0].write64(8 * i, *e);
            }
            prp2 = self.prp_lists[0].device_addr(0);
        }
        let (q, irq) = &mut self.ctrl.io[0];
        q.push(&Command::rw(false, 0, 1, lba, blocks, (prp1, prp2)));
        q.ring(&self.ctrl.regs);
        loop {
            if let Some(c) = q.pop() {
                q.release(&self.ctrl.regs);
                if !c.ok() {
                    return Err("the read failed");
                }
                let mut out = vec![0u8; bytes];
                buf.read(0, &mut out);
                return Ok(out);
            }
            if irq.wait(self.ctrl.cap.timeout_ms) == Err(Error::TimedOut) {
                return Err("the read timed out");
            }
        }
    }

    /// The disk's GPT, checked (zen-gpt), or why not.
    pub(crate) fn read_gpt(&mut self) -> Result<Vec<zen_gpt::Entry>, &'static str> {
        let bs = self.geometry.block_size as u64;
        let head = self.read_sync(1, 1)?;
        let h =
            zen_gpt::Header::parse(&head, 1, self.geometry.blocks, bs).map_err(|e| e.as_str())?;
        let blocks = h.array_bytes().div_ceil(bs) as u32;
        let array = self.read_sync(h.entries_lba, blocks)?;
        h.entries(&array).map_err(|e| e.as_str())
    }

    /// The partition `req.lba`: a reply and its `PartInfo`.
    pub(crate) fn describe(&mut self, conn: usize, req: &Request) {
        let Some(e) = usize::try_from(req.lba)
            .ok()
            .and_then(|i| self.parts.get(i))
        else {
            return self.reply(conn, req.id, Status::OutOfRange);
        };
        let mut name = [0u8; 24];
        let text: String = char::decode_utf16(e.name_units())
            .map(|c| c.unwrap_or('?'))
            .collect();
        // Cut at a character boundary, so the name stays UTF-8.
        let n = (0..=text.len().min(24))
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        name[..n].copy_from_slice(&text.as_bytes()[..n]);
        let info = PartInfo {
            first: e.first_lba,
            blocks: e.blocks(),
            type_guid: e.type_guid,
            name,
        };
        let mut msg = [0u8; Reply::SIZE + PartInfo::SIZE];
        msg[..Reply::SIZE].copy_from_slice(
            &Reply {
                id: req.id,
                status: Status::Ok,
                geometry: Geometry::default(),
            }
            .to_bytes(),
        );
        msg[Reply::SIZE..].copy_from_slice(&info.to_bytes());
        self.conns[conn].send(&msg);
    }
}
