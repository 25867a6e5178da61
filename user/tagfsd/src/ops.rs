//! What each request does to the store, within its connection's rights (checked
//! before) and scope: a scoped connection sees only the objects its scope query
//! matches, and no change of its may take an object out of it (a create without the
//! scope's tags, a tag removed that the scope needs): refused with `Denied` and
//! undone. Objects outside the scope are answered as missing (`NotFound`), never as
//! forbidden, so a scoped client cannot even learn which ids exist.

use zen_std::prelude::*;
use zen_storeproto::{Op, Request, Status};
use zen_tagfs::{Error, Fs, ObjectId};

use crate::disk::{ClientBuf, Disk};

/// What a handled request answers: status, value, and the output for the buffer
/// (or, for a read, `in_place` bytes already put there).
pub struct Answer {
    pub status: Status,
    pub value: u64,
    pub out: Vec<u8>,
    pub in_place: u64,
}

pub fn ok(value: u64, out: Vec<u8>) -> Answer {
    Answer {
        status: Status::Ok,
        value,
        out,
        in_place: 0,
    }
}

pub fn fail(status: Status, value: u64) -> Answer {
    Answer {
        status,
        value,
        out: Vec::new(),
        in_place: 0,
    }
}

/// A connection's read figures (its `stat` shows them): bytes read, and of those the
/// bytes the disk's device put straight into the client's pages.
#[derive(Default, Clone, Copy)]
pub struct Reads {
    pub bytes: u64,
    pub direct: u64,
}

fn status_of(e: Error) -> Answer {
    match e {
        Error::NotFound(_) => fail(Status::NotFound, 0),
        Error::InvalidTag(_) => fail(Status::InvalidTag, 0),
        Error::Query(q) => fail(Status::BadQuery, q.pos as u64),
        Error::Limit(_) => fail(Status::Limit, 0),
        Error::NoSpace | Error::DeviceTooSmall => fail(Status::Full, 0),
        Error::Io(_) | Error::Corrupt(_) => fail(Status::Io, 0),
    }
}

/// Whether `op` changes the store.
pub fn writes(op: Op) -> bool {
    matches!(
        op,
        Op::Create | Op::Write | Op::Truncate | Op::AddTag | Op::RemoveTag | Op::Delete | Op::Sync
    )
}

/// The objects a scope lets a connection see (`None`: all).
struct View<'a> {
    scope: Option<&'a str>,
}

impl View<'_> {
    fn set(&self, fs: &Fs<Disk>) -> Result<Option<Vec<ObjectId>>, Answer> {
        match self.scope {
            None => Ok(None),
            Some(q) => fs.query(q).map(Some).map_err(status_of),
        }
    }
    fn sees(&self, fs: &Fs<Disk>, id: ObjectId) -> Result<bool, Answer> {
        Ok(match self.set(fs)? {
            None => fs.meta(id).is_ok(),
            Some(s) => s.binary_search(&id).is_ok(),
        })
    }
    /// `id`, if it exists and is in view; `NotFound` otherwise.
    fn object(&self, fs: &Fs<Disk>, raw: u64) -> Result<ObjectId, Answer> {
        let id = ObjectId::try_from(raw).map_err(|_| fail(Status::NotFound, 0))?;
        if self.sees(fs, id)? {
            Ok(id)
        } else {
            Err(fail(Status::NotFound, 0))
        }
    }
}

/// Fits `out` in a buffer of `size` bytes, or says how many it needs.
fn fits(out: Vec<u8>, value: u64, size: u64) -> Result<Answer, Answer> {
    if out.len() as u64 > size {
        return Err(fail(Status::TooSmall, out.len() as u64));
    }
    Ok(ok(value, out))
}

/// Answers a checked request of a connection with `scope`.
pub fn answer(
    fs: &mut Fs<Disk>,
    scope: Option<&str>,
    op: Op,
    req: &Request,
    input: &[u8],
    size: u64,
    mem: Option<&mut ClientBuf>,
    reads: &mut Reads,
) -> Answer {
    let view = View { scope };
    let utf8 = core::str::from_utf8(input);
    let text = || utf8.map_err(|_| fail(Status::InvalidTag, 0));
    let e = status_of;
    let r = (|| -> Result<Answer, Answer> {
        Ok(match op {
            Op::Create => {
                let tags: Vec<&str> = text()?.lines().filter(|l| !l.is_empty()).collect();
                let id = fs.create().map_err(e)?;
                // All or nothing, and inside the scope: else the object goes again.
                let mut refused = None;
                for t in &tags {
                    if let Err(x) = fs.add_tag(id, t) {
                        refused = Some(status_of(x));
                        break;
                    }
                }
                if refused.is_none() && !view.sees(fs, id)? {
                    refused = Some(fail(Status::Denied, 0));
                }
                if let Some(a) = refused {
                    // An undo that fails (the log full) must not leave the object:
                    // a disk error, and the store stops writing.
                    fs.delete(id).map_err(|_| fail(Status::Io, 0))?;
                    return Err(a);
                }
                ok(u64::from(id), Vec::new())
            }
            Op::Read => {
                let id = view.object(fs, req.object)?;
                if req.len == 0 {
                    return Ok(ok(0, Vec::new()));
                }
                // Straight into the client's pages (checked: len <= the buffer).
                let Some(m) = mem.filter(|m| m.mem.writable()) else {
                    return Err(fail(Status::BadGrant, 0));
                };
                m.len = req.len as usize;
                let r = fs.read_into(id, req.offset, m).map_err(e)?;
                reads.bytes += r.len as u64;
                reads.direct += r.direct as u64;
                Answer {
                    in_place: r.len as u64,
                    ..ok(r.len as u64, Vec::new())
                }
            }
            Op::Write => {
                let id = view.object(fs, req.object)?;
                fs.write(id, req.offset, input).map_err(e)?;
                ok(input.len() as u64, Vec::new())
            }
            Op::Truncate => {
                let id = view.object(fs, req.object)?;
                fs.truncate(id, req.offset).map_err(e)?;
                ok(0, Vec::new())
            }
            Op::AddTag | Op::RemoveTag => {
                let id = view.object(fs, req.object)?;
                let tag = text()?;
                let add = op == Op::AddTag;
                let changed = if add {
                    fs.add_tag(id, tag)
                } else {
                    fs.remove_tag(id, tag)
                }
                .map_err(e)?;
                // `NOT x` scopes make adding a tag leave them too.
                if changed && !view.sees(fs, id)? {
                    if add {
                        fs.remove_tag(id, tag)
                    } else {
                        fs.add_tag(id, tag)
                    }
                    .map_err(|_| fail(Status::Io, 0))?;
                    return Err(fail(Status::Denied, 0));
                }
                ok(changed as u64, Vec::new())
            }
            Op::Query => {
                let q = utf8.map_err(|_| fail(Status::BadQuery, 0))?;
                // An empty query: every object in view (`ls` without one).
                let mut ids: Vec<ObjectId> = if q.trim().is_empty() {
                    fs.ids().collect()
                } else {
                    fs.query(q).map_err(e)?
                };
                if let Some(set) = view.set(fs)? {
                    ids.retain(|i| set.binary_search(i).is_ok());
                }
                let need = ids.len() as u64 * 8;
                if need > size {
                    return Err(fail(Status::TooSmall, need));
                }
                let out = ids
                    .iter()
                    .flat_map(|&i| u64::from(i).to_le_bytes())
                    .collect();
                ok(ids.len() as u64, out)
            }
            Op::Meta => {
                let id = view.object(fs, req.object)?;
                let m = fs.meta(id).map_err(e)?;
                let mut out = String::new();
                for t in fs.tags(id).map_err(e)? {
                    out.push_str(&t);
                    out.push('\n');
                }
                fits(out.into_bytes(), m.size(), size)?
            }
            Op::Delete => {
                let id = view.object(fs, req.object)?;
                fs.delete(id).map_err(e)?;
                ok(0, Vec::new())
            }
            Op::Sync => {
                fs.sync().map_err(e)?;
                ok(0, Vec::new())
            }
            Op::Tags => {
                let prefix = text()?;
                let counts: Vec<(String, usize)> = match view.set(fs)? {
                    None => fs.all_tags(),
                    Some(set) => {
                        // Counted over the objects in view only.
                        let mut c: zen_std::collections::BTreeMap<String, usize> =
                            Default::default();
                        for id in set {
                            for t in fs.tags(id).map_err(e)? {
                                *c.entry(t).or_default() += 1;
                            }
                        }
                        c.into_iter().collect()
                    }
                };
                let mut out = String::new();
                let mut n = 0;
                for (t, count) in counts.into_iter().filter(|(t, _)| t.starts_with(prefix)) {
                    out.push_str(&format!("{t} {count}\n"));
                    n += 1;
                }
                fits(out.into_bytes(), n, size)?
            }
            Op::Stat => {
                let s = fs.stats();
                // A scoped connection learns only about its own objects, and the room.
                let (objects, tags, live) = match view.set(fs)? {
                    None => (s.objects, s.tags, s.live_bytes),
                    Some(set) => {
                        let mut tags = zen_std::collections::BTreeSet::new();
                        let mut live = 0;
                        for &id in &set {
                            live += fs.meta(id).map_err(e)?.size();
                            tags.extend(fs.tags(id).map_err(e)?);
                        }
                        (set.len(), tags.len(), live)
                    }
                };
                let out = format!(
                    "objects {objects}\ntags {tags}\nsegments {}\nfree_segments {}\nlive_bytes {live}\nbytes {}\nread_bytes {}\ndirect_bytes {}\n",
                    s.segments,
                    s.free_segments,
                    s.segments as u64 * 256 * 1024,
                    reads.bytes,
                    reads.direct,
                );
                fits(out.into_bytes(), 0, size)?
            }
            Op::Hello | Op::Connect => fail(Status::BadRequest, 0),
        })
    })();
    r.unwrap_or_else(|a| a)
}

/// The scope of a connection made from one with `ours` and asked for `asked`:
/// both (never wider). `Err` with the answer if `asked` does not parse.
pub fn narrow(
    fs: Option<&Fs<Disk>>,
    ours: Option<&str>,
    asked: &str,
) -> Result<Option<String>, Answer> {
    let asked = asked.trim();
    if asked.is_empty() {
        return Ok(ours.map(String::from));
    }
    if let Some(fs) = fs {
        fs.query(asked).map_err(status_of)?;
    }
    Ok(Some(match ours {
        None => String::from(asked),
        Some(o) => format!("({o}) AND ({asked})"),
    }))
}
