//! CSV with a header row: numeric features, one target column chosen by name (default: the last).
//! Columns are matched by name, never by position; header names must be distinct. A record longer than
//! [`CsvOptions::max_record_bytes`] is refused, so an endless input (`/dev/zero`) cannot exhaust memory.
//! Messages name the physical line in the file (the header is line 1; blank lines and CRLF count as
//! they appear) and the column.

use super::cells::{is_missing, ColumnCells, Missing};
use super::columns::{columns, list, sniff_delimiter, Columns};
use super::source::{self, Tape};
use super::{ClassIndex, Dataset, Task, TaskChoice, MAX_AUTO_CLASSES};
use crate::error::{quote, Error, Result};
use std::collections::HashSet;
use std::path::Path;

/// Longest CSV record read by default, in bytes.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// How to read a CSV file.
#[derive(Clone, Debug)]
pub struct CsvOptions {
    /// The target column's name; `None` is the last column.
    pub target: Option<String>,
    /// Classification, regression, or decided from the target column (`Auto` by default).
    pub task: TaskChoice,
    /// Classes already known (from a trained model): targets are mapped onto them, in their order.
    pub classes: Option<Vec<String>>,
    /// Feature columns by name, in this order (a trained model's); any other column but the target is
    /// ignored and listed in [`Dataset::ignored_columns`]. `None`: every column but the target.
    pub features: Option<Vec<String>>,
    /// Longest record in bytes (see [`DEFAULT_MAX_RECORD_BYTES`]).
    pub max_record_bytes: usize,
    /// The field separator; `None` detects a comma, semicolon or tab from the header line.
    pub delimiter: Option<u8>,
    /// Columns to leave out of the features (with `features: None`); each must exist.
    pub ignore: Vec<String>,
    /// What missing cells do (see [`Missing`]): refuse, drop the row, or stay `NaN` for an encoder.
    pub missing: Missing,
    /// Said after the count of missing cells under [`Missing::Error`]: what the user can do about them.
    pub missing_hint: &'static str,
    /// Feature columns read as categories even where their cells are numbers (`--categorical`).
    pub categorical: Vec<String>,
    /// Whether a feature column of text becomes categories; when false, text is an error (data for a
    /// trained model, whose text columns are in `categorical`).
    pub detect_categorical: bool,
}

/// The default [`CsvOptions::missing_hint`].
pub const MISSING_HINT: &str = "--missing drop|mean|median|mode says what to do with them";

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            target: None,
            task: TaskChoice::Auto,
            classes: None,
            features: None,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            delimiter: None,
            ignore: Vec::new(),
            missing: Missing::Error,
            missing_hint: MISSING_HINT,
            categorical: Vec::new(),
            detect_categorical: true,
        }
    }
}

/// A CSV reader that knows the physical line of each record and stops at over-long records.
struct Records<'a, R: std::io::Read> {
    reader: csv::Reader<source::Tap<R>>,
    tape: Tape,
    path: &'a Path,
    max_record_bytes: usize,
    /// The line of the last record read when it looks like an unclosed quote (see [`Records::next`]).
    unclosed_quote: Option<u64>,
}

impl<'a, R: std::io::Read> Records<'a, R> {
    fn new(path: &'a Path, input: R, max_record_bytes: usize, delimiter: u8) -> Self {
        let (tap, tape) = source::tap(input, max_record_bytes);
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(delimiter)
            .trim(csv::Trim::All)
            .from_reader(tap);
        Records {
            reader,
            tape,
            path,
            max_record_bytes,
            unclosed_quote: None,
        }
    }

    /// The next record and its line, `None` at the end.
    fn next(&mut self, record: &mut csv::StringRecord) -> Result<Option<u64>> {
        let read = self.reader.read_record(record);
        let (line, start) = self.tape.next_record();
        match read {
            Ok(true) => {
                let end = self.reader.position().byte();
                if end.saturating_sub(start) > self.max_record_bytes as u64 {
                    return Err(self.too_long(line));
                }
                // A record that ends inside a quoted field, and turns out to be the last one, had a quote
                // never closed: its field swallowed the rest of the file.
                self.unclosed_quote = self.tape.ends_inside_quotes(start, end).then_some(line);
                self.tape.consume_to(end);
                Ok(Some(line))
            }
            Ok(false) => match self.unclosed_quote {
                Some(line) => Err(Error::format(
                    self.path,
                    format!(
                        "line {line}: a quote that is never closed (its field runs to the end of the file)"
                    ),
                )),
                None => Ok(None),
            },
            Err(e) => Err(self.error(line, &e)),
        }
    }

    fn too_long(&self, line: u64) -> Error {
        let message = if self.tape.quotes_before(u64::MAX) % 2 == 1 {
            "a quote that is never closed runs on past".to_string()
        } else {
            "a record longer than".to_string()
        };
        Error::format(
            self.path,
            format!(
                "line {line}: {message} {} bytes (raise the limit with --max-record-bytes if the record is meant to be this long)",
                self.max_record_bytes
            ),
        )
    }

    fn error(&self, line: u64, error: &csv::Error) -> Error {
        if self.tape.too_long() {
            return self.too_long(line);
        }
        match error.kind() {
            csv::ErrorKind::Io(e) => Error::file(self.path, e),
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => {
                let hint = if self.tape.quotes_before(u64::MAX) % 2 == 1 {
                    " (a quote left open?)"
                } else {
                    ""
                };
                Error::format(
                    self.path,
                    format!(
                        "line {line}: {len} fields, expected {expected_len} like the header{hint}"
                    ),
                )
            }
            csv::ErrorKind::Utf8 { err, .. } => Error::format(
                self.path,
                format!("line {line}, field {}: not valid UTF-8", err.field() + 1),
            ),
            _ => Error::format(
                self.path,
                format!("line {line}: {}", crate::error::one_line(error)),
            ),
        }
    }
}

/// What one pass over the records keeps.
struct Table {
    columns: Columns,
    features: Vec<f32>,
    /// Each row's physical line.
    lines: Vec<u64>,
    /// Target cells with their lines (empty without a target column).
    targets: Vec<(u64, String)>,
    /// Each feature column's categories (empty for a numeric one); empty when no column has text.
    categories: Vec<Vec<String>>,
    /// Rows left out for a missing cell ([`Missing::Drop`]).
    dropped: usize,
}

fn read_table<R: std::io::Read>(
    path: &Path,
    input: R,
    options: &CsvOptions,
    need_target: bool,
) -> Result<Table> {
    let mut input = std::io::BufReader::new(input);
    let delimiter = match options.delimiter {
        Some(d) => d,
        // What the buffer holds of the header line, before anything is consumed.
        None => sniff_delimiter(
            std::io::BufRead::fill_buf(&mut input)
                .map_err(|e| Error::file(path, crate::error::one_line(e)))?,
        ),
    };
    let mut records = Records::new(path, input, options.max_record_bytes, delimiter);
    let mut record = csv::StringRecord::new();
    let (header_line, header) = match records.next(&mut record)? {
        Some(line) => (line, record.iter().map(str::to_string).collect()),
        None => (1, Vec::new()),
    };
    let columns = columns(
        path,
        header_line,
        header,
        options.target.as_deref(),
        need_target,
        options.features.as_deref(),
        &options.ignore,
    )?;
    let mut features: Vec<f32> = Vec::new();
    let mut targets = Vec::new();
    let mut lines = Vec::new();
    let width = columns.features.len();
    let forced: HashSet<&str> = options.categorical.iter().map(String::as_str).collect();
    for name in &options.categorical {
        if !columns.features.iter().any(|&c| columns.header[c] == *name) {
            return Err(Error::value(
                "categorical",
                format!("{} is not one of the feature columns", quote(name)),
            ));
        }
    }
    let mut cells: Vec<ColumnCells> = columns
        .features
        .iter()
        .map(|&c| {
            ColumnCells::new(
                forced.contains(columns.header[c].as_str()),
                options.detect_categorical,
            )
        })
        .collect();
    while let Some(line) = records.next(&mut record)? {
        features.try_reserve(width).map_err(|_| {
            Error::Memory(format!(
                "{}: the data does not fit in memory (at line {line})",
                path.display()
            ))
        })?;
        for (&c, column) in columns.features.iter().zip(&mut cells) {
            features.push(column.read(path, line, &columns.header[c], &record[c])?);
        }
        if let (Some(t), true) = (columns.target, need_target) {
            targets.push((line, record[t].to_string()));
        }
        lines.push(line);
    }
    if features.is_empty() {
        return Err(Error::format(path, "no data rows after the header"));
    }
    let mut table = Table {
        categories: Vec::with_capacity(width),
        columns,
        features,
        lines,
        targets,
        dropped: 0,
    };
    let mut missing = Vec::with_capacity(width);
    for (c, column) in cells.into_iter().enumerate() {
        let name = &table.columns.header[table.columns.features[c]];
        missing.push((column.missing, column.first_missing));
        table.categories.push(column.finish(path, name)?);
    }
    if table.categories.iter().all(Vec::is_empty) {
        table.categories.clear();
    }
    missing_cells(path, &mut table, &missing, options)?;
    Ok(table)
}

/// Applies [`CsvOptions::missing`] to the missing feature and target cells counted per column in `missing`.
fn missing_cells(
    path: &Path,
    table: &mut Table,
    missing: &[(usize, Option<u64>)],
    options: &CsvOptions,
) -> Result<()> {
    let target_missing = table.targets.iter().find(|(_, v)| is_missing(v));
    match options.missing {
        Missing::Error => {
            if let Some((c, (count, first))) = missing
                .iter()
                .enumerate()
                .find(|(_, (count, _))| *count > 0)
            {
                let name = &table.columns.header[table.columns.features[c]];
                let cells = if *count == 1 { "cell" } else { "cells" };
                return Err(Error::format(
                    path,
                    format!(
                        "column {}: {count} missing {cells} (empty, NA, N/A, NaN, ?, null), the first at line {}; {}",
                        quote(name),
                        first.unwrap_or_default(),
                        options.missing_hint
                    ),
                ));
            }
        }
        Missing::Drop => {
            let width = table.columns.features.len();
            let keep: Vec<bool> = (0..table.lines.len())
                .map(|row| {
                    !table.features[row * width..(row + 1) * width]
                        .iter()
                        .any(|v| v.is_nan())
                        && table.targets.get(row).is_none_or(|(_, v)| !is_missing(v))
                })
                .collect();
            let kept = keep.iter().filter(|&&k| k).count();
            if kept == 0 {
                return Err(Error::format(
                    path,
                    "every row has a missing cell, so --missing drop leaves none",
                ));
            }
            table.dropped = keep.len() - kept;
            retain_rows(&mut table.features, &keep, width);
            retain_rows(&mut table.lines, &keep, 1);
            if !table.targets.is_empty() {
                retain_rows(&mut table.targets, &keep, 1);
            }
            return Ok(());
        }
        Missing::Mean | Missing::Median | Missing::Mode => {}
    }
    if let Some((line, cell)) = target_missing {
        return Err(Error::format(
            path,
            format!(
                "line {line}, column {}: the target is {}; a row without a target cannot be used (--missing drop leaves such rows out)",
                quote(&table.columns.header[table.columns.target.expect("a target cell")]),
                if cell.is_empty() {
                    "empty".to_string()
                } else {
                    format!("missing ({})", quote(cell))
                }
            ),
        ));
    }
    Ok(())
}

/// Keeps the rows of `values` (`width` values each) whose `keep` is true.
fn retain_rows<T>(values: &mut Vec<T>, keep: &[bool], width: usize) {
    let mut i = 0;
    values.retain(|_| {
        let kept = keep[i / width];
        i += 1;
        kept
    });
}

/// Loads features and target; decides the task and numbers the classes (see [`CsvOptions`]). The path
/// `-` reads standard input.
pub fn load_csv(path: &Path, options: &CsvOptions) -> Result<Dataset> {
    let input = source::open(path)?;
    let path = source::display_name(path);
    let table = read_table(path, input, options, true)?;
    dataset_from_table(path, table, options)
}

/// [`load_csv`] on bytes in memory; `name` stands for the file in messages.
pub fn parse_csv(name: &str, bytes: &[u8], options: &CsvOptions) -> Result<Dataset> {
    let path = Path::new(name);
    let table = read_table(path, bytes, options, true)?;
    dataset_from_table(path, table, options)
}

fn dataset_from_table(path: &Path, table: Table, options: &CsvOptions) -> Result<Dataset> {
    let Table {
        columns,
        features,
        lines,
        targets,
        categories,
        dropped,
    } = table;
    let target = columns.target.expect("the target column is required here");
    let name = &columns.header[target];
    let (task, class_names, targets) = encode_target_column(path, name, &targets, options)?;
    Ok(Dataset {
        lines,
        features,
        feature_names: columns
            .features
            .iter()
            .map(|&i| columns.header[i].clone())
            .collect(),
        target_name: name.clone(),
        targets,
        task,
        class_names,
        ignored_columns: columns.ignored,
        categories,
        dropped_rows: dropped,
    })
}

/// Decides classification or regression and turns the target cells into class indices or values.
fn encode_target_column(
    path: &Path,
    name: &str,
    raw: &[(u64, String)],
    options: &CsvOptions,
) -> Result<(Task, Vec<String>, Vec<f32>)> {
    let at = |line: u64| format!("line {line}, column {}", quote(name));
    if let Some(classes) = &options.classes {
        let index = ClassIndex::new(classes);
        let targets = raw
            .iter()
            .map(|(line, v)| {
                index.get(v).map(|c| c as f32).ok_or_else(|| {
                    Error::format(
                        path,
                        format!(
                            "{}: class {} was not seen in training (classes: {})",
                            at(*line),
                            quote(v),
                            list(classes)
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok((Task::Classify, classes.clone(), targets));
    }
    let number = |v: &str| v.parse::<f64>().ok().filter(|x| x.is_finite());
    let numbers: Option<Vec<f64>> = raw.iter().map(|(_, v)| number(v)).collect();
    let task = match (options.task, &numbers) {
        (TaskChoice::Classify, _) => Task::Classify,
        (TaskChoice::Regress, Some(_)) => Task::Regress,
        (TaskChoice::Regress, None) => {
            let (line, bad) = raw
                .iter()
                .find(|(_, v)| number(v).is_none())
                .expect("a cell is not a number");
            return Err(Error::format(
                path,
                format!(
                    "{}: a regression target must be a finite number, got {}",
                    at(*line),
                    quote(bad)
                ),
            ));
        }
        (TaskChoice::Auto, None) => Task::Classify,
        (TaskChoice::Auto, Some(values)) => {
            let integral = values.iter().all(|v| v.fract() == 0.0);
            let mut distinct = values.clone();
            distinct.sort_by(f64::total_cmp);
            distinct.dedup();
            if integral && distinct.len() <= MAX_AUTO_CLASSES {
                Task::Classify
            } else {
                Task::Regress
            }
        }
    };
    if task == Task::Regress {
        let values = numbers.expect("checked numeric");
        let mut targets = Vec::with_capacity(values.len());
        for ((line, cell), v) in raw.iter().zip(values) {
            let value = v as f32;
            if !value.is_finite() {
                return Err(Error::format(
                    path,
                    format!(
                        "{}: {} is out of range for a 32-bit float (largest magnitude 3.4e38)",
                        at(*line),
                        quote(cell)
                    ),
                ));
            }
            targets.push(value);
        }
        return Ok((Task::Regress, Vec::new(), targets));
    }
    // Classes in sorted order: numeric when every value is a number, else by string.
    // Distinct by number when every value is one (`1` and `1.0` are one class), else by text; a set keeps
    // this linear in the rows however many classes there are.
    let mut classes: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (_, v) in raw {
        let key = match &numbers {
            Some(_) => v.trim().parse::<f64>().map_or(v.clone(), |x| {
                if x == 0.0 { 0.0f64 } else { x }.to_bits().to_string()
            }),
            None => v.clone(),
        };
        if seen.insert(key) {
            classes.push(v.clone());
        }
    }
    super::sort_names(&mut classes);
    if classes.len() < 2 {
        return Err(Error::format(
            path,
            format!(
                "target {} has a single class ({}); classification needs at least 2",
                quote(name),
                quote(&classes[0])
            ),
        ));
    }
    let index = ClassIndex::new(&classes);
    let targets = raw
        .iter()
        .map(|(_, v)| index.get(v).expect("collected above") as f32)
        .collect();
    Ok((Task::Classify, classes, targets))
}

/// Features read for inference (see [`load_csv_features`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CsvFeatures {
    /// `[rows, cols]`, row-major.
    pub features: Vec<f32>,
    /// Features per row.
    pub cols: usize,
    /// Columns of the file that were not used.
    pub ignored: Vec<String>,
    /// Each row's physical line in the file.
    pub lines: Vec<u64>,
    /// Each column's categories, as in [`Dataset::categories`].
    pub categories: Vec<Vec<String>>,
}

/// Features for inference: the columns named `feature_names`, in that order, wherever they are in the
/// file; returns them, their count, and the other columns' names, which were ignored. A missing column is an error naming it. A
/// model without feature names (written by the library) takes every column, and their count must match.
/// The model's `target` column, when the file has it, is skipped without being listed.
pub fn load_csv_features(
    path: &Path,
    feature_names: &[String],
    target: &str,
    max_record_bytes: usize,
) -> Result<CsvFeatures> {
    let options = CsvOptions {
        target: (!target.is_empty()).then(|| target.to_string()),
        features: (!feature_names.is_empty()).then(|| feature_names.to_vec()),
        max_record_bytes,
        missing_hint: "the model has no values to fill them with (train it with --missing mean, median or mode)",
        detect_categorical: false,
        ..CsvOptions::default()
    };
    load_csv_inputs(path, &options)
}

/// Features for inference as `options` say (a model's columns, its categorical columns, whether missing
/// cells stay `NaN` for its [`crate::data::Encoder`]); a target column, if named and present, is skipped.
pub fn load_csv_inputs(path: &Path, options: &CsvOptions) -> Result<CsvFeatures> {
    let input = source::open(path)?;
    let path = source::display_name(path);
    let table = read_table(path, input, options, false)?;
    Ok(CsvFeatures {
        cols: table.columns.features.len(),
        features: table.features,
        ignored: table.columns.ignored,
        lines: table.lines,
        categories: table.categories,
    })
}
