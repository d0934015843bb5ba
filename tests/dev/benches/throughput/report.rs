//! Numbers and the table every run ends with.

use std::fmt::Write as _;

/// Several runs of one measurement.
#[derive(Debug, Clone)]
pub struct Spread {
    values: Vec<f64>,
}

impl Spread {
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Spread { values }
    }

    pub fn median(&self) -> f64 {
        let n = self.values.len();
        match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => self.values[n / 2],
            _ => (self.values[n / 2 - 1] + self.values[n / 2]) / 2.0,
        }
    }

    pub fn min(&self) -> f64 {
        self.values.first().copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.values.last().copied().unwrap_or(f64::NAN)
    }

    pub fn runs(&self) -> usize {
        self.values.len()
    }

    /// `median (min .. max, N runs)` of a rate.
    pub fn describe(&self) -> String {
        format!(
            "{} (min {} .. max {}, {} runs)",
            thousands(self.median()),
            thousands(self.min()),
            thousands(self.max()),
            self.runs()
        )
    }
}

/// `1234567.8` -> `1,234,568`.
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".to_owned();
    }
    let rounded = value.round() as i64;
    let digits = rounded.unsigned_abs().to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if rounded < 0 {
        out.insert(0, '-');
    }
    out
}

/// How a figure compares with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// Shown for context; no target.
    Info,
}

impl Verdict {
    pub fn at_least(value: f64, target: f64) -> Self {
        if value >= target {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    pub fn at_most(value: f64, target: f64) -> Self {
        if value <= target {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Info => "-",
        }
    }
}

/// One line of the summary table.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub value: String,
    pub target: String,
    pub verdict: Verdict,
}

impl Row {
    pub fn new(
        figure: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        verdict: Verdict,
    ) -> Self {
        Row {
            figure: figure.into(),
            value: value.into(),
            target: target.into(),
            verdict,
        }
    }

    pub fn info(figure: impl Into<String>, value: impl Into<String>) -> Self {
        Row::new(figure, value, "", Verdict::Info)
    }
}

/// The rows as a Markdown table, columns padded so it also reads as plain text.
pub fn table(rows: &[Row]) -> String {
    let header = ["figure", "value", "target", "result"];
    let cells: Vec<[&str; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.as_str(),
                r.value.as_str(),
                r.target.as_str(),
                r.verdict.label(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: &[&str; 4]| {
        let mut out = String::from("|");
        for (cell, width) in row.iter().zip(widths) {
            let pad = width - cell.chars().count();
            let _ = write!(out, " {cell}{} |", " ".repeat(pad));
        }
        out.push('\n');
        out
    };
    let mut out = line(&header);
    out.push('|');
    for width in widths {
        let _ = write!(out, "{}|", "-".repeat(width + 2));
    }
    out.push('\n');
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}
