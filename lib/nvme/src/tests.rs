use super::*;

#[test]
fn cap_fields() {
    // QEMU's: MQES 2047, CQR, TO 15, DSTRD 0, CSS NVM, MPSMIN 0, MPSMAX 4.
    let cap = 0x7ff | 1 << 16 | 0xf << 24 | 1 << 37 | 4 << 52;
    let c = Cap::parse(cap);
    assert_eq!(c.max_queue_entries, 2048);
    assert_eq!(c.doorbell_stride, 4);
    assert_eq!(c.timeout_ms, 7500);
    assert_eq!(c.min_page_shift, 12);
    assert!(c.nvm);
    assert_eq!(c.sq_doorbell(0), 0x1000);
    assert_eq!(c.cq_doorbell(0), 0x1004);
    assert_eq!(c.sq_doorbell(3), 0x1018);
    let wide = Cap::parse(2 << 32);
    assert_eq!(wide.doorbell_stride, 16);
    assert_eq!(wide.cq_doorbell(1), 0x1000 + 3 * 16);
    assert_eq!(Cap::parse(0).max_queue_entries, 2, "MQES 0 is no queue");
    assert_eq!(Cap::parse(0).timeout_ms, 500);
}

#[test]
fn commands_encode_as_the_spec_lays_them_out() {
    let c = Command::rw(false, 0x1234, 1, 0x1_0000_0002, 8, (0xa000, 0xb000));
    let w = c.to_words();
    assert_eq!(w[0] & 0xff, 0x02);
    assert_eq!((w[0] >> 16) & 0xffff, 0x1234);
    assert_eq!(w[0] >> 32, 1);
    assert_eq!((w[3], w[4]), (0xa000, 0xb000));
    assert_eq!(w[5], 0x1_0000_0002, "SLBA in CDW10/11");
    assert_eq!(w[6] & 0xffff, 7, "NLB is 0-based");
    let q = Command::create_cq(1, 3, 64, 0x5000, 2).to_words();
    assert_eq!(q[5] as u32, 3 | 63 << 16);
    assert_eq!((q[5] >> 32) as u32, 0b11 | 2 << 16);
    let s = Command::create_sq(1, 3, 64, 0x6000, 3).to_words();
    assert_eq!((s[5] >> 32) as u32, 1 | 3 << 16);
    let n = Command::set_queues(0, 2).to_words();
    assert_eq!(n[5] as u32, FEATURE_QUEUES);
    assert_eq!((n[5] >> 32) as u32, 1 | 1 << 16);
}

#[test]
fn completions_parse() {
    let dw2 = 5u64 | 1 << 16; // SQ head 5, SQ 1
    let dw3 = 0x42u64 | 1 << 16 | (0x02 << 17); // CID 0x42, phase, status 2
    let c = Completion::parse(0xdead, dw2 | dw3 << 32);
    assert_eq!((c.result, c.sq_head, c.sq_id, c.cid), (0xdead, 5, 1, 0x42));
    assert!(c.phase);
    assert!(!c.ok());
    assert!(Completion::parse(0, 1 << 48).ok());
}

fn page() -> Box<[u8; 4096]> {
    Box::new([0u8; 4096])
}

#[test]
fn identify_controller() {
    let mut p = page();
    p[4..8].copy_from_slice(b"zen0");
    p[77] = 5; // 2^5 pages = 128 KiB
    p[516] = 1;
    p[520] = 1 << 3 | 1 << 2;
    p[525] = 1;
    let c = Controller::parse(&p, 12);
    assert_eq!(&c.serial[..4], b"zen0");
    assert_eq!(c.max_transfer, 128 << 10);
    assert_eq!(c.namespaces, 1);
    assert!(c.write_zeroes && c.deallocate && c.volatile_cache);
    p[77] = 0;
    assert_eq!(
        Controller::parse(&p, 12).max_transfer,
        MAX_TRANSFER,
        "no limit"
    );
    p[77] = 200;
    assert_eq!(
        Controller::parse(&p, 12).max_transfer,
        MAX_TRANSFER,
        "a lie"
    );
}

#[test]
fn identify_namespace_refuses_what_it_cannot_serve() {
    let mut p = page();
    p[0..8].copy_from_slice(&1000u64.to_le_bytes());
    p[25] = 1; // two formats
    p[26] = 1; // using the second
    p[128..132].copy_from_slice(&(9u32 << 16).to_le_bytes());
    p[132..136].copy_from_slice(&(12u32 << 16).to_le_bytes());
    assert_eq!(
        Namespace::parse(&p),
        Some(Namespace {
            blocks: 1000,
            block_shift: 12
        })
    );
    p[26] = 2; // past the formats it has
    assert_eq!(Namespace::parse(&p), None);
    p[26] = 0;
    p[128..132].copy_from_slice(&(9u32 << 16 | 8).to_le_bytes()); // metadata
    assert_eq!(Namespace::parse(&p), None);
    p[128..132].copy_from_slice(&(40u32 << 16).to_le_bytes()); // 1 TiB blocks
    assert_eq!(Namespace::parse(&p), None);
    p[128..132].copy_from_slice(&(9u32 << 16).to_le_bytes());
    p[0..8].copy_from_slice(&0u64.to_le_bytes());
    assert_eq!(Namespace::parse(&p), None, "inactive");
}

#[test]
fn prp_entries() {
    let mut list = [0u64; 512];
    let at = |i: usize| 0x10_0000 + i as u64 * 0x1000;
    assert_eq!(prps(512, 0, at, &mut list), Some((0x10_0000, 0, 0)));
    assert_eq!(prps(4096, 0, at, &mut list), Some((0x10_0000, 0, 0)));
    assert_eq!(
        prps(4096, 512, at, &mut list),
        Some((0x10_0200, 0x10_1000, 0)),
        "an offset spills into a second page"
    );
    assert_eq!(prps(3 * 4096, 0, at, &mut list), Some((0x10_0000, 0, 2)));
    assert_eq!(&list[..2], &[0x10_1000, 0x10_2000]);
    assert_eq!(prps(513 * 4096, 0, at, &mut list).map(|p| p.2), Some(512));
    assert_eq!(
        prps(514 * 4096, 0, at, &mut list),
        None,
        "more than one list page"
    );
    assert_eq!(prps(0, 0, at, &mut list), None);
    assert_eq!(prps(10, 4096, at, &mut list), None);
}
