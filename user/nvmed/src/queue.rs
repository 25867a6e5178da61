//! One NVMe queue pair: a submission ring the driver writes and a completion ring the
//! controller writes, in DMA memory, with their doorbells.
//!
//! Entries are written as 8 atomic words; the tail doorbell is rung once per batch
//! ([`Queue::ring`]), the head doorbell once per batch of completions. Completions are
//! recognised by their phase bit, which flips at each wrap.

use zen_nvme::{Cap, Command, Completion};
use zen_std::dev::{Dma, Mmio};
use zen_std::Result;

pub struct Queue {
    pub entries: u16,
    sq: Dma,
    cq: Dma,
    sq_tail: u16,
    /// Tail as last written to the doorbell.
    rung: u16,
    cq_head: u16,
    phase: bool,
    sq_doorbell: usize,
    cq_doorbell: usize,
    /// Commands submitted and not yet completed.
    pub in_flight: u16,
}

impl Queue {
    pub fn new(dev: &zen_std::dev::Device, cap: &Cap, qid: u16, entries: u16) -> Result<Queue> {
        Ok(Queue {
            entries,
            sq: dev.dma(entries as usize * Command::SIZE)?,
            cq: dev.dma(entries as usize * Completion::SIZE)?,
            sq_tail: 0,
            rung: 0,
            cq_head: 0,
            phase: true,
            sq_doorbell: cap.sq_doorbell(qid),
            cq_doorbell: cap.cq_doorbell(qid),
            in_flight: 0,
        })
    }
    pub fn sq_addr(&self) -> u64 {
        self.sq.device_addr(0)
    }
    pub fn cq_addr(&self) -> u64 {
        self.cq.device_addr(0)
    }
    /// Empties the queue (after a controller reset: the controller forgot it too).
    pub fn clear(&mut self) {
        self.sq.zero(0, self.sq.len());
        self.cq.zero(0, self.cq.len());
        self.sq_tail = 0;
        self.rung = 0;
        self.cq_head = 0;
        self.phase = true;
        self.in_flight = 0;
    }

    /// Room for another command (one slot stays empty: a full ring would look empty).
    pub fn has_room(&self) -> bool {
        self.in_flight + 1 < self.entries
    }
    /// Writes `cmd` at the tail; the doorbell waits for [`ring`](Self::ring).
    pub fn push(&mut self, cmd: &Command) {
        let at = self.sq_tail as usize * Command::SIZE;
        for (i, w) in cmd.to_words().iter().enumerate() {
            self.sq.write64(at + 8 * i, *w);
        }
        self.sq_tail = (self.sq_tail + 1) % self.entries;
        self.in_flight += 1;
    }
    /// Tells the controller about every command pushed since the last ring.
    pub fn ring(&mut self, regs: &Mmio) {
        if self.rung != self.sq_tail {
            regs.write32(self.sq_doorbell, self.sq_tail as u32);
            self.rung = self.sq_tail;
        }
    }
    /// The next completion, if the controller has written one.
    pub fn pop(&mut self) -> Option<Completion> {
        let at = self.cq_head as usize * Completion::SIZE;
        let c = Completion::parse(self.cq.read64(at), self.cq.read64(at + 8));
        if c.phase != self.phase {
            return None;
        }
        self.cq_head += 1;
        if self.cq_head == self.entries {
            self.cq_head = 0;
            self.phase = !self.phase;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        Some(c)
    }
    /// Tells the controller the completions taken so far are consumed.
    pub fn release(&mut self, regs: &Mmio) {
        regs.write32(self.cq_doorbell, self.cq_head as u32);
    }
}
