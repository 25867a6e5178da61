//! The UEFI stub: loads `\zenos.bin` from the volume it was started from, verifies and
//! unpacks it with `zen-image`, gathers what the kernel needs into a `BootInfo`, leaves
//! boot services, switches to its own page tables and jumps to the kernel.
//!
//! Everything the stub allocates is `LoaderData` (the kernel sees it as `Bootloader`
//! memory), all addresses handed over are physical. Under boot services UEFI identity
//! maps all memory, so physical addresses are used directly as pointers here.
//!
//! Size matters (the brief wants < 8 KiB): no `core::fmt`, messages are fixed strings
//! written straight to ConOut, the panic handler does not look at its argument, no
//! statics, one PE section (build.rs). Two things do not fit in 8 KiB and are worth
//! their bytes: the ed25519 signature check (feature `signature`, on by default; its
//! SHA-512 hashes the 128 signed header bytes) and the payload hash, BLAKE3 by the
//! blake3 crate's portable code (zen-blake3's `fast`: 8.65 M instructions for
//! zenos.bin, 16 a byte, where SHA-512 took 45 a byte and zen-blake3's own code 13.72 M;
//! about 9 KiB; no vector registers). `cargo xtask bench`
//! reports the stub's size with and without the signature check.
//!
//! The machine as the kernel finds it at `header.entry`:
//! - `rdi` = `DIRECT_MAP` + physical address of the `BootInfo`; interrupts off.
//! - CR3 = the stub's PML4: the kernel image at `load_vaddr` (4 KiB pages, present +
//!   writable, no NX), the direct map at `DIRECT_MAP` and an identity map of the same
//!   range at 0 (2 MiB pages, sharing PDPTs/PDs), covering physical 0 ..
//!   max(top of the memory map, `DIRECT_MAP_MIN`). The kernel should drop the identity
//!   half (PML4[0..256]) once it runs on its own tables.
//! - Still the firmware's: the stack (`rsp` valid, in BootServicesData, which BootInfo
//!   lists as Usable), GDT, IDT (interrupts must stay off until the kernel loads its
//!   own), CR0/CR4/EFER as OVMF left them (paging, PAE, long mode, likely NXE and WP).
//!   The kernel must move off them before handing Usable frames out.
//! - BootInfo, its regions, the page tables, the raw UEFI map and the kernel pages are
//!   `Bootloader` regions. UEFI runtime services are not set up for virtual mode.
#![no_std]
#![no_main]

use core::arch::asm;
use core::ffi::c_void;
use core::ptr::{null, null_mut};
use uefi_raw::protocol::console::{
    GraphicsOutputProtocol, GraphicsPixelFormat, SimpleTextOutputProtocol,
};
use uefi_raw::protocol::file_system::{
    FileAttribute, FileMode, FileProtocolV1, SimpleFileSystemProtocol,
};
use uefi_raw::protocol::loaded_image::LoadedImageProtocol;
use uefi_raw::table::boot::{AllocateType, BootServices, MemoryDescriptor, MemoryType};
use uefi_raw::table::runtime::VariableVendor;
use uefi_raw::table::system::SystemTable;
use uefi_raw::{guid, Guid, Handle, Status};
use zen_abi::boot::{
    BootInfo, FirmwareKind, Framebuffer, MemoryRegion, PixelFormat, SecureBoot, BOOTINFO_MAGIC,
    BOOTINFO_VERSION,
};
use zen_abi::layout::{DIRECT_MAP, KERNEL_BASE, PAGE_SIZE};
use zen_boot_uefi::{direct_map_end, kind_of, normalize, table_pages, trim_cmdline};

// IMAGE_PUBLIC_KEY, written by build.rs.
#[cfg(feature = "signature")]
include!(concat!(env!("OUT_DIR"), "/pubkey.rs"));

const ACPI2_GUID: Guid = guid!("8868e871-e4f1-11d3-bc22-0080c73c8881");
const ACPI1_GUID: Guid = guid!("eb9d2d30-2d88-11d3-9a16-0090273fc14d");

/// Page-table entry bits: present, writable, and (in a PD) a 2 MiB page.
const PTE_PW: u64 = 0b11;
const PTE_HUGE: u64 = 1 << 7;
const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;
const HUGE_PAGE: u64 = 2 << 20;
/// Room for the descriptors that our own allocations (and ConOut) add to the memory
/// map between sizing its buffer and the final GetMemoryMap.
const MAP_SLACK: usize = 64;
const BOOTINFO_SIZE: u64 = core::mem::size_of::<BootInfo>() as u64;

/// NUL-terminated UCS-2 from ASCII, at compile time.
const fn ucs2<const N: usize>(s: &[u8; N]) -> [u16; N] {
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        out[i] = s[i] as u16;
        i += 1;
    }
    out
}
const ZENOS_BIN: [u16; 11] = ucs2(b"\\zenos.bin\0");
const CMDLINE_TXT: [u16; 13] = ucs2(b"\\cmdline.txt\0");
const SECURE_BOOT: [u16; 11] = ucs2(b"SecureBoot\0");

/// Stops the machine for good: interrupts off, `hlt` forever.
fn halt() -> ! {
    loop {
        // SAFETY: disabling interrupts and halting touch no memory; nothing else runs.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // The argument is never read: that would pull in core::fmt. ConOut may be gone
    // (after ExitBootServices), so the message goes straight to COM1.
    for &c in b"zen-boot: internal error\r\n" {
        // SAFETY: writing COM1's data register has no effect on memory.
        unsafe { asm!("out dx, al", in("dx") 0x3f8u16, in("al") c, options(nomem, nostack)) };
    }
    halt()
}

/// Boot services, as used by the stub. Valid until `exit_boot_services`.
struct Efi {
    image: Handle,
    bs: *mut BootServices,
    out: *mut SimpleTextOutputProtocol,
}

impl Efi {
    /// Writes ASCII `text` to ConOut (OVMF mirrors it to the serial port).
    fn print(&self, text: &[u8]) {
        let mut buf = [0u16; 64];
        for chunk in text.chunks(buf.len() - 1) {
            for (b, &c) in buf.iter_mut().zip(chunk) {
                *b = c as u16;
            }
            if let Some(end) = buf.get_mut(chunk.len()) {
                *end = 0;
            }
            // SAFETY: ConOut is valid while boot services run (the stub prints nothing
            // after ExitBootServices); `buf` is NUL-terminated.
            let _ = unsafe { ((*self.out).output_string)(self.out, buf.as_ptr()) };
        }
    }

    /// Prints the line `zen-boot: <a><b>`.
    fn say(&self, a: &str, b: &str) {
        self.print(b"zen-boot: ");
        self.print(a.as_bytes());
        self.print(b.as_bytes());
        self.print(b"\r\n");
    }

    fn fail(&self, msg: &str) -> ! {
        self.say(msg, "");
        halt()
    }

    fn refuse(&self, why: &str) -> ! {
        self.say("refused zenos.bin: ", why);
        halt()
    }

    /// Allocates `LoaderData` pages for `bytes` bytes, zeroed if `zero` (not for the
    /// kernel: `unpack` writes every byte, and zeroing its .bss twice costs several ms
    /// under TCG); halts if memory is short.
    fn alloc(&self, bytes: u64, zero: bool) -> u64 {
        let mut addr = 0;
        let pages = bytes.div_ceil(PAGE_SIZE) as usize;
        // SAFETY: `bs` is the firmware's boot-services table (valid until
        // ExitBootServices); `addr` is a valid out-pointer.
        let st = unsafe {
            ((*self.bs).allocate_pages)(
                AllocateType::ANY_PAGES,
                MemoryType::LOADER_DATA,
                pages,
                &mut addr,
            )
        };
        if st.is_error() {
            self.fail("out of memory");
        }
        if zero {
            // SAFETY: the firmware just gave us these pages; they are identity mapped.
            unsafe { core::ptr::write_bytes(addr as *mut u8, 0, pages * PAGE_SIZE as usize) };
        }
        addr
    }

    /// The `T` protocol interface of `handle`, or null.
    fn protocol<T>(&self, handle: Handle, guid: &Guid) -> *mut T {
        let mut p = null_mut();
        // SAFETY: boot services are live; `p` is a valid out-pointer.
        let st = unsafe { ((*self.bs).handle_protocol)(handle, guid, &mut p) };
        if st.is_error() {
            null_mut()
        } else {
            p.cast()
        }
    }

    /// The root directory of the volume the stub was loaded from, or null.
    fn root(&self) -> *mut FileProtocolV1 {
        let li: *mut LoadedImageProtocol = self.protocol(self.image, &LoadedImageProtocol::GUID);
        if li.is_null() {
            return null_mut();
        }
        // SAFETY: a non-null LoadedImage protocol returned by the firmware.
        let dev = unsafe { (*li).device_handle };
        let fs: *mut SimpleFileSystemProtocol = self.protocol(dev, &SimpleFileSystemProtocol::GUID);
        let mut root = null_mut();
        // SAFETY: `fs` is a live SimpleFileSystem protocol; `root` a valid out-pointer.
        if fs.is_null() || unsafe { ((*fs).open_volume)(fs, &mut root) }.is_error() {
            return null_mut();
        }
        root
    }
}

/// Opens `name` (NUL-terminated UCS-2) for reading under `root`; null if absent.
///
/// # Safety
/// `root` is a live, non-null file protocol and boot services are running.
unsafe fn open(root: *mut FileProtocolV1, name: &[u16]) -> *mut FileProtocolV1 {
    let mut f = null_mut();
    // SAFETY: per the contract above; `name` is NUL-terminated, `f` a valid out-pointer.
    let st = unsafe {
        ((*root).open)(
            root,
            &mut f,
            name.as_ptr(),
            FileMode::READ,
            FileAttribute::empty(),
        )
    };
    if st.is_error() {
        null_mut()
    } else {
        f
    }
}

/// Reads up to `len` bytes of `f` into `buf`; returns how many were read (0 on error).
///
/// # Safety
/// `f` is a live file protocol; `buf` is writable for `len` bytes.
unsafe fn read(f: *mut FileProtocolV1, buf: *mut u8, len: usize) -> usize {
    let mut n = len;
    // SAFETY: per the contract above.
    let st = unsafe { ((*f).read)(f, &mut n, buf.cast()) };
    if st.is_error() {
        0
    } else {
        n
    }
}

/// Reads the whole of `\zenos.bin` into fresh pages: (address, bytes read, bytes
/// allocated), or `None` if there is no such file.
///
/// # Safety
/// `root` is a live directory handle and boot services are running.
unsafe fn read_image(efi: &Efi, root: *mut FileProtocolV1) -> Option<(u64, usize, u64)> {
    // SAFETY: per the contract above; the buffer passed to `read` is `size` freshly
    // allocated bytes.
    unsafe {
        let f = open(root, &ZENOS_BIN);
        if f.is_null() {
            return None;
        }
        // Seeking to u64::MAX moves to the end of file: its position is the size.
        let mut size = 0u64;
        let _ = ((*f).set_position)(f, u64::MAX);
        let _ = ((*f).get_position)(f, &mut size);
        let _ = ((*f).set_position)(f, 0);
        if size == 0 || size > zen_abi::image::IMAGE_MAX_SIZE + 4096 {
            return None;
        }
        let buf = efi.alloc(size, false);
        // A short read is passed on: `verify` refuses it as truncated.
        let n = read(f, buf as *mut u8, size as usize);
        let _ = ((*f).close)(f);
        Some((buf, n, size))
    }
}

/// Reads `\cmdline.txt` (at most 127 bytes, trailing newline dropped) into `out`,
/// which is all zeroes; leaves it so if there is no such file.
///
/// # Safety
/// `root` is a live directory handle and boot services are running.
unsafe fn read_cmdline(root: *mut FileProtocolV1, out: &mut [u8; 128]) {
    // SAFETY: per the contract above; `out` has room for 127 bytes and a NUL.
    let n = unsafe {
        let f = open(root, &CMDLINE_TXT);
        if f.is_null() {
            return;
        }
        let n = read(f, out.as_mut_ptr(), 127);
        let _ = ((*f).close)(f);
        n
    };
    let keep = trim_cmdline(out.get(..n).unwrap_or(&[])).len();
    for b in out.iter_mut().skip(keep) {
        *b = 0;
    }
}

fn secure_boot(st: &SystemTable) -> SecureBoot {
    let mut val = 0u8;
    let mut size = 1usize;
    // SAFETY: runtime services are valid; `val` is `size` writable bytes; the name is
    // NUL-terminated.
    let s = unsafe {
        ((*st.runtime_services).get_variable)(
            SECURE_BOOT.as_ptr(),
            &VariableVendor::GLOBAL_VARIABLE.0,
            null_mut(),
            &mut size,
            &mut val,
        )
    };
    match (s.is_error(), val) {
        (false, 1) => SecureBoot::Enabled,
        (false, 0) => SecureBoot::Disabled,
        _ => SecureBoot::Unknown,
    }
}

/// Describes GOP's current mode in `fb` (left zeroed, format None, if there is no GOP
/// or its pixels are not plain 32-bit RGB/BGR).
fn framebuffer(efi: &Efi, fb: &mut Framebuffer) {
    let mut gop: *mut c_void = null_mut();
    // SAFETY: boot services are live; `gop` is a valid out-pointer.
    let st =
        unsafe { ((*efi.bs).locate_protocol)(&GraphicsOutputProtocol::GUID, null(), &mut gop) };
    if st.is_error() || gop.is_null() {
        return;
    }
    // SAFETY: a GOP instance from the firmware; its mode and mode info are valid while
    // boot services run.
    let (mode, info) = unsafe {
        let mode = &*(*gop.cast::<GraphicsOutputProtocol>()).mode;
        (mode, &*mode.info)
    };
    fb.format = match info.pixel_format {
        GraphicsPixelFormat::PIXEL_RED_GREEN_BLUE_RESERVED_8_BIT_PER_COLOR => PixelFormat::Rgb,
        GraphicsPixelFormat::PIXEL_BLUE_GREEN_RED_RESERVED_8_BIT_PER_COLOR => PixelFormat::Bgr,
        _ => return, // bitmask or Blt-only: no linear framebuffer we can describe
    } as u32;
    fb.base = mode.frame_buffer_base;
    fb.size = mode.frame_buffer_size as u64;
    fb.width = info.horizontal_resolution;
    fb.height = info.vertical_resolution;
    fb.stride = info.pixels_per_scan_line;
}

fn rsdp(st: &SystemTable) -> u64 {
    let mut v1 = 0;
    for i in 0..st.number_of_configuration_table_entries {
        // SAFETY: the firmware's configuration table has that many entries.
        let e = unsafe { &*st.configuration_table.add(i) };
        if e.vendor_guid == ACPI2_GUID {
            return e.vendor_table as u64;
        }
        if e.vendor_guid == ACPI1_GUID {
            v1 = e.vendor_table as u64;
        }
    }
    v1
}

/// Page tables built in a pre-zeroed pool of pages (identity mapped while we build).
struct Tables {
    next: u64,
    end: u64,
}

impl Tables {
    fn alloc(&mut self) -> u64 {
        // `table_pages` bounds what `map` can need; running out is a bug.
        assert!(self.next < self.end);
        self.next += PAGE_SIZE;
        self.next - PAGE_SIZE
    }

    /// Maps `virt` to `phys`: a 2 MiB page if `huge`, else 4 KiB, creating tables.
    ///
    /// # Safety
    /// `pml4` and every table reachable from it lie in this pool (zeroed, identity
    /// mapped); `virt` is not already covered by a 2 MiB page.
    unsafe fn map(&mut self, pml4: u64, virt: u64, phys: u64, huge: bool) {
        let mut table = pml4;
        let mut shift = 39;
        let leaf = if huge { 21 } else { 12 };
        while shift > leaf {
            // SAFETY: `table` is a table of this pool (see the contract); the index is
            // below 512.
            let e = unsafe { &mut *((table as *mut u64).add(((virt >> shift) & 511) as usize)) };
            if *e & 1 == 0 {
                *e = self.alloc() | PTE_PW;
            }
            table = *e & PTE_ADDR;
            shift -= 9;
        }
        let flags = if huge { PTE_PW | PTE_HUGE } else { PTE_PW };
        // SAFETY: as above.
        unsafe { *(table as *mut u64).add(((virt >> leaf) & 511) as usize) = phys | flags };
    }
}

#[no_mangle]
extern "efiapi" fn efi_main(image: Handle, st: *mut SystemTable) -> Status {
    // SAFETY: rdtsc only reads the time-stamp counter.
    let start_tsc = unsafe { core::arch::x86_64::_rdtsc() };
    // SAFETY: the firmware passes a valid system table that outlives boot services.
    let st = unsafe { &*st };
    let efi = Efi {
        image,
        bs: st.boot_services,
        out: st.stdout,
    };

    // Size the memory map first and allocate, with slack for the allocations still to
    // come, the buffer for the final map and BootInfo + room for as many regions.
    let (mut size, mut key, mut dsize, mut dver) = (0usize, 0usize, 0usize, 0u32);
    // SAFETY: a size query: a null buffer of size 0 is allowed, out-pointers valid.
    let _ = unsafe {
        ((*efi.bs).get_memory_map)(&mut size, null_mut(), &mut key, &mut dsize, &mut dver)
    };
    if dsize < core::mem::size_of::<MemoryDescriptor>() {
        efi.fail("bad memory map");
    }
    let cap = size + MAP_SLACK * dsize;
    let map = efi.alloc(cap as u64, false);
    let max_regions = cap / dsize;
    let regions_size = max_regions * core::mem::size_of::<MemoryRegion>();
    let bi_phys = efi.alloc(BOOTINFO_SIZE + regions_size as u64, true);
    // SAFETY: a fresh, zeroed, page-aligned allocation large enough for a BootInfo
    // (all-zero bytes are a valid BootInfo); nothing else refers to it.
    let bi = unsafe { &mut *(bi_phys as *mut BootInfo) };
    bi.magic = BOOTINFO_MAGIC;
    bi.version = BOOTINFO_VERSION;
    bi.firmware = FirmwareKind::Uefi as u32;
    bi.stub_start_tsc = start_tsc;
    bi.secure_boot = secure_boot(st) as u32;
    framebuffer(&efi, &mut bi.framebuffer);
    bi.rsdp = rsdp(st);
    let tsc = || {
        // SAFETY: rdtsc only reads the time-stamp counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    };
    bi.stub_steps[0] = tsc();

    // Load, check, unpack. Nothing is decompressed before `verify` checked the hash.
    let root = efi.root();
    let loaded = if root.is_null() {
        None
    } else {
        // SAFETY: `root` is a live directory handle; boot services are running.
        unsafe { read_image(&efi, root) }
    };
    let Some((file, file_len, file_bytes)) = loaded else {
        efi.fail("cannot read zenos.bin")
    };
    bi.stub_steps[1] = tsc();
    // SAFETY: `read_image` filled `file_len` bytes of its freshly allocated buffer.
    let bytes = unsafe { core::slice::from_raw_parts(file as *const u8, file_len) };
    // The signature first: it covers the header, and the header holds the payload's
    // hash, which `verify` checks next; nothing is unpacked before both have passed.
    #[cfg(feature = "signature")]
    if let Err(e) = zen_image::check_signature(bytes, &IMAGE_PUBLIC_KEY) {
        efi.refuse(e.as_str());
    }
    bi.stub_steps[2] = tsc();
    let image_ok = match zen_image::verify(bytes) {
        Ok(v) => v,
        Err(e) => efi.refuse(e.as_str()),
    };
    bi.stub_steps[3] = tsc();
    let h = image_ok.header;
    // The kernel must sit in the top 2 GiB: below, it would collide with the direct map.
    if h.load_vaddr < KERNEL_BASE || h.mem_size > 0u64.wrapping_sub(h.load_vaddr) {
        efi.refuse("bad load address");
    }
    let kernel = efi.alloc(h.mem_size, false);
    // SAFETY: `kernel` is `mem_size` bytes of fresh pages, not aliased.
    let out = unsafe { core::slice::from_raw_parts_mut(kernel as *mut u8, h.mem_size as usize) };
    if let Err(e) = image_ok.unpack(out) {
        efi.refuse(e.as_str());
    }
    bi.stub_steps[4] = tsc();
    // SAFETY: the file buffer is ours and no longer referenced (`bytes` is dead).
    let _ = unsafe { ((*efi.bs).free_pages)(file, file_bytes.div_ceil(PAGE_SIZE) as usize) };
    bi.kernel_phys = kernel;
    bi.kernel_size = h.mem_size;
    // SAFETY: `root` is non-null (checked above) and still open.
    unsafe { read_cmdline(root, &mut bi.cmdline) };

    let get_map = |size: &mut usize, key: &mut usize| {
        *size = cap;
        let (mut dsz, mut ver) = (0, 0);
        // SAFETY: `map` is `cap` writable bytes; the out-pointers are valid.
        let s = unsafe { ((*efi.bs).get_memory_map)(size, map as *mut _, key, &mut dsz, &mut ver) };
        if s.is_error() || dsz != dsize {
            efi.fail("bad memory map");
        }
    };
    get_map(&mut size, &mut key);
    let desc = |i: usize| {
        // SAFETY: `i < size / dsize`, so the descriptor lies within the map buffer,
        // which is page aligned (descriptor sizes are multiples of 8).
        unsafe { &*((map + (i * dsize) as u64) as *const MemoryDescriptor) }
    };
    let mut highest = 0;
    for i in 0..size / dsize {
        let d = desc(i);
        highest = highest.max(d.phys_start + d.page_count * PAGE_SIZE);
    }

    // Page tables: the direct map (2 MiB pages) at PML4[256..], the same PDPTs at
    // PML4[0..] as an identity map so this code survives the CR3 switch, and the kernel
    // (4 KiB pages) at load_vaddr.
    let end = direct_map_end(highest);
    let pool_bytes = table_pages(end, h.mem_size) * PAGE_SIZE;
    let pool = efi.alloc(pool_bytes, true);
    let mut tables = Tables {
        next: pool,
        end: pool + pool_bytes,
    };
    let pml4 = tables.alloc();
    // SAFETY: all tables come from the zeroed pool; the kernel range is in the top
    // 2 GiB (checked above), disjoint from the direct map's 2 MiB pages.
    unsafe {
        let mut p = 0;
        while p < end {
            tables.map(pml4, DIRECT_MAP + p, p, true);
            p += HUGE_PAGE;
        }
        let top = pml4 as *mut u64;
        for i in 0..end.div_ceil(512 << 30).min(256) as usize {
            *top.add(i) = *top.add(256 + i);
        }
        let mut off = 0;
        while off < h.mem_size {
            tables.map(pml4, h.load_vaddr + off, kernel + off, false);
            off += PAGE_SIZE;
        }
    }

    // The one success line; printing may allocate, so it comes before the final map.
    efi.say("uefi stub, starting kernel", "");
    get_map(&mut size, &mut key);
    // SAFETY: our own image handle and the key of the map just read.
    if unsafe { ((*efi.bs).exit_boot_services)(image, key) }.is_error() {
        // The map changed under us (an event fired): one retry with a fresh key.
        get_map(&mut size, &mut key);
        // SAFETY: as above.
        if unsafe { ((*efi.bs).exit_boot_services)(image, key) }.is_error() {
            efi.fail("cannot exit boot services");
        }
    }

    // Boot services are gone; from here on only our own memory is touched.
    let n = size / dsize;
    // SAFETY: BootInfo's allocation holds `max_regions >= n` regions after the header.
    let regions = unsafe {
        core::slice::from_raw_parts_mut(
            (bi_phys + BOOTINFO_SIZE) as *mut MemoryRegion,
            n.min(max_regions),
        )
    };
    for (i, r) in regions.iter_mut().enumerate() {
        let d = desc(i);
        *r = MemoryRegion {
            base: d.phys_start,
            len: d.page_count * PAGE_SIZE,
            kind: kind_of(d.ty.0) as u32,
            _reserved: 0,
        };
    }
    bi.memory_map = bi_phys + BOOTINFO_SIZE;
    bi.memory_map_len = normalize(regions) as u64;
    bi.stub_steps[5] = tsc();

    // SAFETY: the new tables identity-map all RAM (this code, the stack) and map the
    // kernel at load_vaddr; `entry` lies in the kernel image (checked by `verify`).
    // The kernel's entry never returns.
    unsafe {
        asm!(
            "cli",
            "mov cr3, {pml4}",
            "jmp {entry}",
            pml4 = in(reg) pml4,
            entry = in(reg) h.entry,
            in("rdi") DIRECT_MAP + bi_phys,
            options(noreturn),
        )
    }
}
