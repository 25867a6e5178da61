//! The bench's output: the table printed at the end of `cargo xtask bench` and
//! `target/bench.json`, from the suites' rows.

use crate::row::Row;

/// A plain-text table with aligned columns.
pub(crate) fn table(rows: &[Row]) -> String {
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
        s += &format!(
            "{name:<w$}  {:>14}  {:<12}  {}\n",
            number(r.value),
            r.unit,
            r.note
        );
    }
    s.trim_end().to_string()
}

/// Whole numbers as integers, ratios to three decimals (also valid JSON numbers).
pub(crate) fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

pub(crate) fn json_str(s: &str) -> String {
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
pub(crate) fn json(
    rows: &[Row],
    passthrough: &[(&str, String)],
    unrepeatable: &[String],
) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "    {{\"suite\": {}, \"name\": {}, \"value\": {}, \"unit\": {}, \"note\": {}}}",
                json_str(r.suite),
                json_str(&r.name),
                number(r.value),
                json_str(r.unit),
                json_str(&r.note)
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
                value: 12345.0,
                unit: "bytes",
                note: String::new(),
            },
            Row {
                suite: "boot",
                name: "a \"quoted\" name".into(),
                value: 7.0,
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
    fn numbers_are_whole_or_three_decimals() {
        assert_eq!(number(12587867.0), "12587867");
        assert_eq!(number(360.0 / 2074.0), "0.174");
    }
}
