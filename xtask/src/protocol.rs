//! Parsers for what the tests print: cargo's `test result:` lines, the kernel's test
//! protocol on serial, and `key=value` figures. Pure functions, tested on the host.
//!
//! The kernel's protocol (issue 2):
//! ```text
//! zen-test: start <N>
//! test <name> ... ok            (or FAILED, possibly with more text after it
//! ...                            or on following lines)
//! zen-test: done <P> passed, <F> failed
//! ```
//! then a write to isa-debug-exit: QEMU exits 33 on success, 35 on failure.

/// `test result: ok. 12 passed; 0 failed; ...` -> (12, 0).
pub fn cargo_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_, counts) = rest.split_once(". ")?;
    let mut passed = None;
    let mut failed = None;
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        match what {
            "passed" => passed = n.parse().ok(),
            "failed" => failed = n.parse().ok(),
            _ => {}
        }
    }
    Some((passed?, failed?))
}

/// One test's result as the kernel reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reported {
    pub name: String,
    pub ok: bool,
}

/// Follows the kernel's test protocol one serial line at a time.
#[derive(Debug, Default)]
pub struct Ktest {
    /// N from `zen-test: start N`.
    pub announced: Option<u64>,
    pub results: Vec<Reported>,
    /// (P, F) from `zen-test: done P passed, F failed`.
    pub done: Option<(u64, u64)>,
    /// A `test <name> ...` line whose verdict has not come yet.
    pub pending: Option<String>,
}

impl Ktest {
    /// Feeds one cleaned serial line; returns the result it completes, if any.
    pub fn feed(&mut self, line: &str) -> Option<Reported> {
        let t = line.trim();
        // The first kernel line may follow firmware output on the same line.
        if let Some(i) = t.find("zen-test: start ") {
            self.announced = t[i + 16..]
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok());
            return None;
        }
        if let Some(rest) = t.strip_prefix("zen-test: done ") {
            self.done = parse_done(rest);
            return None;
        }
        if self.announced.is_none() || self.done.is_some() {
            return None; // not inside the test run
        }
        if let Some(rest) = t.strip_prefix("test ") {
            if let Some((name, verdict)) = rest.split_once(" ...") {
                let name = name.trim().to_string();
                return match verdict_of(verdict) {
                    Some(ok) => {
                        self.pending = None;
                        self.push(name, ok)
                    }
                    None => {
                        self.pending = Some(name);
                        None
                    }
                };
            }
        }
        // A verdict on its own line, after output the test printed.
        if let (Some(name), Some(ok)) = (self.pending.clone(), verdict_of(t)) {
            self.pending = None;
            return self.push(name, ok);
        }
        None
    }

    fn push(&mut self, name: String, ok: bool) -> Option<Reported> {
        let r = Reported { name, ok };
        self.results.push(r.clone());
        Some(r)
    }

    pub fn passed(&self) -> u64 {
        self.results.iter().filter(|r| r.ok).count() as u64
    }

    pub fn failed(&self) -> u64 {
        self.results.iter().filter(|r| !r.ok).count() as u64
    }

    /// Tests announced by `start N` that never reported (crash, hang, reset).
    pub fn unreported(&self) -> u64 {
        self.announced
            .unwrap_or(0)
            .saturating_sub(self.results.len() as u64)
    }

    /// What is wrong with the run as a whole, given QEMU's exit code (None if it was
    /// killed): an empty list means the protocol was followed to the end.
    pub fn problems(&self, exit_code: Option<i32>) -> Vec<String> {
        let mut p = Vec::new();
        let Some(n) = self.announced else {
            p.push("the kernel never printed `zen-test: start N`".into());
            return p;
        };
        if self.results.len() as u64 > n {
            p.push(format!(
                "{} results for {n} announced tests",
                self.results.len()
            ));
        }
        if self.unreported() > 0 {
            let during = self
                .pending
                .as_deref()
                .map(|t| format!(" (stopped during {t})"))
                .unwrap_or_default();
            p.push(format!(
                "{} of {n} tests never reported{during}",
                self.unreported()
            ));
        }
        match self.done {
            None => p.push("no `zen-test: done` line".into()),
            Some(d) if d != (self.passed(), self.failed()) => p.push(format!(
                "kernel says {} passed, {} failed; serial showed {} passed, {} failed",
                d.0,
                d.1,
                self.passed(),
                self.failed()
            )),
            Some(_) => {}
        }
        let want = if self.failed() == 0 {
            crate::qemu::EXIT_SUCCESS
        } else {
            crate::qemu::EXIT_FAILURE
        };
        if exit_code != Some(want) {
            let got = exit_code.map_or("none (killed)".to_string(), |c| c.to_string());
            p.push(format!("QEMU exit status {got}, expected {want}"));
        }
        p
    }
}

fn verdict_of(s: &str) -> Option<bool> {
    let w = s.split_whitespace().next()?;
    if w.starts_with("ok") {
        Some(true)
    } else if w.starts_with("FAILED") {
        Some(false)
    } else {
        None
    }
}

/// `<P> passed, <F> failed`
fn parse_done(s: &str) -> Option<(u64, u64)> {
    let (p, f) = s.split_once(',')?;
    let p = p.trim().strip_suffix("passed")?.trim().parse().ok()?;
    let f = f.split_whitespace().next()?.parse().ok()?;
    Some((p, f))
}

/// The `key=value` integer pairs after `prefix` on a line, e.g. for
/// `zen: bench entry_to_ready=123 stub_to_ready=456`.
pub fn figures(line: &str, prefix: &str) -> Option<Vec<(String, u64)>> {
    let i = line.find(prefix)?;
    let pairs = line[i + prefix.len()..]
        .split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect();
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cargo_results() {
        let ok = "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(cargo_result(ok), Some((12, 0)));
        let bad = "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out";
        assert_eq!(cargo_result(bad), Some((3, 2)));
        assert_eq!(cargo_result("test foo ... ok"), None);
        assert_eq!(cargo_result("test result: garbage"), None);
    }

    fn run(lines: &[&str]) -> (Ktest, Vec<Reported>) {
        let mut k = Ktest::default();
        let got = lines.iter().filter_map(|l| k.feed(l)).collect();
        (k, got)
    }

    #[test]
    fn follows_a_clean_run() {
        let (k, got) = run(&[
            "BdsDxe: starting",
            "test ignored_before_start ... ok",
            "junk from firmwarezen-test: start 3",
            "test frames::alloc ... ok",
            "test paging::fault ... FAILED: expected a page fault",
            "test heap::stress ... ok (12 ms)",
            "zen-test: done 2 passed, 1 failed",
            "test after_done ... ok",
        ]);
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[1],
            Reported {
                name: "paging::fault".into(),
                ok: false
            }
        );
        assert_eq!((k.passed(), k.failed(), k.unreported()), (2, 1, 0));
        assert!(
            k.problems(Some(35)).is_empty(),
            "{:?}",
            k.problems(Some(35))
        );
        assert_eq!(k.problems(Some(33)).len(), 1); // a failure must exit with 35
    }

    #[test]
    fn verdict_on_a_later_line() {
        let (k, got) = run(&[
            "zen-test: start 2",
            "test timer::ticks ...",
            "timer: 10 ticks",
            "ok",
            "test bp::resume ... ",
            "FAILED",
            "zen-test: done 1 passed, 1 failed",
        ]);
        assert_eq!(
            got.iter().map(|r| r.ok).collect::<Vec<_>>(),
            vec![true, false]
        );
        assert!(k.problems(Some(35)).is_empty());
    }

    #[test]
    fn a_crash_leaves_tests_unreported() {
        let (k, _) = run(&[
            "zen-test: start 4",
            "test a ... ok",
            "test b ...",
            "PANIC at foo.rs",
        ]);
        assert_eq!((k.passed(), k.failed(), k.unreported()), (1, 0, 3));
        let p = k.problems(None).join("; ");
        assert!(
            p.contains("3 of 4 tests never reported (stopped during b)"),
            "{p}"
        );
        assert!(p.contains("no `zen-test: done`"), "{p}");
    }

    #[test]
    fn no_start_and_lying_done_are_problems() {
        let (k, _) = run(&["zen: ready"]);
        assert_eq!(k.problems(Some(33)).len(), 1);
        let (k, _) = run(&[
            "zen-test: start 1",
            "test a ... ok",
            "zen-test: done 2 passed, 0 failed",
        ]);
        assert!(k.problems(Some(33))[0].contains("kernel says 2 passed"));
    }

    #[test]
    fn reads_figures() {
        let f = figures(
            "zen: bench entry_to_ready=123 stub_to_ready=4567 junk",
            "zen: bench ",
        )
        .unwrap();
        assert_eq!(
            f,
            vec![
                ("entry_to_ready".into(), 123),
                ("stub_to_ready".into(), 4567)
            ]
        );
        assert_eq!(figures("zen: ready", "zen: bench "), None);
    }
}

/// Runs `vm` until a serial line satisfies `last` (within `timeout`) and returns its
/// `zen: bench k=v` figures; an error with the last lines if it never got there.
pub fn bench_figures(
    vm: &crate::qemu::Vm,
    timeout: std::time::Duration,
    last: impl Fn(&str) -> bool,
) -> crate::util::Result<Vec<(String, u64)>> {
    let mut found = Vec::new();
    let mut done = false;
    let cap = vm.run_captured(timeout, |l| {
        found.extend(figures(l, "zen: bench ").unwrap_or_default());
        done = last(l);
        done
    })?;
    if !done {
        return Err(format!(
            "{} did not finish ({}); last lines (all in target/qemu/{}.log):\n{}",
            vm.name,
            cap.ending(),
            vm.name,
            cap.tail(10).join("\n")
        ));
    }
    Ok(found)
}
