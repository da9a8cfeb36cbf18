//! From a raw table (text columns, missing cells) to the numbers a network takes: missing cells filled
//! with statistics of the training rows, text columns one-hot encoded over the categories seen in those
//! rows. Fitted once on the training split, saved in the checkpoint, and applied alike to validation,
//! test and prediction data: what scikit-learn's `SimpleImputer` followed by
//! `OneHotEncoder(handle_unknown="ignore")` does.

use super::{row_name, Dataset, Missing};
use crate::error::{quote, Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Most categories a text column may have in the training rows by default (`--max-categories`): more is
/// likely an id or free text, whose one-hot columns would swamp the model.
pub const DEFAULT_MAX_CATEGORIES: usize = 100;

/// How each feature column of a file becomes network inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encoder {
    /// The policy the fill values were computed for.
    pub missing: Missing,
    /// The file's feature columns, in input order.
    pub columns: Vec<ColumnCoding>,
}

/// One feature column: a number passed through, or a category one-hot encoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum ColumnCoding {
    /// A column of numbers, passed through as one input.
    Numeric {
        /// The column's name in the file's header.
        name: String,
        /// What a missing cell becomes; `None`: a missing cell is an error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fill: Option<f32>,
    },
    /// A column of text, one-hot encoded over the categories of the training rows.
    Categorical {
        /// The column's name in the file's header.
        name: String,
        /// One input per category, in this order; any other category encodes as all zeros.
        categories: Vec<String>,
        /// The category a missing cell becomes (the training rows' most frequent); `None`: a missing cell
        /// is an error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fill: Option<String>,
    },
}

impl ColumnCoding {
    /// The column's name in the file's header.
    pub fn name(&self) -> &str {
        match self {
            ColumnCoding::Numeric { name, .. } | ColumnCoding::Categorical { name, .. } => name,
        }
    }

    fn width(&self) -> usize {
        match self {
            ColumnCoding::Numeric { .. } => 1,
            ColumnCoding::Categorical { categories, .. } => categories.len(),
        }
    }
}

/// Cells whose category was not seen in training, encoded as all zeros.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Unseen {
    /// Cells met whose category the column's list does not hold.
    pub count: usize,
    /// The first: its row (`line N`), column and text.
    pub first: Option<(String, String, String)>,
}

/// The median of `values` (not empty): the mean of the two middle values for an even count.
fn median(values: &mut [f32]) -> f32 {
    values.sort_by(f32::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        ((f64::from(values[n / 2 - 1]) + f64::from(values[n / 2])) / 2.0) as f32
    }
}

/// The most frequent of `values` (not empty); the smallest among equally frequent ones.
fn mode(values: &mut [f32]) -> f32 {
    values.sort_by(f32::total_cmp);
    let (mut best, mut best_count) = (values[0], 0);
    let mut i = 0;
    while i < values.len() {
        let run = values[i..].iter().take_while(|&&v| v == values[i]).count();
        if run > best_count {
            (best, best_count) = (values[i], run);
        }
        i += run;
    }
    best
}

impl Encoder {
    /// Fits on the training rows: the categories each text column shows there (at most
    /// `max_categories`), and under a filling policy each column's fill value.
    pub fn fit(train: &Dataset, missing: Missing, max_categories: usize) -> Result<Encoder> {
        let cols = train.cols();
        let mut columns = Vec::with_capacity(cols);
        for (c, name) in train.feature_names.iter().enumerate() {
            let cells = train.features.iter().skip(c).step_by(cols.max(1));
            let vocabulary = train.categories.get(c).filter(|v| !v.is_empty());
            let no_values = || {
                Error::value(
                    "missing",
                    format!(
                        "column {} has no values in the training rows to fill its missing cells from",
                        quote(name)
                    ),
                )
            };
            let coding = match vocabulary {
                Some(vocabulary) => {
                    let mut counts = vec![0usize; vocabulary.len()];
                    // Indices past the vocabulary (a hand-built dataset) count for nothing.
                    for v in cells.filter(|v| !v.is_nan()) {
                        if let Some(count) = counts.get_mut(*v as usize) {
                            *count += 1;
                        }
                    }
                    let mut categories: Vec<String> = (0..vocabulary.len())
                        .filter(|&i| counts[i] > 0)
                        .map(|i| vocabulary[i].clone())
                        .collect();
                    super::sort_names(&mut categories);
                    if categories.len() > max_categories {
                        return Err(Error::value(
                            "max-categories",
                            format!(
                                "column {} has {} categories in the training rows, more than {max_categories} (an id or free text? leave it out with --ignore {}, or raise --max-categories)",
                                quote(name),
                                categories.len(),
                                name
                            ),
                        ));
                    }
                    let fill = match missing.fills() {
                        true => {
                            // The most frequent; the first in category order among equals.
                            let count = |cat: &String| {
                                counts[vocabulary.iter().position(|v| v == cat).expect("seen")]
                            };
                            let best = categories.iter().max_by(|a, b| {
                                count(a).cmp(&count(b)).then_with(|| {
                                    let (ia, ib) = (
                                        categories.iter().position(|c| c == *a),
                                        categories.iter().position(|c| c == *b),
                                    );
                                    ib.cmp(&ia)
                                })
                            });
                            Some(best.ok_or_else(no_values)?.clone())
                        }
                        false => None,
                    };
                    ColumnCoding::Categorical {
                        name: name.clone(),
                        categories,
                        fill,
                    }
                }
                None => {
                    let mut values: Vec<f32> = cells.copied().filter(|v| !v.is_nan()).collect();
                    let fill = match missing {
                        _ if !missing.fills() => None,
                        _ if values.is_empty() => return Err(no_values()),
                        Missing::Mean => Some(
                            (values.iter().map(|&v| f64::from(v)).sum::<f64>()
                                / values.len() as f64) as f32,
                        ),
                        Missing::Median => Some(median(&mut values)),
                        _ => Some(mode(&mut values)),
                    };
                    ColumnCoding::Numeric {
                        name: name.clone(),
                        fill,
                    }
                }
            };
            columns.push(coding);
        }
        let encoder = Encoder { missing, columns };
        // A column named like another column's category (`city=Paris` beside `city`) would give two
        // inputs one name.
        let mut seen = std::collections::HashSet::new();
        if let Some(name) = encoder
            .output_names()
            .into_iter()
            .find(|n| !seen.insert(n.clone()))
        {
            return Err(Error::value(
                "columns",
                format!(
                    "two inputs would be named {}: a column has the name of another column's category; rename or --ignore one of them",
                    quote(&name)
                ),
            ));
        }
        Ok(encoder)
    }

    /// The file's columns the encoder reads, in order.
    pub fn input_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name().to_string()).collect()
    }

    /// The columns read as categories.
    pub fn categorical_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| matches!(c, ColumnCoding::Categorical { .. }))
            .map(|c| c.name().to_string())
            .collect()
    }

    /// The network's inputs: a numeric column's name, and `name=category` for each category.
    pub fn output_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.width());
        for column in &self.columns {
            match column {
                ColumnCoding::Numeric { name, .. } => names.push(name.clone()),
                ColumnCoding::Categorical {
                    name, categories, ..
                } => names.extend(categories.iter().map(|c| format!("{name}={c}"))),
            }
        }
        names
    }

    /// Inputs per row.
    pub fn width(&self) -> usize {
        self.columns.iter().map(ColumnCoding::width).sum()
    }

    /// Whether the saved fields agree (for a checkpoint's metadata); the message names what does not.
    pub fn check(&self) -> std::result::Result<(), String> {
        for column in &self.columns {
            let name = quote(column.name());
            match column {
                ColumnCoding::Numeric { fill, .. } => {
                    if fill.is_some_and(|f| !f.is_finite()) {
                        return Err(format!("column {name}: its fill value is not finite"));
                    }
                    if fill.is_some() != self.missing.fills() {
                        return Err(format!(
                            "column {name}: a fill value does not go with missing = {}",
                            self.missing.name()
                        ));
                    }
                }
                ColumnCoding::Categorical {
                    categories, fill, ..
                } => {
                    if categories.is_empty() {
                        return Err(format!("column {name} has no categories"));
                    }
                    let mut sorted = categories.clone();
                    sorted.sort();
                    sorted.dedup();
                    if sorted.len() != categories.len() {
                        return Err(format!("column {name} lists a category twice"));
                    }
                    if fill.as_ref().is_some_and(|f| !categories.contains(f))
                        || fill.is_some() != self.missing.fills()
                    {
                        return Err(format!(
                            "column {name}: its fill is not one of its categories, or does not go with missing = {}",
                            self.missing.name()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Encodes raw rows (`[rows, columns.len()]`, as read with this encoder's categorical columns; see
    /// [`Dataset::categories`]): returns `[rows, width()]` and the unseen categories met. Under `strict`
    /// an unseen category is an error. `lines` and `path` name a row in messages.
    pub fn encode(
        &self,
        features: &[f32],
        read_categories: &[Vec<String>],
        lines: &[u64],
        path: &Path,
        strict: bool,
    ) -> Result<(Vec<f32>, Unseen)> {
        let cols = self.columns.len();
        if cols == 0 || !features.len().is_multiple_of(cols) {
            return Err(Error::Shape {
                what: format!("rows of {}", path.display()),
                expected: format!("{cols} columns per row for the model's encoder"),
                got: format!("{} values", features.len()),
            });
        }
        let rows = features.len() / cols;
        // Each column's file categories (by index) to its input offset, None for an unseen one.
        let mut maps: Vec<Vec<Option<usize>>> = Vec::with_capacity(cols);
        for (c, column) in self.columns.iter().enumerate() {
            let read = read_categories.get(c).map_or(&[][..], Vec::as_slice);
            match column {
                ColumnCoding::Numeric { name, .. } if !read.is_empty() => {
                    return Err(Error::format(
                        path,
                        format!(
                            "column {} holds text, but the model reads numbers there",
                            quote(name)
                        ),
                    ))
                }
                ColumnCoding::Numeric { .. } => maps.push(Vec::new()),
                ColumnCoding::Categorical { categories, .. } => {
                    let index: HashMap<&str, usize> = categories
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.as_str(), i))
                        .collect();
                    maps.push(
                        read.iter()
                            .map(|t| index.get(t.as_str()).copied())
                            .collect(),
                    );
                }
            }
        }
        let width = self.width();
        let too_big = || {
            Error::Memory(format!(
                "{}: {rows} rows × {width} encoded inputs do not fit in memory (a column with many categories? --ignore it or lower --max-categories)",
                path.display()
            ))
        };
        let total = rows.checked_mul(width).ok_or_else(too_big)?;
        // The encoded rows, and the copies training makes of them, must fit beside each other.
        let bytes = total as u128 * 4;
        if let Some(available) = crate::memory::host_available_bytes() {
            if bytes * 2 > u128::from(available) {
                return Err(Error::Memory(format!(
                    "{}: {rows} rows × {width} encoded inputs take {}, which with the copy training makes is more than the {} the host has available (a column with many categories? --ignore it or lower --max-categories)",
                    path.display(),
                    crate::memory::human_bytes(bytes),
                    crate::memory::human_bytes(available.into())
                )));
            }
        }
        let mut out: Vec<f32> = Vec::new();
        out.try_reserve_exact(total).map_err(|_| too_big())?;
        let mut unseen = Unseen::default();
        for (r, row) in features.chunks_exact(cols).enumerate() {
            for (c, (&value, column)) in row.iter().zip(&self.columns).enumerate() {
                let missing = || {
                    Error::format(
                        path,
                        format!(
                            "{}, column {}: a missing cell, and the model has no value to fill it with (it was trained with --missing {})",
                            row_name(lines, r),
                            quote(column.name()),
                            self.missing.name()
                        ),
                    )
                };
                match column {
                    ColumnCoding::Numeric { fill, .. } => out.push(if value.is_nan() {
                        fill.ok_or_else(missing)?
                    } else {
                        value
                    }),
                    ColumnCoding::Categorical {
                        name,
                        categories,
                        fill,
                    } => {
                        let hot = if value.is_nan() {
                            let fill = fill.as_ref().ok_or_else(missing)?;
                            categories.iter().position(|c| c == fill)
                        } else {
                            let code = value as usize;
                            let hot = maps[c].get(code).copied().flatten();
                            if hot.is_none() {
                                let text = read_categories
                                    .get(c)
                                    .and_then(|v| v.get(code))
                                    .map_or(String::new(), Clone::clone);
                                if strict {
                                    return Err(Error::format(
                                        path,
                                        format!(
                                            "{}, column {}: category {} was not seen in training (categories: {})",
                                            row_name(lines, r),
                                            quote(name),
                                            quote(&text),
                                            super::columns::list(categories)
                                        ),
                                    ));
                                }
                                unseen.count += 1;
                                unseen.first.get_or_insert_with(|| {
                                    (row_name(lines, r), name.clone(), text)
                                });
                            }
                            hot
                        };
                        let start = out.len();
                        out.resize(start + categories.len(), 0.0);
                        if let Some(i) = hot {
                            out[start + i] = 1.0;
                        }
                    }
                }
            }
        }
        Ok((out, unseen))
    }

    /// [`Encoder::encode`] on a dataset read with this encoder's columns: the encoded dataset, whose
    /// feature names are [`Encoder::output_names`], and the unseen categories met.
    pub fn apply(&self, data: &Dataset, path: &Path, strict: bool) -> Result<(Dataset, Unseen)> {
        let (features, unseen) =
            self.encode(&data.features, &data.categories, &data.lines, path, strict)?;
        let encoded = Dataset {
            features,
            feature_names: self.output_names(),
            target_name: data.target_name.clone(),
            targets: data.targets.clone(),
            task: data.task,
            class_names: data.class_names.clone(),
            ignored_columns: data.ignored_columns.clone(),
            lines: data.lines.clone(),
            categories: Vec::new(),
            dropped_rows: data.dropped_rows,
        };
        Ok((encoded, unseen))
    }
}
