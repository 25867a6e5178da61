//! The BIOS stub's long-mode part: called by the 16-bit code (`real.rs`) with
//! `zenos.bin` at FILE_BASE, the E820 map and VBE mode info in low memory and the first
//! GiB identity mapped. It verifies and unpacks the image with `zen-image`, builds the
//! same page tables and BootInfo as the UEFI stub, and jumps to the kernel.
//!
//! Allocation is a bump from FILE_BASE: the file, then the kernel (mem_size), the page
//! tables and BootInfo + memory map. All must lie in the usable E820 region that holds
//! FILE_BASE (checked before anything is written). The kernel sees everything from the
//! kernel on as `Bootloader`; the file's pages and the stub's low memory are free.
//!
//! Size matters (MBR + second stage < 8 KiB): no `core::fmt`, fixed messages only.
#![no_std]
#![no_main]

mod real;

use core::arch::asm;
use zen_abi::boot::{
    BootInfo, FirmwareKind, Framebuffer, MemoryRegion, PixelFormat, SecureBoot, BOOTINFO_MAGIC,
    BOOTINFO_VERSION,
};
use zen_abi::layout::{DIRECT_MAP, KERNEL_BASE, PAGE_SIZE};
use zen_boot_bios::{
    direct_map_end, file_fits, find_rsdp, memory_map, ram_end, table_pages, usable_covers,
    vbe_framebuffer, E820Entry, Params, EARLY_MAP_END, FILE_BASE,
};

const PTE_PW: u64 = 0b11;
const PTE_HUGE: u64 = 1 << 7;
const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;
const HUGE_PAGE: u64 = 2 << 20;
const BOOTINFO_SIZE: u64 = core::mem::size_of::<BootInfo>() as u64;
/// BootInfo followed by the memory map: E820_MAX entries, plus two for the carve-out.
const BOOTINFO_AREA: u64 = 4 * PAGE_SIZE;
const MAX_REGIONS: usize = real::E820_MAX + 2;
const _: () = assert!(BOOTINFO_SIZE as usize + MAX_REGIONS * 24 <= BOOTINFO_AREA as usize);

fn outb(port: u16, v: u8) {
    // SAFETY: port I/O to COM1 has no effect on memory.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack)) };
}

fn inb(port: u16) -> u8 {
    let v;
    // SAFETY: reading COM1's line status has no effect on memory.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack)) };
    v
}

/// Writes `text` to COM1 (initialised by the 16-bit code) and, in text mode, to the
/// top screen line, continuing at column `col`. Returns the next column.
fn print(text: &[u8], mut col: usize) -> usize {
    let text_mode = text_mode();
    for &c in text {
        while inb(0x3fd) & 0x20 == 0 {}
        outb(0x3f8, c);
        if text_mode && c >= b' ' && col < 80 {
            // SAFETY: in text mode 0xB8000 is the VGA text buffer, identity mapped;
            // `col < 80` keeps the write in the first line.
            unsafe { ((0xb8000 + 2 * col) as *mut u16).write_volatile(0x4f00 | c as u16) };
            col += 1;
        }
    }
    col
}

fn halt() -> ! {
    loop {
        // SAFETY: interrupts off and halt: touches no memory; nothing else runs.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

fn say(a: &str, b: &str) {
    let col = print(b"zen-boot: ", 0);
    let col = print(a.as_bytes(), col);
    print(b.as_bytes(), col);
    print(b"\r\n", 80);
}

fn fail(msg: &str) -> ! {
    say(msg, "");
    halt()
}

fn refuse(why: &str) -> ! {
    say("refused zenos.bin: ", why);
    halt()
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // The argument is never read: that would pull in core::fmt.
    fail("internal error")
}

/// Page tables built in a zeroed pool (identity mapped while we build). As the UEFI
/// stub's: 2 MiB pages for the direct map, 4 KiB pages for the kernel.
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

    /// Maps `virt` to `phys` (a 2 MiB page if `huge`, else 4 KiB), creating tables.
    ///
    /// # Safety
    /// `pml4` and every table reachable from it lie in this pool (zeroed, identity
    /// mapped); `virt` is not already covered by a 2 MiB page.
    unsafe fn map(&mut self, pml4: u64, virt: u64, phys: u64, huge: bool) {
        let mut table = pml4;
        let mut shift = 39;
        let leaf = if huge { 21 } else { 12 };
        while shift > leaf {
            // SAFETY: `table` is a table of this pool (see the contract); index < 512.
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

/// The ACPI RSDP: in the first KiB of the EBDA, else in 0xE0000..0x100000.
fn rsdp() -> u64 {
    // SAFETY: the BIOS data area (0x40E: EBDA segment) and the BIOS ROM area are
    // identity mapped and only read.
    unsafe {
        let ebda = ((0x40e as *const u16).read() as u64) << 4;
        if (0x80000..0xa0000).contains(&ebda) {
            if let Some(o) = find_rsdp(core::slice::from_raw_parts(ebda as *const u8, 1024)) {
                return ebda + o as u64;
            }
        }
        find_rsdp(core::slice::from_raw_parts(0xe0000 as *const u8, 0x20000))
            .map_or(0, |o| 0xe0000 + o as u64)
    }
}

#[no_mangle]
extern "C" fn stage3() -> ! {
    // SAFETY: the 16-bit code filled these and the parameter sector before calling us;
    // nothing writes them any more.
    let (params, e820, start_tsc) = unsafe {
        let n = (real::e820_count as usize).min(real::E820_MAX);
        (
            Params::decode(&*core::ptr::addr_of!(real::__stage2_end)),
            core::slice::from_raw_parts(real::E820_BUF as *const E820Entry, n),
            real::start_tsc,
        )
    };
    let Some(params) = params else {
        fail("no boot parameters (image not written by zenimg)")
    };
    if e820.is_empty() {
        fail("no E820 memory map");
    }
    // The 16-bit code refused a length that does not fit before loading; checked again
    // here, where the Rust code starts trusting it.
    let file_len = params.zenos_len;
    if !file_fits(e820, file_len) {
        fail("zenos.bin does not fit in memory");
    }
    // SAFETY: the 16-bit code loaded `file_len` bytes at FILE_BASE (usable RAM, checked).
    let bytes = unsafe { core::slice::from_raw_parts(FILE_BASE as *const u8, file_len as usize) };
    let image = match zen_image::verify(bytes) {
        Ok(v) => v,
        Err(e) => refuse(e.as_str()),
    };
    let h = image.header;
    // The kernel must sit in the top 2 GiB: below, it would collide with the direct map.
    if h.load_vaddr < KERNEL_BASE || h.mem_size > 0u64.wrapping_sub(h.load_vaddr) {
        refuse("load address outside the kernel area");
    }

    // Allocate everything, then check it all fits before writing a byte.
    let kernel = (FILE_BASE + file_len).next_multiple_of(PAGE_SIZE);
    let end = direct_map_end(ram_end(e820));
    let pool = kernel + h.mem_size;
    let bi_phys = pool + table_pages(end, h.mem_size) * PAGE_SIZE;
    let top = bi_phys + BOOTINFO_AREA;
    if top > EARLY_MAP_END || !usable_covers(e820, FILE_BASE, top) {
        fail("out of memory");
    }
    // SAFETY: kernel..top is usable RAM (checked), identity mapped, used by nothing.
    let out =
        unsafe { core::slice::from_raw_parts_mut(kernel as *mut u8, (top - kernel) as usize) };
    let (kout, rest) = out.split_at_mut(h.mem_size as usize);
    if let Err(e) = image.unpack(kout) {
        refuse(e.as_str());
    }
    rest.fill(0);

    let framebuffer = if !text_mode() {
        // SAFETY: the 16-bit code left the info of the mode it set there.
        vbe_framebuffer(unsafe { &*(real::VBE_MODE_INFO as *const [u8; 256]) })
    } else {
        Framebuffer {
            base: 0,
            size: 0,
            width: 0,
            height: 0,
            stride: 0,
            format: PixelFormat::None as u32,
        }
    };
    // SAFETY: BootInfo's area is ours, zeroed, page aligned, room for MAX_REGIONS.
    let regions = unsafe {
        core::slice::from_raw_parts_mut((bi_phys + BOOTINFO_SIZE) as *mut MemoryRegion, MAX_REGIONS)
    };
    let n = memory_map(e820, (kernel, top), regions);
    let bi = BootInfo {
        magic: BOOTINFO_MAGIC,
        version: BOOTINFO_VERSION,
        firmware: FirmwareKind::Bios as u32,
        secure_boot: SecureBoot::Unknown as u32,
        _reserved: 0,
        memory_map: bi_phys + BOOTINFO_SIZE,
        memory_map_len: n as u64,
        framebuffer,
        rsdp: rsdp(),
        tsc_hz: 0,
        stub_start_tsc: start_tsc,
        kernel_phys: kernel,
        kernel_size: h.mem_size,
        stub_steps: [0; zen_abi::boot::STUB_STEPS.len()],
        cmdline: params.cmdline,
    };
    // SAFETY: `bi_phys` is our page-aligned allocation, large enough for a BootInfo.
    unsafe { (bi_phys as *mut BootInfo).write(bi) };

    // Page tables: the direct map (2 MiB pages) at PML4[256..], the same PDPTs at
    // PML4[0..] as the identity map, and the kernel (4 KiB pages) at load_vaddr.
    let mut tables = Tables {
        next: pool,
        end: bi_phys,
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

    say("bios stub, starting kernel", "");
    // SAFETY: the new tables identity-map all RAM (this code, the stack) and map the
    // kernel at load_vaddr; `entry` lies in the kernel image (checked by `verify`).
    unsafe {
        asm!(
            "mov cr3, {pml4}",
            "jmp {entry}",
            pml4 = in(reg) pml4,
            entry = in(reg) h.entry,
            in("rdi") DIRECT_MAP + bi_phys,
            options(noreturn),
        )
    }
}

/// Whether the 16-bit code left the screen in text mode (it found no VBE mode).
fn text_mode() -> bool {
    // SAFETY: a byte the 16-bit code wrote; nothing writes it now.
    unsafe { real::vbe_ok == 0 }
}
