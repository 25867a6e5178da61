//! A model PCI function for the host tests: a configuration space whose BAR registers
//! behave as hardware's do (the low bits that encode the kind are read-only, the bits
//! below the size read back as zero after writing ones) and that counts writes.

use core::cell::{Cell, RefCell};

pub struct Function {
    space: RefCell<[u32; 1024]>,
    /// Per BAR register: the writable bits (0 for a register that is not a BAR).
    masks: [u32; 6],
    pub writes: Cell<usize>,
}

impl Function {
    pub fn absent() -> Self {
        let f = Self::new(0xffff, 0xffff);
        f.space.borrow_mut().fill(0xffff_ffff);
        f
    }
    pub fn new(vendor: u16, device: u16) -> Self {
        let f = Self {
            space: RefCell::new([0; 1024]),
            masks: [0; 6],
            writes: Cell::new(0),
        };
        f.set(crate::reg::ID, vendor as u32 | (device as u32) << 16);
        f
    }
    pub fn class(self, class: u8, sub: u8, prog: u8) -> Self {
        self.set(
            crate::reg::CLASS,
            (class as u32) << 24 | (sub as u32) << 16 | (prog as u32) << 8,
        );
        self
    }
    pub fn multifunction(self) -> Self {
        let h = self.get(crate::reg::HEADER);
        self.set(crate::reg::HEADER, h | 0x80 << 16);
        self
    }
    pub fn kind(self, kind: u8) -> Self {
        let h = self.get(crate::reg::HEADER);
        self.set(crate::reg::HEADER, h & !(0x7f << 16) | (kind as u32) << 16);
        self
    }
    pub fn set(&self, off: u16, v: u32) {
        self.space.borrow_mut()[off as usize / 4] = v;
    }
    pub fn get(&self, off: u16) -> u32 {
        self.space.borrow()[off as usize / 4]
    }
    /// A 32-bit memory BAR `i` of `size` bytes at `base` (flags: bit 3 prefetchable).
    pub fn mem32(mut self, i: usize, base: u32, size: u32, prefetch: bool) -> Self {
        self.masks[i] = !(size - 1) & !0xf;
        self.set(bar(i), base | if prefetch { 8 } else { 0 });
        self
    }
    /// A 64-bit memory BAR in registers `i` and `i + 1`.
    pub fn mem64(mut self, i: usize, base: u64, size: u64) -> Self {
        let mask = !(size - 1);
        self.masks[i] = (mask as u32) & !0xf;
        self.set(bar(i), base as u32 | 0b100);
        if i + 1 < 6 {
            self.masks[i + 1] = (mask >> 32) as u32;
            self.set(bar(i + 1), (base >> 32) as u32);
        }
        self
    }
    /// An I/O BAR of `size` ports.
    pub fn io(mut self, i: usize, base: u32, size: u32) -> Self {
        self.masks[i] = !(size - 1) & !0x3;
        self.set(bar(i), base | 1);
        self
    }
    /// Puts capability `id` at `off` pointing to `next`, with `body` in the same word.
    pub fn cap(self, off: u16, id: u8, next: u8, body: u16) -> Self {
        self.set(off, id as u32 | (next as u32) << 8 | (body as u32) << 16);
        let cmd = self.get(crate::reg::COMMAND);
        self.set(crate::reg::COMMAND, cmd | crate::STATUS_CAPS);
        if self.get(crate::reg::CAP_PTR) == 0 {
            self.set(crate::reg::CAP_PTR, off as u32);
        }
        self
    }
}

fn bar(i: usize) -> u16 {
    crate::reg::BAR0 + 4 * i as u16
}

impl crate::Config for Function {
    fn read32(&self, off: u16) -> u32 {
        self.space.borrow()[(off as usize & 0xffc) / 4]
    }
    fn write32(&self, off: u16, v: u32) {
        self.writes.set(self.writes.get() + 1);
        let i = (off as usize & 0xffc) / 4;
        let mut s = self.space.borrow_mut();
        if (4..10).contains(&i) {
            let mask = self.masks[i - 4];
            s[i] = (s[i] & !mask) | (v & mask);
        } else if i == 1 {
            // The status half is read-only here (its error bits clear on writing ones).
            s[i] = (s[i] & 0xffff_0000) | (v & 0xffff);
        } else {
            s[i] = v;
        }
    }
}
