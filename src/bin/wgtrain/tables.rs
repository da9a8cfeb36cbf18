//! Tables with text columns and missing cells: the encoder that turns their rows into network inputs,
//! fitted on the training split (or taken from `--init`'s model), and the warnings about what it met.

use crate::train::invalid;
use crate::TrainArgs;
use std::path::Path;
use wgtrain::checkpoint::ModelMeta;
use wgtrain::data::{CsvOptions, Dataset, Encoder, Missing, Unseen};
use wgtrain::error::quote;
use wgtrain::Result;

/// The training file's reading options that concern cells: `--missing`, `--categorical`, and with an
/// `--init` model, its encoder's columns.
pub fn cell_options(
    options: &mut CsvOptions,
    args: &TrainArgs,
    saved: Option<&ModelMeta>,
) -> Result<()> {
    if args.max_categories == 0 {
        return Err(invalid(
            "--max-categories",
            "must be at least 1, got 0".into(),
        ));
    }
    options.missing = args.missing;
    options.categorical = crate::checks::column_list("--categorical", args.categorical.as_deref())?
        .unwrap_or_default();
    let Some(saved) = saved else {
        return Ok(());
    };
    match &saved.encoder {
        Some(encoder) => {
            if args.missing != Missing::Error && args.missing != encoder.missing {
                return Err(invalid(
                    "--missing",
                    format!(
                        "conflicts with --init's model, which fills missing cells by {}",
                        encoder.missing.name()
                    ),
                ));
            }
            let saved_categorical = encoder.categorical_names();
            if let Some(name) = options
                .categorical
                .iter()
                .find(|name| !saved_categorical.contains(name))
            {
                return Err(invalid(
                    "--categorical",
                    format!(
                        "names {}, which --init's model reads as a number (its categorical columns: {})",
                        quote(name),
                        if saved_categorical.is_empty() {
                            "none".to_string()
                        } else {
                            saved_categorical.join(", ")
                        }
                    ),
                ));
            }
            options.missing = encoder.missing;
            options.features = Some(encoder.input_names());
            options.categorical = saved_categorical;
        }
        None if args.missing.fills() => {
            return Err(invalid(
                "--missing",
                format!(
                    "{} conflicts with --init's model, which has no fill values (it was trained on a table without missing cells); use --missing drop, or fill the cells",
                    args.missing.name()
                ),
            ))
        }
        None if !options.categorical.is_empty() => {
            return Err(invalid(
                "--categorical",
                "conflicts with --init's model, which has no categorical columns".into(),
            ))
        }
        None => {}
    }
    options.detect_categorical = false;
    Ok(())
}

/// Options for the test file: the training file's columns, read the same way.
pub fn test_options(train: &Dataset, options: &CsvOptions) -> CsvOptions {
    let categorical = train
        .feature_names
        .iter()
        .zip(&train.categories)
        .filter(|(_, c)| !c.is_empty())
        .map(|(n, _)| n.clone())
        .collect();
    CsvOptions {
        features: Some(train.feature_names.clone()),
        categorical,
        detect_categorical: false,
        ignore: Vec::new(),
        ..options.clone()
    }
}

/// The encoder for this run: `--init`'s, else one fitted on the training split when the table needs
/// one (text columns, missing cells) or `--missing` is not `error` (fill values, or `drop`, which `eval`
/// must know to leave such rows out too); `None` for a numeric table read with `--missing error`.
pub fn encoder(
    train: &Dataset,
    args: &TrainArgs,
    saved: Option<&ModelMeta>,
) -> Result<Option<Encoder>> {
    if let Some(saved) = saved {
        return Ok(saved.encoder.clone());
    }
    if !train.is_raw() && args.missing == Missing::Error {
        return Ok(None);
    }
    Encoder::fit(train, args.missing, args.max_categories).map(Some)
}

/// Encodes `set` in place, warning about unseen categories (`flag` and `path` name the file).
pub fn encode(encoder: &Encoder, set: &mut Dataset, flag: &str, path: &Path) -> Result<()> {
    let (encoded, unseen) = encoder.apply(set, path, false)?;
    warn_unseen(flag, path, &unseen);
    *set = encoded;
    Ok(())
}

/// One line about categories that were not seen in training and became all-zero inputs.
pub fn warn_unseen(flag: &str, path: &Path, unseen: &Unseen) {
    if let Some((row, column, text)) = &unseen.first {
        let cells = if unseen.count == 1 { "cell" } else { "cells" };
        crate::complain(&format!(
            "warning: {flag} {}: {} {cells} with a category not seen in training, encoded as all zeros (the first: {row}, column {}, {}); --strict makes this an error",
            path.display(),
            unseen.count,
            quote(column),
            quote(text)
        ));
    }
}

/// One line about rows left out by `--missing drop`.
pub fn warn_dropped(flag: &str, path: &Path, set: &Dataset) {
    if set.dropped_rows > 0 {
        crate::complain(&format!(
            "warning: {flag} {}: left out {} row{} with missing cells (--missing drop); {} remain",
            path.display(),
            set.dropped_rows,
            if set.dropped_rows == 1 { "" } else { "s" },
            set.rows()
        ));
    }
}

/// What [`CsvOptions::missing_hint`] says for data given to a trained model without fill values.
const MODEL_MISSING_HINT: &str =
    "the model has no values to fill them with (train it with --missing mean, median or mode)";

/// Reading options for data given to the trained model `meta`: its columns, read as its encoder reads
/// them. Rows with missing cells may be left out only from `labelled` data (eval), and only for a
/// model trained with `--missing drop`; predictions keep one row per input row.
pub fn model_options(meta: &ModelMeta, options: &mut CsvOptions, labelled: bool) {
    options.detect_categorical = false;
    options.missing_hint = MODEL_MISSING_HINT;
    if let Some(encoder) = &meta.encoder {
        options.features = Some(encoder.input_names());
        options.categorical = encoder.categorical_names();
        options.missing = match encoder.missing {
            m if m.fills() => m,
            Missing::Drop if labelled => Missing::Drop,
            _ => Missing::Error,
        };
    }
}

/// Encodes rows read with [`model_options`] when the model has an encoder (`strict`: an unseen category
/// is an error); returns the inputs.
pub fn model_inputs(
    meta: &ModelMeta,
    read: wgtrain::data::CsvFeatures,
    path: &Path,
    strict: bool,
) -> Result<(Vec<f32>, usize, Vec<u64>)> {
    let Some(encoder) = &meta.encoder else {
        return Ok((read.features, read.cols, read.lines));
    };
    let (features, unseen) =
        encoder.encode(&read.features, &read.categories, &read.lines, path, strict)?;
    warn_unseen("--data", path, &unseen);
    Ok((features, encoder.width(), read.lines))
}
