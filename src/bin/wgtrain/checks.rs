//! Checks made before anything is trained: the files a run reads and writes, `--init` against the run
//! (and the data options its model implies), targets the loss cannot fit, `--max-record-bytes`, and the
//! warning for columns a model does not use.

use crate::train::invalid;
use crate::TrainArgs;
use std::path::{Path, PathBuf};
use wgtrain::checkpoint::{self, ModelMeta};
use wgtrain::data::{self, CsvOptions, Dataset, Task, TaskChoice};
use wgtrain::files::{Input, Output};
use wgtrain::{Error, Loss, Result};

/// The data files a run reads: each path, and the labels file beside an IDX images file.
pub fn input_files(flag: &'static str, path: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
    let mut files = vec![(flag, path.to_path_buf())];
    if !wgtrain::files::is_stdin(path) && path.exists() && data::is_idx(path)? {
        let labels = if flag == "--data" {
            "the labels file of --data"
        } else {
            "the labels file of --test-data"
        };
        files.push((labels, data::labels_path(path)?));
    }
    Ok(files)
}

/// Every output checked against the flags' inputs before anything is loaded or trained.
pub fn check_files(args: &TrainArgs) -> Result<()> {
    let mut inputs = input_files("--data", &args.data)?;
    if let Some(test) = &args.test_data {
        // A pipe (standard input, `/dev/stdin`, `<(…)`) can be read only once.
        let stream = |p: &Path| wgtrain::files::input_metadata(p).filter(|m| !m.is_file());
        let both_stdin = wgtrain::files::is_stdin(test) && wgtrain::files::is_stdin(&args.data);
        if let (Some(a), Some(b)) = (stream(&args.data), stream(test)) {
            if both_stdin || wgtrain::files::same_file(&a, &b) {
                return Err(invalid(
                    "--test-data",
                    format!(
                        "{} is the same stream as --data {}, which can be read only once",
                        test.display(),
                        args.data.display()
                    ),
                ));
            }
        }
        if both_stdin {
            return Err(invalid(
                "--test-data",
                "standard input (`-`) is already read by --data, and can be read only once".into(),
            ));
        }
        if data::is_idx(test)? != data::is_idx(&args.data)? {
            return Err(invalid(
                "--test-data",
                format!(
                    "{} is not in the format of --data {} (both CSV or both IDX)",
                    test.display(),
                    args.data.display()
                ),
            ));
        }
        inputs.extend(input_files("--test-data", test)?);
    }
    if let Some(init) = &args.init {
        inputs.push(("--init", init.clone()));
    }
    let inputs: Vec<Input> = inputs
        .iter()
        .map(|(flag, path)| Input { flag, path })
        .collect();
    let mut outputs = Vec::new();
    if let Some(path) = &args.out {
        outputs.push(Output {
            flag: "--out",
            path,
            extension: None,
        });
    }
    if let Some(path) = &args.plot {
        outputs.push(Output {
            flag: "--plot",
            path,
            extension: Some("png"),
        });
    }
    wgtrain::files::check_outputs(&outputs, &inputs)
}

/// `"a, b,c"` → the column names a, b and c: none empty, none twice.
pub fn column_list(flag: &str, text: Option<&str>) -> Result<Option<Vec<String>>> {
    let Some(text) = text else { return Ok(None) };
    let names: Vec<String> = text.split(',').map(|n| n.trim().to_string()).collect();
    if let Some(i) = names.iter().position(String::is_empty) {
        return Err(invalid(
            flag,
            format!("name {} of {} is empty", i + 1, wgtrain::error::quote(text)),
        ));
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(invalid(
                flag,
                format!("{} is named twice", wgtrain::error::quote(name)),
            ));
        }
    }
    Ok(Some(names))
}

/// Warns when a classification target has a class for nearly every row: more likely an id or a number to
/// regress on than classes to learn.
pub fn warn_many_classes(path: &Path, data: &Dataset) {
    let (classes, rows) = (data.class_names.len(), data.rows());
    if data.task == Task::Classify && rows >= 10 && classes * 2 > rows {
        crate::complain(&format!(
            "warning: --data {}: target {} has {classes} classes in {rows} rows; is it an id, or a \
             number to predict (--task regress)?",
            path.display(),
            wgtrain::error::quote(&data.target_name)
        ));
    }
}

/// One `warning:` line on stderr naming the columns of `path` that were not used.
pub fn warn_ignored(flag: &str, path: &Path, ignored: &[String]) {
    if ignored.is_empty() {
        return;
    }
    let names: Vec<String> = ignored
        .iter()
        .take(10)
        .map(|n| wgtrain::error::quote(n))
        .collect();
    let more = if ignored.len() > 10 {
        format!(" and {} more", ignored.len() - 10)
    } else {
        String::new()
    };
    crate::complain(&format!(
        "warning: {flag} {}: ignoring column{} {}{more}, not used by the model",
        path.display(),
        if ignored.len() == 1 { "" } else { "s" },
        names.join(", ")
    ));
}

/// Refuses `--init` from a model that differs from this run in more than its weights: activations, loss,
/// task, feature or class names (shapes are checked when the tensors are read).
/// The data options come from the saved model (see `train::init_options`), so feature and class names
/// agree by construction; the architecture is what can still differ.
pub fn check_init(path: &Path, saved: &ModelMeta, run: &ModelMeta) -> Result<()> {
    let differ = |what: String| Err(invalid("--init", format!("{}: {what}", path.display())));
    if saved.layers.len() != run.layers.len() {
        return differ(format!(
            "it has {} layers, this run {} (see --layers or --arch)",
            saved.layers.len(),
            run.layers.len()
        ));
    }
    if saved.input_shape != run.input_shape {
        let shape = |m: &ModelMeta| match m.input_shape.as_deref() {
            Some([c, h, w]) => format!("{c}x{h}x{w} images"),
            Some([t, d]) => format!("sequences of {t} positions x {d} features"),
            _ => format!("rows of {}", m.inputs),
        };
        return differ(format!(
            "it takes {}, this run's input is {} (see --input-shape)",
            shape(saved),
            shape(run)
        ));
    }
    if saved.inputs != run.inputs {
        return differ(format!(
            "it takes {} inputs, this run's data has {}",
            saved.inputs, run.inputs
        ));
    }
    // Layers with parameters first (their shapes decide whether the weights fit), then activations.
    let token = |l: &checkpoint::LayerMeta| match l {
        checkpoint::LayerMeta::Token(t) => t.clone(),
        checkpoint::LayerMeta::Dense(d) => format!("dense:{}", d.units),
    };
    let is_activation = |t: &str| wgtrain::Layer::parse(t).is_ok_and(|l| l.activation().is_some());
    // Dropout holds no weights: fine-tuning with another rate is a normal thing to do.
    let token = |l: &checkpoint::LayerMeta| match token(l) {
        t if t.starts_with("dropout:") => "dropout".to_string(),
        t => t,
    };
    for activations in [false, true] {
        for (i, (a, b)) in saved.layers.iter().zip(&run.layers).enumerate() {
            let (a, b) = (token(a), token(b));
            if a != b && (is_activation(&a) || is_activation(&b)) == activations {
                return differ(format!("layer {i} is {a}, this run's is {b}"));
            }
        }
    }
    if saved.loss != run.loss {
        return differ(format!(
            "the loss is {}, this run's is {}",
            saved.loss, run.loss
        ));
    }
    if saved.task != run.task {
        return differ(format!(
            "the task is {}, this run's is {}",
            format!("{:?}", saved.task).to_lowercase(),
            format!("{:?}", run.task).to_lowercase()
        ));
    }
    if !saved.feature_names.is_empty() && saved.feature_names != run.feature_names {
        let i = saved
            .feature_names
            .iter()
            .zip(&run.feature_names)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return differ(format!(
            "its feature {} is {}, this run's is {}",
            i + 1,
            wgtrain::error::quote(&saved.feature_names[i]),
            wgtrain::error::quote(run.feature_names.get(i).map_or("", |s| s.as_str()))
        ));
    }
    if saved.class_names != run.class_names {
        return differ(format!(
            "the classes are {}, this run's are {}",
            saved.class_names.join(", "),
            run.class_names.join(", ")
        ));
    }
    Ok(())
}

/// The most `--max-record-bytes` may be: past it, one record could take more memory than a CSV row needs.
const MAX_RECORD_LIMIT: usize = 1 << 30;

/// `--max-record-bytes` checked: from 1 byte to 1 GiB, and only where some of the `data` is CSV (IDX files
/// have no records).
pub fn record_limit(flag: Option<usize>, data: &[&Path]) -> Result<usize> {
    let Some(limit) = flag else {
        return Ok(data::DEFAULT_MAX_RECORD_BYTES);
    };
    if !(1..=MAX_RECORD_LIMIT).contains(&limit) {
        return Err(invalid(
            "--max-record-bytes",
            format!("must be from 1 to {MAX_RECORD_LIMIT} (1 GiB), got {limit}"),
        ));
    }
    let mut any_csv = false;
    for path in data {
        any_csv |= !data::is_idx(path)?;
    }
    if !any_csv {
        return Err(invalid(
            "--max-record-bytes",
            "applies to CSV data; IDX files have no records".into(),
        ));
    }
    Ok(limit)
}

/// The data options a wgtrain model given to `--init` implies; flags that contradict it are errors.
pub fn init_options(
    options: &mut CsvOptions,
    saved: &ModelMeta,
    args: &TrainArgs,
    path: &Path,
    data_is_idx: bool,
) -> Result<()> {
    let conflict = |flag: &str, what: String| {
        Err(invalid(
            flag,
            format!("conflicts with --init {}, {what}", path.display()),
        ))
    };
    let task = match saved.task {
        Task::Classify => TaskChoice::Classify,
        Task::Regress => TaskChoice::Regress,
    };
    if args.task != TaskChoice::Auto && args.task != task {
        return conflict("--task", format!("a {:?} model", saved.task).to_lowercase());
    }
    if saved.standardizer.is_some() && args.no_standardize {
        return conflict("--no-standardize", "whose inputs are standardised".into());
    }
    if saved.standardizer.is_none() && args.standardize {
        return conflict("--standardize", "whose inputs are not standardised".into());
    }
    if saved.target_standardizer.is_some() && args.no_scale_target {
        return conflict("--no-scale-target", "whose target is standardised".into());
    }
    if let Some(target) = &args.target {
        if !saved.target.is_empty() && *target != saved.target {
            return conflict(
                "--target",
                format!("whose target is {}", wgtrain::error::quote(&saved.target)),
            );
        }
    }
    if saved.task == Task::Regress && data_is_idx {
        return conflict(
            "--data",
            "a regression model, and IDX labels are classes".into(),
        );
    }
    options.task = task;
    if options.target.is_none() && !saved.target.is_empty() {
        options.target = Some(saved.target.clone());
    }
    if saved.task == Task::Classify {
        options.classes = Some(saved.class_names.clone());
    }
    if !saved.feature_names.is_empty() {
        options.features = Some(saved.feature_names.clone());
    }
    Ok(())
}

/// Targets the loss cannot take, named by line (bce needs values in [0, 1]).
pub fn check_targets(train: &Dataset, loss: Loss, path: &Path) -> Result<()> {
    if train.task != Task::Regress || loss != Loss::Bce {
        return Ok(());
    }
    match train.targets.iter().position(|y| !(0.0..=1.0).contains(y)) {
        None => Ok(()),
        Some(i) => Err(Error::Format {
            path: path.display().to_string(),
            message: format!(
                "{}, column {}: {} is outside [0, 1], the values bce (a sigmoid output) can fit",
                data::row_name(&train.lines, i),
                wgtrain::error::quote(&train.target_name),
                train.targets[i]
            ),
        }),
    }
}

/// Refuses the output `path` of `flag` (a file written with `extension`) before any work when it is one of
/// `inputs` (`(flag, path)`), or something other than a regular file.
pub fn check_output(
    flag: &str,
    path: &Path,
    extension: &str,
    inputs: &[(&str, &Path)],
) -> Result<()> {
    let inputs: Vec<wgtrain::files::Input> = inputs
        .iter()
        .map(|&(flag, path)| wgtrain::files::Input { flag, path })
        .collect();
    wgtrain::files::check_outputs(
        &[wgtrain::files::Output {
            flag,
            path,
            extension: Some(extension),
        }],
        &inputs,
    )
}
