//! Turns the kernel ELF into the flat image that `zenos.bin` carries.
//!
//! The stub does not parse ELF (ARCHITECTURE.md section 3): it copies one flat blob to
//! `KERNEL_BASE` and zeroes up to `mem_size`. So the layout decisions are made here, at
//! build time, from the PT_LOAD program headers alone (sections are irrelevant to what
//! gets loaded). Only the few ELF64 fields we need are read, by hand: a dependency for
//! forty lines of header decoding is not worth it, and the checks below are stricter
//! than a general-purpose parser's because a wrong layout here means an unbootable image.
//!
//! `sections` and `symbols` read the section headers and the symbol table, for the
//! bench's size report (`footprint`); flattening never looks at them.

/// The kernel's loadable contents, ready for `zen_image::build`.
#[derive(Debug, PartialEq, Eq)]
pub struct Flat {
    /// Bytes from `base` up to the end of the last segment's file contents; gaps
    /// between segments are zero-filled.
    pub image: Vec<u8>,
    /// Bytes the kernel occupies once loaded (image + .bss), rounded up to a page.
    pub mem_size: u64,
    /// The lowest PT_LOAD virtual address; must equal the expected base.
    pub base: u64,
    /// `e_entry`.
    pub entry: u64,
}

const PT_LOAD: u32 = 1;
const PAGE: u64 = 4096;

/// One PT_LOAD program header, reduced to what flattening needs.
#[derive(Clone, Copy, Debug)]
struct Load {
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Reads e_entry and the PT_LOAD headers of a little-endian x86_64 ELF64 file.
fn parse(elf: &[u8]) -> Result<(u64, Vec<Load>), String> {
    if elf.len() < 64 || elf[..4] != *b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    // EI_CLASS = ELFCLASS64, EI_DATA = little-endian, e_machine = EM_X86_64.
    if elf[4] != 2 || elf[5] != 1 || u16_at(elf, 18) != 62 {
        return Err("not a little-endian x86_64 ELF64 file".into());
    }
    let entry = u64_at(elf, 24);
    let phoff = u64_at(elf, 32) as usize;
    let phentsize = u16_at(elf, 54) as usize;
    let phnum = u16_at(elf, 56) as usize;
    if phentsize < 56 {
        return Err(format!("program header entry size {phentsize} < 56"));
    }
    let table_fits = phnum
        .checked_mul(phentsize)
        .and_then(|n| n.checked_add(phoff))
        .is_some_and(|end| end <= elf.len());
    if !table_fits {
        return Err("program header table outside the file".into());
    }
    let mut loads = Vec::new();
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        if u32_at(elf, p) != PT_LOAD {
            continue;
        }
        let l = Load {
            offset: u64_at(elf, p + 8),
            vaddr: u64_at(elf, p + 16),
            filesz: u64_at(elf, p + 32),
            memsz: u64_at(elf, p + 40),
        };
        if l.filesz > l.memsz {
            return Err(format!("segment at {:#x}: filesz > memsz", l.vaddr));
        }
        if l.offset
            .checked_add(l.filesz)
            .is_none_or(|end| end > elf.len() as u64)
        {
            return Err(format!(
                "segment at {:#x}: contents outside the file",
                l.vaddr
            ));
        }
        if l.vaddr.checked_add(l.memsz).is_none() {
            return Err(format!(
                "segment at {:#x}: wraps the address space",
                l.vaddr
            ));
        }
        loads.push(l);
    }
    Ok((entry, loads))
}

/// Flattens the PT_LOAD segments of `elf` into one image starting at `expected_base`.
///
/// Refuses anything the stub could not load faithfully: no segments, a lowest address
/// other than `expected_base` (the stub maps the image there, whatever the ELF says),
/// overlapping segments (one would silently overwrite the other), or an entry point
/// outside the file-backed image (the stub's header check would refuse it anyway).
pub fn flatten(elf: &[u8], expected_base: u64) -> Result<Flat, String> {
    let (entry, mut loads) = parse(elf)?;
    loads.retain(|l| l.memsz > 0);
    loads.sort_by_key(|l| l.vaddr);
    let first = loads.first().ok_or("the ELF has no loadable segment")?;
    let base = first.vaddr;
    if base != expected_base {
        return Err(format!(
            "the kernel's lowest load address is {base:#x}, expected KERNEL_BASE {expected_base:#x} \
             (check kernel/linker.ld)"
        ));
    }
    for w in loads.windows(2) {
        if w[0].vaddr + w[0].memsz > w[1].vaddr {
            return Err(format!(
                "segments at {:#x} and {:#x} overlap",
                w[0].vaddr, w[1].vaddr
            ));
        }
    }
    let file_end = loads
        .iter()
        .map(|l| l.vaddr + l.filesz)
        .max()
        .unwrap_or(base);
    let mem_end = loads
        .iter()
        .map(|l| l.vaddr + l.memsz)
        .max()
        .unwrap_or(base);
    let image_len = file_end - base;
    let mem_size = (mem_end - base).div_ceil(PAGE) * PAGE;
    if mem_size > zen_abi::image::IMAGE_MAX_SIZE {
        return Err(format!(
            "kernel needs {mem_size} bytes, more than the image format allows"
        ));
    }
    let mut image = vec![0u8; image_len as usize];
    for l in &loads {
        let at = (l.vaddr - base) as usize;
        let src = &elf[l.offset as usize..(l.offset + l.filesz) as usize];
        image[at..at + src.len()].copy_from_slice(src);
    }
    if entry < base || entry >= file_end {
        return Err(format!(
            "entry point {entry:#x} is outside the loaded image"
        ));
    }
    Ok(Flat {
        image,
        mem_size,
        base,
        entry,
    })
}

/// A section header, reduced to what the size report needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub addr: u64,
    pub size: u64,
}

/// A symbol-table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// As in the file (mangled).
    pub name: String,
    pub addr: u64,
    pub size: u64,
    pub kind: Kind,
}

/// What a symbol names, from `st_info`'s type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `STT_FUNC`: compiled functions (Rust's carry their size).
    Func,
    /// `STT_NOTYPE`: labels, such as assembly entry points (size 0 unless the
    /// assembly says `.size`) and linker-script symbols.
    Label,
    /// Data, sections, files, ...
    Other,
}

const SHT_SYMTAB: u32 = 2;
const STT_NOTYPE: u8 = 0;
const STT_FUNC: u8 = 2;

/// `(sh_name, sh_type, sh_addr, sh_offset, sh_size, sh_link)` of every section header.
type RawSection = (u32, u32, u64, u64, u64, u32);

fn section_headers(elf: &[u8]) -> Result<Vec<RawSection>, String> {
    parse(elf)?; // the same identity checks as flattening
    let shoff = u64_at(elf, 40) as usize;
    let shentsize = u16_at(elf, 58) as usize;
    let shnum = u16_at(elf, 60) as usize;
    if shnum > 0 && shentsize < 64 {
        return Err(format!("section header entry size {shentsize} < 64"));
    }
    let fits = shnum
        .checked_mul(shentsize)
        .and_then(|n| n.checked_add(shoff))
        .is_some_and(|end| end <= elf.len());
    if !fits {
        return Err("section header table outside the file".into());
    }
    Ok((0..shnum)
        .map(|i| {
            let h = shoff + i * shentsize;
            (
                u32_at(elf, h),
                u32_at(elf, h + 4),
                u64_at(elf, h + 16),
                u64_at(elf, h + 24),
                u64_at(elf, h + 32),
                u32_at(elf, h + 40),
            )
        })
        .collect())
}

/// A section's file contents, checked to lie inside the file.
fn contents<'a>(elf: &'a [u8], s: &RawSection) -> Result<&'a [u8], String> {
    let (off, size) = (s.3 as usize, s.4 as usize);
    off.checked_add(size)
        .and_then(|end| elf.get(off..end))
        .ok_or_else(|| "section contents outside the file".to_string())
}

/// The NUL-terminated string at `at` in a string table (empty if out of range).
fn str_at(table: &[u8], at: u32) -> String {
    let tail = table.get(at as usize..).unwrap_or(&[]);
    let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
    String::from_utf8_lossy(&tail[..end]).into_owned()
}

/// The named sections (`.text`, `.rodata`, ...) with their addresses and sizes.
pub fn sections(elf: &[u8]) -> Result<Vec<Section>, String> {
    let heads = section_headers(elf)?;
    let shstrndx = u16_at(elf, 62) as usize;
    let names = heads
        .get(shstrndx)
        .map(|s| contents(elf, s))
        .transpose()?
        .unwrap_or(&[]);
    Ok(heads
        .iter()
        .map(|h| Section {
            name: str_at(names, h.0),
            addr: h.2,
            size: h.4,
        })
        .collect())
}

/// Every entry of the symbol table (`.symtab`; none if the file was stripped).
pub fn symbols(elf: &[u8]) -> Result<Vec<Symbol>, String> {
    let heads = section_headers(elf)?;
    let mut out = Vec::new();
    for h in heads.iter().filter(|h| h.1 == SHT_SYMTAB) {
        let table = contents(elf, h)?;
        let strings = heads
            .get(h.5 as usize)
            .ok_or("symbol table links to no string table")?;
        let strings = contents(elf, strings)?;
        for e in table.chunks_exact(24) {
            out.push(Symbol {
                name: str_at(strings, u32_at(e, 0)),
                kind: match e[4] & 0xf {
                    STT_FUNC => Kind::Func,
                    STT_NOTYPE => Kind::Label,
                    _ => Kind::Other,
                },
                addr: u64_at(e, 8),
                size: u64_at(e, 16),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0xffff_ffff_8000_0000;

    /// A segment for the synthetic ELF: (vaddr, file bytes, memsz).
    type Seg<'a> = (u64, &'a [u8], u64);

    /// Writes a minimal ELF64 executable: header, program headers, then each segment's
    /// bytes. Non-LOAD headers can be mixed in to check they are skipped.
    fn elf(entry: u64, segs: &[Seg], extra_note: bool) -> Vec<u8> {
        let phnum = segs.len() + extra_note as usize;
        let mut data_off = 64 + 56 * phnum as u64;
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // ELFCLASS64
        out[5] = 1; // little-endian
        out[6] = 1; // EV_CURRENT
        out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        out[24..32].copy_from_slice(&entry.to_le_bytes());
        out[32..40].copy_from_slice(&64u64.to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        let mut body = Vec::new();
        for &(vaddr, bytes, memsz) in segs {
            let mut ph = [0u8; 56];
            ph[..4].copy_from_slice(&PT_LOAD.to_le_bytes());
            ph[8..16].copy_from_slice(&data_off.to_le_bytes());
            ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
            ph[24..32].copy_from_slice(&vaddr.to_le_bytes());
            ph[32..40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
            out.extend_from_slice(&ph);
            body.extend_from_slice(bytes);
            data_off += bytes.len() as u64;
        }
        if extra_note {
            let mut ph = [0u8; 56];
            ph[..4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
            ph[16..24].copy_from_slice(&0x1000u64.to_le_bytes());
            ph[40..48].copy_from_slice(&0x1000u64.to_le_bytes());
            out.extend_from_slice(&ph);
        }
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn flattens_with_gaps_zeroed_and_bss_counted() {
        let text = [0x90u8; 100];
        let data = [0xAAu8; 10];
        // Listed out of order on purpose: flattening sorts by address.
        let e = elf(
            BASE + 4,
            &[(BASE + 0x2000, &data, 0x3000), (BASE, &text, 100)],
            true,
        );
        let f = flatten(&e, BASE).unwrap();
        assert_eq!(f.base, BASE);
        assert_eq!(f.entry, BASE + 4);
        assert_eq!(f.image.len(), 0x2000 + 10);
        assert_eq!(&f.image[..100], &text);
        assert!(f.image[100..0x2000].iter().all(|&b| b == 0));
        assert_eq!(&f.image[0x2000..], &data);
        assert_eq!(f.mem_size, 0x5000); // 0x2000 + 0x3000, already page-aligned
    }

    #[test]
    fn rounds_mem_size_up_to_a_page() {
        let e = elf(BASE, &[(BASE, &[1, 2, 3], 0x1001)], false);
        let f = flatten(&e, BASE).unwrap();
        assert_eq!(f.image, vec![1, 2, 3]);
        assert_eq!(f.mem_size, 0x2000);
    }

    #[test]
    fn result_builds_a_verifiable_zenos_bin() {
        let e = elf(BASE + 1, &[(BASE, &[0xC3; 64], 0x1800)], false);
        let f = flatten(&e, BASE).unwrap();
        let bin = zen_image::build(&f.image, f.mem_size, f.base, f.entry);
        let v = zen_image::verify(&bin).unwrap();
        assert_eq!(v.header.mem_size, 0x2000);
        assert_eq!(v.header.entry, BASE + 1);
        let mut out = vec![0xFFu8; 0x2000];
        v.unpack(&mut out).unwrap();
        assert_eq!(&out[..64], &[0xC3; 64]);
        assert!(out[64..].iter().all(|&b| b == 0));
    }

    #[test]
    fn refuses_wrong_base() {
        let e = elf(BASE + 0x1000, &[(BASE + 0x1000, &[0; 8], 8)], false);
        let err = flatten(&e, BASE).unwrap_err();
        assert!(err.contains("expected KERNEL_BASE"), "{err}");
    }

    #[test]
    fn refuses_overlap_entry_outside_and_garbage() {
        let e = elf(
            BASE,
            &[(BASE, &[0; 0x20], 0x20), (BASE + 0x10, &[0; 8], 8)],
            false,
        );
        assert!(flatten(&e, BASE).unwrap_err().contains("overlap"));
        let e = elf(BASE + 0x100, &[(BASE, &[0; 8], 0x1000)], false);
        assert!(flatten(&e, BASE).unwrap_err().contains("entry point"));
        let e = elf(BASE, &[], false);
        assert!(flatten(&e, BASE).unwrap_err().contains("no loadable"));
        assert!(flatten(
            b"MZ not an elf at all, long enough to hold a header........",
            BASE
        )
        .is_err());
        let mut e = elf(BASE, &[(BASE, &[0; 8], 8)], false);
        e.truncate(e.len() - 4); // segment contents cut off
        assert!(flatten(&e, BASE).unwrap_err().contains("outside the file"));
    }

    /// An ELF with no program headers but sections: null, .text, .symtab, .strtab and
    /// .shstrtab, the symbols given as (name, value, size, is_function).
    fn elf_with_symbols(text_size: u64, syms: &[(&str, u64, u64, bool)]) -> Vec<u8> {
        let mut out = elf(BASE, &[(BASE, &[0xC3], 1)], false);
        let mut strtab = vec![0u8];
        let mut symtab = vec![0u8; 24]; // the null symbol
        for &(name, value, size, func) in syms {
            let mut e = [0u8; 24];
            e[..4].copy_from_slice(&(strtab.len() as u32).to_le_bytes());
            e[4] = if func { STT_FUNC } else { 1 }; // STT_OBJECT
            e[8..16].copy_from_slice(&value.to_le_bytes());
            e[16..24].copy_from_slice(&size.to_le_bytes());
            symtab.extend_from_slice(&e);
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
        }
        let shstrtab = b"\0.text\0.symtab\0.strtab\0.shstrtab\0".to_vec();
        // (name offset in shstrtab, type, addr, contents, size if no contents, link)
        let secs: [(u32, u32, u64, &[u8], u64, u32); 5] = [
            (0, 0, 0, &[], 0, 0),
            (1, 1, BASE, &[], text_size, 0),
            (7, SHT_SYMTAB, 0, &symtab, 0, 3),
            (15, 3, 0, &strtab, 0, 0),
            (23, 3, 0, &shstrtab, 0, 0),
        ];
        let mut heads = Vec::new();
        for (name, ty, addr, data, size, link) in secs {
            let mut h = [0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&ty.to_le_bytes());
            h[16..24].copy_from_slice(&addr.to_le_bytes());
            let off = if data.is_empty() { 0 } else { out.len() as u64 };
            let len = if data.is_empty() {
                size
            } else {
                data.len() as u64
            };
            h[24..32].copy_from_slice(&off.to_le_bytes());
            h[32..40].copy_from_slice(&len.to_le_bytes());
            h[40..44].copy_from_slice(&link.to_le_bytes());
            out.extend_from_slice(data);
            heads.extend_from_slice(&h);
        }
        let shoff = out.len() as u64;
        out.extend_from_slice(&heads);
        out[40..48].copy_from_slice(&shoff.to_le_bytes());
        out[58..60].copy_from_slice(&64u16.to_le_bytes());
        out[60..62].copy_from_slice(&5u16.to_le_bytes());
        out[62..64].copy_from_slice(&4u16.to_le_bytes());
        out
    }

    #[test]
    fn reads_sections_and_symbols() {
        let e = elf_with_symbols(
            0x40,
            &[
                ("_ZN4core3fmt5write17h0123456789abcdefE", BASE, 0x30, true),
                ("DATA", BASE + 0x1000, 8, false),
            ],
        );
        let secs = sections(&e).unwrap();
        let names: Vec<&str> = secs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["", ".text", ".symtab", ".strtab", ".shstrtab"]);
        assert_eq!((secs[1].addr, secs[1].size), (BASE, 0x40));
        let syms = symbols(&e).unwrap();
        assert_eq!(syms.len(), 3, "the null symbol is listed too");
        assert_eq!(
            syms[1],
            Symbol {
                name: "_ZN4core3fmt5write17h0123456789abcdefE".into(),
                addr: BASE,
                size: 0x30,
                kind: Kind::Func,
            }
        );
        assert_eq!(syms[0].kind, Kind::Label, "the null symbol is STT_NOTYPE");
        assert_eq!(syms[2].kind, Kind::Other);
        let mut cut = e.clone();
        cut[40..48].copy_from_slice(&(e.len() as u64).to_le_bytes());
        assert!(sections(&cut).unwrap_err().contains("outside the file"));
    }
}
