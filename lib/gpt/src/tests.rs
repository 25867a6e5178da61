use super::*;

const BLOCKS: u64 = 8192;

fn sample() -> (Header, Vec<u8>) {
    let mut array = vec![0u8; ENTRIES * ENTRY_SIZE];
    let parts = [
        Entry {
            type_guid: ESP_TYPE,
            unique_guid: [1; 16],
            first_lba: 2048,
            last_lba: 4095,
            attributes: 0,
            name: name("EFI system"),
        },
        Entry {
            type_guid: ZEN_ROOT_TYPE,
            unique_guid: [2; 16],
            first_lba: 4096,
            last_lba: 8000,
            attributes: 0,
            name: name("Zen OS root"),
        },
    ];
    for (i, p) in parts.iter().enumerate() {
        array[i * ENTRY_SIZE..(i + 1) * ENTRY_SIZE].copy_from_slice(&p.encode());
    }
    let h = Header {
        my_lba: 1,
        alternate_lba: BLOCKS - 1,
        first_usable: 2 + ENTRY_SECTORS,
        last_usable: BLOCKS - 2 - ENTRY_SECTORS,
        disk_guid: [9; 16],
        entries_lba: 2,
        entries: ENTRIES as u32,
        entry_size: ENTRY_SIZE as u32,
        entries_crc: crc32(&array),
    };
    (h, array)
}

fn sector(h: &Header) -> Vec<u8> {
    let mut s = vec![0u8; 512];
    s[..HEADER_SIZE].copy_from_slice(&h.encode());
    s
}

#[test]
fn guid_uses_mixed_endian() {
    assert_eq!(
        ESP_TYPE,
        [
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b
        ]
    );
    assert_eq!(type_name(&ZEN_ROOT_TYPE), "TagFS root");
}

#[test]
fn round_trips() {
    let (h, array) = sample();
    let got = Header::parse(&sector(&h), 1, BLOCKS, 512).unwrap();
    assert_eq!(got, h);
    let e = got.entries(&array).unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!(e[1].type_guid, ZEN_ROOT_TYPE);
    assert_eq!(e[1].blocks(), 8000 - 4096 + 1);
    assert_eq!(
        String::from_utf16(&e[1].name_units().collect::<Vec<_>>()).unwrap(),
        "Zen OS root"
    );
}

#[test]
fn every_flipped_bit_of_the_header_is_refused() {
    let (h, _) = sample();
    let good = sector(&h);
    for bit in 0..HEADER_SIZE * 8 {
        let mut s = good.clone();
        s[bit / 8] ^= 1 << (bit % 8);
        assert!(Header::parse(&s, 1, BLOCKS, 512).is_err(), "bit {bit}");
    }
}

#[test]
fn lying_headers_are_refused_even_with_a_good_crc() {
    let (h, _) = sample();
    let bad = |f: &dyn Fn(&mut Header)| {
        let mut x = h;
        f(&mut x);
        Header::parse(&sector(&x), 1, BLOCKS, 512)
    };
    assert_eq!(
        bad(&|h| h.my_lba = 2),
        Err(Error::BadPlacement),
        "not where it is"
    );
    assert_eq!(bad(&|h| h.alternate_lba = BLOCKS), Err(Error::BadPlacement));
    assert_eq!(
        bad(&|h| h.last_usable = BLOCKS + 5),
        Err(Error::BadPlacement)
    );
    assert_eq!(
        bad(&|h| h.first_usable = h.last_usable + 1),
        Err(Error::BadPlacement)
    );
    assert_eq!(
        bad(&|h| h.entries_lba = BLOCKS - 4),
        Err(Error::BadPlacement),
        "array off the end"
    );
    assert_eq!(
        bad(&|h| h.entries_lba = 100),
        Err(Error::BadPlacement),
        "array in the usable range"
    );
    assert_eq!(
        bad(&|h| h.entries = 1 << 30),
        Err(Error::BadHeader),
        "a huge array"
    );
    assert_eq!(bad(&|h| h.entries = 0), Err(Error::BadHeader));
    assert_eq!(bad(&|h| h.entry_size = 100), Err(Error::BadHeader));
    assert_eq!(
        bad(&|h| h.first_usable = 0),
        Err(Error::BadPlacement),
        "usable over the header"
    );
    assert!(Header::parse(&[0u8; 512], 1, BLOCKS, 512) == Err(Error::NoSignature));
    assert!(Header::parse(b"EFI PART", 1, BLOCKS, 512).is_err(), "short");
}

#[test]
fn bad_entries_are_refused() {
    let (mut h, mut array) = sample();
    let put = |array: &mut Vec<u8>, h: &mut Header, i: usize, e: Entry| {
        array[i * ENTRY_SIZE..(i + 1) * ENTRY_SIZE].copy_from_slice(&e.encode());
        h.entries_crc = crc32(array);
    };
    let base = Entry::decode(&array[..ENTRY_SIZE]).unwrap();
    let mut a = array.clone();
    a[40] ^= 1;
    assert_eq!(h.entries(&a), Err(Error::BadEntriesCrc));
    let cases = [
        Entry {
            first_lba: 10,
            ..base
        }, // over the entry array
        Entry {
            last_lba: BLOCKS,
            ..base
        }, // past the usable end
        Entry {
            first_lba: 3000,
            last_lba: 2999,
            ..base
        }, // ends before it starts
        Entry {
            first_lba: 4000,
            last_lba: 4100,
            ..base
        }, // overlaps the root
    ];
    for (k, e) in cases.into_iter().enumerate() {
        let (mut hh, mut aa) = (h, array.clone());
        put(&mut aa, &mut hh, 2, e);
        assert_eq!(hh.entries(&aa), Err(Error::BadEntry), "case {k}");
    }
    put(
        &mut array,
        &mut h,
        2,
        Entry {
            first_lba: 8001,
            last_lba: 8100,
            ..base
        },
    );
    assert_eq!(h.entries(&array).map(|e| e.len()), Ok(3));
    assert_eq!(
        h.entries(&array[..100]),
        Err(Error::BadPlacement),
        "short array"
    );
}
