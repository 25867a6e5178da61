//! What the kernel's bytes are, for the bench's `sizes` suite: where its `.text` goes,
//! by crate and by function, from the ELF's symbol table (the table `cargo bloat`
//! prints, without needing cargo-bloat, which cannot build our target).
//!
//! Attribution is by the demangled path's first segment: `core::fmt::write` is
//! `core`'s. A trait method (`<Type as Trait>::method`) is charged to the crate of
//! `Type` when it is a path (that crate's impl made the code), else to `Trait`'s (a
//! blanket impl over `&T` or `u64` is the trait crate's code). So a `Debug` derive in
//! the kernel is the kernel's bytes, while `core::fmt` machinery it calls is `core`'s.
//! Symbols that do not demangle (assembly entry points, `memcpy` and friends) are
//! `(unmangled)`; `.text` bytes no symbol covers (alignment padding) are `(no symbol)`.
//!
//! Functions are grouped by demangled name without the hash, so one generic function
//! instantiated for many types shows as one row with its number of copies.

use crate::elf::{self, Kind};
use std::collections::BTreeMap;

/// Where a kernel's `.text` goes.
#[derive(Debug, PartialEq)]
pub struct Bloat {
    /// Bytes of the `.text` section.
    pub text: u64,
    /// (crate, bytes), largest first.
    pub crates: Vec<(String, u64)>,
    /// (function name, bytes over all copies, copies), largest first.
    pub functions: Vec<(String, u64, usize)>,
}

/// Bytes not covered by a function symbol.
const NO_SYMBOL: &str = "(no symbol)";
/// Functions whose names are not Rust-mangled.
const UNMANGLED: &str = "(unmangled)";

/// The crate a demangled Rust symbol name belongs to (see the module comment).
pub fn crate_of(name: &str) -> Option<&str> {
    if let Some(rest) = name.strip_prefix('<') {
        let inner = &rest[..matching_close(rest)?];
        let (ty, tr) = split_as(inner);
        return path_crate(ty).or_else(|| tr.and_then(path_crate));
    }
    path_crate(name)
}

/// The index of the `>` that closes an already opened `<` in `s`.
fn matching_close(s: &str) -> Option<usize> {
    let mut depth = 1usize;
    for (i, c) in s.char_indices() {
        match c {
            '<' => depth += 1,
            // `->` in a fn pointer type is not a bracket.
            '>' if i > 0 && s.as_bytes()[i - 1] == b'-' => {}
            '>' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `Type as Trait` split at the ` as ` outside any brackets.
fn split_as(s: &str) -> (&str, Option<&str>) {
    let mut depth = 0i32;
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'<' | b'[' | b'(' => depth += 1,
            b'>' if i > 0 && b[i - 1] == b'-' => {}
            b'>' | b']' | b')' => depth -= 1,
            b' ' if depth == 0 && s[i..].starts_with(" as ") => {
                return (&s[..i], Some(&s[i + 4..]));
            }
            _ => {}
        }
    }
    (s, None)
}

/// The crate of a path type (`zen_kernel::task::Task`, `&mut alloc::vec::Vec<T>`, a
/// nested `<X as Y>::Z`), or None for a primitive or a type parameter (`u64`, `T`,
/// `[T]`).
fn path_crate(ty: &str) -> Option<&str> {
    let mut t = ty.trim();
    loop {
        let before = t;
        for p in ["&", "mut ", "*const ", "*mut ", "dyn ", "[", "("] {
            t = t.strip_prefix(p).unwrap_or(t).trim_start();
        }
        if t == before {
            break;
        }
    }
    if t.starts_with('<') {
        return crate_of(t);
    }
    let end = t.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    (end > 0 && t[end..].starts_with("::")).then(|| &t[..end])
}

/// The Rust name of a mangled symbol without its hash, or None if it is not one.
fn demangle(sym: &str) -> Option<String> {
    rustc_demangle::try_demangle(sym)
        .ok()
        .map(|d| format!("{d:#}"))
}

/// Attributes `.text` by crate and function. Aliases (several symbols at one address)
/// count once, under the first name; a label without a size (assembly) owns the bytes
/// up to the next symbol.
pub fn analyse(text: &elf::Section, symbols: &[elf::Symbol]) -> Bloat {
    let end = text.addr + text.size;
    let mut code: Vec<&elf::Symbol> = symbols
        .iter()
        .filter(|s| s.kind != Kind::Other && s.addr >= text.addr && s.addr < end)
        .collect();
    // At one address a sized function wins over a label, and the code's own label
    // over a linker-script marker (`__kernel_start`).
    code.sort_by_key(|s| (s.addr, s.size == 0, s.name.starts_with("__")));
    let mut crates: BTreeMap<String, u64> = BTreeMap::new();
    let mut funcs: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    let (mut covered, mut upto) = (0, text.addr);
    for (i, s) in code.iter().enumerate() {
        if s.addr < upto {
            continue; // an alias, or a label inside a function
        }
        let next = code[i..]
            .iter()
            .map(|n| n.addr)
            .find(|&a| a > s.addr)
            .unwrap_or(end);
        let stop = if s.size == 0 {
            next
        } else {
            (s.addr + s.size).min(end)
        };
        let size = stop - s.addr;
        upto = stop;
        covered += size;
        let (name, krate) = match demangle(&s.name) {
            Some(d) => {
                let k = crate_of(&d).unwrap_or(UNMANGLED).to_string();
                (d, k)
            }
            None => (s.name.clone(), UNMANGLED.to_string()),
        };
        *crates.entry(krate).or_default() += size;
        let f = funcs.entry(name).or_default();
        f.0 += size;
        f.1 += 1;
    }
    if text.size > covered {
        crates.insert(NO_SYMBOL.into(), text.size - covered);
    }
    let mut crates: Vec<(String, u64)> = crates.into_iter().collect();
    crates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut functions: Vec<(String, u64, usize)> =
        funcs.into_iter().map(|(n, (b, c))| (n, b, c)).collect();
    functions.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Bloat {
        text: text.size,
        crates,
        functions,
    }
}

/// Reads the kernel ELF's `.text` and symbols and attributes them.
pub fn of_elf(bytes: &[u8]) -> Result<Bloat, String> {
    let secs = elf::sections(bytes)?;
    let text = secs
        .iter()
        .find(|s| s.name == ".text")
        .ok_or("the kernel ELF has no .text section")?;
    let syms = elf::symbols(bytes)?;
    if syms.is_empty() {
        return Err("the kernel ELF has no symbol table (stripped?)".into());
    }
    Ok(analyse(text, &syms))
}

/// The two tables as text: bytes by crate, then the `top` largest functions.
pub fn table(b: &Bloat, top: usize) -> String {
    let pct = |n: u64| 100.0 * n as f64 / b.text.max(1) as f64;
    let mut s = format!(
        "{:>8}  {:>5}  crate (.text {} bytes)\n",
        "bytes", "%", b.text
    );
    for (k, n) in &b.crates {
        s += &format!("{n:>8}  {:>5.1}  {k}\n", pct(*n));
    }
    s += &format!("\n{:>8}  {:>5}  {:>6}  function\n", "bytes", "%", "copies");
    for (f, n, c) in b.functions.iter().take(top) {
        s += &format!("{n:>8}  {:>5.1}  {c:>6}  {f}\n", pct(*n));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_paths_and_trait_impls() {
        let cases = [
            ("core::fmt::write", Some("core")),
            ("zen_kernel::syscall::dispatch", Some("zen_kernel")),
            ("alloc::raw_vec::RawVec<T,A>::grow_one", Some("alloc")),
            // The impl's type decides ...
            (
                "<zen_kernel::task::Task as core::fmt::Debug>::fmt",
                Some("zen_kernel"),
            ),
            (
                "<&mut x86_64::addr::VirtAddr as core::fmt::Debug>::fmt",
                Some("x86_64"),
            ),
            (
                "<[blake3::Hasher] as core::fmt::Debug>::fmt",
                Some("blake3"),
            ),
            // ... unless it is a parameter or a primitive: then the trait's crate.
            ("<&T as core::fmt::Debug>::fmt", Some("core")),
            ("<u64 as core::fmt::LowerHex>::fmt", Some("core")),
            (
                "<T as alloc::slice::hack::ConvertVec>::to_vec",
                Some("alloc"),
            ),
            // Nested qualified paths and generic arguments with `as` inside.
            (
                "<<zen_sched::Run as core::ops::Deref>::Target as core::fmt::Debug>::fmt",
                Some("zen_sched"),
            ),
            (
                "<core::iter::Map<I,F> as core::iter::Iterator>::fold",
                Some("core"),
            ),
            (
                "core::ptr::drop_in_place<zen_kernel::proc::Process>",
                Some("core"),
            ),
            ("<fn() -> u8 as core::fmt::Debug>::fmt", Some("core")),
            ("memcpy", None),
            ("<>", None),
        ];
        for (name, want) in cases {
            assert_eq!(crate_of(name), want, "{name}");
        }
    }

    fn sym(name: &str, addr: u64, size: u64) -> elf::Symbol {
        elf::Symbol {
            name: name.into(),
            addr,
            size,
            kind: Kind::Func,
        }
    }

    #[test]
    fn sums_by_crate_and_groups_generic_copies() {
        let text = elf::Section {
            name: ".text".into(),
            addr: 0x1000,
            size: 0x200,
        };
        let label = |name: &str, addr| elf::Symbol {
            kind: Kind::Label,
            ..sym(name, addr, 0)
        };
        let syms = [
            // Two instances of one generic function (legacy mangling: same path, two
            // hashes), and an alias of the first at the same address.
            sym(
                "_ZN5alloc7raw_vec11finish_grow17h0000000000000001E",
                0x1000,
                0x40,
            ),
            sym(
                "_ZN5alloc7raw_vec11finish_grow17h0000000000000002E",
                0x1040,
                0x40,
            ),
            sym("_ZN5alloc5alias17h0000000000000003E", 0x1000, 0x40),
            sym(
                "_ZN10zen_kernel7syscall8dispatch17h0000000000000004E",
                0x1080,
                0x100,
            ),
            sym("memcpy", 0x1180, 0x20),
            // 0x11a0..0x11c0: padding. Then an assembly label (with a linker-script
            // marker at the same address) that runs to the end of .text.
            label("__text_marker", 0x11c0),
            label("zen_isr_stubs", 0x11c0),
            // Outside .text or not code: ignored.
            sym("_ZN4core3fmt5write17h0000000000000005E", 0x3000, 0x40),
            elf::Symbol {
                kind: Kind::Other,
                ..sym("_ZN4core3fmt5write17h0000000000000006E", 0x1100, 8)
            },
        ];
        let b = analyse(&text, &syms);
        assert_eq!(b.text, 0x200);
        assert_eq!(
            b.crates,
            vec![
                ("zen_kernel".to_string(), 0x100),
                ("alloc".to_string(), 0x80),
                (UNMANGLED.to_string(), 0x60),
                (NO_SYMBOL.to_string(), 0x20),
            ]
        );
        assert_eq!(
            b.functions[..2],
            [
                ("zen_kernel::syscall::dispatch".to_string(), 0x100, 1),
                ("alloc::raw_vec::finish_grow".to_string(), 0x80, 2),
            ]
        );
        assert!(b
            .functions
            .contains(&("zen_isr_stubs".to_string(), 0x40, 1)));
        assert!(!b.functions.iter().any(|f| f.0 == "__text_marker"));
        let t = table(&b, 20);
        assert!(t.contains("     256   50.0  zen_kernel"), "{t}");
        assert!(
            t.contains("     128   25.0       2  alloc::raw_vec::finish_grow"),
            "{t}"
        );
    }
}
