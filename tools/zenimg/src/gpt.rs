//! GUID Partition Table (UEFI 2.10, section 5.3): the protective MBR, the primary and
//! backup headers with their partition entry arrays, and a reader that checks all of
//! it (signatures, both header CRCs, the entry array CRC) for the tests and callers.
//!
//! Hand-written because it is small and must place the MBR boot code exactly; the
//! `gpt` crate would need a file and a second pass for that.

use crate::Error;

pub const SECTOR: u64 = 512;
/// 128 entries of 128 bytes: 32 sectors, the minimum the spec allows.
pub const ENTRIES: usize = 128;
pub const ENTRY_SIZE: usize = 128;
const ENTRY_SECTORS: u64 = (ENTRIES * ENTRY_SIZE) as u64 / SECTOR;
const HEADER_SIZE: usize = 92;

/// A GUID in its on-disk byte order (the first three fields little-endian).
pub type Guid = [u8; 16];

/// Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into on-disk byte order; panics (at
/// compile time, for constants) on a malformed string.
pub const fn guid(s: &str) -> Guid {
    let s = s.as_bytes();
    assert!(s.len() == 36 && s[8] == b'-' && s[13] == b'-' && s[18] == b'-' && s[23] == b'-');
    // Text order of the bytes, then the mixed-endian swap of the first three fields.
    let mut text = [0u8; 16];
    let (mut i, mut n) = (0, 0);
    while i < 36 {
        if s[i] == b'-' {
            i += 1;
            continue;
        }
        text[n] = hex(s[i]) << 4 | hex(s[i + 1]);
        n += 1;
        i += 2;
    }
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    let mut g = [0u8; 16];
    let mut k = 0;
    while k < 16 {
        g[k] = text[order[k]];
        k += 1;
    }
    g
}

const fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("not a hex digit"),
    }
}

/// One partition: inclusive LBA range, as GPT stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
    pub name: String,
}

fn entry(p: &Partition) -> [u8; ENTRY_SIZE] {
    let mut e = [0u8; ENTRY_SIZE];
    e[0..16].copy_from_slice(&p.type_guid);
    e[16..32].copy_from_slice(&p.unique_guid);
    e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
    e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
    e[48..56].copy_from_slice(&p.attributes.to_le_bytes());
    for (i, c) in p.name.encode_utf16().take(36).enumerate() {
        e[56 + 2 * i..58 + 2 * i].copy_from_slice(&c.to_le_bytes());
    }
    e
}

fn header(
    my: u64,
    alt: u64,
    entries: u64,
    last_usable: u64,
    disk: &Guid,
    entries_crc: u32,
) -> [u8; HEADER_SIZE] {
    let mut h = [0u8; HEADER_SIZE];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    h[24..32].copy_from_slice(&my.to_le_bytes());
    h[32..40].copy_from_slice(&alt.to_le_bytes());
    h[40..48].copy_from_slice(&first_usable().to_le_bytes());
    h[48..56].copy_from_slice(&last_usable.to_le_bytes());
    h[56..72].copy_from_slice(disk);
    h[72..80].copy_from_slice(&entries.to_le_bytes());
    h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
    h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
    h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
    let crc = crc32fast::hash(&h);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// First LBA a partition may use: after the MBR, the header and the entries.
pub const fn first_usable() -> u64 {
    2 + ENTRY_SECTORS
}

/// Last LBA a partition may use on a disk of `sectors` sectors.
pub const fn last_usable(sectors: u64) -> u64 {
    sectors - 2 - ENTRY_SECTORS
}

/// Writes the protective MBR (keeping `disk[..440]`, the boot code), both GPT headers
/// and both entry arrays. Partitions must lie within the usable range.
pub fn write(disk: &mut [u8], disk_guid: &Guid, parts: &[Partition]) -> Result<(), Error> {
    let sectors = disk.len() as u64 / SECTOR;
    if !(disk.len() as u64).is_multiple_of(SECTOR)
        || sectors < 2 * first_usable() + 1
        || parts.len() > ENTRIES
    {
        return Err(Error::new("disk too small or too many partitions"));
    }
    for p in parts {
        if p.first_lba < first_usable()
            || p.last_lba > last_usable(sectors)
            || p.first_lba > p.last_lba
        {
            return Err(Error::new(format!(
                "partition {} outside the usable range",
                p.name
            )));
        }
    }
    // Protective MBR: one partition of type 0xEE over the whole disk (capped at 2 TiB).
    disk[440..512].fill(0);
    let mbr_part = [0x00, 0x00, 0x02, 0x00, 0xee, 0xff, 0xff, 0xff];
    disk[446..454].copy_from_slice(&mbr_part);
    disk[454..458].copy_from_slice(&1u32.to_le_bytes());
    disk[458..462].copy_from_slice(&((sectors - 1).min(u32::MAX as u64) as u32).to_le_bytes());
    disk[510..512].copy_from_slice(&[0x55, 0xaa]);

    let mut array = vec![0u8; ENTRIES * ENTRY_SIZE];
    for (i, p) in parts.iter().enumerate() {
        array[i * ENTRY_SIZE..(i + 1) * ENTRY_SIZE].copy_from_slice(&entry(p));
    }
    let crc = crc32fast::hash(&array);
    let last = sectors - 1;
    let backup_entries = last - ENTRY_SECTORS;
    let at = |lba: u64| (lba * SECTOR) as usize;
    disk[at(1)..at(2)].fill(0);
    disk[at(1)..at(1) + HEADER_SIZE].copy_from_slice(&header(
        1,
        last,
        2,
        last_usable(sectors),
        disk_guid,
        crc,
    ));
    disk[at(2)..at(2) + array.len()].copy_from_slice(&array);
    disk[at(backup_entries)..at(backup_entries) + array.len()].copy_from_slice(&array);
    disk[at(last)..].fill(0);
    disk[at(last)..at(last) + HEADER_SIZE].copy_from_slice(&header(
        last,
        1,
        backup_entries,
        last_usable(sectors),
        disk_guid,
        crc,
    ));
    Ok(())
}

/// Reads and checks the GPT of `disk`: protective MBR, both headers (signature, CRC,
/// where they point) and both entry arrays (CRC, equal). Returns the used entries.
pub fn read(disk: &[u8]) -> Result<Vec<Partition>, Error> {
    let sectors = disk.len() as u64 / SECTOR;
    if sectors < 2 * first_usable() + 1 || disk[510..512] != [0x55, 0xaa] || disk[450] != 0xee {
        return Err(Error::new("no protective MBR"));
    }
    let primary = read_header(disk, 1, sectors - 1)?;
    let backup = read_header(disk, sectors - 1, 1)?;
    if primary != backup {
        return Err(Error::new("primary and backup entry arrays differ"));
    }
    let mut parts = Vec::new();
    for e in primary.chunks(ENTRY_SIZE).filter(|e| e[..16] != [0; 16]) {
        let u64_at = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().unwrap());
        let name: Vec<u16> = e[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&c| c != 0)
            .collect();
        parts.push(Partition {
            type_guid: e[0..16].try_into().unwrap(),
            unique_guid: e[16..32].try_into().unwrap(),
            first_lba: u64_at(32),
            last_lba: u64_at(40),
            attributes: u64_at(48),
            name: String::from_utf16_lossy(&name),
        });
    }
    Ok(parts)
}

/// Checks the header at `lba` and returns its entry array.
fn read_header(disk: &[u8], lba: u64, alt: u64) -> Result<&[u8], Error> {
    let h = &disk[(lba * SECTOR) as usize..][..HEADER_SIZE];
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().unwrap());
    let mut zeroed = [0u8; HEADER_SIZE];
    zeroed.copy_from_slice(h);
    zeroed[16..20].fill(0);
    if &h[..8] != b"EFI PART" || crc32fast::hash(&zeroed) != u32_at(16) {
        return Err(Error::new(format!("bad GPT header at LBA {lba}")));
    }
    if u64_at(24) != lba
        || u64_at(32) != alt
        || u32_at(80) as usize != ENTRIES
        || u32_at(84) as usize != ENTRY_SIZE
    {
        return Err(Error::new(format!(
            "GPT header at LBA {lba} points elsewhere"
        )));
    }
    let start = (u64_at(72) * SECTOR) as usize;
    let array = disk
        .get(start..start + ENTRIES * ENTRY_SIZE)
        .ok_or_else(|| Error::new("entry array outside the disk"))?;
    if crc32fast::hash(array) != u32_at(88) {
        return Err(Error::new(format!(
            "bad entry array CRC (header at LBA {lba})"
        )));
    }
    Ok(array)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_uses_mixed_endian() {
        let g = guid("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(
            g,
            [
                0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
                0xc9, 0x3b
            ]
        );
    }

    #[test]
    fn round_trips_and_detects_corruption() {
        let mut disk = vec![0u8; 4 << 20];
        disk[..440].fill(0x90);
        let p = Partition {
            type_guid: guid("21686148-6449-6E6F-744E-656564454649"),
            unique_guid: [7; 16],
            first_lba: 2048,
            last_lba: 4095,
            attributes: 0,
            name: "BIOS boot".into(),
        };
        write(&mut disk, &[1; 16], std::slice::from_ref(&p)).unwrap();
        assert_eq!(read(&disk).unwrap(), vec![p]);
        assert!(disk[..440].iter().all(|&b| b == 0x90), "boot code kept");
        let mut bad = disk.clone();
        bad[512 + 40] ^= 1;
        assert!(read(&bad).is_err(), "primary header CRC");
        let mut bad = disk.clone();
        bad[2 * 512 + 33] ^= 1;
        assert!(read(&bad).is_err(), "entry array CRC");
        let mut bad = disk;
        let n = bad.len();
        bad[n - 512 + 60] ^= 1;
        assert!(read(&bad).is_err(), "backup header CRC");
    }
}
