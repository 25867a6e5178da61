//! The tool end to end on a real image file: mkfs, import, query, cat, tag, untag,
//! stat, fsck, and a damaged image refused with a message.

use std::path::Path;
use std::process::{Command, Output};

fn tagfs(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tagfs"));
    for a in args {
        c.arg(a);
    }
    c.output().unwrap()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("docs/notes")).unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("docs/readme.md"), "read me\n").unwrap();
    std::fs::write(root.join("docs/notes/my plan (v2).txt"), "plan").unwrap();
    std::fs::write(root.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(root.join("photo.JPG"), vec![0xffu8; 200_000]).unwrap();
}

#[test]
fn mkfs_import_query_cat_tag_fsck() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("t.img");
    let src = dir.path().join("tree");
    tree(&src);
    ok(tagfs(&[&"mkfs", &img, &"--size", &"8M"]));
    let out = ok(tagfs(&[&"import", &img, &src]));
    assert!(out.contains("imported 4 files"), "{out}");

    let q = ok(tagfs(&[&"query", &img, &"type:text"]));
    assert!(
        q.contains("/docs/readme.md") && q.contains("/docs/notes/my%20plan%20%28v2%29.txt"),
        "{q}"
    );
    assert_eq!(q.lines().count(), 2);
    let q = ok(tagfs(&[
        &"query",
        &img,
        &"path:/docs/*",
        &"AND",
        &"NOT",
        &"ext:md",
    ]));
    assert_eq!(q.lines().count(), 1, "{q}");
    let q = ok(tagfs(&[&"query", &img, &"type:image OR type:code"]));
    assert_eq!(q.lines().count(), 2, "{q}");

    assert_eq!(
        ok(tagfs(&[&"cat", &img, &"path:/src/main.rs"])),
        "fn main() {}\n"
    );
    let big = tagfs(&[&"cat", &img, &"type:image"]);
    assert_eq!(big.stdout.len(), 200_000);

    ok(tagfs(&[
        &"tag",
        &img,
        &"path:/src/main.rs",
        &"important",
        &"lang:rust",
    ]));
    assert_eq!(
        ok(tagfs(&[&"query", &img, &"important lang:rust"]))
            .lines()
            .count(),
        1
    );
    let st = ok(tagfs(&[&"stat", &img, &"important"]));
    assert!(
        st.contains("size     13") && st.contains("lang:rust"),
        "{st}"
    );
    ok(tagfs(&[&"untag", &img, &"important", &"important"]));
    assert_eq!(
        ok(tagfs(&[&"query", &img, &"important"])).lines().count(),
        0
    );
    let tags = ok(tagfs(&[&"tags", &img]));
    assert!(tags.contains("4\tyear:"), "{tags}");

    let f = ok(tagfs(&[&"fsck", &img]));
    assert!(f.contains("clean: 4 objects"), "{f}");
    let s = ok(tagfs(&[&"stat", &img]));
    assert!(s.contains("objects          4"), "{s}");
}

#[test]
fn errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("t.img");
    ok(tagfs(&[&"mkfs", &img, &"--size", &"4M"]));
    let bad = tagfs(&[&"query", &img, &"a AND (b OR c"]);
    assert!(!bad.status.success());
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(msg.contains("'(' at column 7 is never closed"), "{msg}");
    let none = tagfs(&[&"cat", &img, &"42"]);
    assert!(String::from_utf8_lossy(&none.stderr).contains("no object 42"));
    let small = tagfs(&[&"mkfs", &img, &"--size", &"100K"]);
    assert!(String::from_utf8_lossy(&small.stderr).contains("too small"));

    // Wipe both superblocks: refused with a message, not a panic.
    ok(tagfs(&[&"mkfs", &img, &"--size", &"4M"]));
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[..8192].fill(0xAB);
    std::fs::write(&img, bytes).unwrap();
    let f = tagfs(&[&"fsck", &img]);
    assert_eq!(f.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&f.stderr).contains("corrupt image"),
        "{}",
        String::from_utf8_lossy(&f.stderr)
    );
}
