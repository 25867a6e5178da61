//! GUID Partition Table (UEFI 2.10, section 5.3): the protective MBR, the primary and
//! backup headers with their partition entry arrays, and a reader that checks all of
//! it (signatures, both header CRCs, the entry array CRC) for the tests and callers.
//!
//! Hand-written because it is small and must place the MBR boot code exactly; the
//! `gpt` crate would need a file and a second pass for that.

use crate::Error;
pub use zen_gpt::{guid, Guid, ENTRIES, ENTRY_SECTORS, ENTRY_SIZE, HEADER_SIZE, SECTOR};
use zen_gpt::{Entry, Header};

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
    Entry {
        type_guid: p.type_guid,
        unique_guid: p.unique_guid,
        first_lba: p.first_lba,
        last_lba: p.last_lba,
        attributes: p.attributes,
        name: zen_gpt::name(&p.name),
    }
    .encode()
}

fn header(
    my: u64,
    alt: u64,
    entries: u64,
    last_usable: u64,
    disk: &Guid,
    entries_crc: u32,
) -> [u8; HEADER_SIZE] {
    Header {
        my_lba: my,
        alternate_lba: alt,
        first_usable: first_usable(),
        last_usable,
        disk_guid: *disk,
        entries_lba: entries,
        entries: ENTRIES as u32,
        entry_size: ENTRY_SIZE as u32,
        entries_crc,
    }
    .encode()
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

/// Reads and checks the GPT of `disk` with the OS's own reader (zen-gpt): protective
/// MBR, both headers and both entry arrays, which must be equal. The used entries.
pub fn read(disk: &[u8]) -> Result<Vec<Partition>, Error> {
    let sectors = disk.len() as u64 / SECTOR;
    if sectors < 2 * first_usable() + 1 || disk[510..512] != [0x55, 0xaa] || disk[450] != 0xee {
        return Err(Error::new("no protective MBR"));
    }
    let primary = read_header(disk, 1)?;
    let backup = read_header(disk, sectors - 1)?;
    if primary != backup {
        return Err(Error::new("primary and backup entry arrays differ"));
    }
    Ok(primary
        .into_iter()
        .map(|e| Partition {
            type_guid: e.type_guid,
            unique_guid: e.unique_guid,
            first_lba: e.first_lba,
            last_lba: e.last_lba,
            attributes: e.attributes,
            name: String::from_utf16_lossy(&e.name_units().collect::<Vec<_>>()),
        })
        .collect())
}

/// Checks the header at `lba` and returns its entries.
fn read_header(disk: &[u8], lba: u64) -> Result<Vec<Entry>, Error> {
    let sectors = disk.len() as u64 / SECTOR;
    let at = |lba: u64| (lba * SECTOR) as usize;
    let h = Header::parse(&disk[at(lba)..at(lba + 1)], lba, sectors, SECTOR)
        .map_err(|e| Error::new(format!("GPT header at LBA {lba}: {}", e.as_str())))?;
    let array = disk
        .get(at(h.entries_lba)..)
        .ok_or_else(|| Error::new("entry array outside the disk"))?;
    h.entries(array)
        .map_err(|e| Error::new(format!("GPT entries (header at LBA {lba}): {}", e.as_str())))
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
