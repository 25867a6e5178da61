//! The TagFS root partition of `zenos.img`: what `cargo xtask image` (and `run`)
//! puts there, and what a run keeps from the last.
//!
//! - A new image gets a store with the project's own tree imported (README, docs,
//!   the user programs' sources), so a new user has something to query at once;
//!   `--import DIR` imports the user's tree instead (with a progress bar).
//! - An image that exists already keeps its root partition: the boot partition is
//!   rewritten with the new build, the user's objects stay, as a virtual machine's
//!   disk would. `--fresh` starts over. (Kept only if the old image's GPT places the
//!   root partition exactly where the new one does; otherwise it says so and starts
//!   over.)
//!
//! Imports tag each file as the host tool does (tools/tagfs: `path:`, `type:`,
//! `ext:`, `year:`).

use crate::util::Result;
use std::path::{Path, PathBuf};
use zen_tagfs::{Config, Fs, MemDevice};

/// What goes on the root partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Root {
    /// The old image's, if it has one where the new layout puts it.
    Keep,
    /// A new store with the project's tree.
    Project,
    /// A new store with this tree.
    Import(PathBuf),
}

/// The root partition's byte range in an image laid out as `layout`.
fn range(layout: &zenimg::Layout) -> Result<std::ops::Range<usize>> {
    let p = layout
        .partitions
        .iter()
        .find(|p| p.type_guid == zenimg::ZEN_ROOT_TYPE)
        .ok_or("the image has no TagFS root partition")?;
    Ok(p.first_lba as usize * 512..(p.last_lba as usize + 1) * 512)
}

/// The root partition's range in the disk image `old`, read from its GPT.
fn old_range(old: &[u8]) -> Option<std::ops::Range<usize>> {
    let blocks = old.len() as u64 / 512;
    let h = zen_gpt::Header::parse(old.get(512..1024)?, 1, blocks, 512).ok()?;
    let at = h.entries_lba as usize * 512;
    let array = old.get(at..at + h.array_bytes() as usize)?;
    let e = h
        .entries(array)
        .ok()?
        .into_iter()
        .find(|e| e.type_guid == zen_gpt::ZEN_ROOT_TYPE)?;
    Some(e.first_lba as usize * 512..(e.last_lba as usize + 1) * 512)
}

/// Fills `img`'s root partition as `root` says (`old`: the image file written last
/// time, if any); a line saying what it did.
pub fn fill(img: &mut [u8], layout: &zenimg::Layout, old: &Path, root: &Root) -> Result<String> {
    let r = range(layout)?;
    if *root == Root::Keep {
        if let Ok(prev) = std::fs::read(old) {
            match old_range(&prev) {
                Some(o) if o == r && prev.len() >= o.end => {
                    img[r.clone()].copy_from_slice(&prev[o]);
                    return Ok(format!(
                        "root partition kept from the last {} (--fresh starts over)",
                        old.display()
                    ));
                }
                _ => println!(
                    "xtask: {}: its root partition is not where the new image puts it; starting over",
                    old.display()
                ),
            }
        }
    }
    let (dirs, root_dir): (Vec<PathBuf>, PathBuf) = match root {
        Root::Import(d) => (vec![d.clone()], d.clone()),
        _ => {
            let top = crate::util::root();
            let mut dirs = vec![top.join("docs")];
            dirs.extend(
                std::fs::read_dir(top.join("user"))
                    .map_err(|e| format!("user/: {e}"))?
                    .filter_map(|e| e.ok())
                    .map(|e| e.path().join("src"))
                    .filter(|p| p.is_dir()),
            );
            (dirs, top)
        }
    };
    let mut files = Vec::new();
    for d in &dirs {
        files.extend(tagfs_tool::import::walk(d).map_err(|e| format!("{}: {e}", d.display()))?);
    }
    if !matches!(root, Root::Import(_)) {
        files.push(root_dir.join("README.md"));
    }
    let programs: Vec<(String, Vec<u8>)> = crate::build::STORE_PROGRAMS
        .iter()
        .filter_map(|p| Some((p.to_string(), std::fs::read(crate::build::program(p)).ok()?)))
        .collect();
    let (n, bytes) = import(&mut img[r], &root_dir, &files, &programs)?;
    Ok(format!(
        "root partition: a new store with {n} files ({} KiB) from {} and {} program{} ({})",
        bytes >> 10,
        root_dir.display(),
        programs.len(),
        if programs.len() == 1 { "" } else { "s" },
        programs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Adds `programs` (name, ELF) to `fs` as objects tagged `program:NAME`.
pub fn add_programs<D: zen_tagfs::BlockDevice>(
    fs: &mut Fs<D>,
    programs: &[(String, Vec<u8>)],
) -> std::result::Result<(), zen_tagfs::Error> {
    for (name, elf) in programs {
        let id = fs.create()?;
        fs.write(id, 0, elf)?;
        fs.add_tag(id, &format!("program:{name}"))?;
        fs.add_tag(id, "type:binary")?;
    }
    Ok(())
}

/// A store with `files` (tagged relative to `base`) and `programs` written into
/// `part`; how many files and bytes.
fn import(
    part: &mut [u8],
    base: &Path,
    files: &[PathBuf],
    programs: &[(String, Vec<u8>)],
) -> Result<(usize, u64)> {
    let e = |e: zen_tagfs::Error| format!("the root store: {e}");
    let mut fs =
        Fs::format(MemDevice::new(part.len() as u64 / 4096), Config::default()).map_err(e)?;
    let (n, bytes) = tagfs_tool::import::import_files(&mut fs, base, files)?;
    add_programs(&mut fs, programs).map_err(e)?;
    fs.sync().map_err(e)?;
    let dev = fs.unmount().map_err(e)?;
    part.fill(0);
    for lba in dev.written().collect::<Vec<_>>() {
        let at = lba as usize * 4096;
        if let Some(b) = dev.block(lba) {
            part[at..at + 4096].copy_from_slice(b);
        }
    }
    Ok((n, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scratch disk's layout (root partition at 40960..=57343), as `write_image`
    /// would report it.
    fn layout() -> zenimg::Layout {
        zenimg::Layout {
            partitions: vec![zenimg::gpt::Partition {
                type_guid: zenimg::ZEN_ROOT_TYPE,
                unique_guid: [2; 16],
                first_lba: 40960,
                last_lba: 57343,
                attributes: 0,
                name: "scratch root".into(),
            }],
            zenos_lba: 0,
            zenos_len: 0,
            params_lba: 0,
        }
    }

    #[test]
    fn a_new_store_holds_the_tree_and_a_run_keeps_it() {
        let dir = std::env::temp_dir().join(format!("zen-rootfs-{}", std::process::id()));
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("notes")).unwrap();
        std::fs::write(tree.join("notes/todo.txt"), b"milk").unwrap();
        let old = dir.join("old.img");
        let mut img = crate::disk::scratch_image().unwrap();
        let said = fill(&mut img, &layout(), &old, &Root::Import(tree.clone())).unwrap();
        assert!(said.contains("1 files"), "{said}");
        // The partition mounts and holds the file with its tags.
        let r = range(&layout()).unwrap();
        assert_eq!(old_range(&img), Some(r.clone()));
        let mut dev = MemDevice::new((r.len() / 4096) as u64);
        for (i, b) in img[r.clone()].chunks_exact(4096).enumerate() {
            zen_tagfs::BlockDevice::write_block(&mut dev, i as u64, b).unwrap();
        }
        let mut fs = Fs::mount(dev, Config::default()).unwrap();
        let ids = fs.query("path:/notes/todo.txt AND type:text").unwrap();
        assert_eq!(fs.read_all(ids[0]).unwrap(), b"milk");
        // Kept: a new image takes the old one's root partition as it is.
        std::fs::write(&old, &img).unwrap();
        let mut next = crate::disk::scratch_image().unwrap();
        let said = fill(&mut next, &layout(), &old, &Root::Keep).unwrap();
        assert!(said.contains("kept"), "{said}");
        assert_eq!(next[r.clone()], img[r.clone()]);
        // An old image whose root partition sits elsewhere is not kept.
        let moved = zenimg::Layout {
            partitions: vec![zenimg::gpt::Partition {
                first_lba: 2048,
                last_lba: 18431,
                ..layout().partitions[0].clone()
            }],
            ..layout()
        };
        let mut other = crate::disk::scratch_image().unwrap();
        let said = fill(&mut other, &moved, &old, &Root::Keep).unwrap();
        assert!(said.contains("a new store"), "{said}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
