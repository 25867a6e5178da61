//! The SQLite side: TMSU's schema, its way of storing `key:value` tags (a tag plus a
//! value) and its style of query (nested `IN` sub-selects per tag).

use crate::{tags_of, Rng};
use rusqlite::{params, Connection, Result};
use std::collections::HashMap;
use std::path::Path;
use zen_tagfs::query::{parse, Expr};

/// TMSU's tables and indexes (file, tag, value, file_tag), as its schema creates them.
const SCHEMA: &str = "
CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL, CONSTRAINT con_tag_name UNIQUE (name));
CREATE TABLE file (id INTEGER PRIMARY KEY, directory TEXT NOT NULL, name TEXT NOT NULL,
    fingerprint TEXT NOT NULL, mod_time DATETIME NOT NULL, size INTEGER NOT NULL, is_dir BOOLEAN NOT NULL,
    CONSTRAINT con_file_path UNIQUE (directory, name));
CREATE INDEX idx_file_fingerprint ON file(fingerprint);
CREATE TABLE value (id INTEGER PRIMARY KEY, name TEXT NOT NULL, CONSTRAINT con_value_name UNIQUE (name));
CREATE TABLE file_tag (file_id INTEGER NOT NULL, tag_id INTEGER NOT NULL, value_id INTEGER NOT NULL,
    PRIMARY KEY (file_id, tag_id, value_id),
    FOREIGN KEY (file_id) REFERENCES file(id), FOREIGN KEY (tag_id) REFERENCES tag(id));
CREATE INDEX idx_file_tag_file_id ON file_tag(file_id);
CREATE INDEX idx_file_tag_tag_id ON file_tag(tag_id);
CREATE INDEX idx_file_tag_value_id ON file_tag(value_id);
";

/// `key:value` → (key, value); a plain word has no value (TMSU's value id 0).
fn split(tag: &str) -> (&str, Option<&str>) {
    match tag.split_once(':') {
        Some((k, v)) => (k, Some(v)),
        None => (tag, None),
    }
}

/// Loads the same objects and tags the TagFS side got, `batch` objects per transaction.
pub fn ingest(db: &Path, n: u64, batch: usize) -> Result<()> {
    let mut conn = Connection::open(db)?;
    conn.execute_batch(SCHEMA)?;
    let mut tags: HashMap<String, i64> = HashMap::new();
    let mut values: HashMap<String, i64> = HashMap::new();
    let mut rng = Rng(0x5eed);
    let mut i = 0u64;
    while i < n {
        let tx = conn.transaction()?;
        {
            let mut ins_file = tx.prepare_cached(
                "INSERT INTO file (directory, name, fingerprint, mod_time, size, is_dir) VALUES (?1, ?2, ?3, '2024-01-01 00:00:00', 0, 0)",
            )?;
            let mut ins_tag = tx.prepare_cached("INSERT INTO tag (name) VALUES (?1)")?;
            let mut ins_value = tx.prepare_cached("INSERT INTO value (name) VALUES (?1)")?;
            let mut ins_ft = tx.prepare_cached(
                "INSERT INTO file_tag (file_id, tag_id, value_id) VALUES (?1, ?2, ?3)",
            )?;
            for _ in 0..batch.min((n - i) as usize) {
                let t = tags_of(i, &mut rng);
                let path = t[0].strip_prefix("path:").unwrap_or(&t[0]);
                let (d, f) = path.rsplit_once('/').unwrap_or(("/", path));
                ins_file.execute(params![
                    d,
                    f,
                    format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                ])?;
                let fid = tx.last_insert_rowid();
                for tag in &t[1..] {
                    let (k, v) = split(tag);
                    let tid = match tags.get(k) {
                        Some(&id) => id,
                        None => {
                            ins_tag.execute([k])?;
                            let id = tx.last_insert_rowid();
                            tags.insert(k.to_string(), id);
                            id
                        }
                    };
                    let vid = match v {
                        None => 0,
                        Some(v) => match values.get(v) {
                            Some(&id) => id,
                            None => {
                                ins_value.execute([v])?;
                                let id = tx.last_insert_rowid();
                                values.insert(v.to_string(), id);
                                id
                            }
                        },
                    };
                    ins_ft.execute(params![fid, tid, vid])?;
                }
                i += 1;
            }
        }
        tx.commit()?;
    }
    Ok(())
}

pub fn open(db: &Path) -> Result<Connection> {
    Connection::open(db)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The `file_tag` condition for a tag: as in TMSU, a plain tag matches whatever its
/// value, `key:value` matches that value only.
fn match_tag(k: &str, v: Option<&str>) -> String {
    let tag = format!("tag_id = (SELECT id FROM tag WHERE name = {})", quote(k));
    match v {
        Some(v) => format!(
            "{tag} AND value_id = (SELECT id FROM value WHERE name = {})",
            quote(v)
        ),
        None => tag,
    }
}

fn cond(e: &Expr) -> String {
    match e {
        Expr::Tag(t) => {
            let (k, v) = split(t);
            format!(
                "id IN (SELECT file_id FROM file_tag WHERE {})",
                match_tag(k, v)
            )
        }
        // Not measured; TMSU has no prefix match on tags.
        Expr::Prefix(_) => "0".into(),
        Expr::Not(x) => format!("NOT ({})", cond(x)),
        Expr::And(a, b) => format!("({} AND {})", cond(a), cond(b)),
        Expr::Or(a, b) => format!("({} OR {})", cond(a), cond(b)),
    }
}

/// The same expression as compound SELECTs over `file_tag` (INTERSECT, UNION, EXCEPT):
/// what a hand-tuned client would send, SQLite's best case for this schema.
fn setops(e: &Expr) -> String {
    match e {
        Expr::Tag(t) => {
            let (k, v) = split(t);
            format!("SELECT file_id FROM file_tag WHERE {}", match_tag(k, v))
        }
        Expr::Prefix(_) => "SELECT id FROM file WHERE 0".into(),
        Expr::Not(x) => format!("SELECT id FROM file EXCEPT SELECT * FROM ({})", setops(x)),
        Expr::And(a, b) => match &**b {
            Expr::Not(x) => format!(
                "SELECT * FROM ({}) EXCEPT SELECT * FROM ({})",
                setops(a),
                setops(x)
            ),
            _ => format!(
                "SELECT * FROM ({}) INTERSECT SELECT * FROM ({})",
                setops(a),
                setops(b)
            ),
        },
        Expr::Or(a, b) => format!(
            "SELECT * FROM ({}) UNION SELECT * FROM ({})",
            setops(a),
            setops(b)
        ),
    }
}

/// Like `query`, with the compound-SELECT translation.
pub fn query_setops(conn: &Connection, q: &str) -> Result<usize> {
    let e = parse(q).map_err(|e| rusqlite::Error::InvalidParameterName(e.to_string()))?;
    let mut st = conn.prepare_cached(&setops(&e))?;
    let ids: Vec<i64> = st.query_map([], |r| r.get(0))?.collect::<Result<_>>()?;
    Ok(ids.len())
}

/// Runs a query and returns the number of matching files (after collecting their ids,
/// as the TagFS side does).
pub fn query(conn: &Connection, q: &str) -> Result<usize> {
    let e = parse(q).map_err(|e| rusqlite::Error::InvalidParameterName(e.to_string()))?;
    let sql = format!("SELECT id FROM file WHERE {}", cond(&e));
    let mut st = conn.prepare_cached(&sql)?;
    let ids: Vec<i64> = st.query_map([], |r| r.get(0))?.collect::<Result<_>>()?;
    Ok(ids.len())
}

/// (database bytes, bytes of all index b-trees) from `dbstat`.
pub fn sizes(conn: &Connection) -> Result<(u64, u64)> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let index: i64 = conn.query_row(
        "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master WHERE type = 'index')",
        [],
        |r| r.get(0),
    )?;
    Ok(((pages * size) as u64, index as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_engines_agree_on_a_small_workload() {
        let dir = std::env::temp_dir().join(format!("tagfs-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("t.db");
        let _ = std::fs::remove_file(&db);
        ingest(&db, 3000, 500).unwrap();
        let conn = open(&db).unwrap();
        let mut fs = zen_tagfs::Fs::format(
            zen_tagfs::MemDevice::new(64 * 64),
            zen_tagfs::Config::default(),
        )
        .unwrap();
        let mut rng = Rng(0x5eed);
        for i in 0..3000 {
            let id = fs.create().unwrap();
            for t in tags_of(i, &mut rng) {
                fs.add_tag(id, &t).unwrap();
            }
        }
        for (_, q) in crate::QUERIES {
            let a = fs.query(q).unwrap().len();
            assert_eq!(a, query(&conn, q).unwrap(), "{q}");
            assert_eq!(a, query_setops(&conn, q).unwrap(), "{q} (set ops)");
        }
        assert!(
            fs.query("w1").unwrap().len() > 100,
            "the skew gives common words"
        );
        let (disk, index) = sizes(&conn).unwrap();
        assert!(disk > index && index > 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
