//! Plain-text tables for people: a header, columns padded to their widest cell, long cells cut
//! with an ellipsis so one row stays one line.
//!
//! ```text
//! TIME                 STATUS   REASON
//! 2026-11-22 10:00:03  CREATED  created in HubSpot
//! ```

use std::fmt::Write as _;

/// A table being filled row by row.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    /// The widest a column may print, by column; `None` is unbounded.
    limits: Vec<Option<usize>>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            limits: vec![None; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Cuts the cells of column `index` to at most `width` characters.
    pub fn limit(mut self, index: usize, width: usize) -> Self {
        if let Some(limit) = self.limits.get_mut(index) {
            *limit = Some(width.max(2));
        }
        self
    }

    /// Adds a row; missing cells print empty, extra cells are ignored.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The table as text, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let cells: Vec<Vec<String>> = std::iter::once(&self.headers)
            .chain(&self.rows)
            .map(|row| {
                (0..self.headers.len())
                    .map(|i| {
                        let cell = row.get(i).map_or("", String::as_str);
                        cut(&one_line(cell), self.limits[i])
                    })
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|i| {
                cells
                    .iter()
                    .map(|row| row[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &cells {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Two-column `name  value` lines, for one record's fields.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, value) in pairs {
        let _ = writeln!(out, "  {name:<width$}  {value}");
    }
    out
}

/// Newlines and tabs in a cell would break the row.
fn one_line(cell: &str) -> String {
    cell.replace(['\n', '\r', '\t'], " ")
}

/// Cuts `cell` to `limit` characters, the last one an ellipsis.
fn cut(cell: &str, limit: Option<usize>) -> String {
    match limit {
        Some(limit) if cell.chars().count() > limit => {
            let mut short: String = cell.chars().take(limit - 1).collect();
            short.push('…');
            short
        }
        _ => cell.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_long_cells_are_cut() {
        let mut table = Table::new(&["STATUS", "REASON"]).limit(1, 10);
        table.row(vec!["CREATED".into(), "created in HubSpot".into()]);
        table.row(vec!["SKIPPED".into()]);
        assert_eq!(
            table.render(),
            "STATUS   REASON\nCREATED  created i…\nSKIPPED\n"
        );
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn a_cell_never_spans_two_lines() {
        let mut table = Table::new(&["A", "B"]);
        table.row(vec!["x\ny".into(), "z".into()]);
        assert_eq!(table.render(), "A    B\nx y  z\n");
    }

    #[test]
    fn fields_align_their_values() {
        assert_eq!(
            fields(&[("id", "1".into()), ("status", "ok".into())]),
            "  id      1\n  status  ok\n"
        );
    }
}
