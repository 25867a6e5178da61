//! Importing a directory tree (brief item 39): each regular file becomes an object
//! holding its content, tagged `path:/<path under the root>`, `type:<kind>` from its
//! extension, `ext:<extension>` and `year:<year of mtime, UTC>`.
//!
//! Tags cannot contain spaces, `(`, `)` or `*` (the query language needs them), so those
//! characters and `%` are percent-encoded in path tags (`my file` → `my%20file`). A path
//! tag longer than 255 bytes is left off, and the file is reported.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Regular files under `root`, sorted, so an import is deterministic.
pub fn walk(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Percent-encodes the characters a tag cannot hold.
pub fn encode_path(p: &str) -> String {
    let mut s = String::with_capacity(p.len());
    for c in p.chars() {
        if c.is_whitespace() || c.is_control() || matches!(c, '(' | ')' | '*' | '%') {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                s.push_str(&format!("%{byte:02X}"));
            }
        } else {
            s.push(c);
        }
    }
    s
}

/// The kind of a file by its extension.
pub fn kind(ext: &str) -> &'static str {
    match ext {
        "txt" | "md" | "rst" | "org" | "tex" | "csv" | "log" => "text",
        "rs" | "c" | "h" | "cc" | "cpp" | "hpp" | "py" | "go" | "js" | "ts" | "java" | "sh"
        | "s" | "asm" | "rb" | "lua" => "code",
        "toml" | "json" | "yaml" | "yml" | "ini" | "xml" | "cfg" | "conf" => "config",
        "jpg" | "jpeg" | "png" | "gif" | "bmp" | "webp" | "svg" | "tiff" | "ico" => "image",
        "mp3" | "wav" | "flac" | "ogg" | "opus" | "m4a" => "audio",
        "mp4" | "mkv" | "webm" | "avi" | "mov" => "video",
        "pdf" | "doc" | "docx" | "odt" | "epub" | "html" | "htm" => "document",
        "zip" | "tar" | "gz" | "xz" | "zst" | "bz2" | "7z" => "archive",
        "so" | "a" | "o" | "exe" | "dll" | "bin" | "elf" | "wasm" => "binary",
        _ => "other",
    }
}

/// The tags of a file at `path` (relative path `rel`).
pub fn tags_for(rel: &Path, path: &Path) -> (Vec<String>, Option<String>) {
    let mut tags = Vec::new();
    let mut skipped = None;
    let rel_s = format!("/{}", rel.to_string_lossy());
    let ptag = format!("path:{}", encode_path(&rel_s));
    if ptag.len() <= 255 {
        tags.push(ptag);
    } else {
        skipped = Some(format!(
            "{rel_s}: path too long for a tag, imported without path:"
        ));
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    tags.push(format!("type:{}", kind(&ext)));
    if !ext.is_empty() && zen_tagfs::query::tag_problem(&format!("ext:{ext}")).is_none() {
        tags.push(format!("ext:{ext}"));
    }
    if let Ok(m) = std::fs::metadata(path).and_then(|m| m.modified()) {
        tags.push(format!("year:{}", year_of(m)));
    }
    (tags, skipped)
}

/// Imports `files` (tagged by their path under `base`, as [`tags_for`] says) into
/// `fs` with a progress bar, syncing every 256 files and at the end; (files, bytes).
pub fn import_files<D: zen_tagfs::BlockDevice>(
    fs: &mut zen_tagfs::Fs<D>,
    base: &Path,
    files: &[PathBuf],
) -> Result<(usize, u64), String> {
    use indicatif::{ProgressBar, ProgressStyle};
    let e = |e: zen_tagfs::Error| e.to_string();
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        // The position counts files, so the rate is files per second (not
        // `{bytes_per_sec}`, which would print files as bytes).
        ProgressStyle::with_template("{bar:40} {pos}/{len} files {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut bytes = 0u64;
    for (i, path) in files.iter().enumerate() {
        let rel = path.strip_prefix(base).unwrap_or(path);
        let data = std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()))?;
        let id = fs.create().map_err(e)?;
        fs.write(id, 0, &data)
            .map_err(|err| format!("{}: {err}", path.display()))?;
        let (tags, warn) = tags_for(rel, path);
        if let Some(w) = warn {
            bar.println(format!("warning: {w}"));
        }
        for t in tags {
            fs.add_tag(id, &t).map_err(e)?;
        }
        bytes += data.len() as u64;
        if i % 256 == 255 {
            fs.sync().map_err(e)?;
        }
        bar.inc(1);
    }
    fs.sync().map_err(e)?;
    bar.finish_and_clear();
    Ok((files.len(), bytes))
}

/// The UTC calendar year of a time (Howard Hinnant's days-to-civil algorithm).
pub fn year_of(t: SystemTime) -> i64 {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn years_and_encoding() {
        let at = |s: u64| year_of(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), 1970);
        assert_eq!(at(1_704_067_199), 2023); // 2023-12-31T23:59:59Z
        assert_eq!(at(1_704_067_200), 2024);
        assert_eq!(at(951_782_400), 2000); // 2000-02-29
        assert_eq!(encode_path("/a b/(c)*%"), "/a%20b/%28c%29%2A%25");
        assert_eq!(kind("rs"), "code");
    }
}
