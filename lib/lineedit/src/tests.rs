extern crate std;
use super::*;
use alloc::vec;

fn cmds(word: &str, first: bool) -> Vec<String> {
    let all: &[&str] = if first {
        &["help", "history", "kill", "ps", "uptime"]
    } else {
        &["usertests", "shell", "init"]
    };
    all.iter()
        .filter(|c| c.starts_with(word))
        .map(|c| String::from(*c))
        .collect()
}

/// Feeds `keys`; returns the events other than Pending and the output.
fn type_keys(e: &mut Editor, keys: &[u8]) -> (Vec<Event>, Vec<u8>) {
    let mut out = Vec::new();
    let evs = keys
        .iter()
        .map(|&b| e.feed(b, &cmds, &mut out))
        .filter(|ev| *ev != Event::Pending)
        .collect();
    (evs, out)
}

fn line(s: &str) -> Event {
    Event::Line(String::from(s))
}

#[test]
fn typing_and_enter() {
    let mut e = Editor::new("> ");
    let (ev, out) = type_keys(&mut e, b"echo hi\r");
    assert_eq!(ev, vec![line("echo hi")]);
    assert_eq!(out, b"echo hi\r\n");
    // CR LF is one Enter; a lone LF is one too.
    let (ev, _) = type_keys(&mut e, b"a\r\nb\n");
    assert_eq!(ev, vec![line("a"), line("b")]);
}

#[test]
fn editing_in_the_middle() {
    let mut e = Editor::new("> ");
    // "helo", left, insert "l" -> "hello"; Home, Del -> "ello"; End, backspace -> "ell".
    let (ev, _) = type_keys(&mut e, b"helo\x1b[Dl\x1b[H\x1b[3~\x1b[F\x7f\r");
    assert_eq!(ev, vec![line("ell")]);
    // Ctrl-A / Ctrl-E / Ctrl-B / Ctrl-F.
    let (ev, _) = type_keys(&mut e, b"bc\x01a\x05d\x02\x02\x06X\r");
    assert_eq!(ev, vec![line("abcXd")]);
}

#[test]
fn redraw_puts_the_cursor_back() {
    let mut e = Editor::new("$ ");
    let (_, out) = type_keys(&mut e, b"abc\x1b[D\x1b[D");
    assert!(
        out.ends_with(b"\r$ abc\x1b[K\x1b[2D"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn history_up_down_keeps_the_draft() {
    let mut e = Editor::new("> ");
    type_keys(&mut e, b"one\rtwo\rtwo\r\r");
    assert_eq!(
        e.history(),
        ["one", "two"],
        "repeats and blank lines are not kept"
    );
    type_keys(&mut e, b"dra");
    type_keys(&mut e, b"\x1b[A");
    assert_eq!(e.line(), "two");
    type_keys(&mut e, b"\x1b[A\x1b[A\x1b[A");
    assert_eq!(e.line(), "one", "stops at the oldest");
    type_keys(&mut e, b"\x1b[B");
    assert_eq!(e.line(), "two");
    type_keys(&mut e, b"\x1b[B");
    assert_eq!(e.line(), "dra", "the draft comes back");
    type_keys(&mut e, b"\x1b[B");
    assert_eq!(e.line(), "dra");
    let (ev, _) = type_keys(&mut e, b"\x1bOA\r");
    assert_eq!(ev, vec![line("two")], "SS3 arrows work too");
}

#[test]
fn tab_completion() {
    let mut e = Editor::new("> ");
    let (ev, _) = type_keys(&mut e, b"up\t\r");
    assert_eq!(ev, vec![line("uptime ")]);
    // Ambiguous: "h" -> no common extension; the second Tab lists.
    let (_, out) = type_keys(&mut e, b"h\t");
    assert_eq!(e.line(), "h");
    assert!(!out.windows(4).any(|w| w == b"help"));
    let (_, out) = type_keys(&mut e, b"\t");
    let s = String::from_utf8_lossy(&out);
    assert!(s.contains("help  history"), "{s}");
    assert_eq!(e.line(), "h");
    type_keys(&mut e, b"\x03");
    // Common prefix extension, and arguments complete from the other set.
    let (ev, _) = type_keys(&mut e, b"run us\t\r");
    assert_eq!(ev, vec![line("run usertests ")]);
    let (ev, _) = type_keys(&mut e, b"zz\t\r");
    assert_eq!(ev, vec![line("zz")], "no candidate: nothing changes");
}

#[test]
fn noise_is_ignored_and_lines_are_bounded() {
    let mut e = Editor::new("> ");
    let (ev, _) = type_keys(&mut e, b"a\x00\x07\xff\xc3\xa9b\x1b[99;99Zc\r");
    assert_eq!(ev, vec![line("abc")]);
    let long = vec![b'x'; MAX_LINE + 100];
    type_keys(&mut e, &long);
    assert_eq!(e.line().len(), MAX_LINE);
    let (ev, _) = type_keys(&mut e, b"\x03");
    assert_eq!(ev, vec![Event::Cancelled]);
    assert_eq!(e.line(), "");
}

#[test]
fn any_byte_sequence_is_safe() {
    // A cheap exhaustive-ish sweep: every pair of bytes after some text.
    let mut e = Editor::new("> ");
    let mut out = Vec::new();
    for a in 0..=255u8 {
        for b in [0x1b, b'[', b'A', b'3', b'~', b'\t', 0x7f, a] {
            e.feed(b'x', &cmds, &mut out);
            e.feed(a, &cmds, &mut out);
            e.feed(b, &cmds, &mut out);
            assert!(e.cursor() <= e.line().len());
        }
        out.clear();
    }
}
