//! CSV with a header row: numeric features, one target column chosen by name (default: the last).

use super::{class_index, Dataset, Task, TaskChoice, MAX_AUTO_CLASSES};
use crate::error::{Error, Result};
use std::path::Path;

/// How to read a CSV file.
#[derive(Clone, Debug, Default)]
pub struct CsvOptions {
    /// The target column's name; `None` is the last column.
    pub target: Option<String>,
    pub task: TaskChoice,
    /// Classes already known (from a trained model): targets are mapped onto them, in their order.
    pub classes: Option<Vec<String>>,
}

/// A data record and the file line it came from.
type Record = (u64, csv::StringRecord);

/// The header and the data records of a CSV file.
fn read_records(path: &Path) -> Result<(Vec<String>, Vec<Record>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    read_records_from(path, std::io::BufReader::new(file))
}

/// The header and the data records from any reader; `path` only names the source in messages.
fn read_records_from(path: &Path, input: impl std::io::Read) -> Result<(Vec<String>, Vec<Record>)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(path, &e))?
        .iter()
        .map(str::to_string)
        .collect();
    if header.is_empty() || header.iter().all(String::is_empty) {
        return Err(Error::format(
            path,
            "the file is empty (expected a header row)",
        ));
    }
    let mut records = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, &e))?;
        let line = record.position().map_or(0, |p| p.line());
        records.push((line, record));
    }
    if records.is_empty() {
        return Err(Error::format(path, "no data rows after the header"));
    }
    Ok((header, records))
}

/// A read failure is a file error; anything else is malformed content.
fn csv_error(path: &Path, error: &csv::Error) -> Error {
    match error.kind() {
        csv::ErrorKind::Io(_) => Error::file(path, csv_message(error)),
        _ => Error::format(path, csv_message(error)),
    }
}

/// csv's messages without the Rust debug noise.
fn csv_message(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Io(e) => e.to_string(),
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => format!(
            "line {}: {len} fields, expected {expected_len} like the header",
            pos.as_ref().map_or(0, |p| p.line())
        ),
        csv::ErrorKind::Utf8 { pos, .. } => {
            format!(
                "line {}: not valid UTF-8",
                pos.as_ref().map_or(0, |p| p.line())
            )
        }
        _ => error.to_string(),
    }
}

fn parse_feature(path: &Path, line: u64, column: &str, cell: &str) -> Result<f32> {
    let value: f32 = cell.parse().map_err(|_| {
        Error::format(
            path,
            format!("line {line}, column `{column}`: expected a number, got `{cell}`"),
        )
    })?;
    if !value.is_finite() {
        return Err(Error::format(
            path,
            format!("line {line}, column `{column}`: {cell} is not a finite number"),
        ));
    }
    Ok(value)
}

/// Loads features and target; decides the task and numbers the classes (see [`CsvOptions`]).
pub fn load_csv(path: &Path, options: &CsvOptions) -> Result<Dataset> {
    let (header, records) = read_records(path)?;
    dataset_from_records(path, header, &records, options)
}

/// [`load_csv`] on bytes in memory; `name` stands for the file in messages.
pub fn parse_csv(name: &str, bytes: &[u8], options: &CsvOptions) -> Result<Dataset> {
    let path = Path::new(name);
    let (header, records) = read_records_from(path, bytes)?;
    dataset_from_records(path, header, &records, options)
}

fn dataset_from_records(
    path: &Path,
    header: Vec<String>,
    records: &[Record],
    options: &CsvOptions,
) -> Result<Dataset> {
    let target = match &options.target {
        Some(name) => header.iter().position(|h| h == name).ok_or_else(|| {
            Error::value(
                "target",
                format!(
                    "no column `{name}` in {} (columns: {})",
                    path.display(),
                    header.join(", ")
                ),
            )
        })?,
        None => header.len() - 1,
    };
    let feature_names: Vec<String> = header
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != target)
        .map(|(_, h)| h.clone())
        .collect();
    if feature_names.is_empty() {
        return Err(Error::format(
            path,
            "only a target column, no feature columns",
        ));
    }
    let mut features = Vec::with_capacity(records.len() * feature_names.len());
    let mut raw_targets = Vec::with_capacity(records.len());
    for (line, record) in records {
        for (i, cell) in record.iter().enumerate() {
            if i == target {
                raw_targets.push(cell.to_string());
            } else {
                features.push(parse_feature(path, *line, &header[i], cell)?);
            }
        }
    }
    let (task, class_names, targets) =
        encode_target_column(path, &header[target], &raw_targets, options)?;
    Ok(Dataset {
        features,
        feature_names,
        target_name: header[target].clone(),
        targets,
        task,
        class_names,
    })
}

/// Decides classification or regression and turns the target strings into class indices or values.
fn encode_target_column(
    path: &Path,
    name: &str,
    raw: &[String],
    options: &CsvOptions,
) -> Result<(Task, Vec<String>, Vec<f32>)> {
    if let Some(classes) = &options.classes {
        let targets = raw
            .iter()
            .enumerate()
            .map(|(row, v)| {
                class_index(classes, v).map(|c| c as f32).ok_or_else(|| {
                    Error::format(
                        path,
                        format!(
                            "row {}: class `{v}` in `{name}` was not seen in training ({})",
                            row + 1,
                            classes.join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok((Task::Classify, classes.clone(), targets));
    }
    let numbers: Option<Vec<f64>> = raw
        .iter()
        .map(|v| v.parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect();
    let task = match (options.task, &numbers) {
        (TaskChoice::Classify, _) => Task::Classify,
        (TaskChoice::Regress, Some(_)) => Task::Regress,
        (TaskChoice::Regress, None) => {
            let bad = raw
                .iter()
                .position(|v| v.parse::<f64>().map_or(true, |x| !x.is_finite()))
                .unwrap_or(0);
            return Err(Error::format(
                path,
                format!(
                    "row {}: regression target `{name}` must be a number, got `{}`",
                    bad + 1,
                    raw[bad]
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
        return Ok((
            Task::Regress,
            Vec::new(),
            values.iter().map(|&v| v as f32).collect(),
        ));
    }
    // Classes in sorted order: numeric when every value is a number, else by string.
    let mut classes: Vec<String> = Vec::new();
    for v in raw {
        if class_index(&classes, v).is_none() || numbers.is_none() && !classes.contains(v) {
            classes.push(v.clone());
        }
    }
    if numbers.is_some() {
        classes.sort_by(|a, b| {
            a.parse::<f64>()
                .unwrap_or(0.0)
                .total_cmp(&b.parse::<f64>().unwrap_or(0.0))
        });
    } else {
        classes.sort();
    }
    if classes.len() < 2 {
        return Err(Error::format(
            path,
            format!(
                "target `{name}` has a single class (`{}`); classification needs at least 2",
                classes[0]
            ),
        ));
    }
    let targets = raw
        .iter()
        .map(|v| class_index(&classes, v).expect("collected above") as f32)
        .collect();
    Ok((Task::Classify, classes, targets))
}

/// Features for inference: the columns named `feature_names` when the header has them all (any other
/// column, such as the target, is ignored), else every column when there are exactly that many.
pub fn load_csv_features(path: &Path, feature_names: &[String]) -> Result<Vec<f32>> {
    let (header, records) = read_records(path)?;
    let columns: Vec<usize> = match feature_names
        .iter()
        .map(|n| header.iter().position(|h| h == n))
        .collect()
    {
        Some(columns) => columns,
        None if header.len() == feature_names.len() => (0..header.len()).collect(),
        None => {
            return Err(Error::shape(
                format!("{} columns", path.display()),
                format!(
                    "{} feature columns ({})",
                    feature_names.len(),
                    feature_names.join(", ")
                ),
                header.len(),
            ))
        }
    };
    let mut features = Vec::with_capacity(records.len() * columns.len());
    for (line, record) in &records {
        for &c in &columns {
            features.push(parse_feature(path, *line, &header[c], &record[c])?);
        }
    }
    Ok(features)
}
