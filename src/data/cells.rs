//! Feature cells as a CSV file holds them: numbers, missing values, and text (categories). Each column
//! is read into one `f32` per row: the number, `NaN` for a missing cell, or the category's index in the
//! column's vocabulary (first appearance order). A column is numeric or text as a whole; one that mixes
//! the two is an error naming the odd cell, so that a typo in a numeric column never becomes a category.

use crate::error::{quote, Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

/// Most distinct texts one column may hold while reading (their indices must be exact in an `f32`).
const MAX_VOCABULARY: usize = 1 << 24;

/// Whether a cell means "no value": empty, `?`, or in any case `NA`, `N/A`, `NaN`, `null`.
pub fn is_missing(cell: &str) -> bool {
    cell.is_empty()
        || cell == "?"
        || ["na", "n/a", "nan", "null"]
            .iter()
            .any(|token| cell.eq_ignore_ascii_case(token))
}

/// What to do with missing cells (`--missing`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Missing {
    /// Refuse the file, naming the column, the count and the first line.
    #[default]
    Error,
    /// Leave out every row with a missing feature or target.
    Drop,
    /// Fill numeric columns with the training split's mean (text columns with their most frequent category).
    Mean,
    /// Fill numeric columns with the training split's median (text columns with their most frequent category).
    Median,
    /// Fill every column with the training split's most frequent value.
    Mode,
}

impl Missing {
    /// The policy's name, as `--missing` spells it (`error`, `drop`, `mean`, `median`, `mode`).
    pub fn name(self) -> &'static str {
        match self {
            Missing::Error => "error",
            Missing::Drop => "drop",
            Missing::Mean => "mean",
            Missing::Median => "median",
            Missing::Mode => "mode",
        }
    }

    /// Whether missing cells are kept (as `NaN`) for an [`crate::data::Encoder`] to fill.
    pub fn fills(self) -> bool {
        matches!(self, Missing::Mean | Missing::Median | Missing::Mode)
    }
}

impl FromStr for Missing {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [
            Missing::Error,
            Missing::Drop,
            Missing::Mean,
            Missing::Median,
            Missing::Mode,
        ]
        .into_iter()
        .find(|m| m.name() == s)
        .ok_or_else(|| {
            Error::value(
                "missing",
                format!(
                    "{}, expected one of error, drop, mean, median, mode",
                    quote(s)
                ),
            )
        })
    }
}

/// One feature column while its cells are read.
pub(super) struct ColumnCells {
    /// Every non-missing cell is a category, numbers included (`--categorical`).
    forced_text: bool,
    /// Text cells become categories; otherwise a text cell is an error at once.
    text_allowed: bool,
    index: HashMap<String, u32>,
    pub vocabulary: Vec<String>,
    numbers: usize,
    texts: usize,
    pub missing: usize,
    first_number: Option<(u64, String)>,
    first_text: Option<(u64, String)>,
    pub first_missing: Option<u64>,
}

impl ColumnCells {
    pub fn new(forced_text: bool, text_allowed: bool) -> Self {
        ColumnCells {
            forced_text,
            text_allowed,
            index: HashMap::new(),
            vocabulary: Vec::new(),
            numbers: 0,
            texts: 0,
            missing: 0,
            first_number: None,
            first_text: None,
            first_missing: None,
        }
    }

    /// The value stored for `cell` (see the module's doc).
    pub fn read(&mut self, path: &Path, line: u64, column: &str, cell: &str) -> Result<f32> {
        if is_missing(cell) {
            self.missing += 1;
            self.first_missing.get_or_insert(line);
            return Ok(f32::NAN);
        }
        if !self.forced_text {
            match parse_number(path, line, column, cell)? {
                Some(value) => {
                    self.numbers += 1;
                    if self.first_number.is_none() {
                        self.first_number = Some((line, cell.to_string()));
                    }
                    return Ok(value);
                }
                None if !self.text_allowed => {
                    return Err(Error::format(
                        path,
                        format!(
                            "line {line}, column {}: expected a number, got {}",
                            quote(column),
                            quote(cell)
                        ),
                    ))
                }
                None if looks_like_decimal_comma(cell) => {
                    return Err(Error::format(
                        path,
                        format!(
                            "line {line}, column {}: {} looks like a number with a decimal comma; numbers need a decimal point (or --categorical {} to read the column as categories)",
                            quote(column),
                            quote(cell),
                            column
                        ),
                    ))
                }
                None => {}
            }
        }
        self.texts += 1;
        if self.first_text.is_none() {
            self.first_text = Some((line, cell.to_string()));
        }
        if let Some(&code) = self.index.get(cell) {
            return Ok(code as f32);
        }
        if self.vocabulary.len() >= MAX_VOCABULARY {
            return Err(Error::format(
                path,
                format!(
                    "line {line}, column {}: more than {MAX_VOCABULARY} distinct values in a text column",
                    quote(column)
                ),
            ));
        }
        let code = self.vocabulary.len() as u32;
        self.index.insert(cell.to_string(), code);
        self.vocabulary.push(cell.to_string());
        Ok(code as f32)
    }

    /// After the last row: the column's categories (empty for a numeric column), or the error for a
    /// column that mixes numbers and text, naming the first cell of the rarer kind.
    pub fn finish(self, path: &Path, column: &str) -> Result<Vec<String>> {
        if self.forced_text || self.numbers == 0 {
            return Ok(self.vocabulary);
        }
        if self.texts == 0 {
            return Ok(Vec::new());
        }
        let message = if self.texts <= self.numbers {
            let (line, cell) = self.first_text.expect("a text cell was seen");
            format!(
                "line {line}, column {}: expected a number like the column's other {} cells, got {}",
                quote(column),
                self.numbers,
                quote(&cell)
            )
        } else {
            let (line, cell) = self.first_number.expect("a number was seen");
            format!(
                "line {line}, column {}: {} is a number in a column of text (categories); --categorical {} reads every cell as a category",
                quote(column),
                quote(&cell),
                column
            )
        };
        Err(Error::format(path, message))
    }
}

/// `1,5` or `-0,25`: a number in a locale's decimal comma, which must not silently become a category.
fn looks_like_decimal_comma(cell: &str) -> bool {
    cell.matches(',').count() == 1
        && cell.replace(',', ".").parse::<f64>().is_ok()
        && !cell.starts_with(',')
        && !cell.ends_with(',')
}

/// `Some(value)` for a finite number, `None` for text; a number that is not finite in `f32` is an error.
fn parse_number(path: &Path, line: u64, column: &str, cell: &str) -> Result<Option<f32>> {
    let Ok(value) = cell.parse::<f32>() else {
        return Ok(None);
    };
    if value.is_finite() {
        return Ok(Some(value));
    }
    let at = format!("line {line}, column {}", quote(column));
    let literal = cell.trim_start_matches(['+', '-']).to_ascii_lowercase();
    let message = if matches!(literal.as_str(), "inf" | "infinity" | "nan") {
        format!("{at}: expected a finite number, got {}", quote(cell))
    } else {
        format!(
            "{at}: {} is out of range for a 32-bit float (largest magnitude 3.4e38)",
            quote(cell)
        )
    };
    Err(Error::format(path, message))
}
