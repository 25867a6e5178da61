//! VT-d DMA remapping: each device a driver holds gets a domain of its own, a
//! second-level page table that maps exactly the frames its driver gave it (DMA
//! memory, granted pages) and nothing else; a device nobody drives has no context
//! entry, so every request it makes is blocked. Faults (a device reaching outside its
//! domain) raise an interrupt, are recorded in EDGE_REGISTRY and cleared; the kernel
//! carries on. What the entries and registers mean is zen-vtd's.
//!
//! The domain's owner picks the device addresses (the device layer gives each driver
//! a window of its own from 4 GiB, kernel/src/dev/driver.rs); reserved regions the
//! firmware names are identity-mapped. Interrupts are remapped too: each vector a
//! driver binds gets an entry of the unit's remapping table that only its device may
//! raise, and compatibility-format requests are blocked. Invalidation goes through
//! the queued interface.
//!
//! Over 500 lines: DMA and interrupt remapping share the units, their queues and
//! their bring-up and undo; split, each half would import the other's internals.

use alloc::vec::Vec;
use zen_abi::layout::DIRECT_MAP;
use zen_vtd::{reg, Caps, Dmar};

/// The IDT vector of the fault event interrupt.
pub const FAULT_VECTOR: u8 = 0x42;

struct Unit {
    regs: u64,
    caps: Caps,
    /// The root table (256 entries, one per bus) and each bus's context table.
    root: u64,
    contexts: spin::Mutex<[u64; 256]>,
    segment: u16,
    /// Queued invalidation (needed for interrupt remapping): the queue page, the
    /// next free slot, and a frame the wait descriptors write their status to.
    queue: Option<Queue>,
    /// The interrupt remapping table (256 entries), and which are taken.
    irt: Option<(u64, spin::Mutex<[bool; IRT_ENTRIES]>)>,
}

struct Queue {
    page: u64,
    status: u64,
    tail: spin::Mutex<(usize, u32)>,
}

/// Entries of each unit's interrupt remapping table (one 4 KiB page).
const IRT_ENTRIES: usize = 256;
/// Descriptors in the invalidation queue (one 4 KiB page).
const QUEUE_ENTRIES: usize = 256;

static DMAR: spin::Once<Dmar> = spin::Once::new();
static UNITS: spin::Once<Vec<Unit>> = spin::Once::new();

fn units() -> &'static [Unit] {
    UNITS.get().map_or(&[], |u| u.as_slice())
}

/// Whether DMA is confined (every unit came up).
pub fn active() -> bool {
    !units().is_empty()
}

impl Unit {
    fn read32(&self, off: usize) -> u32 {
        // SAFETY: `regs` is an uncached kernel mapping of the unit's 4 KiB register
        // page (`paging::map_mmio`); every offset used is inside it and aligned.
        unsafe { core::ptr::read_volatile((self.regs + off as u64) as *const u32) }
    }
    fn write32(&self, off: usize, v: u32) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile((self.regs + off as u64) as *mut u32, v) }
    }
    fn read64(&self, off: usize) -> u64 {
        // SAFETY: as in `read32`, 8-byte aligned.
        unsafe { core::ptr::read_volatile((self.regs + off as u64) as *const u64) }
    }
    fn write64(&self, off: usize, v: u64) {
        // SAFETY: as in `read32`, 8-byte aligned.
        unsafe { core::ptr::write_volatile((self.regs + off as u64) as *mut u64, v) }
    }
    /// Issues a global command and waits (bounded) until GSTS shows `bit` as `on`.
    fn command(&self, bit: u32, on: bool) -> bool {
        let keep = self.read32(reg::GSTS) & !zen_vtd::GCMD_ONE_SHOT;
        self.write32(reg::GCMD, if on { keep | bit } else { keep & !bit });
        super::apic::wait_us(10_000, || (self.read32(reg::GSTS) & bit != 0) == on)
    }
    /// Invalidates the context cache and the IOTLB, globally (bounded waits).
    fn invalidate(&self) {
        if self.queue.is_some() {
            // With queued invalidation on, the register interface must not be used.
            self.submit(&[
                zen_vtd::desc::context_global(),
                zen_vtd::desc::iotlb_global(),
            ]);
            return;
        }
        self.write64(reg::CCMD, zen_vtd::CCMD_GLOBAL);
        super::apic::wait_us(10_000, || self.read64(reg::CCMD) >> 63 == 0);
        let iotlb = self.caps.iotlb_offset + 8;
        self.write64(iotlb, zen_vtd::IOTLB_GLOBAL);
        super::apic::wait_us(10_000, || self.read64(iotlb) >> 63 == 0);
    }
    /// Queues `descs` and a wait descriptor, and waits (bounded) until the unit has
    /// done them all.
    fn submit(&self, descs: &[[u64; 2]]) {
        let Some(q) = &self.queue else { return };
        let mut t = q.tail.lock();
        let (mut at, seq) = *t;
        let seq = seq.wrapping_add(1).max(1);
        let put = |at: usize, d: &[u64; 2]| {
            let slot = DIRECT_MAP + q.page + 16 * at as u64;
            // SAFETY: the queue page is this module's (allocated in `bring_up`), `at`
            // is below QUEUE_ENTRIES; the unit only reads descriptors we publish by
            // moving the tail past them.
            unsafe {
                core::ptr::write_volatile(slot as *mut u64, d[0]);
                core::ptr::write_volatile((slot + 8) as *mut u64, d[1]);
            }
            self.sync(slot);
        };
        for d in descs.iter().chain([&zen_vtd::desc::wait(q.status, seq)]) {
            put(at, d);
            at = (at + 1) % QUEUE_ENTRIES;
        }
        self.write64(zen_vtd::qreg::IQT, (at as u64) << 4);
        let status = (DIRECT_MAP + q.status) as *const u32;
        // SAFETY: the status frame is this module's; the unit writes `seq` there.
        super::apic::wait_us(
            10_000,
            || unsafe { core::ptr::read_volatile(status) } == seq,
        );
        *t = (at, seq);
    }

    /// Makes the unit see a table entry just written at kernel address `at`.
    fn sync(&self, at: u64) {
        if !self.caps.coherent {
            // SAFETY: `at` is a kernel address of a table frame (direct map);
            // flushing a cache line has no effect on memory contents.
            unsafe {
                core::arch::x86_64::_mm_mfence();
                core::arch::x86_64::_mm_clflush(at as *const u8);
                core::arch::x86_64::_mm_mfence();
            }
        }
    }
}

fn zeroed_table() -> Option<u64> {
    let mut f = crate::mm::alloc_frame()?;
    super::phys::frame_bytes(&mut f).fill(0);
    Some(f.into_raw())
}

fn entry(table: u64, i: usize) -> *mut u64 {
    (DIRECT_MAP + table + 8 * i as u64) as *mut u64
}

fn read_entry(table: u64, i: usize) -> u64 {
    // SAFETY: `table` is a 4 KiB table frame this module allocated and owns, `i` is
    // below 512; the IOMMU only reads it.
    unsafe { core::ptr::read_volatile(entry(table, i)) }
}

fn write_entry(unit: &Unit, table: u64, i: usize, v: u64) {
    // SAFETY: as in `read_entry`; the caller holds the lock that orders writers.
    unsafe { core::ptr::write_volatile(entry(table, i), v) };
    unit.sync(DIRECT_MAP + table + 8 * i as u64);
}

/// Brings up every unit of `dmar`: empty root table (every device blocked),
/// translation on, faults to [`FAULT_VECTOR`] on the boot CPU. The units that came
/// up; if any failed, DMA remapping stays off everywhere (a half-confined system
/// would claim more than it gives).
pub fn init(dmar: &Dmar) -> Result<usize, &'static str> {
    DMAR.call_once(|| *dmar);
    let mut up: Vec<Unit> = Vec::new();
    let r = bring_up(dmar, &mut up);
    if r.is_err() {
        // Half-confined would block the devices behind the units that came up while
        // the kernel says DMA is unconfined: translation and interrupt remapping off
        // again on those (plain MSIs then reach the CPUs).
        for u in &up {
            u.command(zen_vtd::GCMD_TE, false);
            u.command(zen_vtd::GCMD_IRE, false);
            u.command(zen_vtd::GCMD_QIE, false);
        }
        return r;
    }
    let n = up.len();
    UNITS.call_once(|| up);
    Ok(n)
}

fn bring_up(dmar: &Dmar, up: &mut Vec<Unit>) -> Result<usize, &'static str> {
    for u in dmar.units.iter().flatten() {
        let regs = super::paging::map_mmio(u.registers, 4096).ok_or("cannot map registers")?;
        let mut unit = Unit {
            regs,
            caps: Caps::parse(0, 0),
            root: 0,
            contexts: spin::Mutex::new([0; 256]),
            segment: u.segment,
            queue: None,
            irt: None,
        };
        unit.caps = Caps::parse(unit.read64(reg::CAP), unit.read64(reg::ECAP));
        if unit.caps.levels.is_none() {
            return Err("no 3- or 4-level page tables");
        }
        if unit.caps.fault_offset + 16 * unit.caps.fault_records > 4096
            || unit.caps.iotlb_offset + 16 > 4096
        {
            return Err("registers beyond their page");
        }
        unit.root = zeroed_table().ok_or("no memory for the root table")?;
        // Off while the root changes (firmware may have left it on).
        if !unit.command(zen_vtd::GCMD_TE, false) {
            return Err("translation does not turn off");
        }
        unit.write64(reg::RTADDR, unit.root);
        if !unit.command(zen_vtd::GCMD_SRTP, true) {
            return Err("root table not taken");
        }
        unit.invalidate();
        if unit.caps.queued && unit.caps.remapping {
            remapping_on(&mut unit)?;
        }
        let (addr, data) = super::pci::msi_message(super::apic::local_id(), FAULT_VECTOR);
        unit.write32(reg::FEDATA, data);
        unit.write32(reg::FEADDR, addr as u32);
        unit.write32(reg::FEUADDR, (addr >> 32) as u32);
        unit.write32(reg::FECTL, 0);
        let on = unit.command(zen_vtd::GCMD_TE, true);
        up.push(unit);
        if !on {
            return Err("translation does not turn on");
        }
    }
    Ok(up.len())
}

/// Queued invalidation, then interrupt remapping with an empty table, compatibility-
/// format interrupts blocked: from now on a device can raise only the interrupts the
/// kernel gave it an entry for (`remap`), whatever it writes to 0xfeex_xxxx.
fn remapping_on(unit: &mut Unit) -> Result<(), &'static str> {
    let page = zeroed_table().ok_or("no memory for the invalidation queue")?;
    let status = zeroed_table().ok_or("no memory for the invalidation queue")?;
    unit.write64(zen_vtd::qreg::IQT, 0);
    unit.write64(zen_vtd::qreg::IQA, page);
    if !unit.command(zen_vtd::GCMD_QIE, true) {
        return Err("queued invalidation does not turn on");
    }
    unit.queue = Some(Queue {
        page,
        status,
        tail: spin::Mutex::new((0, 0)),
    });
    let irt = zeroed_table().ok_or("no memory for the remapping table")?;
    // 2^(S+1) entries: S = 7 for 256; xAPIC format.
    unit.write64(zen_vtd::qreg::IRTA, irt | 7);
    if !unit.command(zen_vtd::GCMD_SIRTP, true) {
        return Err("remapping table not taken");
    }
    unit.submit(&[zen_vtd::desc::iec(None)]);
    if !unit.command(zen_vtd::GCMD_IRE, true) {
        return Err("interrupt remapping does not turn on");
    }
    // Compatibility-format interrupts blocked, whatever firmware left in CFI (GCMD
    // writes keep GSTS's persistent bits).
    if !unit.command(zen_vtd::GCMD_CFI, false) {
        return Err("compatibility-format interrupts cannot be blocked");
    }
    unit.irt = Some((irt, spin::Mutex::new([false; IRT_ENTRIES])));
    Ok(())
}

/// A remapped interrupt: the entry of the table of unit `unit`.
#[derive(Debug)]
pub struct Remapped {
    unit: usize,
    index: u16,
}

impl Remapped {
    /// The MSI address and data the device must use.
    pub fn message(&self) -> (u64, u32) {
        zen_vtd::remapped_msi(self.index)
    }
}

/// An entry that lets only the function at (`segment`, `bus`, `devfn`) raise
/// `vector` on the CPU with local APIC id `apic_id`; `None` without remapping for
/// that function (the caller programs a plain MSI) or with its table full (`Err`).
pub fn remap(
    segment: u16,
    bus: u8,
    devfn: u8,
    apic_id: u32,
    vector: u8,
) -> Option<Result<Remapped, ()>> {
    let ui = DMAR.get()?.unit_for(segment, bus, devfn)?;
    let unit = units().get(ui)?;
    let (irt, used) = unit.irt.as_ref()?;
    let mut used = used.lock();
    let Some(index) = used.iter().position(|u| !*u) else {
        return Some(Err(()));
    };
    used[index] = true;
    let [lo, hi] = zen_vtd::irte((bus as u16) << 8 | devfn as u16, apic_id as u8, vector);
    // High half first: the entry becomes present with its source check in place.
    write_entry(unit, *irt, 2 * index + 1, hi);
    write_entry(unit, *irt, 2 * index, lo);
    unit.submit(&[zen_vtd::desc::iec(Some(index as u16))]);
    Some(Ok(Remapped {
        unit: ui,
        index: index as u16,
    }))
}

/// Interrupt remapping is on for every unit (what `devices` reports as confined).
pub fn remapping() -> bool {
    active() && units().iter().all(|u| u.irt.is_some())
}

impl Drop for Remapped {
    /// The entry goes: the device can no longer raise that interrupt.
    fn drop(&mut self) {
        let Some(unit) = units().get(self.unit) else {
            return;
        };
        let Some((irt, used)) = unit.irt.as_ref() else {
            return;
        };
        let i = self.index as usize;
        write_entry(unit, *irt, 2 * i, 0);
        write_entry(unit, *irt, 2 * i + 1, 0);
        unit.submit(&[zen_vtd::desc::iec(Some(self.index))]);
        used.lock()[i] = false;
    }
}

/// A device's domain: its own second-level page table.
pub struct Domain {
    unit: usize,
    levels: u32,
    root: u64,
    /// Every table frame, the root's first (freed on drop).
    tables: Vec<u64>,
    bus: u8,
    devfn: u8,
}

impl Domain {
    /// A domain for the function at (`segment`, `bus`, `devfn`), numbered `id`
    /// (1 and up, unique among live domains), attached to the device: from now on
    /// it reaches exactly what [`map`](Self::map) gives it. `None` without an IOMMU
    /// for it, or without memory.
    pub fn attach(segment: u16, bus: u8, devfn: u8, id: u16) -> Option<Domain> {
        let ui = DMAR.get()?.unit_for(segment, bus, devfn)?;
        let unit = units().get(ui)?;
        if unit.segment != segment || id == 0 || id as u32 >= unit.caps.domains {
            return None;
        }
        let root = zeroed_table()?;
        let mut d = Domain {
            unit: ui,
            levels: unit.caps.levels?,
            root,
            tables: alloc::vec![root],
            bus,
            devfn,
        };
        // Reserved memory the firmware says this device keeps reaching.
        for r in DMAR.get()?.reserved.iter().flatten() {
            if (r.bus, r.devfn) == (bus, devfn) {
                let mut at = r.base & !0xfff;
                while at <= r.limit {
                    // Two reserved regions may overlap: each page once.
                    if !d.mapped(at) {
                        d.map(at, at, true).ok()?;
                    }
                    at += 4096;
                }
            }
        }
        let mut ctx = unit.contexts.lock();
        if ctx[bus as usize] == 0 {
            let t = zeroed_table()?;
            ctx[bus as usize] = t;
            let [lo, hi] = zen_vtd::root_entry(t);
            write_entry(unit, unit.root, 2 * bus as usize + 1, hi);
            write_entry(unit, unit.root, 2 * bus as usize, lo);
        }
        let t = ctx[bus as usize];
        let [lo, hi] = zen_vtd::context_entry(root, d.levels, id);
        // The high half first: the entry becomes present with its domain set.
        write_entry(unit, t, 2 * devfn as usize + 1, hi);
        write_entry(unit, t, 2 * devfn as usize, lo);
        drop(ctx);
        unit.invalidate();
        Some(d)
    }

    fn unit(&self) -> &'static Unit {
        &units()[self.unit]
    }

    /// Lets the device reach the frame at `phys` at device address `iova`,
    /// read-only unless `write`. `Err` without memory for a table, beyond reach, or
    /// if `iova` is mapped already (an address never silently changes frames). Tables
    /// it makes stay, even when it fails further down: see [`tables`](Self::tables).
    pub fn map(&mut self, iova: u64, phys: u64, write: bool) -> Result<(), ()> {
        let unit = self.unit();
        if iova >= unit.caps.reach() || iova % 4096 != 0 || phys % 4096 != 0 {
            return Err(());
        }
        let mut table = self.root;
        for level in (2..=self.levels).rev() {
            let i = zen_vtd::sl_index(iova, level);
            let e = read_entry(table, i);
            table = if e & zen_vtd::SL_READ != 0 {
                e & zen_vtd::SL_ADDR
            } else {
                self.tables.try_reserve(1).map_err(|_| ())?;
                let t = zeroed_table().ok_or(())?;
                self.tables.push(t);
                write_entry(unit, table, i, t | zen_vtd::SL_READ | zen_vtd::SL_WRITE);
                t
            };
        }
        let at = zen_vtd::sl_index(iova, 1);
        if read_entry(table, at) & (zen_vtd::SL_READ | zen_vtd::SL_WRITE) != 0 {
            return Err(());
        }
        let leaf = phys | zen_vtd::SL_READ | if write { zen_vtd::SL_WRITE } else { 0 };
        write_entry(unit, table, at, leaf);
        if unit.caps.caching_mode {
            unit.invalidate();
        }
        Ok(())
    }

    /// Page-table frames the domain holds (its owner charges them as they come).
    pub fn tables(&self) -> usize {
        self.tables.len()
    }

    /// Whether the device reaches `iova`.
    fn mapped(&self, iova: u64) -> bool {
        let mut table = self.root;
        for level in (2..=self.levels).rev() {
            let e = read_entry(table, zen_vtd::sl_index(iova, level));
            if e & zen_vtd::SL_READ == 0 {
                return false;
            }
            table = e & zen_vtd::SL_ADDR;
        }
        read_entry(table, zen_vtd::sl_index(iova, 1)) & (zen_vtd::SL_READ | zen_vtd::SL_WRITE) != 0
    }

    /// Takes the device's access to `iova` away; [`flush`](Self::flush) makes it
    /// final (the IOTLB may still hold it until then).
    pub fn unmap(&mut self, iova: u64) {
        let mut table = self.root;
        for level in (2..=self.levels).rev() {
            let e = read_entry(table, zen_vtd::sl_index(iova, level));
            if e & zen_vtd::SL_READ == 0 {
                return;
            }
            table = e & zen_vtd::SL_ADDR;
        }
        write_entry(self.unit(), table, zen_vtd::sl_index(iova, 1), 0);
    }

    /// Every unmap so far is final once this returns.
    pub fn flush(&self) {
        self.unit().invalidate();
    }
}

impl Drop for Domain {
    /// Detaches the device (every request of it blocked again), then frees the tables.
    fn drop(&mut self) {
        let unit = self.unit();
        let ctx = unit.contexts.lock();
        let t = ctx[self.bus as usize];
        if t != 0 {
            write_entry(unit, t, 2 * self.devfn as usize, 0);
            write_entry(unit, t, 2 * self.devfn as usize + 1, 0);
        }
        drop(ctx);
        unit.invalidate();
        for &f in &self.tables {
            let _ = crate::mm::free_frame(crate::mm::frame_from_raw(f));
        }
    }
}

/// The fault event interrupt: every recorded fault of every unit goes to
/// EDGE_REGISTRY and is cleared.
pub fn on_fault() {
    for unit in units() {
        for i in 0..unit.caps.fault_records {
            let at = unit.caps.fault_offset + 16 * i;
            let (lo, hi) = (unit.read64(at), unit.read64(at + 8));
            if let Some(f) = zen_vtd::parse_fault(lo, hi) {
                crate::edge::report_detail(
                    zen_edge::EdgeKind::IommuFault,
                    f.source,
                    (f.address >> 12) as u32,
                );
                FAULTS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                // F is write-1-to-clear.
                unit.write64(at + 8, 1 << 63);
            }
        }
        unit.write32(reg::FSTS, zen_vtd::FSTS_PFO | zen_vtd::FSTS_PPF);
    }
}

/// Faults recorded since boot.
pub static FAULTS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
