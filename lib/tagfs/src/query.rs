//! The query language and its evaluator.
//!
//! ```text
//! query   := or
//! or      := and ("OR" and)*
//! and     := unary (["AND"] unary)*      adjacent terms are ANDed
//! unary   := "NOT" unary | "(" or ")" | tag | prefix
//! tag     := word or key:value           e.g. year:2024, photo
//! prefix  := tag ending in "*"           e.g. path:/home/*
//! ```
//!
//! Keywords are upper case, so a tag can never be `AND`, `OR` or `NOT`. Errors carry the
//! byte position of the offending token. Evaluation works on sorted id sets; `NOT x` is
//! kept as a complement until it meets a positive set, so `a AND NOT b` is a set
//! difference and never materialises "all objects but b".

use crate::index::TagIndex;
use crate::meta::{ObjectId, MAX_TAG_LEN};
use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A query that does not parse: what is wrong and where (byte offset, 0-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// Byte offset of the offending token in the query text.
    pub pos: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query error at column {}: {}", self.pos + 1, self.msg)
    }
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Objects carrying this exact tag.
    Tag(String),
    /// Objects carrying any tag starting with this.
    Prefix(String),
    /// Objects not matching.
    Not(Box<Expr>),
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
}

/// Why a tag is not acceptable, if it is not. Shared by the parser and `add_tag`.
pub fn tag_problem(tag: &str) -> Option<&'static str> {
    if tag.is_empty() {
        Some("empty tag")
    } else if tag.len() > MAX_TAG_LEN {
        Some("tag longer than 255 bytes")
    } else if tag
        .chars()
        .any(|c| c.is_whitespace() || c == '(' || c == ')' || c == '*' || c.is_control())
    {
        Some("tags cannot contain spaces, '(', ')' or '*'")
    } else if matches!(tag, "AND" | "OR" | "NOT") {
        Some("AND, OR and NOT are keywords, not tags")
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    Open,
    Close,
    And,
    Or,
    Not,
    Word(&'a str),
    End,
}

fn tokenize(q: &str) -> Vec<(usize, Tok<'_>)> {
    let mut out = Vec::new();
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'(' || c == b')' {
            out.push((i, if c == b'(' { Tok::Open } else { Tok::Close }));
            i += 1;
        } else {
            let start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'(' && b[i] != b')' {
                i += 1;
            }
            let w = &q[start..i];
            out.push((
                start,
                match w {
                    "AND" => Tok::And,
                    "OR" => Tok::Or,
                    "NOT" => Tok::Not,
                    _ => Tok::Word(w),
                },
            ));
        }
    }
    out.push((q.len(), Tok::End));
    out
}

struct Parser<'a> {
    toks: Vec<(usize, Tok<'a>)>,
    at: usize,
    depth: usize,
}

/// Deep enough for any real query; stops a hostile one from exhausting the stack.
const MAX_DEPTH: usize = 64;

impl<'a> Parser<'a> {
    fn peek(&self) -> (usize, Tok<'a>) {
        self.toks[self.at]
    }
    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> Result<T, QueryError> {
        Err(QueryError {
            pos,
            msg: msg.into(),
        })
    }
    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut e = self.and()?;
        while self.peek().1 == Tok::Or {
            self.at += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut e = self.unary()?;
        loop {
            match self.peek().1 {
                Tok::And => self.at += 1,
                Tok::Word(_) | Tok::Open | Tok::Not => {}
                _ => return Ok(e),
            }
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
    }
    fn unary(&mut self) -> Result<Expr, QueryError> {
        let (pos, t) = self.peek();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err(pos, "query nested too deeply");
        }
        self.at += 1;
        let e = match t {
            Tok::Not => Expr::Not(Box::new(self.unary()?)),
            Tok::Open => {
                let e = self.or()?;
                match self.peek() {
                    (_, Tok::Close) => self.at += 1,
                    (p, Tok::End) => {
                        return self.err(
                            p.max(pos),
                            alloc::format!("'(' at column {} is never closed", pos + 1),
                        )
                    }
                    (p, _) => return self.err(p, "expected ')'"),
                }
                e
            }
            Tok::Word(w) => {
                let (body, prefix) = match w.strip_suffix('*') {
                    Some(b) => (b, true),
                    None => (w, false),
                };
                if let Some(p) = body.find('*') {
                    return self.err(pos + p, "'*' is allowed only at the end of a tag");
                }
                if prefix {
                    if body.is_empty() {
                        return self.err(pos, "a prefix needs at least one character before '*'");
                    }
                    Expr::Prefix(body.into())
                } else {
                    if let Some(m) = tag_problem(body) {
                        return self.err(pos, m);
                    }
                    Expr::Tag(body.into())
                }
            }
            Tok::End => {
                return self.err(
                    pos,
                    "expected a tag, '(' or NOT, found the end of the query",
                )
            }
            Tok::Close => return self.err(pos, "unexpected ')'"),
            Tok::And | Tok::Or => return self.err(pos, "expected a tag before AND/OR"),
        };
        self.depth -= 1;
        Ok(e)
    }
}

/// Parses a query.
pub fn parse(q: &str) -> Result<Expr, QueryError> {
    let mut p = Parser {
        toks: tokenize(q),
        at: 0,
        depth: 0,
    };
    let e = p.or()?;
    match p.peek() {
        (_, Tok::End) => Ok(e),
        (pos, Tok::Close) => p.err(pos, "unexpected ')'"),
        (pos, _) => p.err(pos, "expected AND, OR or the end of the query"),
    }
}

/// A set of ids, or the complement of one (relative to all live objects). Sets straight
/// from the index are borrowed, so a one-tag query copies its answer once.
enum Set<'a> {
    Pos(Cow<'a, [ObjectId]>),
    Neg(Cow<'a, [ObjectId]>),
}

fn intersect(a: &[ObjectId], b: &[ObjectId]) -> Vec<ObjectId> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::new();
    if small.len() * 16 < large.len() {
        // Very different sizes: binary-search each element of the small set in the
        // shrinking tail of the large one.
        let mut rest = large;
        for &x in small {
            match rest.binary_search(&x) {
                Ok(i) => {
                    out.push(x);
                    rest = &rest[i + 1..];
                }
                Err(i) => rest = &rest[i..],
            }
        }
        return out;
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            core::cmp::Ordering::Less => i += 1,
            core::cmp::Ordering::Greater => j += 1,
            core::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn union(a: &[ObjectId], b: &[ObjectId]) -> Vec<ObjectId> {
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(a.len() + b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            core::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            core::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            core::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// `a` minus `b`.
fn difference(a: &[ObjectId], b: &[ObjectId]) -> Vec<ObjectId> {
    let mut j = 0;
    a.iter()
        .copied()
        .filter(|x| {
            while j < b.len() && b[j] < *x {
                j += 1;
            }
            j >= b.len() || b[j] != *x
        })
        .collect()
}

fn eval_set<'a>(e: &Expr, ix: &'a TagIndex) -> Set<'a> {
    use Cow::Owned;
    match e {
        Expr::Tag(t) => Set::Pos(Cow::Borrowed(ix.get(t))),
        Expr::Prefix(p) => {
            let mut v: Vec<ObjectId> = ix.with_prefix(p).flat_map(|s| s.iter().copied()).collect();
            v.sort_unstable();
            v.dedup();
            Set::Pos(Owned(v))
        }
        Expr::Not(x) => match eval_set(x, ix) {
            Set::Pos(v) => Set::Neg(v),
            Set::Neg(v) => Set::Pos(v),
        },
        Expr::And(a, b) => match (eval_set(a, ix), eval_set(b, ix)) {
            (Set::Pos(a), Set::Pos(b)) => Set::Pos(Owned(intersect(&a, &b))),
            (Set::Pos(a), Set::Neg(b)) | (Set::Neg(b), Set::Pos(a)) => {
                Set::Pos(Owned(difference(&a, &b)))
            }
            (Set::Neg(a), Set::Neg(b)) => Set::Neg(Owned(union(&a, &b))),
        },
        Expr::Or(a, b) => match (eval_set(a, ix), eval_set(b, ix)) {
            (Set::Pos(a), Set::Pos(b)) => Set::Pos(Owned(union(&a, &b))),
            (Set::Pos(a), Set::Neg(b)) | (Set::Neg(b), Set::Pos(a)) => {
                Set::Neg(Owned(difference(&b, &a)))
            }
            (Set::Neg(a), Set::Neg(b)) => Set::Neg(Owned(intersect(&a, &b))),
        },
    }
}

/// Evaluates `e`; `all` yields every live object id in ascending order (used only when
/// the answer is a complement).
pub fn eval(e: &Expr, ix: &TagIndex, all: impl FnOnce() -> Vec<ObjectId>) -> Vec<ObjectId> {
    match eval_set(e, ix) {
        Set::Pos(v) => v.into_owned(),
        Set::Neg(v) => difference(&all(), &v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn t(s: &str) -> Box<Expr> {
        Box::new(Expr::Tag(s.into()))
    }

    #[test]
    fn parses_precedence_and_implicit_and() {
        assert_eq!(
            parse("a b OR c").unwrap(),
            Expr::Or(Box::new(Expr::And(t("a"), t("b"))), t("c"))
        );
        assert_eq!(
            parse("a AND (b OR NOT c)").unwrap(),
            Expr::And(
                t("a"),
                Box::new(Expr::Or(t("b"), Box::new(Expr::Not(t("c")))))
            )
        );
        assert_eq!(
            parse("path:/home/* year:2024").unwrap(),
            Expr::And(Box::new(Expr::Prefix("path:/home/".into())), t("year:2024"))
        );
    }

    #[test]
    fn errors_carry_positions() {
        let e = |q: &str| parse(q).unwrap_err();
        assert_eq!(e("").pos, 0);
        assert_eq!(e("a AND").pos, 5);
        assert_eq!(e("a )").pos, 2);
        assert_eq!(e("(a OR b").msg, "'(' at column 1 is never closed");
        assert_eq!(e("a*b").pos, 1);
        assert_eq!(e("x OR AND y").pos, 5);
        assert!(e(&"(".repeat(200)).msg.contains("deeply"));
        assert_eq!(
            e("x y)").to_string(),
            "query error at column 4: unexpected ')'"
        );
    }

    #[test]
    fn set_operations_agree_with_a_model() {
        let a: Vec<u32> = (0..2000).filter(|x| x % 3 == 0).collect();
        let b: Vec<u32> = (0..2000).filter(|x| x % 5 == 0).collect();
        let few = [0u32, 15, 16, 999, 1995, 5000];
        let want = |x: &[u32], y: &[u32]| {
            x.iter()
                .copied()
                .filter(|v| y.contains(v))
                .collect::<Vec<_>>()
        };
        assert_eq!(intersect(&a, &b), want(&a, &b));
        assert_eq!(intersect(&few, &a), want(&few, &a));
        assert_eq!(intersect(&b, &few), want(&few, &b));
        let mut u = [a.clone(), b.clone()].concat();
        u.sort();
        u.dedup();
        assert_eq!(union(&a, &b), u);
        assert_eq!(difference(&few, &a), vec![16, 5000]);
    }

    #[test]
    fn evaluates_boolean_algebra() {
        let mut ix = TagIndex::default();
        for id in 1..=10u32 {
            if id % 2 == 0 {
                ix.insert("even", id);
            }
            if id % 3 == 0 {
                ix.insert("three", id);
            }
            ix.insert(&alloc::format!("n:{id}"), id);
        }
        let all = || (1..=10).collect::<Vec<_>>();
        let q = |s: &str| eval(&parse(s).unwrap(), &ix, all);
        assert_eq!(q("even three"), vec![6]);
        assert_eq!(q("even OR three"), vec![2, 3, 4, 6, 8, 9, 10]);
        assert_eq!(q("NOT even AND NOT three"), vec![1, 5, 7]);
        assert_eq!(q("even AND NOT three"), vec![2, 4, 8, 10]);
        assert_eq!(q("NOT (even OR n:1)"), vec![3, 5, 7, 9]);
        assert_eq!(q("n:1*"), vec![1, 10]);
        assert_eq!(q("missing OR NOT even"), vec![1, 3, 5, 7, 9]);
    }
}
