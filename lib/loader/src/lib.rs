//! Loads a static-PIE ELF program (what `x86_64-unknown-none` links by default) into an
//! address space at a chosen base, applying its `R_X86_64_RELATIVE` relocations.
//!
//! The loader only parses and checks; mapping is the [`Target`]'s job (the kernel maps
//! frames into a process, the host tests into a map of pages). Everything in the file is
//! untrusted: every offset, size and address is checked against the file and against
//! the image limit before it is used, so a damaged or hostile program is refused with a
//! [`LoadError`], never a panic, an overflow or a write outside the image.
//!
//! What is refused: anything but a little-endian 64-bit x86_64 `ET_DYN` file; an
//! interpreter (`PT_INTERP`, a dynamically linked program); segments that overlap,
//! run past the file, or are larger in the file than in memory; an image larger than
//! the limit; relocations other than `NONE` and `RELATIVE`, or that land outside the
//! loaded segments; an entry point outside an executable segment.
#![no_std]
#![deny(unsafe_code)]

use elf::abi::{
    DT_RELA, DT_RELAENT, DT_RELASZ, EM_X86_64, ET_DYN, PF_W, PF_X, PT_DYNAMIC, PT_INTERP, PT_LOAD,
    R_X86_64_NONE, R_X86_64_RELATIVE,
};
use elf::endian::LittleEndian;
use elf::ElfBytes;

pub const PAGE: u64 = 4096;

/// Why a program was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// Not a well-formed ELF file (header, program headers, dynamic table).
    Malformed,
    /// Not a 64-bit x86_64 position-independent executable.
    NotStaticPie,
    /// Asks for a dynamic linker.
    Interpreter,
    /// A segment runs past the file, has `filesz > memsz`, or is misaligned.
    BadSegment,
    /// Two segments share a page.
    Overlap,
    /// The image would not fit under the limit.
    TooLarge,
    /// A relocation is of a kind the loader does not do.
    UnsupportedRelocation,
    /// A relocation table or target lies outside the image.
    BadRelocation,
    /// The entry point is not in an executable segment.
    BadEntry,
    /// The target could not map or write (out of memory).
    NoMemory,
}

impl LoadError {
    pub const fn as_str(self) -> &'static str {
        match self {
            LoadError::Malformed => "not a well-formed ELF file",
            LoadError::NotStaticPie => "not an x86_64 static-PIE executable",
            LoadError::Interpreter => "dynamically linked (has an interpreter)",
            LoadError::BadSegment => "a segment lies outside the file or is inconsistent",
            LoadError::Overlap => "segments overlap",
            LoadError::TooLarge => "image too large",
            LoadError::UnsupportedRelocation => "unsupported relocation type",
            LoadError::BadRelocation => "relocation outside the image",
            LoadError::BadEntry => "entry point outside executable code",
            LoadError::NoMemory => "out of memory",
        }
    }
}

/// Where the pages go.
pub trait Target {
    /// Maps a zeroed page at `va` (page-aligned). Fails if it is already mapped
    /// ([`LoadError::Overlap`]) or memory ran out ([`LoadError::NoMemory`]).
    fn map(&mut self, va: u64, writable: bool, executable: bool) -> Result<(), LoadError>;
    /// Writes bytes into pages this load mapped, whatever their protection.
    fn write(&mut self, va: u64, data: &[u8]) -> Result<(), LoadError>;
}

/// A loaded program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// Absolute entry address.
    pub entry: u64,
    /// Pages mapped.
    pub pages: u64,
    /// End of the highest segment (page-aligned, absolute).
    pub end: u64,
}

struct Segment {
    vaddr: u64,
    memsz: u64,
    offset: u64,
    filesz: u64,
    flags: u32,
}

/// Loads `file` at `base` (page-aligned); the image must end below `base + limit`.
pub fn load(
    file: &[u8],
    base: u64,
    limit: u64,
    target: &mut impl Target,
) -> Result<Loaded, LoadError> {
    let elf = ElfBytes::<LittleEndian>::minimal_parse(file).map_err(|_| LoadError::Malformed)?;
    if elf.ehdr.e_type != ET_DYN
        || elf.ehdr.e_machine != EM_X86_64
        || elf.ehdr.class != elf::file::Class::ELF64
    {
        return Err(LoadError::NotStaticPie);
    }
    if !base.is_multiple_of(PAGE) {
        return Err(LoadError::TooLarge);
    }
    let phdrs = elf.segments().ok_or(LoadError::NotStaticPie)?;
    let mut segs: [Option<Segment>; 8] = Default::default();
    let mut n = 0;
    for ph in phdrs.iter() {
        match ph.p_type {
            PT_INTERP => return Err(LoadError::Interpreter),
            PT_LOAD => {
                let in_file = ph
                    .p_offset
                    .checked_add(ph.p_filesz)
                    .ok_or(LoadError::BadSegment)?;
                let end = ph
                    .p_vaddr
                    .checked_add(ph.p_memsz)
                    .ok_or(LoadError::TooLarge)?;
                if in_file > file.len() as u64 || ph.p_filesz > ph.p_memsz {
                    return Err(LoadError::BadSegment);
                }
                if end > limit {
                    return Err(LoadError::TooLarge);
                }
                let slot = segs.get_mut(n).ok_or(LoadError::BadSegment)?;
                *slot = Some(Segment {
                    vaddr: ph.p_vaddr,
                    memsz: ph.p_memsz,
                    offset: ph.p_offset,
                    filesz: ph.p_filesz,
                    flags: ph.p_flags,
                });
                n += 1;
            }
            _ => {}
        }
    }
    let segs = &segs[..n];
    if segs.is_empty() {
        return Err(LoadError::BadSegment);
    }
    let mut pages = 0;
    let mut end = 0;
    for s in segs.iter().flatten() {
        if s.memsz == 0 {
            continue;
        }
        let first = s.vaddr / PAGE * PAGE;
        let last = (s.vaddr + s.memsz).div_ceil(PAGE) * PAGE;
        let mut va = first;
        while va < last {
            target.map(base + va, s.flags & PF_W != 0, s.flags & PF_X != 0)?;
            pages += 1;
            va += PAGE;
        }
        end = end.max(base + last);
        let bytes = &file[s.offset as usize..(s.offset + s.filesz) as usize];
        for (i, chunk) in bytes.chunks(PAGE as usize).enumerate() {
            target.write(base + s.vaddr + i as u64 * PAGE, chunk)?;
        }
    }
    // Where a virtual address lies in the file, and whether it is loaded at all.
    let file_offset = |va: u64, len: u64| -> Option<usize> {
        segs.iter().flatten().find_map(|s| {
            let off = va.checked_sub(s.vaddr)?;
            (off.checked_add(len)? <= s.filesz).then(|| (s.offset + off) as usize)
        })
    };
    let loaded = |va: u64, len: u64| {
        segs.iter()
            .flatten()
            .any(|s| va >= s.vaddr && va.saturating_add(len) <= s.vaddr + s.memsz)
    };

    let has_dynamic = elf
        .segments()
        .is_some_and(|p| p.iter().any(|ph| ph.p_type == PT_DYNAMIC));
    if has_dynamic {
        let dynamic = elf.dynamic().map_err(|_| LoadError::Malformed)?;
        let (mut rela, mut relasz, mut relaent) = (None, 0, 24);
        for d in dynamic.iter().flat_map(|t| t.iter()) {
            match d.d_tag {
                DT_RELA => rela = Some(d.d_ptr()),
                DT_RELASZ => relasz = d.d_val(),
                DT_RELAENT => relaent = d.d_val(),
                _ => {}
            }
        }
        if let Some(rela) = rela {
            if relaent != 24 || relasz % 24 != 0 {
                return Err(LoadError::BadRelocation);
            }
            let at = file_offset(rela, relasz).ok_or(LoadError::BadRelocation)?;
            for r in file[at..at + relasz as usize].chunks_exact(24) {
                let word =
                    |i: usize| u64::from_le_bytes(r[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
                let (offset, info, addend) = (word(0), word(1), word(2));
                match (info & 0xffff_ffff) as u32 {
                    R_X86_64_NONE => {}
                    R_X86_64_RELATIVE => {
                        if !loaded(offset, 8) {
                            return Err(LoadError::BadRelocation);
                        }
                        let value = base.wrapping_add(addend);
                        target.write(base + offset, &value.to_le_bytes())?;
                    }
                    _ => return Err(LoadError::UnsupportedRelocation),
                }
            }
        }
    }
    let entry = elf.ehdr.e_entry;
    let executable = segs
        .iter()
        .flatten()
        .any(|s| s.flags & PF_X != 0 && entry >= s.vaddr && entry < s.vaddr + s.memsz);
    if !executable {
        return Err(LoadError::BadEntry);
    }
    Ok(Loaded {
        entry: base + entry,
        pages,
        end,
    })
}

#[cfg(test)]
mod tests;
