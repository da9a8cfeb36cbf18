//! Datasets on the host: CSV and IDX loaders, z-score standardisation, seeded (stratified) splits, and the
//! encoding of targets for a network's output layer.

mod cells;
mod columns;
mod csv;
mod encode;
mod idx;
mod source;

pub use self::cells::{is_missing, Missing};
pub use self::csv::{
    load_csv, load_csv_features, load_csv_inputs, parse_csv, CsvFeatures, CsvOptions,
    DEFAULT_MAX_RECORD_BYTES, MISSING_HINT,
};
pub use self::encode::{ColumnCoding, Encoder, Unseen, DEFAULT_MAX_CATEGORIES};
pub use self::idx::{
    idx_image_shape, idx_image_size, labels_path, load_idx, load_idx_images, parse_idx,
};

use crate::error::{Error, Result};
use crate::loss::Loss;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

/// Classification when the target is non-numeric, or integer valued with at most this many distinct values.
pub const MAX_AUTO_CLASSES: usize = 20;

/// What the target column means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Each target is a class: an index into [`Dataset::class_names`].
    Classify,
    /// Each target is a number, predicted in its own units.
    Regress,
}

/// The `--task` choice: a fixed task, or [`TaskChoice::Auto`] to decide from the target column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskChoice {
    /// Classification when the target holds text, or whole numbers with at most [`MAX_AUTO_CLASSES`]
    /// distinct values; regression otherwise (`auto`, the default).
    #[default]
    Auto,
    /// Classification whatever the target holds (`classify`).
    Classify,
    /// Regression; every target must be a finite number (`regress`).
    Regress,
}

impl FromStr for TaskChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(TaskChoice::Auto),
            "classify" => Ok(TaskChoice::Classify),
            "regress" => Ok(TaskChoice::Regress),
            other => Err(Error::value(
                "task",
                format!(
                    "{}, expected one of auto, classify, regress",
                    crate::error::quote(other)
                ),
            )),
        }
    }
}

/// Rows of numeric features with one target each.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `[rows, feature_names.len()]`, row-major.
    pub features: Vec<f32>,
    /// Each feature column's name, in column order (`pixel0`, `pixel1`, … for IDX images).
    pub feature_names: Vec<String>,
    /// The target column's name (`label` for IDX data).
    pub target_name: String,
    /// The class index (classification) or the value (regression) of each row.
    pub targets: Vec<f32>,
    /// Whether `targets` are class indices or values.
    pub task: Task,
    /// Class names in class-index order (empty for regression).
    pub class_names: Vec<String>,
    /// Columns of the file that were not used (when features were chosen by name).
    pub ignored_columns: Vec<String>,
    /// The physical line of each row in its CSV file, for messages (empty for IDX data).
    pub lines: Vec<u64>,
    /// Each feature column's categories, for a table with text columns (empty otherwise): a text
    /// column's features are indices into its list, a numeric column's list is empty. Missing cells are
    /// `NaN`. An [`Encoder`] turns such rows into numbers a network takes.
    pub categories: Vec<Vec<String>>,
    /// Rows of the file left out because a cell was missing (`--missing drop`).
    pub dropped_rows: usize,
}

impl Dataset {
    /// Rows of data, one per target.
    pub fn rows(&self) -> usize {
        self.targets.len()
    }

    /// Features per row.
    pub fn cols(&self) -> usize {
        self.feature_names.len()
    }

    /// Whether some column holds text or some cell is missing: the rows need an [`Encoder`] before a
    /// network can take them.
    pub fn is_raw(&self) -> bool {
        self.categories.iter().any(|c| !c.is_empty()) || self.features.iter().any(|v| v.is_nan())
    }

    /// The rows at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let cols = self.cols();
        Dataset {
            features: indices
                .iter()
                .flat_map(|&i| self.features[i * cols..(i + 1) * cols].iter().copied())
                .collect(),
            targets: indices.iter().map(|&i| self.targets[i]).collect(),
            feature_names: self.feature_names.clone(),
            target_name: self.target_name.clone(),
            task: self.task,
            class_names: self.class_names.clone(),
            ignored_columns: self.ignored_columns.clone(),
            categories: self.categories.clone(),
            dropped_rows: self.dropped_rows,
            lines: if self.lines.is_empty() {
                Vec::new()
            } else {
                indices.iter().map(|&i| self.lines[i]).collect()
            },
        }
    }

    /// Holds out a seeded random `fraction` of the rows: returns `(rest, held_out)`. For classification
    /// the draw is stratified (each class gives its share), so sorted files such as iris split fairly.
    pub fn split(&self, fraction: f32, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(Error::value(
                "split fraction",
                format!("must be in [0, 1), got {fraction}"),
            ));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let groups: Vec<Vec<usize>> = match self.task {
            Task::Classify => (0..self.class_names.len())
                .map(|c| {
                    (0..self.rows())
                        .filter(|&i| self.targets[i] as usize == c)
                        .collect()
                })
                .collect(),
            Task::Regress => vec![(0..self.rows()).collect()],
        };
        let (mut rest, mut held_out) = (Vec::new(), Vec::new());
        for mut group in groups {
            group.shuffle(&mut rng);
            let take = (group.len() as f32 * fraction).round() as usize;
            held_out.extend_from_slice(&group[..take]);
            rest.extend_from_slice(&group[take..]);
        }
        rest.sort_unstable();
        held_out.sort_unstable();
        if fraction > 0.0 && (held_out.is_empty() || rest.is_empty()) {
            return Err(Error::value(
                "split fraction",
                format!("{fraction} of {} rows leaves one side empty", self.rows()),
            ));
        }
        Ok((self.subset(&rest), self.subset(&held_out)))
    }

    /// Targets as the network's loss wants them: class indices for `ce`; for one output (two classes) 0 or 1;
    /// one-hot rows for several outputs under `bce`/`sse`/`mse`; the values themselves for regression.
    pub fn encode_targets(&self, loss: Loss, outputs: usize) -> Vec<f32> {
        if self.task == Task::Regress || loss == Loss::Ce || outputs == 1 {
            return self.targets.clone();
        }
        let mut encoded = vec![0.0; self.rows() * outputs];
        for (row, &class) in self.targets.iter().enumerate() {
            encoded[row * outputs + class as usize] = 1.0;
        }
        encoded
    }
}

/// Class or category names in a stable order: by value when every one is a finite number (`2` before
/// `10`), else by text.
pub(crate) fn sort_names(names: &mut [String]) {
    let number = |n: &String| n.trim().parse::<f64>().ok().filter(|v| v.is_finite());
    if names.iter().all(|n| number(n).is_some()) {
        names.sort_by(|a, b| {
            let (x, y) = (number(a).unwrap_or(0.0), number(b).unwrap_or(0.0));
            x.total_cmp(&y).then_with(|| a.cmp(b))
        });
    } else {
        names.sort();
    }
}

/// `line N` (the physical line in the file) where the row's line is known, else `row N` (from 1).
pub fn row_name(lines: &[u64], row: usize) -> String {
    match lines.get(row) {
        Some(line) => format!("line {line}"),
        None => format!("row {}", row + 1),
    }
}

/// Per-feature mean and standard deviation of a training split; applied as `(x − mean) / std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standardizer {
    /// Each feature's mean over the rows, in the feature's units.
    pub mean: Vec<f32>,
    /// Population standard deviation; 1 for constant columns, so they stay finite (and become 0).
    pub std: Vec<f32>,
}

impl Standardizer {
    /// Statistics of `data`'s features, accumulated in f64.
    pub fn fit(data: &Dataset) -> Standardizer {
        Standardizer::fit_columns(&data.features, data.cols())
    }

    /// Statistics of each of the `cols` columns of `values` (`[rows, cols]`), accumulated in f64: a
    /// regression target is one column.
    pub fn fit_columns(values: &[f32], cols: usize) -> Standardizer {
        let cols = cols.max(1);
        let rows = (values.len() / cols).max(1) as f64;
        let mut mean = vec![0.0f64; cols];
        for row in values.chunks_exact(cols) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows);
        let mut var = vec![0.0f64; cols];
        for row in values.chunks_exact(cols) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(v) - m).powi(2);
            }
        }
        let std = var
            .iter()
            .map(|s| {
                let sd = (s / rows).sqrt();
                if sd > 1e-12 {
                    sd as f32
                } else {
                    1.0
                }
            })
            .collect();
        Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }

    /// Undoes [`Standardizer::apply`] in place: `v · std + mean` (a standardised target's predictions back
    /// in the target's units).
    pub fn restore(&self, values: &mut [f32]) {
        for row in values.chunks_exact_mut(self.mean.len()) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = *v * s + m;
            }
        }
    }

    /// Standardises `features` (`[rows, mean.len()]`) in place.
    pub fn apply(&self, features: &mut [f32]) {
        for row in features.chunks_exact_mut(self.mean.len()) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }

    /// [`Standardizer::apply`], refusing a value whose standardised form is not a finite f32 (one far
    /// outside the training data, such as 3e38 with a small spread); `names`, `lines` (each row's line
    /// in the file, when known) and `path` name it.
    pub fn apply_checked(
        &self,
        features: &mut [f32],
        names: &[String],
        lines: &[u64],
        path: &Path,
    ) -> Result<()> {
        let cols = self.mean.len().max(1);
        for (i, v) in features.iter_mut().enumerate() {
            let c = i % cols;
            let scaled = (*v - self.mean[c]) / self.std[c];
            if !scaled.is_finite() {
                return Err(Error::format(
                    path,
                    format!(
                        "{}, column {}: {:e} is too far outside the training data to standardise (mean {}, std {})",
                        row_name(lines, i / cols),
                        crate::error::quote(names.get(c).map_or("", |n| n.as_str())),
                        *v,
                        self.mean[c],
                        self.std[c]
                    ),
                ));
            }
            *v = scaled;
        }
        Ok(())
    }
}

/// Loads CSV or IDX by looking at the file: CSV when its name ends in `.csv`, else IDX when its name
/// contains `idx` or it starts with an IDX or gzip magic number, CSV otherwise. The path `-` reads CSV from standard input.
pub fn load(path: &Path, options: &CsvOptions) -> Result<Dataset> {
    if is_idx(path)? {
        load_idx(path, options.classes.as_deref())
    } else {
        load_csv(path, options)
    }
}

/// Whether `path` holds IDX data (see [`load`]).
pub fn is_idx(path: &Path) -> Result<bool> {
    if crate::files::is_stdin(path) {
        return Ok(false);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.ends_with(".csv") {
        return Ok(false);
    }
    if name.contains("idx") {
        return Ok(true);
    }
    // Only a regular file is sniffed: reading from a pipe (`<(cat data.csv)`) would eat the bytes.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(false);
    }
    use std::io::Read;
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    let n = file.read(&mut head).map_err(|e| Error::file(path, e))?;
    Ok(n >= 2 && (head[..2] == [0x1f, 0x8b] || (n == 4 && head[..3] == [0, 0, 8])))
}

/// Finds a target's class among class names in constant time: the same text, else the same number (`1`
/// is class `1.0`). The first of equal names wins.
pub(crate) struct ClassIndex<'a> {
    exact: HashMap<&'a str, usize>,
    numeric: HashMap<u64, usize>,
}

/// A number as a map key: `-0` and `0` are the same class; NaN is no number's class.
fn number_key(text: &str) -> Option<u64> {
    let v: f64 = text.trim().parse().ok()?;
    if v.is_nan() {
        None
    } else if v == 0.0 {
        Some(0)
    } else {
        Some(v.to_bits())
    }
}

impl<'a> ClassIndex<'a> {
    pub(crate) fn new(classes: &'a [String]) -> Self {
        let mut exact = HashMap::with_capacity(classes.len());
        let mut numeric = HashMap::new();
        for (i, c) in classes.iter().enumerate() {
            exact.entry(c.as_str()).or_insert(i);
            if let Some(k) = number_key(c) {
                numeric.entry(k).or_insert(i);
            }
        }
        ClassIndex { exact, numeric }
    }

    pub(crate) fn get(&self, value: &str) -> Option<usize> {
        self.exact
            .get(value)
            .or_else(|| number_key(value).and_then(|k| self.numeric.get(&k)))
            .copied()
    }
}
