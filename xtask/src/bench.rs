//! `cargo xtask bench`: figures, never pass/fail. Sizes are exact; boot costs are
//! guest instruction counts under QEMU's `-icount shift=0` (the TSC then advances one
//! tick per instruction), which repeat exactly, unlike wall-clock time on a shared
//! machine. Each boot is run twice to check that.
//!
//! Benchmarks are suites of rows. To add one (context switch, syscalls, IPC, and the
//! same operations in a Linux guest booted in the same run for a ratio), add a function
//! to `SUITES`; the table and target/bench.json pick its rows up.

use crate::build::{self, Artifacts, Kernel};
use crate::image::{esp_dir, EspContents};
use crate::protocol::figures;
use crate::qemu::Vm;
use crate::util::{cargo, read, root, show, target, write, Result};
use std::time::Duration;

/// One measured figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub suite: &'static str,
    pub name: String,
    pub value: u64,
    pub unit: &'static str,
    /// Caveats, e.g. that two runs disagreed.
    pub note: String,
}

/// What the suites share: the build (done once, on first use) and their output.
#[derive(Default)]
struct Ctx {
    artifacts: Option<Artifacts>,
    /// Tables from external bench programs, passed through verbatim.
    passthrough: Vec<(&'static str, String)>,
    /// Figures that should have repeated exactly but did not.
    unrepeatable: Vec<String>,
}

impl Ctx {
    fn artifacts(&mut self) -> Result<Artifacts> {
        if self.artifacts.is_none() {
            crate::setup::ensure()?;
            self.artifacts = Some(build::build(Kernel::Normal)?);
        }
        Ok(self.artifacts.clone().expect("just built"))
    }
}

type Suite = fn(&mut Ctx) -> Result<Vec<Row>>;

/// Every benchmark, by name (the names `--only` takes).
const SUITES: &[(&str, Suite)] = &[
    ("sizes", sizes),
    ("boot", boot),
    ("disk", disk),
    ("tagfs", tagfs),
];

/// The boot chain from zenos.img (stub sizes, three firmware paths): `diskbench`.
fn disk(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let (rows, unrepeatable) = crate::diskbench::rows(&ctx.artifacts()?)?;
    ctx.unrepeatable.extend(unrepeatable);
    Ok(rows)
}

/// Runs the suites named in `only` (all if empty); prints the table and writes
/// target/bench.json.
pub fn run(only: &[String]) -> Result {
    for name in only {
        if !SUITES.iter().any(|(n, _)| n == name) {
            let all: Vec<&str> = SUITES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "no bench suite `{name}` (have: {})",
                all.join(", ")
            ));
        }
    }
    let mut ctx = Ctx::default();
    let mut rows = Vec::new();
    for (name, suite) in SUITES {
        if only.is_empty() || only.iter().any(|o| o == name) {
            rows.extend(suite(&mut ctx)?);
        }
    }
    for (name, text) in &ctx.passthrough {
        println!("\n== {name} ==\n{}", text.trim_end());
    }
    println!("\n{}", table(&rows));
    for u in &ctx.unrepeatable {
        println!("warning: {u}");
    }
    let path = target().join("bench.json");
    write(
        &path,
        json(&rows, &ctx.passthrough, &ctx.unrepeatable).as_bytes(),
    )?;
    println!("(also in {})", path.display());
    Ok(())
}

fn sizes(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let a = ctx.artifacts()?;
    let len = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let row = |name: &str, value| Row {
        suite: "sizes",
        name: name.into(),
        value,
        unit: "bytes",
        note: String::new(),
    };
    Ok(vec![
        row("kernel flat image", a.flat_len),
        row("zenos.bin", len(&a.zenos_bin)?),
        row("UEFI stub (.efi)", len(&a.stub)?),
        row(
            "boot archive (user programs, inside the kernel)",
            len(&a.archive)?,
        ),
    ])
}

/// The line the kernel prints right after `zen: ready` with its TSC deltas.
const BENCH_PREFIX: &str = "zen: bench ";
/// (key in the kernel's line, row name)
const BOOT_FIGURES: &[(&str, &str)] = &[
    ("entry_to_ready", "kernel entry -> ready"),
    ("stub_to_ready", "stub start -> ready"),
];

fn boot(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let a = ctx.artifacts()?;
    let esp = esp_dir(
        &target().join("esp-bench"),
        &EspContents {
            stub: &a.stub,
            zenos_bin: &read(&a.zenos_bin)?,
            cmdline: None,
        },
    )?;
    let mut runs = Vec::new();
    for i in 1..=2 {
        let vm = Vm {
            icount: true,
            ..Vm::new(&format!("bench-boot-{i}"), &esp)
        };
        let mut found = None;
        let cap = vm.run_captured(Duration::from_secs(300), |l| {
            found = figures(l, BENCH_PREFIX);
            found.is_some()
        })?;
        let f = found.ok_or_else(|| {
            format!(
                "no `{BENCH_PREFIX}...` line ({}); last lines:\n{}",
                cap.ending(),
                cap.tail(10).join("\n")
            )
        })?;
        runs.push(f);
    }
    let mut rows = Vec::new();
    for (key, name) in BOOT_FIGURES {
        let vals: Vec<Option<u64>> = runs
            .iter()
            .map(|r| r.iter().find(|(k, _)| k == key).map(|(_, v)| *v))
            .collect();
        let Some(first) = vals[0] else {
            return Err(format!("the kernel's bench line has no {key}="));
        };
        let note = if vals.iter().all(|v| *v == Some(first)) {
            "identical in 2 runs".to_string()
        } else {
            let msg = format!("{name}: runs differ: {vals:?}");
            ctx.unrepeatable.push(msg.clone());
            msg
        };
        rows.push(Row {
            suite: "boot",
            name: name.to_string(),
            value: first,
            unit: "instructions",
            note,
        });
    }
    Ok(rows)
}

/// TagFS's own benchmark program, when it exists; its table is passed through.
fn tagfs(ctx: &mut Ctx) -> Result<Vec<Row>> {
    if !root().join("tools/tagfs-bench").is_dir() {
        println!("xtask bench: tools/tagfs-bench does not exist yet, skipped");
        return Ok(vec![]);
    }
    let mut c = cargo();
    c.args(["run", "--release", "-p", "tagfs-bench"]);
    println!("running: {}", show(&c));
    let out = crate::util::output(&mut c)?;
    ctx.passthrough.push(("tagfs", out));
    Ok(vec![])
}

/// A plain-text table with aligned columns.
fn table(rows: &[Row]) -> String {
    let w = rows
        .iter()
        .map(|r| r.suite.len() + 2 + r.name.len())
        .max()
        .unwrap_or(0)
        .max(9);
    let mut s = format!(
        "{:<w$}  {:>14}  {:<12}  note\n",
        "benchmark", "value", "unit"
    );
    for r in rows {
        let name = format!("{}: {}", r.suite, r.name);
        s += &format!("{name:<w$}  {:>14}  {:<12}  {}\n", r.value, r.unit, r.note);
    }
    s.trim_end().to_string()
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o += "\\\"",
            '\\' => o += "\\\\",
            '\n' => o += "\\n",
            c if (c as u32) < 0x20 => o += &format!("\\u{:04x}", c as u32),
            c => o.push(c),
        }
    }
    o + "\""
}

/// The figures as JSON, written by hand (a serde dependency for this is not worth it).
fn json(rows: &[Row], passthrough: &[(&str, String)], unrepeatable: &[String]) -> String {
    let rows: Vec<String> =
        rows.iter()
            .map(|r| {
                format!(
                "    {{\"suite\": {}, \"name\": {}, \"value\": {}, \"unit\": {}, \"note\": {}}}",
                json_str(r.suite), json_str(&r.name), r.value, json_str(r.unit), json_str(&r.note)
            )
            })
            .collect();
    let pass: Vec<String> = passthrough
        .iter()
        .map(|(n, t)| format!("    {}: {}", json_str(n), json_str(t)))
        .collect();
    let unrep: Vec<String> = unrepeatable.iter().map(|u| json_str(u)).collect();
    format!(
        "{{\n  \"rows\": [\n{}\n  ],\n  \"passthrough\": {{\n{}\n  }},\n  \"unrepeatable\": [{}]\n}}\n",
        rows.join(",\n"),
        pass.join(",\n"),
        unrep.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        vec![
            Row {
                suite: "sizes",
                name: "zenos.bin".into(),
                value: 12345,
                unit: "bytes",
                note: String::new(),
            },
            Row {
                suite: "boot",
                name: "a \"quoted\" name".into(),
                value: 7,
                unit: "instructions",
                note: "x".into(),
            },
        ]
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(&rows());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = lines[1].find("12345").unwrap() + 5;
        assert_eq!(lines[2].find('7').unwrap() + 1, col, "{t}"); // right-aligned values
    }

    #[test]
    fn json_escapes_and_lists_everything() {
        let j = json(&rows(), &[("tagfs", "a\tb\n".into())], &["differs".into()]);
        assert!(
            j.contains(r#""name": "a \"quoted\" name", "value": 7"#),
            "{j}"
        );
        assert!(j.contains(r#""tagfs": "a\u0009b\n""#), "{j}");
        assert!(j.contains(r#""unrepeatable": ["differs"]"#), "{j}");
    }

    #[test]
    fn unknown_suite_is_an_error() {
        assert!(run(&["nope".into()])
            .unwrap_err()
            .contains("have: sizes, boot, disk, tagfs"));
    }
}
