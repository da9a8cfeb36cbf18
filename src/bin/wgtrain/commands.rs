//! `wgtrain eval`, `predict`, `summary` and `devices`.

use crate::arch;
use crate::arch::{hidden_activation, network_shape, parse_layers};
use crate::checks::{record_limit, warn_ignored};
use crate::{DevicesArgs, EvalArgs, PredictArgs, SummaryArgs};
use wgtrain::checkpoint::{self, ModelMeta};
use wgtrain::data::{self, CsvOptions, Dataset, Task, TaskChoice};
use wgtrain::{metrics, Device, Error, Loss, Model, Network, Result};

/// A saved model on the chosen device, with its metadata.
fn open_model(path: &std::path::Path, device: Device) -> Result<(Model, ModelMeta)> {
    let (network, params, meta) = checkpoint::load(path)?;
    let mut model = Model::new(network, device, 0)?;
    model.set_parameters(&params)?;
    Ok((model, meta))
}

/// Loads labelled data the way the model was trained: the model's feature columns by name, the same
/// target, classes and standardisation.
fn labelled_data(args: &EvalArgs, meta: &ModelMeta) -> Result<Dataset> {
    let path = &args.data;
    let idx = data::is_idx(path)?;
    if args.target.is_some() && idx {
        return Err(Error::InvalidValue {
            what: "--target".into(),
            message: "applies to CSV data; IDX labels come from the labels file".into(),
        });
    }
    let mut options = CsvOptions {
        target: args
            .target
            .clone()
            .or_else(|| Some(meta.target.clone()).filter(|t| !t.is_empty())),
        task: if meta.task == Task::Classify {
            TaskChoice::Classify
        } else {
            TaskChoice::Regress
        },
        classes: (meta.task == Task::Classify).then(|| meta.class_names.clone()),
        features: (!meta.feature_names.is_empty() && !idx).then(|| meta.feature_names.clone()),
        max_record_bytes: record_limit(args.max_record_bytes, &[path])?,
        ..CsvOptions::default()
    };
    crate::tables::model_options(meta, &mut options, true);
    if idx && meta.task == Task::Regress {
        return Err(Error::InvalidValue {
            what: "--data".into(),
            message: format!(
                "{} is IDX data, whose labels are classes, but the model is a regression model",
                path.display()
            ),
        });
    }
    if idx {
        // The image size first (from the header): a model of another shape is the error to report, not
        // its labels.
        check_columns(path, data::idx_image_size(path)?, meta)?;
    }
    let mut dataset = data::load(path, &options)?;
    warn_ignored("--data", path, &dataset.ignored_columns);
    crate::tables::warn_dropped("--data", path, &dataset);
    if let Some(encoder) = &meta.encoder {
        let (encoded, unseen) = encoder.apply(&dataset, path, args.strict)?;
        crate::tables::warn_unseen("--data", path, &unseen);
        dataset = encoded;
    }
    check_columns(path, dataset.cols(), meta)?;
    if let Some(s) = &meta.standardizer {
        s.apply_checked(
            &mut dataset.features,
            &dataset.feature_names,
            &dataset.lines,
            path,
        )?;
    }
    Ok(dataset)
}

fn check_columns(path: &std::path::Path, cols: usize, meta: &ModelMeta) -> Result<()> {
    if cols != meta.inputs {
        return Err(Error::Shape {
            what: format!("the model ({} features)", meta.inputs),
            expected: format!("data with {} feature columns", meta.inputs),
            got: format!("{cols} in {}", path.display()),
        });
    }
    Ok(())
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    if let Some(path) = &args.plot {
        // Checked before any work: never one of the inputs, never a path that is not a regular file.
        crate::checks::check_output(
            "--plot",
            path,
            "png",
            &[("--model", &args.model), ("--data", &args.data)],
        )?;
    }
    let (mut model, meta) = open_model(&args.model, args.device.resolve()?)?;
    if args.plot.is_some() && meta.task != Task::Classify {
        return Err(Error::InvalidValue {
            what: "--plot".into(),
            message: format!(
                "draws a classifier's confusion matrix, and {} is a regression model",
                args.model.display()
            ),
        });
    }
    let mut data = labelled_data(args, &meta)?;
    let targets = data.targets.clone();
    // The loss in the units the network was trained in; the mse in the target's own.
    if let Some(s) = &meta.target_standardizer {
        s.apply(&mut data.targets);
    }
    let (loss, outputs) = (model.network().loss(), model.network().outputs());
    let stats = model.evaluate(&data.features, &data.encode_targets(loss, outputs))?;
    crate::objective::finite_loss(stats.loss, &args.data)?;
    let mut report = serde_json::Map::new();
    report.insert("loss".into(), stats.loss.into());
    let mut predictions = model.predict(&data.features)?;
    let mut details = String::new();
    if data.task == Task::Classify {
        report.insert("accuracy".into(), stats.accuracy.into());
        let m = metrics::classification(
            &class_probabilities(&predictions, outputs),
            &targets.iter().map(|&t| t as usize).collect::<Vec<_>>(),
            &meta.class_names,
        );
        details = format!(
            "{}\n{}",
            class_table(&m),
            metrics::confusion_table(&m.confusion, &meta.class_names)
        );
        if let Some(path) = &args.plot {
            wgtrain::plot::confusion_heatmap(path, &m.confusion, &meta.class_names)?;
        }
        report.insert("metrics".into(), json(&m)?);
    } else {
        if let Some(s) = &meta.target_standardizer {
            s.restore(&mut predictions);
        }
        let m = metrics::regression(&predictions, &targets);
        report.insert("mse".into(), m.mse.into());
        report.insert("metrics".into(), json(&m)?);
    }
    report.insert("rows".into(), data.rows().into());
    report.insert("epochs".into(), meta.epochs.into());
    report.insert("device".into(), model.device_info().backend.clone().into());
    report.insert("adapter".into(), model.device_info().adapter.clone().into());
    if args.json {
        say!("{}", serde_json::Value::Object(report))?;
    } else {
        for (key, value) in &report {
            if key != "metrics" {
                say!("{key}: {value}")?;
            }
        }
        if let Some(serde_json::Value::Object(m)) = report.get("metrics") {
            // The scalar metrics not already printed (accuracy is, as f32).
            for (key, value) in m
                .iter()
                .filter(|(k, v)| v.is_number() && !report.contains_key(*k))
            {
                say!("{key}: {value}")?;
            }
        }
        if !details.is_empty() {
            say!("{details}")?;
        }
    }
    Ok(())
}

/// One probability per class and row: a single sigmoid output is P(second class).
fn class_probabilities(outputs_per_row: &[f32], outputs: usize) -> Vec<f32> {
    if outputs == 1 {
        outputs_per_row.iter().flat_map(|&p| [1.0 - p, p]).collect()
    } else {
        outputs_per_row.to_vec()
    }
}

/// Precision, recall, F1 and support per class, then the macro and weighted averages.
fn class_table(m: &metrics::Classification) -> String {
    let width = m
        .per_class
        .iter()
        .map(|c| c.class.chars().count())
        .chain(["weighted avg".len()])
        .max()
        .unwrap_or(1);
    let mut text = format!("{:>width$}  precision  recall     f1  support", "class");
    for c in &m.per_class {
        text += &format!(
            "\n{:>width$}  {:>9.4}  {:>6.4}  {:>5.4}  {:>7}",
            c.class, c.precision, c.recall, c.f1, c.support
        );
    }
    let rows: usize = m.per_class.iter().map(|c| c.support).sum();
    for (name, a) in [("macro avg", &m.macro_avg), ("weighted avg", &m.weighted)] {
        text += &format!(
            "\n{name:>width$}  {:>9.4}  {:>6.4}  {:>5.4}  {rows:>7}",
            a.precision, a.recall, a.f1
        );
    }
    text
}

fn json(value: &impl serde::Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::InvalidValue {
        what: "metrics".into(),
        message: e.to_string(),
    })
}

pub fn predict(args: &PredictArgs) -> Result<()> {
    let (mut model, meta) = open_model(&args.model, args.device.resolve()?)?;
    // CSV columns are picked by the model's feature names, wherever they are in the file.
    let (mut features, lines) = if data::is_idx(&args.data)? {
        if args.max_record_bytes.is_some() {
            record_limit(args.max_record_bytes, &[&args.data])?;
        }
        let (pixels, cols) = data::load_idx_images(&args.data)?;
        check_columns(&args.data, cols, &meta)?;
        (pixels, Vec::new())
    } else {
        let mut options = CsvOptions {
            target: (!meta.target.is_empty()).then(|| meta.target.clone()),
            features: (!meta.feature_names.is_empty()).then(|| meta.feature_names.clone()),
            max_record_bytes: record_limit(args.max_record_bytes, &[&args.data])?,
            ..CsvOptions::default()
        };
        crate::tables::model_options(&meta, &mut options, false);
        let read = data::load_csv_inputs(&args.data, &options)?;
        warn_ignored("--data", &args.data, &read.ignored);
        let (features, cols, lines) =
            crate::tables::model_inputs(&meta, read, &args.data, args.strict)?;
        check_columns(&args.data, cols, &meta)?;
        (features, lines)
    };
    if let Some(s) = &meta.standardizer {
        s.apply_checked(&mut features, &meta.feature_names, &lines, &args.data)?;
    }
    let outputs = model.network().outputs();
    let mut predictions = model.predict(&features)?;
    if let Some(s) = &meta.target_standardizer {
        s.restore(&mut predictions);
    }
    if let Some(i) = predictions.iter().position(|p| !p.is_finite()) {
        return Err(Error::Format {
            path: args.data.display().to_string(),
            message: format!(
                "{}: the model's output is {}, not a number it can report (inputs far outside the training data?)",
                data::row_name(&lines, i / outputs.max(1)),
                predictions[i]
            ),
        });
    }
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    let io = |e: csv::Error| Error::File {
        path: "stdout".into(),
        message: e.to_string(),
    };
    if meta.task == Task::Regress {
        out.write_record(["prediction"]).map_err(io)?;
        for p in &predictions {
            out.write_record([p.to_string()]).map_err(io)?;
        }
        return out.flush().map_err(|e| io(e.into()));
    }
    let header = std::iter::once("prediction".to_string())
        .chain(meta.class_names.iter().map(|c| format!("p_{c}")));
    out.write_record(header).map_err(io)?;
    for row in predictions.chunks(outputs) {
        // One sigmoid output is P(second class); otherwise one score per class.
        let probabilities: Vec<f32> = if outputs == 1 {
            vec![1.0 - row[0], row[0]]
        } else {
            row.to_vec()
        };
        let best = (0..probabilities.len()).fold(0, |b, j| {
            if probabilities[j] > probabilities[b] {
                j
            } else {
                b
            }
        });
        let cells = std::iter::once(meta.class_names[best].clone())
            .chain(probabilities.iter().map(|p| format!("{p:.6}")));
        out.write_record(cells).map_err(io)?;
    }
    out.flush().map_err(|e| io(e.into()))
}

pub fn summary(args: &SummaryArgs) -> Result<()> {
    let hidden = parse_layers(&args.layers)?;
    let activation = hidden_activation(args.activation, &hidden)?;
    let arch = args.arch.as_deref().map(arch::read_spec).transpose()?;
    let input = match (&args.input_shape, args.inputs) {
        (Some(shape), _) => arch::parse_input_shape(shape)?,
        (None, Some(inputs)) => wgtrain::Shape::Flat(inputs),
        (None, None) => unreachable!("clap requires --inputs or --input-shape"),
    };
    let outputs = match (&arch, args.outputs) {
        (_, Some(outputs)) => outputs,
        (Some(layers), None) => arch::outputs(layers),
        (None, None) => unreachable!("clap requires --outputs or --arch"),
    };
    let loss = match args.output {
        wgtrain::Activation::Softmax => Loss::Ce,
        wgtrain::Activation::Sigmoid => Loss::Bce,
        _ => Loss::Mse,
    };
    if input.is_empty() || (outputs == 0 && args.outputs.is_some()) {
        let flag = if input.is_empty() {
            "--inputs"
        } else {
            "--outputs"
        };
        return Err(Error::InvalidValue {
            what: flag.into(),
            message: "must be at least 1, got 0".into(),
        });
    }
    if !matches!(
        args.output,
        wgtrain::Activation::Linear | wgtrain::Activation::Sigmoid | wgtrain::Activation::Softmax
    ) {
        return Err(Error::InvalidValue {
            what: "--output".into(),
            message: format!(
                "{} is not an output activation; expected linear, sigmoid or softmax",
                args.output
            ),
        });
    }
    if args.output == wgtrain::Activation::Softmax && outputs == 1 {
        return Err(Error::InvalidValue {
            what: "--output".into(),
            message: "softmax over one output is always 1; use sigmoid for two classes".into(),
        });
    }
    let network = match &arch {
        Some(layers) => arch::network(input, layers, args.output, outputs, loss)?,
        None if matches!(input, wgtrain::Shape::Image { .. }) => {
            return Err(Error::InvalidValue {
                what: "--input-shape".into(),
                message:
                    "applies to --arch networks; a --layers network takes flat rows (see --inputs)"
                        .into(),
            })
        }
        None => {
            let mut builder = Network::builder_for(input);
            for width in hidden {
                builder = builder.dense(width, activation);
            }
            builder.dense(outputs, args.output).build(loss)?
        }
    };
    say!("network {}", network_shape(&network))?;
    say!("{}", network.summary())?;
    Ok(())
}

pub fn devices(args: &DevicesArgs) -> Result<()> {
    // What a run would use: WGTRAIN_DEVICE when set (checked like any run), else auto.
    let device = Device::from_env()?;
    let adapters = wgtrain::gpu::adapter_summaries();
    let chosen = device.open()?;
    if args.json {
        let picked = serde_json::json!({
            "device": device.to_string(),
            "backend": chosen.info().backend,
            "adapter": chosen.info().adapter,
        });
        say!(
            "{}",
            serde_json::json!({ "adapters": json(&adapters)?, "picked": picked })
        )?;
        return Ok(());
    }
    if adapters.is_empty() {
        say!("wgpu sees no adapter")?;
    } else {
        say!(
            "{:<7} {:<34} {:<7} {:<11} {:>10} {:>10} {:>6} {:<5} driver",
            "device",
            "adapter",
            "api",
            "type",
            "buffer",
            "binding",
            "group",
            "timer"
        )?;
    }
    let mib = |bytes: u64| format!("{} MiB", bytes >> 20);
    for a in &adapters {
        say!(
            "{:<7} {:<34} {:<7} {:<11} {:>10} {:>10} {:>6} {:<5} {}",
            format!("gpu:{}", a.index),
            a.name,
            a.api,
            a.device_type,
            mib(a.max_buffer_size),
            mib(a.max_storage_buffer_binding_size),
            a.max_compute_invocations_per_workgroup,
            if a.timestamp_queries { "yes" } else { "no" },
            a.driver
        )?;
    }
    say!(
        "{device} picks: {} ({})",
        chosen.info().adapter,
        chosen.info().backend
    )?;
    Ok(())
}
