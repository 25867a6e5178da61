//! tagfs: the host tool for TagFS images — mkfs, import a directory tree, query, cat,
//! tag and untag, fsck, stat. It runs the very engine `tagfsd` runs (`zen-tagfs`), over
//! an image file instead of a disk.

use tagfs_tool::{file_device, import};

use clap::{Parser, Subcommand};
use file_device::FileDevice;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use zen_tagfs::{Config, Fs, ObjectId};

#[derive(Parser)]
#[command(
    name = "tagfs",
    version,
    about = "Create, fill, query and check TagFS images"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create an image file holding an empty TagFS.
    Mkfs {
        image: PathBuf,
        /// Size, with an optional K, M or G suffix.
        #[arg(long, default_value = "256M")]
        size: String,
    },
    /// Import every file under a directory: content plus path:, type:, ext: and year: tags.
    Import { image: PathBuf, dir: PathBuf },
    /// Print the objects matching a query, e.g. 'type:text AND NOT path:/tmp/*'.
    Query {
        image: PathBuf,
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
    },
    /// Write an object's content to standard output (an id, or a query matching one object).
    Cat { image: PathBuf, object: String },
    /// Add tags to an object.
    Tag {
        image: PathBuf,
        object: String,
        #[arg(required = true, num_args = 1..)]
        tags: Vec<String>,
    },
    /// Remove tags from an object.
    Untag {
        image: PathBuf,
        object: String,
        #[arg(required = true, num_args = 1..)]
        tags: Vec<String>,
    },
    /// List every tag with its object count.
    Tags { image: PathBuf },
    /// Mount, replay, verify every checksum and the index; non-zero exit if damaged.
    Fsck { image: PathBuf },
    /// Figures for the image, or one object's metadata and tags.
    Stat {
        image: PathBuf,
        object: Option<String>,
    },
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("cannot read size {s:?} (try 64M or 2G)"))
}

fn mount(image: &Path) -> Result<Fs<FileDevice>, String> {
    let dev = FileDevice::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    Fs::mount(dev, Config::default()).map_err(|e| format!("{}: {e}", image.display()))
}

/// An object named by id, or by a query that must match exactly one object.
fn resolve(fs: &Fs<FileDevice>, name: &str) -> Result<ObjectId, String> {
    if let Ok(id) = name.parse::<ObjectId>() {
        fs.meta(id).map_err(|e| e.to_string())?;
        return Ok(id);
    }
    let hits = fs.query(name).map_err(|e| e.to_string())?;
    match hits.as_slice() {
        [id] => Ok(*id),
        [] => Err(format!("no object matches {name:?}")),
        more => Err(format!(
            "{} objects match {name:?}; name one by id",
            more.len()
        )),
    }
}

fn path_of(fs: &Fs<FileDevice>, id: ObjectId) -> String {
    let tags = fs.tags(id).unwrap_or_default();
    tags.iter()
        .find_map(|t| t.strip_prefix("path:").map(String::from))
        .unwrap_or_default()
}

fn run(cmd: Cmd) -> Result<(), String> {
    let e = |e: zen_tagfs::Error| e.to_string();
    match cmd {
        Cmd::Mkfs { image, size } => {
            let bytes = parse_size(&size)?;
            let dev = FileDevice::create(&image, bytes)
                .map_err(|err| format!("{}: {err}", image.display()))?;
            let fs = Fs::format(dev, Config::default()).map_err(e)?;
            let st = fs.stats();
            fs.unmount().map_err(e)?;
            println!(
                "{}: TagFS with {} segments of 256 KiB",
                image.display(),
                st.segments
            );
        }
        Cmd::Import { image, dir } => {
            let files = import::walk(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
            let mut fs = mount(&image)?;
            let (_, bytes) = import::import_files(&mut fs, &dir, &files)?;
            fs.unmount().map_err(e)?;
            println!("imported {} files, {} bytes", files.len(), bytes);
        }
        Cmd::Query { image, query } => {
            let fs = mount(&image)?;
            let q = query.join(" ");
            let ids = fs.query(&q).map_err(|err| {
                format!(
                    "{err}\n  {q}\n  {}^",
                    " ".repeat(match &err {
                        zen_tagfs::Error::Query(qe) => qe.pos,
                        _ => 0,
                    })
                )
            })?;
            let mut out = std::io::stdout().lock();
            for id in &ids {
                let _ = writeln!(out, "{id}\t{}", path_of(&fs, *id));
            }
            eprintln!("{} objects", ids.len());
        }
        Cmd::Cat { image, object } => {
            let mut fs = mount(&image)?;
            let id = resolve(&fs, &object)?;
            let size = fs.meta(id).map_err(e)?.size();
            let mut out = std::io::stdout().lock();
            let mut buf = vec![0u8; 1 << 20];
            let mut off = 0;
            while off < size {
                let n = fs.read(id, off, &mut buf).map_err(e)?;
                out.write_all(&buf[..n]).map_err(|err| err.to_string())?;
                off += n as u64;
            }
        }
        Cmd::Tag {
            image,
            object,
            tags,
        } => {
            let mut fs = mount(&image)?;
            let id = resolve(&fs, &object)?;
            for t in &tags {
                fs.add_tag(id, t).map_err(e)?;
            }
            fs.unmount().map_err(e)?;
        }
        Cmd::Untag {
            image,
            object,
            tags,
        } => {
            let mut fs = mount(&image)?;
            let id = resolve(&fs, &object)?;
            for t in &tags {
                if !fs.remove_tag(id, t).map_err(e)? {
                    eprintln!("object {id} has no tag {t:?}");
                }
            }
            fs.unmount().map_err(e)?;
        }
        Cmd::Tags { image } => {
            let fs = mount(&image)?;
            for (t, n) in fs.all_tags() {
                println!("{n}\t{t}");
            }
        }
        Cmd::Fsck { image } => {
            let mut fs = mount(&image)?;
            let r = fs
                .check()
                .map_err(|err| format!("{}: {err}", image.display()))?;
            let st = fs.stats();
            println!(
                "{}: clean: {} objects, {} extents ({} bytes) verified, {} object-tag pairs, {} tags, {}/{} segments free",
                image.display(),
                r.objects,
                r.extents,
                r.bytes,
                r.tag_pairs,
                st.tags,
                st.free_segments,
                st.segments
            );
        }
        Cmd::Stat {
            image,
            object: None,
        } => {
            let fs = mount(&image)?;
            let s = fs.stats();
            println!("objects          {}", s.objects);
            println!("tags             {}", s.tags);
            println!(
                "segments         {} of 256 KiB, {} free, {} in the log",
                s.segments, s.free_segments, s.log_segments
            );
            println!("live content     {} bytes", s.live_bytes);
            println!("checkpoint       {} bytes", s.checkpoint_bytes);
            println!("index memory     {} bytes", s.index_memory);
        }
        Cmd::Stat {
            image,
            object: Some(o),
        } => {
            let fs = mount(&image)?;
            let id = resolve(&fs, &o)?;
            let m = fs.meta(id).map_err(e)?;
            println!("id       {}", m.id());
            println!("size     {}", m.size());
            println!("extents  {}", m.extent_count());
            println!("tags     {}", fs.tags(id).map_err(e)?.join(" "));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("tagfs: {msg}");
            ExitCode::FAILURE
        }
    }
}
