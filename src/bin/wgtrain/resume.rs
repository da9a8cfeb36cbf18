//! `--save-state` and `--resume`: the saved run's flags become this run's, a flag given again must agree,
//! and the state (parameters, optimizer, history) is handed to the model and the epoch loop.

use crate::train::invalid;
use crate::TrainArgs;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use std::path::Path;
use wgtrain::checkpoint::state::{load_state, TrainingMeta};
use wgtrain::checkpoint::{self, ModelMeta};
use wgtrain::data::Dataset;
use wgtrain::error::quote;
use wgtrain::fit;
use wgtrain::fit::EpochRecord;
use wgtrain::{LayerParams, Model, Network, OptimizerState, Result};

/// Flags a resumed run may set as it likes: how long, where the (checked) data lives, where to write,
/// what to show and where to run. Every other flag is the saved run's.
const FREE: &[&str] = &[
    "epochs",
    "data",
    "test_data",
    "max_record_bytes",
    "out",
    "plot",
    "quiet",
    "json",
    "device",
    "save_state",
    "resume",
];

/// A saved run to continue.
pub struct Resumed {
    /// The saved run's flags, with this run's free ones.
    pub args: TrainArgs,
    pub network: Network,
    /// The parameters to continue from.
    pub params: Vec<LayerParams>,
    /// Early stopping's best so far, when not those (the file's own parameters).
    pub best: Option<Vec<LayerParams>>,
    pub state: OptimizerState,
    pub history: Vec<EpochRecord>,
    pub data_crc32: u32,
    /// Data-parallel ranks the saved run trained on.
    pub ranks: usize,
}

/// The `train` matches of `wgtrain train TOKENS…`.
fn train_matches(tokens: &[String]) -> std::result::Result<ArgMatches, clap::Error> {
    let argv = ["wgtrain", "train"]
        .into_iter()
        .map(String::from)
        .chain(tokens.iter().cloned());
    let matches = crate::Cli::command().try_get_matches_from(argv)?;
    Ok(matches
        .subcommand_matches("train")
        .cloned()
        .unwrap_or_default())
}

fn raw(matches: &ArgMatches, id: &str) -> Option<Vec<String>> {
    matches
        .try_get_raw(id)
        .ok()
        .flatten()
        .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect())
}

/// Reads `path`'s state and this run's flags on top of the saved run's (see [`FREE`]).
pub fn prepare(args: &TrainArgs, path: &Path) -> Result<Resumed> {
    let (network, saved_params, meta, run) = load_state(path)?;
    let (Some(training), Some(run)) = (meta.training, run) else {
        return Err(invalid(
            "--resume",
            format!(
                "{} holds no training state (train with --save-state to continue a run later)",
                path.display()
            ),
        ));
    };
    let unreadable = |e: clap::Error| {
        invalid(
            "--resume",
            format!(
                "the saved run's command line does not parse here: {}",
                e.kind()
            ),
        )
    };
    let saved = train_matches(&training.command_line).map_err(unreadable)?;
    let now = train_matches(&args.command_line).map_err(unreadable)?;
    let command = crate::Cli::command();
    let train = command
        .find_subcommand("train")
        .expect("the train command exists");
    for arg in train.get_arguments() {
        let id = arg.get_id().as_str();
        let given = now.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        if FREE.contains(&id) || !given {
            continue;
        }
        let (mine, theirs) = (raw(&now, id), raw(&saved, id));
        if mine != theirs {
            let flag = format!("--{}", arg.get_long().unwrap_or(id));
            let shown = |v: Option<Vec<String>>| match v {
                Some(v) if v.iter().all(|s| s == "true") => "given".to_string(),
                Some(v) => quote(&v.join(",")),
                None => "not given".to_string(),
            };
            return Err(invalid(
                &flag,
                format!(
                    "{} contradicts the saved run in {} (there: {}); leave it out to continue with the saved run's",
                    shown(mine),
                    path.display(),
                    shown(theirs)
                ),
            ));
        }
    }
    let mut resumed = TrainArgs::from_arg_matches(&saved).map_err(unreadable)?;
    let done = training.history.len();
    // Up to --epochs when given, else to the saved run's total (an interrupted run finishes).
    let cli = clap::parser::ValueSource::CommandLine;
    let epochs = if now.value_source("epochs") == Some(cli) {
        args.epochs
    } else {
        resumed.epochs
    };
    if epochs <= done {
        return Err(invalid(
            "--epochs",
            format!(
                "the saved run has trained {done} epochs; --epochs is the total, so ask for more than {done}"
            ),
        ));
    }
    if let (Some(patience), Some((_, best))) = (
        resumed.patience,
        wgtrain::fit::best_so_far(&training.history),
    ) {
        if done.saturating_sub(best) >= patience {
            return Err(invalid(
                "--resume",
                format!(
                    "the saved run stopped early after epoch {done} (no better validation loss since epoch {best}); there is nothing to continue"
                ),
            ));
        }
    }
    // Cosine and one-cycle schedules span the run's epochs: another total would be another schedule.
    use crate::ScheduleChoice::{Cosine, Onecycle};
    if matches!(resumed.schedule, Cosine | Onecycle) && resumed.epochs != epochs {
        return Err(invalid(
            "--epochs",
            format!(
                "the saved run's {:?} schedule spans its {} epochs, so it continues only to that total",
                resumed.schedule, resumed.epochs
            )
            .to_lowercase(),
        ));
    }
    resumed.epochs = epochs;
    // The state saved from here on says how far this run goes, for a later --resume.
    resumed.command_line = with_epochs(&training.command_line, epochs);
    if now.value_source("data") == Some(cli) {
        resumed.data = args.data.clone();
    }
    if args.test_data.is_some() {
        resumed.test_data = args.test_data.clone();
    }
    if args.max_record_bytes.is_some() {
        resumed.max_record_bytes = args.max_record_bytes;
    }
    resumed.out = Some(args.out.clone().unwrap_or_else(|| path.to_path_buf()));
    resumed.plot = args.plot.clone();
    resumed.quiet = args.quiet;
    resumed.json = args.json;
    resumed.device = args.device.clone();
    resumed.save_state = true;
    resumed.resume = None;
    let (params, best) = match run.current {
        Some(current) => (current, Some(saved_params)),
        None => (saved_params, None),
    };
    Ok(Resumed {
        args: resumed,
        network,
        params,
        best,
        state: run.state,
        history: training.history,
        data_crc32: training.data_crc32,
        ranks: training.ranks,
    })
}

/// `tokens` with any `--epochs N` (or `--epochs=N`) replaced by `--epochs epochs` at the end.
fn with_epochs(tokens: &[String], epochs: usize) -> Vec<String> {
    let mut kept = Vec::with_capacity(tokens.len() + 2);
    let mut skip_next = false;
    for token in tokens {
        if skip_next {
            skip_next = false;
        } else if token == "--epochs" {
            skip_next = true;
        } else if !token.starts_with("--epochs=") {
            kept.push(token.clone());
        }
    }
    kept.extend(["--epochs".to_string(), epochs.to_string()]);
    kept
}

/// CRC-32 of the training rows as the network sees them.
pub fn data_crc32(train: &Dataset) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(bytemuck::cast_slice(&train.features));
    hasher.update(bytemuck::cast_slice(&train.targets));
    hasher.finalize()
}

/// The metadata of a state saved after `history`.
pub fn training_meta(
    args: &TrainArgs,
    state: &OptimizerState,
    history: &[EpochRecord],
    data_crc32: u32,
    ranks: usize,
) -> TrainingMeta {
    TrainingMeta {
        optimizer: state.optimizer.clone(),
        state_tensors: state.buffers.len(),
        steps: state.steps,
        history: history.to_vec(),
        command_line: args.command_line.clone(),
        data_crc32,
        ranks,
    }
}

/// Checks `--save-state` against the other flags: it needs somewhere to save.
pub fn check(args: &TrainArgs) -> Result<()> {
    if args.save_state && args.out.is_none() {
        return Err(invalid(
            "--save-state",
            "saves with each checkpoint, and there is no --out".into(),
        ));
    }
    Ok(())
}

/// How this run writes checkpoints.
pub struct Saver<'a> {
    pub args: &'a TrainArgs,
    pub data_crc32: u32,
    /// Data-parallel ranks of this run (1 alone).
    pub ranks: usize,
    /// `--save-state` with `--patience`: the file holds the best parameters, the latest beside them.
    pub keep_best: bool,
}

impl Saver<'_> {
    /// Writes `params` as the model; under `--save-state` with the training state after `history`, and
    /// `current`, the latest parameters, when `params` are early stopping's best.
    pub fn save(
        &self,
        model: &mut Model,
        out: &Path,
        params: &[wgtrain::LayerParams],
        mut meta: ModelMeta,
        history: &[fit::EpochRecord],
        current: Option<&[wgtrain::LayerParams]>,
    ) -> Result<()> {
        if !self.args.save_state {
            return checkpoint::save(out, params, &meta);
        }
        let state = model
            .optimizer_state()?
            .ok_or_else(|| invalid("--save-state", "no training step was taken".into()))?;
        meta.training = Some(training_meta(
            self.args,
            &state,
            history,
            self.data_crc32,
            self.ranks,
        ));
        checkpoint::state::save_with_state(out, params, &meta, &state, current)
    }
}
