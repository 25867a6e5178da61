//! Memory: map and unmap with every bad argument, and the heap on top of them.

use crate::*;

pub(crate) fn map_unmap() -> Outcome {
    {
        let mut r = mem::Region::new(3 * 4096 - 100).map_err(|e| format!("map: {e:?}"))?;
        check("mapped memory is zero", r.iter().all(|&b| b == 0))?;
        check("rounded up to pages", r.len() == 3 * 4096)?;
        r[0] = 1;
        r[3 * 4096 - 1] = 2;
        check(
            "mapped memory is writable",
            r[0] == 1 && r[3 * 4096 - 1] == 2,
        )?;
        let a = r.addr();
        expect(
            "unmap unaligned",
            sys(Syscall::Unmap, [a + 1, 4096, 0, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )?;
        expect(
            "unmap past the mapping",
            sys(Syscall::Unmap, [a, 1 << 30, 0, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )?;
        expect(
            "unmap zero bytes",
            sys(Syscall::Unmap, [a, 0, 0, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )?;
        // The kernel sees the mapping too.
        expect(
            "write from mapped memory",
            sys(Syscall::Write, [1, a + 4096, 0, 0, 0, 0]),
            Ok(0),
        )?;
    }
    // Region's drop unmapped it; map once more to learn a fresh address, then unmap
    // by hand and check the kernel no longer reads it.
    let a = sys(Syscall::Map, [4096, 0, 0, 0, 0, 0]).map_err(|e| format!("map: {e:?}"))?;
    expect("unmap", sys(Syscall::Unmap, [a, 4096, 0, 0, 0, 0]), Ok(0))?;
    expect(
        "unmap twice",
        sys(Syscall::Unmap, [a, 4096, 0, 0, 0, 0]),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "write from unmapped",
        sys(Syscall::Write, [1, a, 1, 0, 0, 0]),
        Err(Error::BadAddress),
    )?;
    expect(
        "map 0 bytes",
        sys(Syscall::Map, [0; 6]),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "map 1 TiB",
        sys(Syscall::Map, [1 << 40, 0, 0, 0, 0, 0]),
        Err(Error::NoMemory),
    )?;
    expect(
        "map u64::MAX",
        sys(Syscall::Map, [u64::MAX, 0, 0, 0, 0, 0]),
        Err(Error::NoMemory),
    )?;
    for (name, p) in [
        ("image", own_code() & !4095),
        ("stack", zen_abi::syscall::USER_STACK_TOP - 4096),
        ("kernel", KERNEL),
    ] {
        expect(
            &format!("unmap {name}"),
            sys(Syscall::Unmap, [p, 4096, 0, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )?;
    }
    Ok(())
}

pub(crate) fn heap() -> Outcome {
    // Grows the heap through `map` several times over.
    let mut v: Vec<u64> = Vec::new();
    for i in 0..300_000u64 {
        v.push(i * 3);
    }
    check(
        "a 2.4 MB vector holds its values",
        v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3),
    )?;
    let boxes: Vec<Box<[u8]>> = (1..200)
        .map(|n| vec![n as u8; n * 37].into_boxed_slice())
        .collect();
    check(
        "many boxes keep their contents",
        boxes
            .iter()
            .enumerate()
            .all(|(i, b)| b.iter().all(|&x| x == (i + 1) as u8)),
    )
}

/// Child modes of this area; `None` if `mode` is not one of them.
pub(crate) fn child(mode: &str) -> Option<i32> {
    if mode != "map" {
        return None;
    }
    let r = mem::Region::new(1 << 20);
    // Exit with the mapping still there: exit must free it.
    process::exit(r.map(|r| r[100] as u64).unwrap_or(99))
}
