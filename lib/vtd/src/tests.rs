use super::*;

/// QEMU's DMAR: one catch-all unit at 0xfed90000, HAW 38.
fn qemu_like() -> Vec<u8> {
    let mut t = vec![0u8; 48];
    t[0..4].copy_from_slice(b"DMAR");
    t[36] = 38;
    let mut drhd = vec![0u8; 16];
    drhd[0..2].copy_from_slice(&0u16.to_le_bytes());
    drhd[2..4].copy_from_slice(&16u16.to_le_bytes());
    drhd[4] = 1;
    drhd[8..16].copy_from_slice(&0xfed9_0000u64.to_le_bytes());
    t.extend(drhd);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    t
}

#[test]
fn parses_a_catch_all_unit() {
    let d = parse_dmar(&qemu_like()).unwrap();
    assert_eq!(d.address_bits, 39);
    let u = d.units[0].unwrap();
    assert_eq!(u.registers, 0xfed9_0000);
    assert!(u.include_all);
    assert_eq!(d.units[1], None);
    assert_eq!(d.unit_for(0, 0, 0x10 << 3), Some(0));
    assert_eq!(d.unit_for(1, 0, 0), None, "another segment");
}

#[test]
fn scopes_and_reserved_regions() {
    let mut t = qemu_like();
    // A unit for 00:02.0 only (a GPU), before the catch-all.
    let mut drhd = vec![0u8; 16];
    drhd[2..4].copy_from_slice(&24u16.to_le_bytes());
    drhd[8..16].copy_from_slice(&0xfed9_1000u64.to_le_bytes());
    drhd.extend([1, 8, 0, 0, 0, 0, 2, 0]); // endpoint, bus 0, dev 2 fn 0
    t.extend(drhd);
    // An RMRR for 00:1d.0.
    let mut rmrr = vec![0u8; 24];
    rmrr[0..2].copy_from_slice(&1u16.to_le_bytes());
    rmrr[2..4].copy_from_slice(&32u16.to_le_bytes());
    rmrr[8..16].copy_from_slice(&0x7000_0000u64.to_le_bytes());
    rmrr[16..24].copy_from_slice(&0x7000_ffffu64.to_le_bytes());
    rmrr.extend([1, 8, 0, 0, 0, 0, 0x1d, 0]);
    t.extend(rmrr);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    let d = parse_dmar(&t).unwrap();
    assert_eq!(d.unit_for(0, 0, 2 << 3), Some(1), "its own unit");
    assert_eq!(d.unit_for(0, 0, 3 << 3), Some(0), "the catch-all");
    let r = d.reserved[0].unwrap();
    assert_eq!(
        (r.bus, r.devfn, r.base, r.limit),
        (0, 0x1d << 3, 0x7000_0000, 0x7000_ffff)
    );
}

#[test]
fn lying_tables_are_refused() {
    let good = qemu_like();
    let mut t = good.clone();
    t[50..52].copy_from_slice(&200u16.to_le_bytes()); // a structure past the end
    assert!(parse_dmar(&t).is_err());
    let mut t = good.clone();
    t[50..52].copy_from_slice(&0u16.to_le_bytes()); // a zero length would loop
    assert!(parse_dmar(&t).is_err());
    let mut t = good.clone();
    t[56..64].copy_from_slice(&0xfed9_0800u64.to_le_bytes());
    assert!(parse_dmar(&t).is_err(), "unaligned registers");
    let mut t = good.clone();
    t[4..8].copy_from_slice(&1000u32.to_le_bytes());
    assert!(parse_dmar(&t).is_err(), "longer than the bytes");
    assert!(parse_dmar(&good[..40]).is_err());
    // Truncated scopes are ignored, not read past.
    for cut in 0..good.len() {
        let _ = parse_dmar(&good[..cut]);
    }
}

#[test]
fn caps() {
    // QEMU: SAGAW 39-bit, ND 2 (256 domains), FRO 0x22 (0x220), NFR 0, ECAP IRO 0x20.
    let c = Caps::parse(0x2 << 8 | 2 | 0x22 << 24, 0x20 << 8);
    assert_eq!(c.levels, Some(3));
    assert_eq!(c.domains, 256);
    assert_eq!((c.fault_offset, c.fault_records), (0x220, 1));
    assert_eq!(c.iotlb_offset, 0x200);
    assert!(!c.coherent && !c.caching_mode);
    assert!(!c.queued && !c.remapping);
    let q = Caps::parse(0x2 << 8, 0xf4a);
    assert!(q.queued && q.remapping);
    assert_eq!(c.reach(), 1 << 39);
    assert_eq!(Caps::parse(0x6 << 8, 1).levels, Some(4));
    assert_eq!(Caps::parse(0, 0).levels, None);
}

#[test]
fn entries() {
    assert_eq!(root_entry(0x12_3456), [0x12_3001, 0]);
    let c = context_entry(0x5000, 3, 7);
    assert_eq!(c, [0x5001, 1 | 7 << 8]);
    assert_eq!(context_entry(0x5000, 4, 1)[1] & 7, 2);
    assert_eq!(sl_index(0x7f_ffff_f000, 1), 511);
    assert_eq!(sl_index(0x40_0000_0000, 3), 256);
    let f = parse_fault(0x1234_5678, 1 << 63 | 0x06 << 32 | 0x0080).unwrap();
    assert_eq!(
        (f.address, f.source, f.reason, f.write),
        (0x1234_5000, 0x80, 6, true)
    );
    assert_eq!(parse_fault(0, 0), None);
}

#[test]
fn more_units_than_kept_is_refused() {
    let mut t = qemu_like();
    for k in 1..=MAX_UNITS as u64 {
        let mut drhd = vec![0u8; 16];
        drhd[2..4].copy_from_slice(&16u16.to_le_bytes());
        drhd[8..16].copy_from_slice(&(0xfed9_0000u64 + k * 0x1000).to_le_bytes());
        t.extend(drhd);
    }
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    assert!(parse_dmar(&t).is_err(), "9 units");
}

#[test]
fn remapping_entries() {
    let e = irte(0x0080, 3, 0x51);
    assert_eq!(e[0] & 1, 1, "present");
    assert_eq!((e[0] >> 16) & 0xff, 0x51);
    assert_eq!((e[0] >> 40) & 0xff, 3);
    assert_eq!(
        e[0] & 0b1111_1110,
        0,
        "fixed, edge, physical, no redirection"
    );
    assert_eq!(e[1] & 0xffff, 0x80);
    assert_eq!((e[1] >> 18) & 3, 1, "the requester id is verified");
    let (a, d) = remapped_msi(5);
    assert_eq!(a, 0xfee0_0000 | 5 << 5 | 1 << 4);
    assert_eq!(d, 0);
    assert_eq!(remapped_msi(0x8000).0 & (1 << 2), 1 << 2, "handle bit 15");
    assert_eq!(desc::wait(0x1003, 7), [0x65 | 7 << 32, 0x1000]);
    assert_eq!(desc::iec(Some(9)), [0x14 | 9 << 32, 0]);
    assert_eq!(desc::iotlb_global()[0] & 0xf, 2);
}
