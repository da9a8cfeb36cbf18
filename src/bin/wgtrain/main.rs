//! The `wgtrain` command line: train, eval, predict, summary, devices, export, verify, bench, inspect. With
//! no command it trains the bundled MNIST subset. Bad input prints one `error: …` line on stderr and exits with code 2.

/// `println!` that returns an error instead of panicking when standard output cannot be written (a full
/// disk, a pipe whose reader has gone).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

mod arch;
mod bench;
mod checks;
mod commands;
mod export;
mod inspect;
mod job;
mod objective;
mod optimizer;
mod ranks;
mod resume;
mod tables;
mod train;
mod verify;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use wgtrain::data::{Missing, TaskChoice};
use wgtrain::{Activation, Device, Loss, Optimizer};

#[derive(Parser)]
#[command(
    name = "wgtrain",
    version,
    about = "Train dense and convolutional neural networks on any GPU through wgpu, or on the CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network on a CSV or IDX file
    Train(Box<TrainArgs>),
    /// Evaluate a saved model on labelled data
    Eval(EvalArgs),
    /// Write predictions for each row as CSV on stdout
    Predict(PredictArgs),
    /// Print a network's layers and parameter counts
    Summary(SummaryArgs),
    /// List the adapters wgpu sees on every API, GL included (`--device gpu:N` picks one), and the one a
    /// run would use
    Devices(DevicesArgs),
    /// Write a saved model as ONNX, its input preprocessing included
    Export(export::ExportArgs),
    /// Check on the chosen adapter that every op, the gradients and short training runs match the CPU
    Verify(verify::VerifyArgs),
    /// Time matmuls and training epochs (JSON lines, then a summary)
    Bench(bench::BenchArgs),
    /// Show which inputs each hidden neuron weighs most, and draw the first layer's weights
    Inspect(inspect::InspectArgs),
}

/// `auto` or a fixed output activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputChoice {
    Auto,
    Linear,
    Sigmoid,
    Softmax,
}

/// How the learning rate moves from epoch to epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleChoice {
    Constant,
    Step,
    Multistep,
    Exponential,
    Cosine,
    Onecycle,
    Plateau,
}

/// `auto` (follow the output) or a fixed loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LossChoice {
    Auto,
    Sse,
    Mse,
    Bce,
    Ce,
}

#[derive(Args, Clone, Debug)]
pub struct TrainArgs {
    /// Training data: a CSV file with a header row (`-` for standard input), or an IDX images file
    /// (optionally .gz)
    #[arg(
        long,
        required_unless_present = "resume",
        default_value = "-",
        hide_default_value = true
    )]
    pub data: PathBuf,
    /// Target column of a CSV file [default: the last column]
    #[arg(long)]
    pub target: Option<String>,
    /// Longest CSV record accepted, in bytes (at most 1 GiB) [default: 1048576]
    #[arg(long)]
    pub max_record_bytes: Option<usize>,
    /// classify, regress, or auto: classify a non-numeric target or one of at most 20 distinct integers
    #[arg(long, default_value = "auto", value_parser = parse::<TaskChoice>)]
    pub task: TaskChoice,
    /// Held-out data to report test loss and accuracy on after training
    #[arg(long)]
    pub test_data: Option<PathBuf>,
    /// Hidden layer widths, comma separated; "" for none (logistic or linear regression)
    #[arg(long, default_value = "128", allow_hyphen_values = true)]
    pub layers: String,
    /// Hidden layers' activation: relu, leaky_relu, sigmoid, tanh, linear [default: relu]
    #[arg(long, value_parser = parse::<Activation>)]
    pub activation: Option<Activation>,
    /// The network as layer tokens, comma separated, or @FILE holding them, ending with the output layer
    /// dense:N: conv:OUT:K[:stride=S][:pad=P], maxpool:K[:stride=S], avgpool:K[:stride=S], gap, flatten,
    /// dropout:P, batchnorm, dense:N, relu, leaky_relu[:SLOPE], sigmoid, tanh, linear (instead of
    /// --layers and --activation)
    #[arg(long, conflicts_with_all = ["layers", "activation"])]
    pub arch: Option<String>,
    /// The shape of one sample for --arch: an image C,H,W (e.g. 1,8,8 for digits.csv), or a sequence
    /// T,D of T positions of D features, which dense layers act on position by position [default: IDX
    /// images keep theirs, 1,H,W; CSV rows are flat]
    #[arg(long, requires = "arch")]
    pub input_shape: Option<String>,
    /// The output layer's activation; auto: softmax for 3+ classes, sigmoid for 2, linear for regression
    #[arg(long, value_enum, default_value = "auto")]
    pub output: OutputChoice,
    /// The loss; auto follows the output: ce for softmax, bce for sigmoid, mse for linear
    #[arg(long, value_enum, default_value = "auto")]
    pub loss: LossChoice,
    /// sgd, momentum, nesterov, adam, adamw or rmsprop, with torch.optim's rules and defaults
    #[arg(long, default_value = "adam", value_parser = parse::<Optimizer>)]
    pub optimizer: Optimizer,
    /// Learning rate [default: 0.01 for rmsprop, else 0.001 (torch.optim's)]
    #[arg(long, allow_hyphen_values = true, value_parser = finite_f32)]
    pub lr: Option<f32>,
    /// Momentum factor of momentum, nesterov and rmsprop [default: 0.9, or 0 for rmsprop]
    #[arg(long, allow_hyphen_values = true, value_parser = finite_f32)]
    pub momentum: Option<f32>,
    /// Weight decay: an L2 penalty added to every gradient, or for adamw the decoupled shrink
    /// w ← w·(1 − lr·wd) [default: 0.01 for adamw, else 0]
    #[arg(long, allow_hyphen_values = true, value_parser = finite_f32)]
    pub weight_decay: Option<f32>,
    /// Adam's and AdamW's moment decays B1,B2 [default: 0.9,0.999]
    #[arg(long)]
    pub betas: Option<String>,
    /// The term added to the denominator of adam, adamw and rmsprop [default: 1e-8]
    #[arg(long, allow_hyphen_values = true, value_parser = finite_f32)]
    pub eps: Option<f32>,
    /// RMSprop's smoothing constant [default: 0.99]
    #[arg(long, allow_hyphen_values = true, value_parser = finite_f32)]
    pub alpha: Option<f32>,
    /// Centered RMSprop: divide by the gradient's estimated standard deviation, not its RMS
    #[arg(long)]
    pub centered: bool,
    /// How the learning rate moves, once per epoch (torch.optim.lr_scheduler's rules)
    #[arg(long, value_enum, default_value = "constant")]
    pub schedule: ScheduleChoice,
    /// Epochs of linear warm-up to --lr before a constant or cosine schedule
    #[arg(long)]
    pub warmup: Option<usize>,
    /// step: epochs between decays
    #[arg(long)]
    pub step_size: Option<usize>,
    /// multistep: the epochs (0-based, increasing) at which the rate decays, e.g. 30,60
    #[arg(long)]
    pub milestones: Option<String>,
    /// step, multistep, exponential, plateau: the factor each decay multiplies by [default: 0.1; required
    /// for exponential]
    #[arg(long, allow_hyphen_values = true, value_parser = finite_f32)]
    pub gamma: Option<f32>,
    /// cosine, plateau: the lowest rate [default: 0]
    #[arg(long, allow_hyphen_values = true, value_parser = finite_f32)]
    pub min_lr: Option<f32>,
    /// plateau: epochs without a better validation loss before the rate decays [default: 10]
    #[arg(long)]
    pub plateau_patience: Option<usize>,
    /// Scale the gradients down so that their global L2 norm is at most F before each update
    /// (torch.nn.utils.clip_grad_norm_)
    #[arg(long, allow_hyphen_values = true, value_parser = finite_f32)]
    pub clip_norm: Option<f32>,
    /// Clamp each gradient to [-F, F] before each update (torch.nn.utils.clip_grad_value_; with
    /// --clip-norm too, the clamp comes first)
    #[arg(long, allow_hyphen_values = true, value_parser = finite_f32)]
    pub clip_value: Option<f32>,
    /// Weigh cross-entropy's classes: balanced (rows / (classes x count), from the training split),
    /// one weight per class in the classes' order, or CLASS=W pairs (others weigh 1); as
    /// torch.nn.CrossEntropyLoss(weight). A two-class target then gets a two-unit softmax output
    #[arg(long)]
    pub class_weight: Option<String>,
    /// Train cross-entropy against (1 - F) onehot + F / classes, F in [0, 1)
    /// (torch.nn.CrossEntropyLoss(label_smoothing)); evaluation reports the plain loss
    #[arg(long, value_parser = finite_f32)]
    pub label_smoothing: Option<f32>,
    /// Passes over the training rows (with --resume: the total to reach)
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Rows per optimizer step; the last batch of an epoch may be shorter
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Visit rows in file order instead of a fresh seeded shuffle each epoch
    #[arg(long)]
    pub no_shuffle: bool,
    /// Seeds the initial weights, the shuffles, the validation split and dropout's masks
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fraction of the training rows held out for validation (stratified for classification)
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true, value_parser = finite_f32)]
    pub val_split: f32,
    /// Stop after this many epochs without a lower validation loss, keeping the best weights
    #[arg(long)]
    pub patience: Option<usize>,
    /// Standardise features (z-score from the training split); the default for CSV
    #[arg(long, conflicts_with = "no_standardize")]
    pub standardize: bool,
    /// Leave features as they are; the default for IDX
    #[arg(long)]
    pub no_standardize: bool,
    /// The CSV field separator: , ; tab or | [default: detected from the header line: a comma, or a
    /// semicolon or tab when it is the only one of the two there]
    #[arg(long, value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,
    /// The feature columns to use, by name, in this order (the others but the target are ignored)
    #[arg(long, conflicts_with = "ignore")]
    pub features: Option<String>,
    /// Columns to leave out of the features, by name (ids, free text)
    #[arg(long)]
    pub ignore: Option<String>,
    /// Missing cells (empty, NA, N/A, NaN, ?, null): error, drop (the rows), or fill from the training
    /// split with the mean, median or mode of numeric columns (text columns: their most frequent category)
    #[arg(long, default_value = "error", value_parser = parse::<Missing>)]
    pub missing: Missing,
    /// Columns read as categories (one-hot encoded) even where their cells are numbers, by name; a
    /// column of text is one already
    #[arg(long)]
    pub categorical: Option<String>,
    /// Most categories a text column may have in the training rows
    #[arg(long, default_value_t = wgtrain::data::DEFAULT_MAX_CATEGORIES)]
    pub max_categories: usize,
    /// Train a regression network on the target as it is, not standardised (the default standardises
    /// it from the training split and maps predictions back)
    #[arg(long)]
    pub no_scale_target: bool,
    #[command(flatten)]
    pub device: DeviceArg,
    /// Start from the weights in this safetensors file (layers.{i}.weight [out, in], layers.{i}.bias)
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// With every checkpoint (--out), save what continuing the run needs: the optimizer's state, the
    /// step and epoch counts, the history and the run's flags (as tensors optimizer.* and metadata)
    #[arg(long)]
    pub save_state: bool,
    /// Continue the run saved in this checkpoint (--save-state) up to --epochs in total, with its flags
    /// and data; a flag given again must agree with the saved run's, except --epochs, --data,
    /// --test-data, --max-record-bytes, --out, --plot, --device, --save-state, --quiet and --json
    /// [default --out: this file]
    #[arg(long, conflicts_with = "init")]
    pub resume: Option<PathBuf>,
    /// The command line after `train`, kept for --save-state.
    #[arg(skip)]
    pub command_line: Vec<String>,
    /// Write the trained model here (safetensors)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the loss and accuracy curves here (PNG), with validation F1 or R² and the learning rate
    /// when there are any
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress bar and no per-epoch lines
    #[arg(long)]
    pub quiet: bool,
    /// Print one JSON object with the final metrics as the last line
    #[arg(long)]
    pub json: bool,
    /// Train data-parallel as one rank of an MPI job (`mpirun -np N wgtrain train … --distributed`;
    /// built with the `mpi` feature): --batch-size is each rank's share of a global batch of N of them
    #[arg(long)]
    pub distributed: bool,
}

#[derive(Args, Clone, Debug)]
pub struct DevicesArgs {
    /// One JSON object: every adapter (index, name, api, type, driver, limits) and the one picked
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone, Debug)]
pub struct DeviceArg {
    /// auto, gpu (the best hardware GPU), gpu:N (the N-th adapter of `wgtrain devices`), fallback,
    /// cpu, vulkan, metal, dx12, gl (the best adapter of that API), or part of an adapter name
    /// [default: $WGTRAIN_DEVICE, else auto]
    #[arg(long, value_parser = parse::<Device>)]
    pub device: Option<Device>,
}

impl DeviceArg {
    pub fn resolve(&self) -> wgtrain::Result<Device> {
        self.device.map_or_else(Device::from_env, Ok)
    }
}

#[derive(Args, Clone, Debug)]
pub struct EvalArgs {
    /// A model saved by `wgtrain train --out`
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled data: CSV (`-` for standard input) with the model's columns by name, or IDX images
    #[arg(long)]
    pub data: PathBuf,
    /// Target column [default: the one the model was trained on]
    #[arg(long)]
    pub target: Option<String>,
    /// Longest CSV record accepted, in bytes (at most 1 GiB) [default: 1048576]
    #[arg(long)]
    pub max_record_bytes: Option<usize>,
    /// Write the confusion matrix of a classifier as a PNG heatmap here
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// A category not seen in training is an error (by default it encodes as all zeros, with a warning)
    #[arg(long)]
    pub strict: bool,

    #[command(flatten)]
    pub device: DeviceArg,
    /// One JSON object: the loss, accuracy or MSE, and every metric under `metrics`
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone, Debug)]
pub struct PredictArgs {
    /// A model saved by `wgtrain train --out`
    #[arg(long)]
    pub model: PathBuf,
    /// Data to predict: CSV (`-` for standard input) or IDX images
    #[arg(long)]
    pub data: PathBuf,
    /// Longest CSV record accepted, in bytes (at most 1 GiB) [default: 1048576]
    #[arg(long)]
    pub max_record_bytes: Option<usize>,
    /// A category not seen in training is an error (by default it encodes as all zeros, with a warning)
    #[arg(long)]
    pub strict: bool,

    #[command(flatten)]
    pub device: DeviceArg,
}

#[derive(Args, Clone, Debug)]
pub struct SummaryArgs {
    /// Features per sample (or --input-shape)
    #[arg(long, required_unless_present = "input_shape")]
    pub inputs: Option<usize>,
    /// Hidden layer widths, comma separated
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub layers: String,
    /// Outputs (with --arch, its last dense:N)
    #[arg(long, required_unless_present = "arch")]
    pub outputs: Option<usize>,
    /// Hidden layers' activation [default: relu]
    #[arg(long, value_parser = parse::<Activation>)]
    pub activation: Option<Activation>,
    /// The network as layer tokens (see train --help), instead of --layers and --activation
    #[arg(long, conflicts_with_all = ["layers", "activation"])]
    pub arch: Option<String>,
    /// The shape of one sample, C,H,W or T,D (instead of --inputs)
    #[arg(long, conflicts_with = "inputs")]
    pub input_shape: Option<String>,
    /// Output activation: linear, sigmoid or softmax
    #[arg(long, default_value = "linear", value_parser = parse::<Activation>)]
    pub output: Activation,
}

/// clap quotes a bad value whole (`invalid value 'VALUE' for '--lr <LR>'`): each quoted part is cut to 80
/// characters, so a huge value still leaves a short line that names the flag.
fn shorten_quoted(line: &str) -> String {
    line.split('\'')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 && part.chars().count() > 80 {
                format!("{}…", part.chars().take(80).collect::<String>())
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("'")
}

/// `,` `;` `|` or `tab` (also a literal tab) as the byte the CSV reader splits on.
fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "," | ";" | "|" => Ok(s.as_bytes()[0]),
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        other => Err(format!(
            "expected one of , ; | tab, got {}",
            wgtrain::error::quote(other)
        )),
    }
}

/// A finite 32-bit number, quoting the text as written when it is not one (`1e39` overflows to inf,
/// `1e-300` underflows to 0).
fn finite_f32(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        // A value so small it rounds to 0 would quietly switch a feature off (`--val-split 1e-300`).
        Ok(v) if v == 0.0 && s.trim().parse::<f64>().is_ok_and(|w| w != 0.0) => Err(format!(
            "{} is too small for a 32-bit number (it rounds to 0)",
            wgtrain::error::quote(s)
        )),
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "{} is not a finite 32-bit number",
            wgtrain::error::quote(s)
        )),
        Err(_) => Err(format!(
            "expected a number, got {}",
            wgtrain::error::quote(s)
        )),
    }
}

/// clap value parser from a wgtrain `FromStr`, keeping its message.
fn parse<T: std::str::FromStr<Err = wgtrain::Error>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: wgtrain::Error| e.to_string())
}

impl LossChoice {
    pub fn fixed(self) -> Option<Loss> {
        match self {
            LossChoice::Auto => None,
            LossChoice::Sse => Some(Loss::Sse),
            LossChoice::Mse => Some(Loss::Mse),
            LossChoice::Bce => Some(Loss::Bce),
            LossChoice::Ce => Some(Loss::Ce),
        }
    }
}

/// One line on standard output; a failed write is an error naming standard output.
pub fn write_stdout(line: std::fmt::Arguments) -> wgtrain::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| wgtrain::Error::File {
            path: "standard output".into(),
            message: e.to_string(),
        })
}

/// One line on standard error; if even that cannot be written, the exit code still says what happened.
pub fn complain(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn main() {
    wgtrain::device::quiet_headless_drivers();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => {
            let rendered = e.render().to_string();
            // The first line, with the indented lines under it (the missing arguments' names) joined on.
            let mut lines = rendered.lines();
            let mut line = lines
                .next()
                .unwrap_or("error: invalid arguments")
                .to_string();
            for more in lines.take_while(|l| l.starts_with("  ")) {
                line.push(' ');
                line.push_str(more.trim());
            }
            complain(&shorten_quoted(&line));
            std::process::exit(2);
        }
    };
    let result = match cli.command {
        None => train::run(&job::default_job()),
        Some(Command::Train(mut args)) => {
            args.command_line = std::env::args_os()
                .skip(2)
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            train::run(&args)
        }
        Some(Command::Eval(args)) => commands::eval(&args),
        Some(Command::Predict(args)) => commands::predict(&args),
        Some(Command::Summary(args)) => commands::summary(&args),
        Some(Command::Devices(args)) => commands::devices(&args),
        Some(Command::Export(args)) => export::run(&args),
        Some(Command::Verify(args)) => verify::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Inspect(args)) => inspect::run(&args),
    };
    if let Err(e) = result {
        complain(&format!("error: {e}"));
        std::process::exit(2);
    }
}
