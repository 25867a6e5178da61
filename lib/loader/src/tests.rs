extern crate std;
use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::vec::Vec;

/// Pages by address, with their (writable, executable) flags. Writing outside a mapped
/// page is a loader bug, so it panics instead of returning an error.
#[derive(Default)]
struct Pages(BTreeMap<u64, (Vec<u8>, bool, bool)>);

impl Target for Pages {
    fn map(&mut self, va: u64, w: bool, x: bool) -> Result<(), LoadError> {
        assert_eq!(va % PAGE, 0);
        if self.0.contains_key(&va) {
            return Err(LoadError::Overlap);
        }
        self.0.insert(va, (std::vec![0; PAGE as usize], w, x));
        Ok(())
    }
    fn write(&mut self, va: u64, data: &[u8]) -> Result<(), LoadError> {
        for (i, b) in data.iter().enumerate() {
            let a = va + i as u64;
            let page = self
                .0
                .get_mut(&(a / PAGE * PAGE))
                .expect("loader wrote outside the pages it mapped");
            page.0[(a % PAGE) as usize] = *b;
        }
        Ok(())
    }
}

impl Pages {
    fn read_u64(&self, va: u64) -> u64 {
        let p = &self.0[&(va / PAGE * PAGE)].0;
        let o = (va % PAGE) as usize;
        u64::from_le_bytes(p[o..o + 8].try_into().unwrap())
    }
}

const BASE: u64 = 0x40_0000;
const LIMIT: u64 = 1 << 30;

struct Ph {
    ty: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

/// A small static-PIE: text at 0 (headers, code at 0x100), data at 0x1000 (dynamic
/// table, one RELATIVE relocation at 0x1080, then 0x2000 bytes of bss).
struct Spec {
    e_type: u16,
    entry: u64,
    phs: Vec<Ph>,
    reloc_type: u64,
    reloc_offset: u64,
}

fn spec() -> Spec {
    Spec {
        e_type: 3,
        entry: 0x100,
        phs: std::vec![
            Ph {
                ty: PT_LOAD,
                flags: PF_X | 4,
                offset: 0,
                vaddr: 0,
                filesz: 0x200,
                memsz: 0x200
            },
            Ph {
                ty: PT_LOAD,
                flags: PF_W | 4,
                offset: 0x1000,
                vaddr: 0x1000,
                filesz: 0x100,
                memsz: 0x3000
            },
            Ph {
                ty: PT_DYNAMIC,
                flags: PF_W | 4,
                offset: 0x1000,
                vaddr: 0x1000,
                filesz: 0x40,
                memsz: 0x40
            },
        ],
        reloc_type: R_X86_64_RELATIVE as u64,
        reloc_offset: 0x1080,
    }
}

fn build(s: &Spec) -> Vec<u8> {
    let mut f = std::vec![0u8; 0x1100];
    let put =
        |f: &mut Vec<u8>, at: usize, bytes: &[u8]| f[at..at + bytes.len()].copy_from_slice(bytes);
    put(&mut f, 0, b"\x7fELF\x02\x01\x01");
    put(&mut f, 16, &s.e_type.to_le_bytes());
    put(&mut f, 18, &EM_X86_64.to_le_bytes());
    put(&mut f, 20, &1u32.to_le_bytes());
    put(&mut f, 24, &s.entry.to_le_bytes());
    put(&mut f, 32, &64u64.to_le_bytes()); // phoff
    put(&mut f, 52, &64u16.to_le_bytes()); // ehsize
    put(&mut f, 54, &56u16.to_le_bytes()); // phentsize
    put(&mut f, 56, &(s.phs.len() as u16).to_le_bytes());
    put(&mut f, 58, &64u16.to_le_bytes()); // shentsize
    for (i, p) in s.phs.iter().enumerate() {
        let at = 64 + i * 56;
        put(&mut f, at, &p.ty.to_le_bytes());
        put(&mut f, at + 4, &p.flags.to_le_bytes());
        for (j, v) in [p.offset, p.vaddr, p.vaddr, p.filesz, p.memsz, 0x1000]
            .iter()
            .enumerate()
        {
            put(&mut f, at + 8 + j * 8, &v.to_le_bytes());
        }
    }
    put(&mut f, 0x100, &[0xf4, 0xeb, 0xfd]); // "code"
                                             // Dynamic table at 0x1000: RELA, RELASZ, RELAENT, NULL.
    for (i, (tag, val)) in [
        (DT_RELA, 0x1040u64),
        (DT_RELASZ, 24),
        (DT_RELAENT, 24),
        (0, 0),
    ]
    .iter()
    .enumerate()
    {
        put(&mut f, 0x1000 + i * 16, &tag.to_le_bytes());
        put(&mut f, 0x1008 + i * 16, &val.to_le_bytes());
    }
    put(&mut f, 0x1040, &s.reloc_offset.to_le_bytes());
    put(&mut f, 0x1048, &s.reloc_type.to_le_bytes());
    put(&mut f, 0x1050, &0x123u64.to_le_bytes());
    f
}

#[test]
fn loads_maps_and_relocates() {
    let mut t = Pages::default();
    let l = load(&build(&spec()), BASE, LIMIT, &mut t).unwrap();
    assert_eq!(
        l,
        Loaded {
            entry: BASE + 0x100,
            pages: 4,
            end: BASE + 0x4000
        }
    );
    assert_eq!(
        t.0.keys().copied().collect::<Vec<_>>(),
        [BASE, BASE + 0x1000, BASE + 0x2000, BASE + 0x3000]
    );
    let (text, w, x) = &t.0[&BASE];
    assert!(!w && *x);
    assert_eq!(&text[0x100..0x103], &[0xf4, 0xeb, 0xfd]);
    assert_eq!(&text[0x200..0x210], &[0; 16], "past filesz is zero");
    let (_, w, x) = &t.0[&(BASE + 0x1000)];
    assert!(*w && !*x);
    assert_eq!(t.read_u64(BASE + 0x1080), BASE + 0x123);
    assert!(
        t.0[&(BASE + 0x2000)].0.iter().all(|&b| b == 0),
        "bss is zero"
    );
}

#[test]
fn bad_programs_are_refused() {
    let cases: Vec<(LoadError, fn(&mut Spec))> = std::vec![
        (LoadError::NotStaticPie, |s| s.e_type = 2),
        (LoadError::Interpreter, |s| s.phs.push(Ph {
            ty: PT_INTERP,
            flags: 4,
            offset: 0,
            vaddr: 0,
            filesz: 1,
            memsz: 1
        })),
        (LoadError::BadSegment, |s| s.phs[0].filesz = 0x10_0000),
        (LoadError::BadSegment, |s| s.phs[1].memsz = 0x10),
        (LoadError::Overlap, |s| s.phs[1].vaddr = 0x800),
        (LoadError::TooLarge, |s| s.phs[1].memsz = LIMIT),
        (LoadError::TooLarge, |s| s.phs[1].vaddr = u64::MAX - 0x10),
        (LoadError::UnsupportedRelocation, |s| s.reloc_type = 1),
        (LoadError::BadRelocation, |s| s.reloc_offset = 0x9000),
        (LoadError::BadRelocation, |s| s.reloc_offset = u64::MAX - 3),
        (LoadError::BadEntry, |s| s.entry = 0x1010),
        (LoadError::BadEntry, |s| s.entry = 0x100_0000),
    ];
    for (i, (want, change)) in cases.into_iter().enumerate() {
        let mut s = spec();
        change(&mut s);
        assert_eq!(
            load(&build(&s), BASE, LIMIT, &mut Pages::default()),
            Err(want),
            "case {i}"
        );
    }
    assert_eq!(
        load(
            b"not an elf file at all",
            BASE,
            LIMIT,
            &mut Pages::default()
        ),
        Err(LoadError::Malformed)
    );
    assert_eq!(
        load(&[], BASE, LIMIT, &mut Pages::default()),
        Err(LoadError::Malformed)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// Damage anywhere (flipped bytes, truncation) is refused or loads within bounds;
    /// it never panics, and never writes outside the pages it mapped (Pages panics).
    #[test]
    fn damage_never_panics(flips in proptest::collection::vec((0usize..0x1100, any::<u8>()), 1..6), cut in 0usize..0x1200) {
        let mut f = build(&spec());
        for (at, v) in flips {
            f[at] = v;
        }
        f.truncate(cut.max(1));
        let mut t = Pages::default();
        if let Ok(l) = load(&f, BASE, LIMIT, &mut t) {
            prop_assert!(l.entry >= BASE && l.entry < l.end && l.end <= BASE + LIMIT);
        }
    }
}
