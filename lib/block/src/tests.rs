use super::*;

const GEO: Geometry = Geometry {
    block_size: 512,
    blocks: 1000,
    max_blocks: 256,
    features: features::TRIM,
};
const WHOLE: Extent = Extent {
    first: 0,
    blocks: 1000,
    read_only: false,
};

fn req(op: Op, lba: u64, blocks: u32) -> Request {
    Request {
        id: 7,
        op: op as u8,
        lba,
        blocks,
    }
}

fn rw(len: u64) -> Option<GrantInfo> {
    Some(GrantInfo {
        len,
        writable: true,
    })
}

#[test]
fn messages_round_trip() {
    let r = req(Op::Write, 0x1234_5678_9abc, 77);
    assert_eq!(Request::from_bytes(&r.to_bytes()), Some(r));
    assert_eq!(Request::from_bytes(&[0; 31]), None);
    let p = Reply {
        id: 9,
        status: Status::TooLarge,
        geometry: GEO,
    };
    assert_eq!(Reply::from_bytes(&p.to_bytes()), Some(p));
    for v in 0..=8 {
        assert_eq!(Status::from_u32(v) as u32, v, "status {v}");
    }
    assert_eq!(Status::from_u32(99), Status::DeviceError);
}

#[test]
fn good_requests_pass_with_the_partition_offset() {
    let part = Extent {
        first: 100,
        blocks: 50,
        read_only: false,
    };
    let c = check(&req(Op::Read, 10, 8), &part, &GEO, rw(4096)).unwrap();
    assert_eq!((c.op, c.lba, c.blocks, c.bytes), (Op::Read, 110, 8, 4096));
    let c = check(&req(Op::Write, 42, 8), &part, &GEO, rw(8192)).unwrap();
    assert_eq!(c.lba, 142);
    let c = check(&req(Op::Trim, 0, 50), &part, &GEO, None).unwrap();
    assert_eq!((c.lba, c.bytes), (100, 0));
    assert!(check(&req(Op::Flush, 0, 0), &part, &GEO, None).is_ok());
    assert!(check(&req(Op::Open, 0, 0), &part, &GEO, None).is_ok());
}

#[test]
fn bad_requests_get_their_status() {
    let part = Extent {
        first: 100,
        blocks: 50,
        read_only: false,
    };
    let bad = |r: Request, g| check(&r, &part, &GEO, g).unwrap_err();
    assert_eq!(
        bad(req(Op::Read, 45, 8), rw(4096)),
        Status::OutOfRange,
        "past the end"
    );
    assert_eq!(bad(req(Op::Read, 50, 1), rw(512)), Status::OutOfRange);
    assert_eq!(
        bad(req(Op::Read, u64::MAX, 2), rw(1024)),
        Status::OutOfRange,
        "wraps"
    );
    assert_eq!(
        bad(req(Op::Read, 0, 0), rw(512)),
        Status::OutOfRange,
        "no blocks"
    );
    assert_eq!(
        check(&req(Op::Read, 0, 257), &WHOLE, &GEO, rw(1 << 20)).unwrap_err(),
        Status::TooLarge
    );
    assert_eq!(
        bad(req(Op::Read, 0, 8), rw(4095)),
        Status::BadGrant,
        "grant too small"
    );
    assert_eq!(
        bad(req(Op::Write, 0, 8), None),
        Status::BadGrant,
        "no grant"
    );
    let ro_grant = Some(GrantInfo {
        len: 4096,
        writable: false,
    });
    assert_eq!(
        bad(req(Op::Read, 0, 8), ro_grant),
        Status::BadGrant,
        "read into read-only"
    );
    assert!(
        check(&req(Op::Write, 0, 8), &part, &GEO, ro_grant).is_ok(),
        "write from it"
    );
    assert_eq!(bad(req(Op::WriteZeroes, 0, 8), None), Status::Unsupported);
    let mut r = req(Op::Read, 0, 1);
    r.op = 8;
    assert_eq!(bad(r, rw(512)), Status::BadRequest);
}

#[test]
fn read_only_connections_cannot_change_anything() {
    let ro = Extent {
        read_only: true,
        ..WHOLE
    };
    for op in [Op::Write, Op::Trim, Op::WriteZeroes] {
        assert_eq!(
            check(&req(op, 0, 1), &ro, &GEO, rw(512)).unwrap_err(),
            Status::ReadOnly,
            "{op:?}"
        );
    }
    assert!(check(&req(Op::Read, 0, 1), &ro, &GEO, rw(512)).is_ok());
    assert!(check(&req(Op::Flush, 0, 0), &ro, &GEO, None).is_ok());
}

#[test]
fn every_request_in_range_passes_and_none_outside() {
    // Exhaustive over a small disk: a request passes exactly when it lies inside.
    let ext = Extent {
        first: 3,
        blocks: 20,
        read_only: false,
    };
    let geo = Geometry {
        max_blocks: 8,
        ..GEO
    };
    for lba in 0..30u64 {
        for blocks in 0..12u32 {
            let r = check(&req(Op::Read, lba, blocks), &ext, &geo, rw(1 << 20));
            let inside = blocks > 0 && lba + blocks as u64 <= 20 && blocks <= 8;
            assert_eq!(r.is_ok(), inside, "lba {lba} blocks {blocks}");
            if let Ok(c) = r {
                assert!(c.lba >= 3 && c.lba + c.blocks as u64 <= 23);
            }
        }
    }
}

#[test]
fn partition_info_round_trips() {
    let mut name = [0u8; 24];
    name[..4].copy_from_slice(b"root");
    let p = PartInfo {
        first: 2048,
        blocks: 99,
        type_guid: [3; 16],
        name,
    };
    assert_eq!(PartInfo::from_bytes(&p.to_bytes()), Some(p));
    assert_eq!(p.name(), "root");
    assert_eq!(PartInfo::from_bytes(&[0; 55]), None);
    assert_eq!(
        connect::partition(connect::with_partition(3) | connect::READ_ONLY),
        3
    );
}

#[test]
fn ranges_without_data_are_capped() {
    let geo = Geometry {
        blocks: 1 << 20,
        features: features::TRIM | features::WRITE_ZEROES,
        ..GEO
    };
    let big = Extent {
        first: 0,
        blocks: 1 << 20,
        read_only: false,
    };
    for op in [Op::Trim, Op::WriteZeroes] {
        assert!(check(&req(op, 0, MAX_RANGE_BLOCKS), &big, &geo, None).is_ok());
        assert_eq!(
            check(&req(op, 0, MAX_RANGE_BLOCKS + 1), &big, &geo, None).unwrap_err(),
            Status::TooLarge,
            "{op:?} of 65537 blocks would be cut to 1 by the 16-bit count"
        );
    }
}
