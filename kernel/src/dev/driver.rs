//! What a driver does with its device token: map the device's registers, give the
//! device memory (DMA), and take its interrupts; and what happens when the driver
//! ends ([`release`]).
//!
//! The first process to use a device's token for any of these holds the device
//! (`claim`) until it exits; another process presenting a token for it gets `Busy`.
//! Holding turns the function's memory decoding and bus mastering on.
//!
//! DMA memory is frames the device layer owns (here, per device), mapped into the
//! driver as shared pages: the driver's exit unmaps them with its address space but
//! cannot free them, because the device may still be writing there. [`release`]
//! first stops the device (bus mastering off, every vector masked), and only then
//! frees the frames and the interrupt bindings.
//!
//! A little over 500 lines: every call a driver makes on its device shares `State`
//! and `claim`, and each undoes its own partial failures in place.

use alloc::sync::Arc;
use alloc::vec::Vec;
use zen_abi::cap::Rights;
use zen_abi::syscall::{Error, Syscall};
use zen_pci::{command, msix_control, Config, MSIX_ENTRY};

use super::{check, devices, Device};
use crate::arch::paging::Flags;
use crate::arch::phys::SharedFrame;
use crate::cap::Presented;
use crate::ipc::Party;

/// Most DMA pages one device may have (16 MiB): a driver cannot take all memory
/// through its device, beyond its own map limit.
const MAX_DMA_PAGES: usize = 4096;
/// Most granted pages pinned for one device. A pin needs the grant mapped in the
/// driver, so its map limit bounds them already (and the kernel memory of each is
/// matched by a charged granted-page entry); a driver shares this among its clients
/// (nvmed: 4 MiB in flight per connection).
const MAX_PINNED_PAGES: usize = zen_abi::syscall::MAP_LIMIT_PAGES as usize;

/// Kernel memory a DMA range costs its driver (the range, and a frame's entry per
/// page), a pinned page's entry, and an interrupt binding.
const DMA_RANGE_KMEM: u64 = 64;
const DMA_PAGE_KMEM: u64 = 16;
const PIN_KMEM: u64 = 48;
const VECTOR_KMEM: u64 = 64;

/// Most interrupt vectors one device may have bound: a queue per CPU and an admin
/// queue fit; 160 device vectors are shared by every driver, so none takes them all.
pub const MAX_VECTORS: usize = 16;

/// With an IOMMU, the device addresses of a driver's pages are not their physical
/// addresses but slots of a window of its own: DMA memory from slot 0, pinned pages
/// after `MAX_DMA_PAGES` (freed slots reused). So the domain's page tables cover
/// one compact 80 MiB window (at most 43 tables, 172 KiB, charged to the driver)
/// whatever frames it is given, and two mappings of one frame are two entries,
/// each with its own rights. Above 4 GiB: clear of the interrupt window at
/// 0xfee0_0000 and of the firmware's reserved regions, which sit below.
const IOVA_BASE: u64 = 1 << 32;

fn iova(slot: u32) -> u64 {
    IOVA_BASE + u64::from(slot) * 4096
}

/// Who drives a device, and what it was given.
#[derive(Default)]
pub struct State {
    /// The driver's pid, 0 for none.
    pub holder: u32,
    /// Where each BAR is mapped in the driver (0: not mapped).
    bar_maps: [u64; zen_pci::BARS],
    dma: Vec<DmaRange>,
    /// Bound vectors: (MSI-X entry, IDT vector, its remapping entry if the IOMMU
    /// remaps interrupts).
    vectors: Vec<(u16, u8, Option<crate::arch::vtd::Remapped>)>,
    /// Granted pages made visible to the device (`dma_addr`): the frame lives while
    /// the device may reach it, until the driver unmaps the page ([`unpin`]) or ends.
    pinned: Vec<Pin>,
    /// With an IOMMU: what the device may reach (exactly `dma` and `pinned`).
    domain: Option<crate::arch::vtd::Domain>,
    /// Device-address slots (see [`IOVA_BASE`]): the next DMA slot, the next never
    /// used pin slot, and pin slots given back (room reserved for every pin slot
    /// handed out, so giving one back never allocates).
    next_dma_slot: u32,
    next_pin_slot: u32,
    free_pin_slots: Vec<u32>,
}

/// Pages given to the device, mapped at `va` in the driver; with an IOMMU the device
/// reaches them at `iova(slot)` onwards.
struct DmaRange {
    va: u64,
    slot: Option<u32>,
    frames: Vec<SharedFrame>,
}

/// A granted page of the driver at `page` that its device reaches at `addr`.
struct Pin {
    page: u64,
    addr: u64,
    slot: Option<u32>,
    _frame: Arc<SharedFrame>,
}

impl State {
    /// A slot for a pinned page, if the window has one left.
    fn take_pin_slot(&mut self) -> Option<u32> {
        if let Some(s) = self.free_pin_slots.pop() {
            return Some(s);
        }
        // The list is empty here: room for every slot handed out, this one too
        // (at most 64 KiB a device, kept for the driver's life).
        if self.next_pin_slot as usize >= MAX_PINNED_PAGES
            || self
                .free_pin_slots
                .try_reserve(self.next_pin_slot as usize + 1)
                .is_err()
        {
            return None;
        }
        self.next_pin_slot += 1;
        Some(MAX_DMA_PAGES as u32 + self.next_pin_slot - 1)
    }
}

/// Locks `dev`'s state for `me`, making it the holder if nobody is and the policy
/// lets it drive a device of this class: `Busy` if another process holds it.
fn claim<'d>(dev: &'d Device, me: &dyn Party) -> Result<spin::MutexGuard<'d, State>, Error> {
    let pid = me.pid();
    let mut s = dev.state.lock();
    if s.holder == 0 {
        let h = &dev.header;
        crate::policy::claim(me.program(), h.class, h.subclass, dev.addr.packed())?;
        if crate::arch::vtd::active() {
            // Confined before it may master the bus: a domain with nothing in it.
            let a = dev.addr;
            s.domain = Some(
                crate::arch::vtd::Domain::attach(
                    a.segment,
                    a.bus,
                    (a.device << 3) | a.function,
                    dev.index,
                )
                .ok_or(Error::NoMemory)?,
            );
        }
        s.holder = pid;
        let a = dev.addr;
        crate::audit::record_for(
            zen_audit::Kind::DeviceClaimed,
            pid,
            [
                u64::from(a.bus) << 8 | u64::from(a.device) << 3 | u64::from(a.function),
                u64::from(dev.index),
                0,
                0,
            ],
        );
        // Memory decoding now; bus mastering only with the first DMA memory
        // (`dma_alloc`), so a driver resets its device first: without an IOMMU,
        // commands a dead driver left queued must not run into freed frames.
        let cmd = dev.cfg.read32(zen_pci::reg::COMMAND) & 0xffff;
        dev.cfg.write32(
            zen_pci::reg::COMMAND,
            cmd | command::MEMORY | command::INTX_DISABLE,
        );
    } else if s.holder != pid {
        return Err(Error::Busy);
    }
    Ok(s)
}

/// dev_map: BAR `bar` mapped into the driver (once; a second call returns the same
/// address), uncached and never executable, its MSI-X pages left out.
pub fn map_bar(me: &dyn Party, tok: &Presented, bar: u64) -> Result<u64, Error> {
    let dev = check(me, tok, Rights::MAP, Syscall::DevMap as u16)?;
    let i = usize::try_from(bar)
        .ok()
        .filter(|&i| i < zen_pci::BARS)
        .ok_or(Error::InvalidArgument)?;
    let b = dev.bars[i]
        .filter(|b| b.is_memory())
        .ok_or(Error::InvalidArgument)?;
    let mut s = claim(dev, me)?;
    if s.bar_maps[i] != 0 {
        return Ok(s.bar_maps[i]);
    }
    let pages = b.size.div_ceil(4096);
    let va = me.reserve_map_range(pages)?;
    let msix = dev.msix.as_ref().map(|m| m.info);
    let done = me.map_in_space(pages, &mut |space| {
        for n in 0..pages {
            let off = n * 4096;
            if msix.is_some_and(|m| m.covers_page(i as u8, off)) {
                continue;
            }
            if space.map_device(va + off, b.base + off, true).is_err() {
                for m in 0..n {
                    let _ = space.unmap(va + m * 4096);
                }
                return false;
            }
        }
        true
    });
    if done != Ok(true) {
        me.unreserve(pages);
        return Err(done.err().unwrap_or(Error::NoMemory));
    }
    s.bar_maps[i] = va;
    Ok(va)
}

/// dma_alloc: `len` bytes of zeroed pages for the device, mapped into the driver.
pub fn dma_alloc(me: &dyn Party, tok: &Presented, len: u64) -> Result<u64, Error> {
    let dev = check(me, tok, Rights::WRITE, Syscall::DmaAlloc as u16)?;
    if len == 0 {
        return Err(Error::InvalidArgument);
    }
    let pages = len.div_ceil(4096);
    let mut s = claim(dev, me)?;
    if s.next_dma_slot as u64 + pages > MAX_DMA_PAGES as u64 {
        return Err(Error::NoMemory);
    }
    let n = pages as usize;
    // Kernel memory for the bookkeeping, charged for the driver's life (its quota
    // goes with it).
    me.quota().take(DMA_RANGE_KMEM + DMA_PAGE_KMEM * pages)?;
    let undo_charge = || me.quota().give(DMA_RANGE_KMEM + DMA_PAGE_KMEM * pages);
    let mut frames = Vec::new();
    if frames.try_reserve_exact(n).is_err() || s.dma.try_reserve(1).is_err() {
        undo_charge();
        return Err(Error::NoMemory);
    }
    for _ in 0..n {
        match SharedFrame::new() {
            Some(f) => frames.push(f),
            None => {
                undo_charge();
                return Err(Error::NoMemory);
            }
        }
    }
    // The device's reach first: a frame the driver could see but the device not
    // would be harmless, the other way round not, and undoing is simpler here.
    let slot = s.domain.as_ref().map(|_| s.next_dma_slot);
    if let (Some(d), Some(slot)) = (s.domain.as_mut(), slot) {
        let before = d.tables();
        let failed = frames
            .iter()
            .enumerate()
            .position(|(k, f)| d.map(iova(slot + k as u32), f.addr(), true).is_err());
        // Its tables are the driver's for its life (bounded by the window), also
        // those a failed map made.
        me.quota().force((d.tables() - before) as u64 * 4096);
        if let Some(k) = failed {
            for j in 0..k {
                d.unmap(iova(slot + j as u32));
            }
            d.flush();
            undo_charge();
            return Err(Error::NoMemory);
        }
    }
    let undo_domain = |s: &mut State| {
        if let (Some(d), Some(slot)) = (s.domain.as_mut(), slot) {
            for k in 0..n {
                d.unmap(iova(slot + k as u32));
            }
            d.flush();
        }
    };
    let va = match me.reserve_map_range(pages) {
        Ok(va) => va,
        Err(e) => {
            undo_domain(&mut s);
            undo_charge();
            return Err(e);
        }
    };
    let flags = Flags {
        writable: true,
        user: true,
        executable: false,
    };
    let done = me.map_in_space(pages, &mut |space| {
        for (k, f) in frames.iter().enumerate() {
            if space
                .map_shared(va + k as u64 * 4096, f.addr(), flags)
                .is_err()
            {
                for m in 0..k as u64 {
                    let _ = space.unmap(va + m * 4096);
                }
                return false;
            }
        }
        true
    });
    if done != Ok(true) {
        me.unreserve(pages);
        undo_domain(&mut s);
        undo_charge();
        return Err(done.err().unwrap_or(Error::NoMemory));
    }
    // Counted with or without an IOMMU (`MAX_DMA_PAGES` bounds both); a failed
    // allocation's slots were unmapped and flushed above, free for the next.
    s.next_dma_slot += n as u32;
    s.dma.push(DmaRange { va, slot, frames });
    let cmd = dev.cfg.read32(zen_pci::reg::COMMAND) & 0xffff;
    if cmd & command::BUS_MASTER == 0 {
        dev.cfg
            .write32(zen_pci::reg::COMMAND, cmd | command::BUS_MASTER);
    }
    Ok(va)
}

/// dma_addr: the device address of user address `va`: in the driver's DMA memory,
/// or in a page a client granted it, which then stays visible to the device (its
/// frame kept) until the driver unmaps it.
pub fn dma_addr(me: &dyn Party, tok: &Presented, va: u64) -> Result<u64, Error> {
    let dev = check(me, tok, Rights::WRITE, Syscall::DmaAddr as u16)?;
    // Only the driver: asking is no claim (nothing of the device's is given yet).
    let mut s = dev.state.lock();
    if s.holder != me.pid() {
        return Err(Error::Busy);
    }
    let own = s.dma.iter().find_map(|r| {
        let page = va.checked_sub(r.va)? / 4096;
        let f = r.frames.get(usize::try_from(page).ok()?)?;
        Some(match r.slot {
            Some(slot) => iova(slot + page as u32) + va % 4096,
            None => f.addr() + va % 4096,
        })
    });
    if let Some(a) = own {
        return Ok(a);
    }
    let page = va & !0xfff;
    if let Some(p) = s.pinned.iter().find(|p| p.page == page) {
        return Ok(p.addr + va % 4096);
    }
    let (frame, writable) = me.granted_frame(page).ok_or(Error::BadAddress)?;
    if s.pinned.len() >= MAX_PINNED_PAGES {
        return Err(Error::NoMemory);
    }
    s.pinned.try_reserve(1).map_err(|_| Error::NoMemory)?;
    me.quota().take(PIN_KMEM)?;
    let (addr, slot) = if s.domain.is_some() {
        let Some(slot) = s.take_pin_slot() else {
            me.quota().give(PIN_KMEM);
            return Err(Error::NoMemory);
        };
        let d = s.domain.as_mut().expect("checked above");
        let before = d.tables();
        // Writable for the device only if the driver may write it (a read-only grant
        // stays read-only for the device too).
        let mapped = d.map(iova(slot), frame.addr(), writable);
        me.quota().force((d.tables() - before) as u64 * 4096);
        match mapped {
            Ok(()) => {}
            Err(()) => {
                s.free_pin_slots.push(slot);
                me.quota().give(PIN_KMEM);
                return Err(Error::NoMemory);
            }
        }
        (iova(slot), Some(slot))
    } else {
        (frame.addr(), None)
    };
    s.pinned.push(Pin {
        page,
        addr,
        slot,
        _frame: frame,
    });
    Ok(addr + va % 4096)
}

/// The driver `pid` unmapped `pages` pages at `addr`: granted pages among them are
/// no longer its device's (their entries' charge goes back to `quota`).
pub fn unpin(pid: u32, quota: &crate::mm::quota::Quota, addr: u64, pages: u64) {
    let end = addr.saturating_add(pages.saturating_mul(4096));
    for dev in devices() {
        let mut s = dev.state.lock();
        // Most unmaps are of pages no device was given: nothing to rebuild or flush.
        if s.holder != pid || !s.pinned.iter().any(|p| (addr..end).contains(&p.page)) {
            continue;
        }
        let (gone, kept): (Vec<Pin>, Vec<Pin>) = core::mem::take(&mut s.pinned)
            .into_iter()
            .partition(|p| (addr..end).contains(&p.page));
        s.pinned = kept;
        // Out of the device's reach first, then (flushed) the frames may go.
        if let Some(d) = s.domain.as_mut() {
            for p in &gone {
                if let Some(slot) = p.slot {
                    d.unmap(iova(slot));
                }
            }
            d.flush();
        }
        for p in &gone {
            if let Some(slot) = p.slot {
                // Room was reserved when the slot was first handed out.
                s.free_pin_slots.push(slot);
            }
        }
        quota.give(PIN_KMEM * gone.len() as u64);
        drop(s);
        drop(gone);
    }
}

/// irq_bind: MSI-X entry `entry` delivered to CPU `cpu`; an interrupt token for it.
pub fn irq_bind(me: &dyn Party, tok: &Presented, entry: u64, cpu: u64) -> Result<u64, Error> {
    let dev = check(me, tok, Rights::RECV, Syscall::IrqBind as u16)?;
    let msix = dev.msix.as_ref().ok_or(Error::InvalidArgument)?;
    let entry = u16::try_from(entry)
        .ok()
        .filter(|&e| e < msix.info.vectors)
        .ok_or(Error::InvalidArgument)?;
    let apic_id = usize::try_from(cpu)
        .ok()
        .and_then(crate::arch::percpu::cpu)
        .filter(|c| c.is_online())
        .ok_or(Error::InvalidArgument)?
        .apic_id();
    let mut s = claim(dev, me)?;
    if s.vectors.iter().any(|(e, _, _)| *e == entry) {
        return Err(Error::Busy);
    }
    if s.vectors.len() >= MAX_VECTORS {
        return Err(Error::NoMemory);
    }
    s.vectors.try_reserve(1).map_err(|_| Error::NoMemory)?;
    // For the driver's life: bindings go only with it (its quota with them).
    me.quota().take(VECTOR_KMEM)?;
    let Some((vector, generation)) = crate::irq::alloc(me.pid()) else {
        me.quota().give(VECTOR_KMEM);
        return Err(Error::NoMemory);
    };
    let token = zen_cap::mint(
        crate::cap::key(),
        crate::irq::binding(vector, me.pid(), generation),
        Rights::RECV.union(Rights::GRANT),
    );
    let slot = match me.insert_token(token) {
        Ok(slot) => slot,
        Err(e) => {
            crate::irq::free(vector);
            me.quota().give(VECTOR_KMEM);
            return Err(e);
        }
    };
    // With interrupt remapping the device names an entry that only it may use;
    // without, a plain MSI (and then its driver can make it raise any vector).
    let a = dev.addr;
    let (addr, data, remapped) = match crate::arch::vtd::remap(
        a.segment,
        a.bus,
        (a.device << 3) | a.function,
        apic_id,
        vector,
    ) {
        Some(Ok(r)) => {
            let (addr, data) = r.message();
            (addr, data, Some(r))
        }
        Some(Err(())) => {
            let _ = me.remove_token(slot);
            crate::irq::free(vector);
            me.quota().give(VECTOR_KMEM);
            return Err(Error::NoMemory);
        }
        None => {
            let (addr, data) = crate::arch::pci::msi_message(apic_id, vector);
            (addr, data, None)
        }
    };
    let at = entry as u64 * MSIX_ENTRY;
    msix.table.write32(at, addr as u32);
    msix.table.write32(at + 4, (addr >> 32) as u32);
    msix.table.write32(at + 8, data);
    msix.table.write32(at + 12, 0);
    let control = dev.cfg.read32(msix.info.cap);
    dev.cfg.write32(
        msix.info.cap,
        (control | msix_control::ENABLE) & !msix_control::FUNCTION_MASK,
    );
    s.vectors.push((entry, vector, remapped));
    Ok(slot as u64)
}

/// The driver `pid` ended: each device it held stops (bus mastering off, vectors
/// masked), then its DMA frames and interrupt bindings go, and the device is free for
/// the next driver.
pub fn release(pid: u32) {
    for dev in devices() {
        let mut s = dev.state.lock();
        if s.holder != pid || pid == 0 {
            continue;
        }
        let cmd = dev.cfg.read32(zen_pci::reg::COMMAND) & 0xffff;
        dev.cfg
            .write32(zen_pci::reg::COMMAND, cmd & !command::BUS_MASTER);
        if let Some(m) = &dev.msix {
            let control = dev.cfg.read32(m.info.cap);
            dev.cfg.write32(
                m.info.cap,
                (control & !msix_control::ENABLE) | msix_control::FUNCTION_MASK,
            );
            for (entry, _, _) in &s.vectors {
                m.table.write32(*entry as u64 * MSIX_ENTRY + 12, 1);
            }
        }
        // A configuration read completes only after the writes before it: the device
        // has seen bus mastering go off before a frame is freed.
        let _ = dev.cfg.read32(zen_pci::reg::COMMAND);
        // Masked above; now their remapping entries go, then the vectors.
        for (_, vector, remapped) in s.vectors.drain(..) {
            drop(remapped);
            crate::irq::free(vector);
        }
        // The domain goes (detached, flushed): the device reaches nothing; only then
        // the frames.
        drop(s.domain.take());
        let dma = core::mem::take(&mut s.dma);
        *s = State::default();
        drop(s);
        drop(dma);
    }
}
