//! Bringing the controller up: reset, the admin queues, identify, and the I/O queue
//! pairs (one per CPU, fewer if the controller gives fewer), each completing on its
//! own MSI-X vector aimed at its CPU.
//!
//! Admin commands run one at a time and are waited for on vector 0 (the admin
//! completion queue's), each with the controller's own timeout from CAP.

use crate::queue::Queue;
use zen_nvme::{reg, Cap, Command, Completion, Controller, Namespace, CSTS_FATAL, CSTS_READY};
use zen_std::dev::{Device, Dma, Interrupt, Mmio};
use zen_std::{time, Error, Result};

/// Entries of each queue (admin and I/O).
pub const QUEUE_ENTRIES: u16 = 64;

pub struct Ctrl {
    pub dev: Device,
    pub regs: Mmio,
    pub cap: Cap,
    admin: Queue,
    admin_irq: Interrupt,
    next_cid: u16,
    pub info: Controller,
    pub ns: Namespace,
    /// I/O queue pairs with their interrupts, queue `i` on CPU `i`.
    pub io: alloc::vec::Vec<(Queue, Interrupt)>,
}

/// Waits until `done(CSTS)` or the controller's timeout passes.
fn wait_status(regs: &Mmio, cap: &Cap, done: impl Fn(u32) -> bool) -> Result<()> {
    let start = time::uptime_ms();
    loop {
        let s = regs.read32(reg::CSTS);
        if done(s) {
            return Ok(());
        }
        if s & CSTS_FATAL != 0 && s != u32::MAX {
            return Err(Error::InvalidArgument);
        }
        if time::uptime_ms() - start > cap.timeout_ms {
            return Err(Error::TimedOut);
        }
        time::sleep_ms(1);
    }
}

impl Ctrl {
    /// Resets and enables the controller behind `dev` and sets up `cpus` I/O queues.
    pub fn start(dev: Device, cpus: usize) -> Result<Ctrl> {
        let regs = dev.map(0)?;
        let cap = Cap::parse(regs.read64(reg::CAP));
        if !cap.nvm || cap.min_page_shift != 12 {
            return Err(Error::InvalidArgument);
        }
        // Reset: whatever firmware left running stops.
        regs.write32(reg::CC, 0);
        wait_status(&regs, &cap, |s| s & CSTS_READY == 0)?;
        let entries = (QUEUE_ENTRIES as u32).min(cap.max_queue_entries) as u16;
        let admin = Queue::new(&dev, &cap, 0, entries)?;
        regs.write32(reg::AQA, (entries as u32 - 1) | (entries as u32 - 1) << 16);
        regs.write64(reg::ASQ, admin.sq_addr());
        regs.write64(reg::ACQ, admin.cq_addr());
        let admin_irq = dev.interrupt(0, 0)?;
        regs.write32(reg::CC, zen_nvme::CC_ENABLE);
        wait_status(&regs, &cap, |s| s & CSTS_READY != 0)?;
        let page = dev.dma(4096)?;
        let mut c = Ctrl {
            dev,
            regs,
            cap,
            admin,
            admin_irq,
            next_cid: 0,
            info: Controller::parse(&[0; 4096], 12),
            ns: Namespace {
                blocks: 0,
                block_shift: 9,
            },
            io: alloc::vec::Vec::new(),
        };
        c.admin(|cid| Command::identify(cid, 1, 0, page.device_addr(0)))?;
        c.info = Controller::parse(&read_page(&page), c.cap.min_page_shift);
        page.zero(0, 4096);
        c.admin(|cid| Command::identify(cid, 0, 1, page.device_addr(0)))?;
        c.ns = Namespace::parse(&read_page(&page)).ok_or(Error::InvalidArgument)?;
        let granted = c.admin(|cid| Command::set_queues(cid, cpus as u16))?;
        let queues = cpus
            .min((granted.result & 0xffff) as usize + 1)
            .min((granted.result >> 16) as usize + 1)
            .max(1);
        for q in 1..=queues as u16 {
            let queue = Queue::new(&c.dev, &c.cap, q, entries)?;
            let irq = c.dev.interrupt(q, (q - 1) as usize)?;
            let (cq, sq) = (queue.cq_addr(), queue.sq_addr());
            c.admin(|cid| Command::create_cq(cid, q, entries as u32, cq, q))?;
            c.admin(|cid| Command::create_sq(cid, q, entries as u32, sq, q))?;
            c.io.push((queue, irq));
        }
        Ok(c)
    }

    /// Resets the controller and sets it up again on the same queue memory and
    /// vectors: everything in flight is forgotten (the caller failed it).
    pub fn reset(&mut self) -> Result<()> {
        self.regs.write32(reg::CC, 0);
        wait_status(&self.regs, &self.cap, |s| s & CSTS_READY == 0)?;
        self.admin.clear();
        let entries = self.admin.entries as u32;
        self.regs
            .write32(reg::AQA, (entries - 1) | (entries - 1) << 16);
        self.regs.write64(reg::ASQ, self.admin.sq_addr());
        self.regs.write64(reg::ACQ, self.admin.cq_addr());
        self.regs.write32(reg::CC, zen_nvme::CC_ENABLE);
        wait_status(&self.regs, &self.cap, |s| s & CSTS_READY != 0)?;
        let n = self.io.len() as u16;
        self.admin(|cid| Command::set_queues(cid, n))?;
        for i in 0..self.io.len() {
            self.io[i].0.clear();
            let q = i as u16 + 1;
            let (cq, sq, e) = (
                self.io[i].0.cq_addr(),
                self.io[i].0.sq_addr(),
                self.io[i].0.entries as u32,
            );
            self.admin(|cid| Command::create_cq(cid, q, e, cq, q))?;
            self.admin(|cid| Command::create_sq(cid, q, e, sq, q))?;
        }
        Ok(())
    }

    /// Runs one admin command and waits for its completion.
    pub fn admin(&mut self, make: impl FnOnce(u16) -> Command) -> Result<Completion> {
        let cid = self.next_cid;
        self.next_cid = self.next_cid.wrapping_add(1);
        self.admin.push(&make(cid));
        self.admin.ring(&self.regs);
        let start = time::uptime_ms();
        loop {
            while let Some(c) = self.admin.pop() {
                self.admin.release(&self.regs);
                if c.cid == cid {
                    return if c.ok() {
                        Ok(c)
                    } else {
                        Err(Error::InvalidArgument)
                    };
                }
            }
            let left = self
                .cap
                .timeout_ms
                .saturating_sub(time::uptime_ms() - start);
            if left == 0 {
                return Err(Error::TimedOut);
            }
            match self.admin_irq.wait(left) {
                Ok(_) | Err(Error::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn read_page(d: &Dma) -> alloc::boxed::Box<[u8; 4096]> {
    let mut b = alloc::boxed::Box::new([0u8; 4096]);
    d.read(0, &mut b[..]);
    b
}
