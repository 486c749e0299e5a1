//! The results: a Markdown table on stdout and the same figures as JSON.

use std::fmt::Write as _;

use crate::util::median;

/// One figure of one subject: the median of its runs, or why there is none.
#[derive(Clone, Debug)]
pub enum Cell {
    /// Median and the per-run values.
    Num(f64, Vec<f64>),
    /// The subject does not have this tier ("n/a (...)").
    NotApplicable(String),
    /// The subject failed.
    Failed(String),
    /// Nothing to show.
    Empty,
}

impl Cell {
    pub fn from_runs(runs: &[f64]) -> Cell {
        if runs.is_empty() {
            Cell::Empty
        } else {
            Cell::Num(median(runs), runs.to_vec())
        }
    }

    pub fn value(&self) -> Option<f64> {
        match self {
            Cell::Num(v, _) => Some(*v),
            _ => None,
        }
    }
}

/// A goal checked on a figure: `value` is what was compared (a ratio or an absolute figure).
#[derive(Clone, Debug)]
pub struct Goal {
    pub text: String,
    pub value: Option<f64>,
    pub unit: &'static str,
    pub met: Option<bool>,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub id: &'static str,
    pub workload: String,
    pub figure: String,
    pub unit: &'static str,
    pub ours: Cell,
    pub floor_name: String,
    pub floor: Cell,
    /// ours / floor, median of the per-run ratios.
    pub ratio: Cell,
    pub peers: Vec<Cell>,
    pub goals: Vec<Goal>,
    pub note: String,
}

impl Row {
    pub fn new(
        id: &'static str,
        workload: &str,
        figure: &str,
        unit: &'static str,
        npeers: usize,
    ) -> Row {
        Row {
            id,
            workload: workload.into(),
            figure: figure.into(),
            unit,
            ours: Cell::Empty,
            floor_name: String::new(),
            floor: Cell::Empty,
            ratio: Cell::Empty,
            peers: vec![Cell::Empty; npeers],
            goals: Vec::new(),
            note: String::new(),
        }
    }
}

pub struct PeerInfo {
    pub name: String,
    pub version: String,
    pub sync: String,
}

pub struct Report {
    pub quick: bool,
    pub runs: usize,
    pub meta: Vec<(String, String)>,
    pub peers: Vec<PeerInfo>,
    pub rows: Vec<Row>,
    pub timings: Vec<(String, f64)>,
    pub errors: Vec<String>,
}

pub fn fmt_num(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    match unit {
        "rec/s" => {
            if v >= 1e6 {
                format!("{:.2} M/s", v / 1e6)
            } else if v >= 1e3 {
                format!("{:.1} k/s", v / 1e3)
            } else {
                format!("{v:.0}/s")
            }
        }
        "us" => format!("{v:.1} µs"),
        "ns" => format!("{v:.0} ns"),
        "ms" => {
            if v < 10.0 {
                format!("{v:.2} ms")
            } else {
                format!("{v:.1} ms")
            }
        }
        "MB/s" => format!("{v:.0} MB/s"),
        "GB/s" => format!("{v:.2} GB/s"),
        "MiB" => format!("{v:.1} MiB"),
        "x" => format!("{v:.2}×"),
        _ => format!("{v:.3} {unit}"),
    }
}

fn cell_text(c: &Cell, unit: &str) -> String {
    match c {
        Cell::Num(v, _) => fmt_num(*v, unit),
        Cell::NotApplicable(why) => format!("n/a ({why})"),
        Cell::Failed(e) => format!("failed: {}", e.replace('|', "/")),
        Cell::Empty => "—".into(),
    }
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "| id | workload | figure | softadastra-wal | floor | ratio |"
        );
        for p in &self.peers {
            let _ = write!(s, " {} |", p.name);
        }
        let _ = writeln!(s, " goal | met? |");
        let _ = write!(s, "|---|---|---|---|---|---|");
        for _ in &self.peers {
            let _ = write!(s, "---|");
        }
        let _ = writeln!(s, "---|---|");
        for r in &self.rows {
            let floor = match &r.floor {
                Cell::Empty => "—".to_string(),
                c => format!("{} ({})", cell_text(c, r.unit), r.floor_name),
            };
            let _ = write!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                r.id,
                r.workload,
                r.figure,
                cell_text(&r.ours, r.unit),
                floor,
                cell_text(&r.ratio, "x")
            );
            for c in &r.peers {
                let _ = write!(s, " {} |", cell_text(c, r.unit));
            }
            let goals: Vec<String> = r.goals.iter().map(|g| g.text.clone()).collect();
            let met: Vec<String> = r
                .goals
                .iter()
                .map(|g| {
                    let v = g
                        .value
                        .map(|v| fmt_num(v, g.unit))
                        .unwrap_or_else(|| "-".into());
                    match g.met {
                        Some(true) => format!("yes ({v})"),
                        Some(false) => format!("**NO** ({v})"),
                        None => format!("? ({v})"),
                    }
                })
                .collect();
            let goal_text = if goals.is_empty() {
                "—".into()
            } else {
                goals.join("; ")
            };
            let met_text = if met.is_empty() {
                "—".into()
            } else {
                met.join("; ")
            };
            let _ = writeln!(s, " {goal_text} | {met_text} |");
        }
        s
    }

    pub fn json(&self) -> String {
        let mut s = String::from("{\n");
        let _ = writeln!(s, "  \"quick\": {},", self.quick);
        let _ = writeln!(s, "  \"runs\": {},", self.runs);
        s.push_str("  \"meta\": {");
        for (i, (k, v)) in self.meta.iter().enumerate() {
            let _ = write!(
                s,
                "{}\n    {}: {}",
                if i > 0 { "," } else { "" },
                q(k),
                q(v)
            );
        }
        s.push_str("\n  },\n  \"peers\": [");
        for (i, p) in self.peers.iter().enumerate() {
            let _ = write!(
                s,
                "{}\n    {{\"name\": {}, \"version\": {}, \"sync\": {}}}",
                if i > 0 { "," } else { "" },
                q(&p.name),
                q(&p.version),
                q(&p.sync)
            );
        }
        s.push_str("\n  ],\n  \"timings_s\": {");
        for (i, (k, v)) in self.timings.iter().enumerate() {
            let _ = write!(
                s,
                "{}\n    {}: {}",
                if i > 0 { "," } else { "" },
                q(k),
                num(*v)
            );
        }
        s.push_str("\n  },\n  \"errors\": [");
        for (i, e) in self.errors.iter().enumerate() {
            let _ = write!(s, "{}{}", if i > 0 { ", " } else { "" }, q(e));
        }
        s.push_str("],\n  \"rows\": [");
        for (i, r) in self.rows.iter().enumerate() {
            let _ = write!(s, "{}\n    {{", if i > 0 { "," } else { "" });
            let _ = write!(
                s,
                "\"id\": {}, \"workload\": {}, \"figure\": {}, \"unit\": {},",
                q(r.id),
                q(&r.workload),
                q(&r.figure),
                q(r.unit)
            );
            let _ = write!(s, "\n      \"softadastra-wal\": {},", cell_json(&r.ours));
            let _ = write!(
                s,
                "\n      \"floor\": {{\"name\": {}, \"value\": {}}},",
                q(&r.floor_name),
                cell_json(&r.floor)
            );
            let _ = write!(s, "\n      \"ratio_to_floor\": {},", cell_json(&r.ratio));
            s.push_str("\n      \"peers\": {");
            for (j, (p, c)) in self.peers.iter().zip(&r.peers).enumerate() {
                let _ = write!(
                    s,
                    "{}{}: {}",
                    if j > 0 { ", " } else { "" },
                    q(&p.name),
                    cell_json(c)
                );
            }
            s.push_str("},\n      \"goals\": [");
            for (j, g) in r.goals.iter().enumerate() {
                let _ = write!(
                    s,
                    "{}{{\"goal\": {}, \"value\": {}, \"unit\": {}, \"met\": {}}}",
                    if j > 0 { ", " } else { "" },
                    q(&g.text),
                    g.value.map(num).unwrap_or_else(|| "null".into()),
                    q(g.unit),
                    match g.met {
                        Some(b) => b.to_string(),
                        None => "null".into(),
                    }
                );
            }
            let _ = write!(s, "],\n      \"note\": {}}}", q(&r.note));
        }
        s.push_str("\n  ]\n}\n");
        s
    }
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

fn cell_json(c: &Cell) -> String {
    match c {
        Cell::Num(v, runs) => {
            let runs: Vec<String> = runs.iter().map(|v| num(*v)).collect();
            format!(
                "{{\"median\": {}, \"runs\": [{}]}}",
                num(*v),
                runs.join(", ")
            )
        }
        Cell::NotApplicable(why) => format!("{{\"na\": {}}}", q(why)),
        Cell::Failed(e) => format!("{{\"error\": {}}}", q(e)),
        Cell::Empty => "null".into(),
    }
}

/// A JSON string literal.
pub fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
