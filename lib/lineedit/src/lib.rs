//! A line editor for a serial terminal (VT100/ANSI), fed one byte at a time.
//!
//! Keys: printable ASCII inserts at the cursor; Backspace/DEL and Ctrl-H delete before
//! it; Left/Right (and Ctrl-B/Ctrl-F), Home/End (and Ctrl-A/Ctrl-E) move; Up/Down walk
//! the history (the line being typed is kept and comes back below the newest entry);
//! Tab completes the word before the cursor from the caller's candidates (a unique
//! match gets a space after it; several extend to their common prefix, and a second
//! Tab lists them); Ctrl-C drops the line; Enter submits it. Other control bytes and
//! non-ASCII bytes are ignored, so line noise cannot corrupt the line.
//!
//! Output (echo and redraws) is appended to a byte buffer the caller writes to the
//! terminal. A redraw is `CR, prompt, line, erase to end of line, cursor back`, which
//! every ANSI terminal understands.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// Longest line kept; further input is ignored.
pub const MAX_LINE: usize = 1024;
/// History entries kept.
pub const MAX_HISTORY: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    None,
    /// Saw ESC.
    Start,
    /// Saw ESC [ (CSI) or ESC O (SS3); collecting parameter bytes.
    Csi,
}

/// What a byte did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing for the caller (the line changed or not).
    Pending,
    /// Enter: the finished line (also added to the history if not blank and not a
    /// repeat of the last entry).
    Line(String),
    /// Ctrl-C: the line was dropped.
    Cancelled,
}

/// The editor's state: one line and the history.
#[derive(Debug)]
pub struct Editor {
    prompt: String,
    line: Vec<u8>,
    cursor: usize,
    history: Vec<String>,
    /// Index into `history` while browsing it; `history.len()` means the new line.
    browsing: usize,
    /// The line being typed when browsing started.
    draft: Vec<u8>,
    esc: Esc,
    /// CSI parameter bytes (for `ESC [ 1 ~` style keys).
    param: Vec<u8>,
    /// The last key was a Tab that listed nothing new.
    tabbed: bool,
    /// The last byte was CR (so a following LF is not a second Enter).
    after_cr: bool,
}

impl Editor {
    pub fn new(prompt: &str) -> Self {
        Editor {
            prompt: String::from(prompt),
            line: Vec::new(),
            cursor: 0,
            history: Vec::new(),
            browsing: 0,
            draft: Vec::new(),
            esc: Esc::None,
            param: Vec::new(),
            tabbed: false,
            after_cr: false,
        }
    }

    /// The prompt, for the caller to print before the first key of a line.
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// The line as typed so far.
    pub fn line(&self) -> &str {
        core::str::from_utf8(&self.line).unwrap_or("")
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// Feeds one byte. `complete(word, first)` gives the candidates for `word`, the
    /// word before the cursor (`first`: it is the line's first word).
    pub fn feed(
        &mut self,
        b: u8,
        complete: &dyn Fn(&str, bool) -> Vec<String>,
        out: &mut Vec<u8>,
    ) -> Event {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        let tabbed = core::mem::replace(&mut self.tabbed, false);
        match self.esc {
            Esc::Start => {
                self.esc = if b == b'[' || b == b'O' {
                    Esc::Csi
                } else {
                    Esc::None
                };
                self.param.clear();
                return Event::Pending;
            }
            Esc::Csi => {
                if (0x30..=0x3f).contains(&b) {
                    if self.param.len() < 8 {
                        self.param.push(b);
                    }
                    return Event::Pending;
                }
                self.esc = Esc::None;
                match (b, self.param.as_slice()) {
                    (b'A', _) => self.history_step(-1, out),
                    (b'B', _) => self.history_step(1, out),
                    (b'C', _) => self.move_to(self.cursor + 1, out),
                    (b'D', _) => self.move_to(self.cursor.saturating_sub(1), out),
                    (b'H', _) | (b'~', b"1") | (b'~', b"7") => self.move_to(0, out),
                    (b'F', _) | (b'~', b"4") | (b'~', b"8") => self.move_to(self.line.len(), out),
                    (b'~', b"3") => self.delete_at_cursor(out),
                    _ => {}
                }
                return Event::Pending;
            }
            Esc::None => {}
        }
        match b {
            0x1b => self.esc = Esc::Start,
            b'\r' | b'\n' => {
                if b == b'\n' && after_cr {
                    return Event::Pending;
                }
                self.after_cr = b == b'\r';
                out.extend_from_slice(b"\r\n");
                let line = String::from_utf8(core::mem::take(&mut self.line)).unwrap_or_default();
                self.cursor = 0;
                if !line.trim().is_empty() && self.history.last() != Some(&line) {
                    if self.history.len() == MAX_HISTORY {
                        self.history.remove(0);
                    }
                    self.history.push(line.clone());
                }
                self.browsing = self.history.len();
                return Event::Line(line);
            }
            0x03 => {
                out.extend_from_slice(b"^C\r\n");
                self.line.clear();
                self.cursor = 0;
                self.browsing = self.history.len();
                return Event::Cancelled;
            }
            0x7f | 0x08 if self.cursor > 0 => {
                self.cursor -= 1;
                self.line.remove(self.cursor);
                self.redraw(out);
            }
            0x01 => self.move_to(0, out),
            0x05 => self.move_to(self.line.len(), out),
            0x02 => self.move_to(self.cursor.saturating_sub(1), out),
            0x06 => self.move_to(self.cursor + 1, out),
            b'\t' => self.complete(complete, tabbed, out),
            0x20..=0x7e if self.line.len() < MAX_LINE => {
                self.line.insert(self.cursor, b);
                self.cursor += 1;
                if self.cursor == self.line.len() {
                    out.push(b);
                } else {
                    self.redraw(out);
                }
            }
            _ => {}
        }
        Event::Pending
    }

    /// Rewrites the whole line and puts the terminal's cursor where ours is.
    fn redraw(&self, out: &mut Vec<u8>) {
        out.push(b'\r');
        out.extend_from_slice(self.prompt.as_bytes());
        out.extend_from_slice(&self.line);
        out.extend_from_slice(b"\x1b[K");
        let back = self.line.len() - self.cursor;
        if back > 0 {
            out.extend_from_slice(alloc::format!("\x1b[{back}D").as_bytes());
        }
    }

    fn move_to(&mut self, to: usize, out: &mut Vec<u8>) {
        let to = to.min(self.line.len());
        if to != self.cursor {
            self.cursor = to;
            self.redraw(out);
        }
    }

    fn delete_at_cursor(&mut self, out: &mut Vec<u8>) {
        if self.cursor < self.line.len() {
            self.line.remove(self.cursor);
            self.redraw(out);
        }
    }

    fn history_step(&mut self, dir: isize, out: &mut Vec<u8>) {
        let n = self.history.len();
        let to = match (dir < 0, self.browsing) {
            (true, 0) => return,
            (true, i) => i - 1,
            (false, i) if i >= n => return,
            (false, i) => i + 1,
        };
        if self.browsing == n {
            self.draft = core::mem::take(&mut self.line);
        }
        self.browsing = to;
        self.line = if to == n {
            core::mem::take(&mut self.draft)
        } else {
            self.history[to].as_bytes().to_vec()
        };
        self.cursor = self.line.len();
        self.redraw(out);
    }

    fn complete(
        &mut self,
        complete: &dyn Fn(&str, bool) -> Vec<String>,
        list: bool,
        out: &mut Vec<u8>,
    ) {
        let start = self.line[..self.cursor]
            .iter()
            .rposition(|&c| c == b' ')
            .map_or(0, |i| i + 1);
        let first = !self.line[..start].iter().any(|&c| c != b' ');
        let word = core::str::from_utf8(&self.line[start..self.cursor]).unwrap_or("");
        let mut cands: Vec<String> = complete(word, first)
            .into_iter()
            .filter(|c| c.starts_with(word))
            .collect();
        cands.sort();
        cands.dedup();
        let insert = match cands.len() {
            0 => return,
            1 => alloc::format!("{} ", &cands[0][word.len()..]),
            _ => {
                let common = cands.iter().skip(1).fold(cands[0].len(), |n, c| {
                    cands[0]
                        .bytes()
                        .zip(c.bytes())
                        .take(n)
                        .take_while(|(a, b)| a == b)
                        .count()
                });
                if common == word.len() {
                    if list {
                        out.extend_from_slice(b"\r\n");
                        out.extend_from_slice(cands.join("  ").as_bytes());
                        out.extend_from_slice(b"\r\n");
                        self.redraw(out);
                    } else {
                        self.tabbed = true;
                    }
                    return;
                }
                String::from(&cands[0][word.len()..common])
            }
        };
        for &c in insert.as_bytes() {
            if self.line.len() < MAX_LINE {
                self.line.insert(self.cursor, c);
                self.cursor += 1;
            }
        }
        self.redraw(out);
    }
}

#[cfg(test)]
mod tests;
