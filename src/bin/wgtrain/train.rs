//! `wgtrain train` and the default job (no command): data → network → fit → test → checkpoint and plot.

use crate::arch::{hidden_activation, network_shape, parse_layers};
use crate::checks::{
    check_files, check_init, check_targets, column_list, init_options, record_limit, warn_ignored,
};
use crate::objective::{finite_loss, mse};
use crate::TrainArgs;
use crate::{arch, objective, resume, tables};
use std::path::Path;
use wgtrain::checkpoint::{self, ModelMeta};
use wgtrain::data::{self, CsvOptions, Standardizer, Task, TaskChoice};
use wgtrain::fit::{self, FitConfig};
use wgtrain::{Activation, Error, Model, Network, Result};

pub fn invalid(what: &str, message: String) -> Error {
    Error::InvalidValue {
        what: what.into(),
        message,
    }
}

fn check_args(args: &TrainArgs) -> Result<()> {
    if args.input_shape.is_some() && args.arch.is_none() {
        return Err(invalid(
            "--input-shape",
            "applies to --arch networks; a --layers network takes each sample as one flat row"
                .into(),
        ));
    }
    if args.epochs == 0 {
        return Err(invalid("--epochs", "must be at least 1, got 0".into()));
    }
    if args.batch_size == 0 {
        return Err(invalid("--batch-size", "must be at least 1, got 0".into()));
    }
    if !(0.0..1.0).contains(&args.val_split) {
        return Err(invalid(
            "--val-split",
            format!("must be in [0, 1), got {}", args.val_split),
        ));
    }
    if args.patience == Some(0) {
        return Err(invalid("--patience", "must be at least 1, got 0".into()));
    }
    if args.patience.is_some() && args.val_split == 0.0 {
        return Err(invalid(
            "--patience",
            "early stopping needs a validation split (--val-split)".into(),
        ));
    }
    crate::optimizer::choose(args)?;
    crate::optimizer::clipping(args)?;
    crate::optimizer::schedule(args)?.check(args.epochs, crate::optimizer::choose(args)?.1)?;
    if crate::optimizer::schedule(args)?.needs_validation() && args.val_split == 0.0 {
        return Err(invalid(
            "--schedule",
            "plateau follows the validation loss and needs a validation split (--val-split)".into(),
        ));
    }
    Ok(())
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let resumed = match &args.resume {
        Some(path) => Some(resume::prepare(args, path)?),
        None => None,
    };
    // A resumed run is distributed when the saved one was.
    let ranks = crate::ranks::start(resumed.as_ref().map_or(args, |r| &r.args))?;
    let result = train(args, resumed, ranks.as_ref());
    if let (Err(e), Some(ranks)) = (&result, &ranks) {
        let (rank, size) = (ranks.comm().rank(), ranks.comm().size());
        crate::complain(&format!(
            "error: {e} (rank {rank} of {size}: ending the job)"
        ));
        ranks.abort(2);
    }
    result
}

fn train(
    args: &TrainArgs,
    resumed: Option<resume::Resumed>,
    ranks: Option<&crate::ranks::Ranks>,
) -> Result<()> {
    let args = resumed.as_ref().map_or(args, |r| &r.args);
    // Only rank 0 prints and writes.
    let other_rank;
    let args = match ranks {
        Some(r) if !r.is_root() => {
            other_rank = TrainArgs {
                quiet: true,
                json: false,
                out: None,
                plot: None,
                save_state: false,
                ..args.clone()
            };
            &other_rank
        }
        _ => args,
    };
    check_args(args)?;
    resume::check(args)?;
    check_files(args)?;
    let hidden = parse_layers(&args.layers)?;
    let activation = hidden_activation(args.activation, &hidden)?;
    let arch = args.arch.as_deref().map(arch::read_spec).transpose()?;
    let input_shape = args
        .input_shape
        .as_deref()
        .map(arch::parse_input_shape)
        .transpose()?;
    let data_paths: Vec<&Path> = std::iter::once(args.data.as_path())
        .chain(args.test_data.as_deref())
        .collect();
    let max_record_bytes = record_limit(args.max_record_bytes, &data_paths)?;
    let data_is_idx = data::is_idx(&args.data)?;
    if data_is_idx {
        if let Some(target) = &args.target {
            return Err(invalid(
                "--target",
                format!(
                    "{} applies to CSV data; IDX labels come from the labels file",
                    wgtrain::error::quote(target)
                ),
            ));
        }
        if args.task == TaskChoice::Regress {
            return Err(invalid(
                "--task",
                "regress does not apply to IDX data, whose labels are classes".into(),
            ));
        }
    }
    let device = match ranks {
        Some(r) => r.device(args.device.resolve()?)?,
        None => args.device.resolve()?,
    };
    // A wgtrain model given to --init decides what the data means: its target, task, classes, feature
    // columns (by name) and standardisation, so its weights see inputs scaled as they were trained on.
    let (init_bytes, init_meta) = match &args.init {
        Some(path) => checkpoint::read_init(path)?,
        None => (Vec::new(), None),
    };
    let mut options = CsvOptions {
        target: args.target.clone(),
        task: args.task,
        max_record_bytes,
        delimiter: args.delimiter,
        features: column_list("--features", args.features.as_deref())?,
        ignore: column_list("--ignore", args.ignore.as_deref())?.unwrap_or_default(),
        ..CsvOptions::default()
    };
    if let (Some(saved), Some(path)) = (&init_meta, &args.init) {
        init_options(&mut options, saved, args, path, data_is_idx)?;
    }
    tables::cell_options(&mut options, args, init_meta.as_ref())?;
    let mut train = data::load(&args.data, &options)?;
    warn_ignored("--data", &args.data, &train.ignored_columns);
    tables::warn_dropped("--data", &args.data, &train);
    crate::checks::warn_many_classes(&args.data, &train);
    let (output, outputs, loss) = objective::output_layer(&train, args)?;
    let mut test = match &args.test_data {
        Some(path) => {
            let known = CsvOptions {
                target: Some(train.target_name.clone()),
                task: if train.task == Task::Classify {
                    TaskChoice::Classify
                } else {
                    TaskChoice::Regress
                },
                classes: (train.task == Task::Classify).then(|| train.class_names.clone()),
                ..tables::test_options(&train, &options)
            };
            let test = data::load(path, &known)?;
            warn_ignored("--test-data", path, &test.ignored_columns);
            tables::warn_dropped("--test-data", path, &test);
            if test.cols() != train.cols() {
                return Err(Error::Shape {
                    what: format!("test data {}", path.display()),
                    expected: format!("{} feature columns like the training data", train.cols()),
                    got: test.cols().to_string(),
                });
            }
            Some(test)
        }
        None => None,
    };
    let mut validation = None;
    if args.val_split > 0.0 {
        let (rest, held_out) = train.split(args.val_split, args.seed)?;
        train = rest;
        validation = Some(held_out);
    }
    // Text columns and missing cells become numbers by what the training split shows.
    let encoder = tables::encoder(&train, args, init_meta.as_ref())?;
    if let Some(encoder) = &encoder {
        tables::encode(encoder, &mut train, "--data", &args.data)?;
        if let Some(set) = validation.as_mut() {
            tables::encode(encoder, set, "--val-split of --data", &args.data)?;
        }
        if let (Some(set), Some(path)) = (test.as_mut(), &args.test_data) {
            tables::encode(encoder, set, "--test-data", path)?;
        }
    }
    let standardizer = match &init_meta {
        Some(saved) => saved.standardizer.clone(),
        None => {
            let standardize = args.standardize || (!args.no_standardize && !data_is_idx);
            standardize.then(|| Standardizer::fit(&train))
        }
    };
    if let Some(s) = &standardizer {
        let split = args.data.clone();
        let test_path = args.test_data.as_deref().unwrap_or(&args.data);
        for (set, path) in [
            (Some(&mut train), split.as_path()),
            (validation.as_mut(), split.as_path()),
            (test.as_mut(), test_path),
        ] {
            if let Some(set) = set {
                s.apply_checked(&mut set.features, &set.feature_names, &set.lines, path)?;
            }
        }
    }
    // A regression target in its own units (house prices) would need a learning rate of its own scale:
    // train on it standardised, as --init's model was if it was. Only for a linear output: a sigmoid or
    // tanh output's range is what its targets must lie in.
    let target_scale = match &init_meta {
        Some(saved) => saved.target_standardizer.clone(),
        None => {
            (train.task == Task::Regress && output == Activation::Linear && !args.no_scale_target)
                .then(|| Standardizer::fit_columns(&train.targets, 1))
        }
    };
    if let Some(s) = &target_scale {
        for set in [Some(&mut train), validation.as_mut(), test.as_mut()]
            .into_iter()
            .flatten()
        {
            s.apply(&mut set.targets);
        }
    }

    let network = match &arch {
        Some(layers) => {
            let idx_image = if data_is_idx {
                Some(data::idx_image_shape(&args.data)?)
            } else {
                None
            };
            let input = arch::input_shape(input_shape, idx_image, train.cols())?;
            arch::network(input, layers, output, outputs, loss)?
        }
        None => {
            let mut builder = Network::builder(train.cols());
            for &width in &hidden {
                builder = builder.dense(width, activation);
            }
            builder.dense(outputs, output).build(loss)?
        }
    };
    // Every training batch: the full ones and the last, partial one.
    let batch = args.batch_size.min(train.rows());
    for (rows, which) in [(batch, "a batch"), (train.rows() % batch, "the last batch")] {
        if rows == 0 {
            continue;
        }
        network.check_batch(rows).map_err(|e| match e {
            Error::InvalidValue { what, message } => invalid(
                "--batch-size",
                format!(
                    "{which} has {rows} of the {} training rows; {what}: {message}",
                    train.rows()
                ),
            ),
            other => other,
        })?;
    }
    let mut meta = ModelMeta::describe(&network);
    meta.task = train.task;
    meta.target = train.target_name.clone();
    meta.feature_names = train.feature_names.clone();
    meta.standardizer = standardizer;
    meta.target_standardizer = target_scale;
    meta.encoder = encoder;
    meta.class_names = train.class_names.clone();
    // What will be saved must load again: checked now, before any training.
    meta.check().map_err(|message| {
        invalid(
            "--data",
            format!("the model would be saved with metadata that does not load back: {message}"),
        )
    })?;
    let initial = match &args.init {
        Some(init) => {
            if let Some(saved) = &init_meta {
                check_init(init, saved, &meta)?;
            }
            check_targets(&train, loss, &args.data)?;
            Some(checkpoint::parse_parameters(init, &init_bytes, &network)?)
        }
        None => {
            check_targets(&train, loss, &args.data)?;
            None
        }
    };
    let mut model = Model::new(network.clone(), device, args.seed)?;
    if let Some(params) = &initial {
        model.set_parameters(params)?;
    }
    if let Some(r) = &resumed {
        if network_shape(&r.network) != network_shape(&network) {
            return Err(invalid(
                "--resume",
                format!(
                    "the saved network is {}, and its flags build {} here",
                    network_shape(&r.network),
                    network_shape(&network)
                ),
            ));
        }
        model.set_parameters(&r.params)?;
    }
    let (optimizer, learning_rate, weight_decay) = crate::optimizer::choose(args)?;
    let mut config = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        shuffle: !args.no_shuffle,
        seed: args.seed,
        learning_rate,
        schedule: crate::optimizer::schedule(args)?,
        optimizer,
        weight_decay,
        clipping: crate::optimizer::clipping(args)?,
        cross_entropy: objective::cross_entropy(args, &train, loss)?,
        patience: args.patience,
        resume_from: Vec::new(),
        resume_best: None,
        progress: !args.quiet && !args.json,
    };
    // Only a saved or resumed state needs the rows' checksum.
    let data_crc32 = if args.save_state || resumed.is_some() {
        resume::data_crc32(&train)
    } else {
        0
    };
    if let Some(r) = &resumed {
        if r.data_crc32 != data_crc32 {
            return Err(invalid(
                "--resume",
                format!(
                    "the training rows of --data {} are not those the saved run trained on (a different file, split or preparation)",
                    args.data.display()
                ),
            ));
        }
        let step = wgtrain::TrainConfig {
            optimizer,
            learning_rate,
            weight_decay,
            clipping: config.clipping,
            ..wgtrain::TrainConfig::default()
        };
        model.restore_optimizer_state(&r.state, &step)?;
        config.resume_from = r.history.clone();
        config.resume_best = r.best.clone();
    }
    let ranks_count = ranks.map_or(1, |r| r.comm().size());
    if let Some(r) = resumed.as_ref().filter(|r| r.ranks != ranks_count) {
        return Err(invalid(
            "--resume",
            format!(
                "the saved run trained on {} data-parallel ranks, a global batch of {} x --batch-size; continue it under mpirun -np {} with --distributed (this run has {ranks_count})",
                r.ranks, r.ranks, r.ranks
            ),
        ));
    }
    let saver = resume::Saver {
        args,
        data_crc32,
        ranks: ranks_count,
        keep_best: args.save_state && args.patience.is_some(),
    };
    let mut so_far = config.resume_from.clone();
    // With --save-state and --patience, checkpoints hold early stopping's best parameters so far and the
    // latest beside them (to continue from); the loop keeps the best by the same rule.
    let mut best: Option<(f32, usize, Vec<wgtrain::LayerParams>)> = match &resumed {
        Some(r) if saver.keep_best => fit::best_so_far(&r.history).map(|(loss, epoch)| {
            (
                loss,
                epoch,
                r.best.clone().unwrap_or_else(|| r.params.clone()),
            )
        }),
        _ => None,
    };
    let mut latest: Option<Vec<wgtrain::LayerParams>> = None;
    let chatty = !args.quiet && !args.json;
    if chatty {
        say!(
            "training {} rows x {} features on {} ({}), network {}",
            train.rows(),
            train.cols(),
            model.device_info().adapter,
            model.device_info().backend,
            network_shape(&network)
        )?;
    }
    let epochs = args.epochs;
    // With --out, every good epoch is saved (atomically), so a later divergence or crash leaves the last
    // good model on disk.
    let on_epoch = |record: &fit::EpochRecord, model: &mut Model| {
        if chatty {
            say!("epoch {}/{epochs} {}", record.epoch, fit::describe(record))?;
        }
        if let Some(out) = &args.out {
            let params = model.parameters()?;
            if params
                .iter()
                .any(|l| l.weights.iter().chain(&l.bias).any(|v| !v.is_finite()))
            {
                let epoch = record.epoch;
                return Err(Error::Diverged(format!(
                    "the parameters are NaN or infinite after epoch {epoch}"
                )));
            }
            so_far.push(*record);
            if saver.keep_best {
                let val_loss = record.val_loss.unwrap_or(f32::INFINITY);
                if best.as_ref().is_none_or(|(b, _, _)| val_loss < *b) {
                    best = Some((val_loss, record.epoch, params.clone()));
                }
            }
            let (kept_epoch, kept) = match &best {
                Some((_, epoch, params)) if saver.keep_best => (*epoch, params.as_slice()),
                _ => (record.epoch, params.as_slice()),
            };
            let meta = ModelMeta {
                epochs: kept_epoch,
                ..meta.clone()
            };
            let current = saver.keep_best.then_some(params.as_slice());
            saver.save(model, out, kept, meta, &so_far, current)?;
            if saver.keep_best {
                latest = Some(params);
            }
        }
        Ok(())
    };
    let validation = validation.as_ref();
    let history = match ranks {
        Some(r) => {
            fit::fit_distributed(&mut model, &train, validation, &config, r.comm(), on_epoch)?
        }
        None => fit::fit(&mut model, &train, validation, &config, on_epoch)?,
    };

    // After early stopping the model holds the best epoch's weights: report that epoch everywhere.
    let last = history.last().copied().expect("at least one epoch");
    let kept = history
        .best_epoch
        .and_then(|b| history.epochs.get(b - 1).copied())
        .unwrap_or(last);
    if chatty && kept.epoch != last.epoch {
        say!(
            "stopped after epoch {}; restored the weights of epoch {} ({})",
            last.epoch,
            kept.epoch,
            fit::describe(&kept)
        )?;
    }
    let mut report = serde_json::Map::new();
    report.insert("loss".into(), kept.loss.into());
    if let Some(a) = kept.accuracy {
        report.insert("accuracy".into(), a.into());
    }
    if train.task == Task::Regress {
        let train_mse = mse(&mut model, &train, meta.target_standardizer.as_ref())?;
        finite_loss(train_mse, &args.data)?;
        report.insert("mse".into(), train_mse.into());
    }
    // Epochs the saved weights were trained for, counted on from --init's model.
    let trained_for = kept
        .epoch
        .checked_add(init_meta.as_ref().map_or(0, |m| m.epochs))
        .ok_or_else(|| {
            invalid(
                "--init",
                "its `epochs` is too large to count on from".into(),
            )
        })?;
    report.insert("epochs".into(), trained_for.into());
    report.insert("epochs_run".into(), history.epochs.len().into());
    report.insert("optimizer".into(), config.optimizer.name().into());
    report.insert("learning_rate".into(), config.learning_rate.into());
    report.insert("weight_decay".into(), config.weight_decay.into());
    report.insert("schedule".into(), config.schedule.schedule.name().into());
    report.insert("final_learning_rate".into(), last.learning_rate.into());
    if let Some(weights) = &config.cross_entropy.class_weights {
        report.insert("class_weights".into(), weights.clone().into());
    }
    if config.cross_entropy.label_smoothing > 0.0 {
        report.insert(
            "label_smoothing".into(),
            config.cross_entropy.label_smoothing.into(),
        );
    }
    if let Some(norm) = config.clipping.norm {
        report.insert("clip_norm".into(), norm.into());
    }
    if let Some(value) = config.clipping.value {
        report.insert("clip_value".into(), value.into());
    }
    if let Some(v) = kept.val_loss {
        report.insert("val_loss".into(), v.into());
    }
    if let Some(a) = kept.val_accuracy {
        report.insert("val_accuracy".into(), a.into());
    }
    if let Some(f1) = kept.val_f1 {
        report.insert("val_f1".into(), f1.into());
    }
    if let Some(r2) = kept.val_r2 {
        report.insert("val_r2".into(), r2.into());
    }
    if let Some(best) = history.best_epoch {
        report.insert("best_epoch".into(), best.into());
    }
    if let Some(test) = &test {
        let y = test.encode_targets(loss, outputs);
        let stats = model.evaluate(&test.features, &y)?;
        if let Some(path) = &args.test_data {
            finite_loss(stats.loss, path)?;
        }
        report.insert("test_loss".into(), stats.loss.into());
        if test.task == Task::Classify {
            report.insert("test_accuracy".into(), stats.accuracy.into());
            if !args.json {
                say!(
                    "test accuracy: {:.4} (loss {:.4}, {} rows)",
                    stats.accuracy,
                    stats.loss,
                    test.rows()
                )?;
            }
        } else {
            let test_mse = mse(&mut model, test, meta.target_standardizer.as_ref())?;
            report.insert("test_mse".into(), test_mse.into());
            if !args.json {
                say!("test mse: {test_mse:.6} ({} rows)", test.rows())?;
            }
        }
    }
    report.insert("device".into(), model.device_info().backend.clone().into());
    report.insert("adapter".into(), model.device_info().adapter.clone().into());

    if let Some(out) = &args.out {
        // The final parameters: after early stopping, those of the best epoch.
        meta.epochs = trained_for;
        let params = model.parameters()?;
        saver.save(
            &mut model,
            out,
            &params,
            meta.clone(),
            &history.epochs,
            latest.as_deref(),
        )?;
        if !args.json {
            say!("model written to {}", out.display())?;
        }
    }
    if let Some(plot) = &args.plot {
        wgtrain::plot::plot_history(plot, &history)?;
        if !args.json {
            say!("plot written to {}", plot.display())?;
        }
    }
    if args.json {
        say!("{}", serde_json::Value::Object(report))?;
    }
    Ok(())
}
