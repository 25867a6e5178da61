//! The shell's store commands: objects found by tag queries (through tagfsd,
//! zen-std's `tagfs`). OBJ is an object id or a query that matches exactly one
//! object (`path:/notes/todo.txt`).

use zen_std::prelude::*;
use zen_std::tagfs::{ObjectId, Status, Store, StoreError};

/// (name, arguments, what it does)
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "ls",
        "[QUERY]",
        "objects matching the query (all without one)",
    ),
    ("cat", "OBJ", "print an object's content"),
    (
        "new",
        "TAG... [< TEXT]",
        "create an object with tags (and text)",
    ),
    (
        "write",
        "OBJ TEXT",
        "replace an object's content with the text",
    ),
    ("tag", "OBJ TAG...", "add tags to an object"),
    ("untag", "OBJ TAG...", "take tags from an object"),
    (
        "tags",
        "[PREFIX]",
        "the store's tags, with how many objects carry each",
    ),
    ("rm", "OBJ", "delete an object"),
    ("meta", "OBJ", "an object's size and tags"),
    ("sync", "", "make everything so far durable"),
    ("df", "", "the store's size and use"),
];

/// Runs store command `cmd`; false if it is not one.
pub fn execute(store: &mut Option<Store>, cmd: &str, rest: &[&str]) -> bool {
    if !COMMANDS.iter().any(|c| c.0 == cmd) {
        return false;
    }
    let Some(s) = store.as_mut() else {
        println!("{cmd}: the store is unavailable (tagfsd said why at boot)");
        return true;
    };
    if let Err(e) = run(s, cmd, rest) {
        println!("{cmd}: {e}");
    }
    true
}

/// A failure, said readably; a query that does not parse shows where.
fn say(e: StoreError, query: Option<&str>) -> String {
    match (e, query) {
        (StoreError::Refused(Status::BadQuery, at), Some(q)) => {
            format!("{}\n  {q}\n  {:>w$}", e.as_str(), "^", w = at as usize + 1)
        }
        _ => String::from(e.as_str()),
    }
}

/// The object `word` names: an id, or a query matching one object.
fn object(s: &mut Store, word: &str) -> Result<ObjectId, String> {
    if let Ok(id) = word.parse::<ObjectId>() {
        return Ok(id);
    }
    match s.query(word).map_err(|e| say(e, Some(word)))?.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("no object matches `{word}`")),
        many => Err(format!("`{word}` matches {} objects; name one", many.len())),
    }
}

fn run(s: &mut Store, cmd: &str, rest: &[&str]) -> Result<(), String> {
    let e = |x: StoreError| say(x, None);
    let first = || {
        rest.first()
            .copied()
            .ok_or_else(|| String::from("which object?"))
    };
    match cmd {
        "ls" => {
            let q = rest.join(" ");
            let ids = s.query(&q).map_err(|x| say(x, Some(&q)))?;
            for id in &ids {
                let (size, tags) = s.meta(*id).map_err(e)?;
                println!("{id:>6} {size:>9}  {}", tags.join(" "));
            }
            println!(
                "{} object{}",
                ids.len(),
                if ids.len() == 1 { "" } else { "s" }
            );
        }
        "cat" => {
            let id = object(s, first()?)?;
            // At most 1 MiB on the console.
            let (size, _) = s.meta(id).map_err(e)?;
            let mut data = vec![0u8; size.min(1 << 20) as usize];
            let n = s.read(id, 0, &mut data).map_err(e)?;
            data.truncate(n);
            if size > n as u64 {
                println!("(the first {n} of {size} bytes)");
            }
            match core::str::from_utf8(&data) {
                Ok(t) => {
                    print!("{t}");
                    if !t.ends_with('\n') && !t.is_empty() {
                        println!();
                    }
                }
                Err(_) => println!("({} bytes, not text)", data.len()),
            }
        }
        "new" => {
            let (tags, text) = match rest.iter().position(|w| *w == "<") {
                Some(i) => (&rest[..i], Some(rest[i + 1..].join(" "))),
                None => (rest, None),
            };
            let id = s.create(tags).map_err(e)?;
            if let Some(t) = text {
                s.write(id, 0, format!("{t}\n").as_bytes()).map_err(e)?;
            }
            println!("created object {id}");
        }
        "write" => {
            let id = object(s, first()?)?;
            let text = format!("{}\n", rest[1..].join(" "));
            s.truncate(id, 0).map_err(e)?;
            s.write(id, 0, text.as_bytes()).map_err(e)?;
        }
        "tag" | "untag" => {
            let id = object(s, first()?)?;
            for t in &rest[1..] {
                let changed = if cmd == "tag" {
                    s.add_tag(id, t)
                } else {
                    s.remove_tag(id, t)
                }
                .map_err(|x| format!("{t}: {}", e(x)))?;
                if !changed {
                    println!(
                        "{t}: {}",
                        if cmd == "tag" {
                            "already there"
                        } else {
                            "not there"
                        }
                    );
                }
            }
        }
        "tags" => {
            for (t, n) in s.tags(rest.first().copied().unwrap_or("")).map_err(e)? {
                println!("{n:>6}  {t}");
            }
        }
        "rm" => {
            let id = object(s, first()?)?;
            s.delete(id).map_err(e)?;
            println!("deleted object {id}");
        }
        "meta" => {
            let id = object(s, first()?)?;
            let (size, tags) = s.meta(id).map_err(e)?;
            println!("object {id}: {size} bytes, {} tags", tags.len());
            for t in tags {
                println!("  {t}");
            }
        }
        "sync" => {
            s.sync().map_err(e)?;
            println!("synced");
        }
        "df" => {
            let st = s.stat().map_err(e)?;
            let get = |k: &str| st.iter().find(|(n, _)| n == k).map_or(0, |(_, v)| *v);
            let (segs, free) = (get("segments"), get("free_segments"));
            let plural =
                |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            println!(
                "{}, {}; {} KiB of content; {} of {} segments free ({} KiB of {} KiB)",
                plural(get("objects"), "object"),
                plural(get("tags"), "tag"),
                get("live_bytes") / 1024,
                free,
                segs,
                free * 256,
                segs * 256
            );
        }
        _ => {}
    }
    Ok(())
}
