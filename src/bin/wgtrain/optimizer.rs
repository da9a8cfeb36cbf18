//! The optimizer flags: which apply to which rule, and PyTorch's defaults for the rest.

use crate::train::invalid;
use crate::{ScheduleChoice, TrainArgs};
use wgtrain::schedule::{LrSchedule, Schedule};
use wgtrain::{Clipping, Optimizer, Result};

/// The rule with its constants, the learning rate and the weight decay the flags ask for. A flag that
/// the chosen rule does not use is an error, not something silently ignored.
pub fn choose(args: &TrainArgs) -> Result<(Optimizer, f32, f32)> {
    let name = args.optimizer.name();
    let refuse = |flag: &str, applies: &str| {
        Err(invalid(
            flag,
            format!("applies to --optimizer {applies}, not {name}"),
        ))
    };
    let uses_momentum = matches!(
        args.optimizer,
        Optimizer::Momentum { .. } | Optimizer::Nesterov { .. } | Optimizer::Rmsprop { .. }
    );
    let adam_family = matches!(
        args.optimizer,
        Optimizer::Adam { .. } | Optimizer::AdamW { .. }
    );
    let rmsprop = matches!(args.optimizer, Optimizer::Rmsprop { .. });
    if args.momentum.is_some() && !uses_momentum {
        return refuse("--momentum", "momentum, nesterov or rmsprop");
    }
    if args.betas.is_some() && !adam_family {
        return refuse("--betas", "adam or adamw");
    }
    if args.eps.is_some() && !(adam_family || rmsprop) {
        return refuse("--eps", "adam, adamw or rmsprop");
    }
    if (args.alpha.is_some() || args.centered) && !rmsprop {
        let flag = if args.centered {
            "--centered"
        } else {
            "--alpha"
        };
        return refuse(flag, "rmsprop");
    }
    let unit = |flag: &str, v: f32| {
        if (0.0..1.0).contains(&v) {
            Ok(v)
        } else {
            Err(invalid(flag, format!("must be in [0, 1), got {v}")))
        }
    };
    let eps = match args.eps {
        Some(e) if e <= 0.0 => {
            return Err(invalid("--eps", format!("must be a number > 0, got {e}")))
        }
        other => other,
    };
    // The parsed rule carries torch's defaults; the flags given replace them in place.
    let mut optimizer = args.optimizer;
    match &mut optimizer {
        Optimizer::Sgd => {}
        Optimizer::Momentum { momentum } | Optimizer::Nesterov { momentum } => {
            *momentum = unit("--momentum", args.momentum.unwrap_or(*momentum))?;
        }
        Optimizer::Adam {
            beta1,
            beta2,
            epsilon,
        }
        | Optimizer::AdamW {
            beta1,
            beta2,
            epsilon,
        } => {
            if let Some(text) = args.betas.as_deref() {
                (*beta1, *beta2) = parse_betas(text)?;
            }
            *epsilon = eps.unwrap_or(*epsilon);
        }
        Optimizer::Rmsprop {
            alpha,
            epsilon,
            momentum,
            centered,
        } => {
            *alpha = unit("--alpha", args.alpha.unwrap_or(*alpha))?;
            *epsilon = eps.unwrap_or(*epsilon);
            *momentum = unit("--momentum", args.momentum.unwrap_or(*momentum))?;
            *centered = args.centered;
        }
        other => {
            return Err(invalid(
                "--optimizer",
                format!("{other} has no command-line flags yet"),
            ))
        }
    }
    if matches!(optimizer, Optimizer::Nesterov { momentum } if momentum == 0.0) {
        return Err(invalid(
            "--momentum",
            "nesterov needs a momentum > 0 (with 0 it is plain sgd)".into(),
        ));
    }
    let lr = args.lr.unwrap_or(default_learning_rate(optimizer));
    if !(lr.is_finite() && lr > 0.0) {
        return Err(invalid("--lr", format!("must be a number > 0, got {lr}")));
    }
    let weight_decay = args
        .weight_decay
        .unwrap_or(optimizer.default_weight_decay());
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return Err(invalid(
            "--weight-decay",
            format!("must be a number >= 0, got {weight_decay}"),
        ));
    }
    Ok((optimizer, lr, weight_decay))
}

/// `--clip-norm` and `--clip-value`, each > 0 when given.
pub fn clipping(args: &TrainArgs) -> Result<Clipping> {
    let positive = |flag: &str, v: Option<f32>| match v {
        Some(v) if v <= 0.0 => Err(invalid(flag, format!("must be a number > 0, got {v}"))),
        v => Ok(v),
    };
    Ok(Clipping {
        norm: positive("--clip-norm", args.clip_norm)?,
        value: positive("--clip-value", args.clip_value)?,
    })
}

/// The learning-rate schedule the flags ask for; a schedule flag that the chosen schedule does not use is
/// an error. The constants are checked against the run by [`LrSchedule::check`].
pub fn schedule(args: &TrainArgs) -> Result<LrSchedule> {
    let name = format!("{:?}", args.schedule).to_lowercase();
    let refuse = |flag: &str, applies: &str| {
        Err(invalid(
            flag,
            format!("applies to --schedule {applies}, not {name}"),
        ))
    };
    use ScheduleChoice as S;
    let s = args.schedule;
    if args.warmup.is_some() && !matches!(s, S::Constant | S::Cosine) {
        return refuse("--warmup", "constant or cosine");
    }
    if args.step_size.is_some() && s != S::Step {
        return refuse("--step-size", "step");
    }
    if args.milestones.is_some() && s != S::Multistep {
        return refuse("--milestones", "multistep");
    }
    if args.gamma.is_some() && !matches!(s, S::Step | S::Multistep | S::Exponential | S::Plateau) {
        return refuse("--gamma", "step, multistep, exponential or plateau");
    }
    if args.min_lr.is_some() && !matches!(s, S::Cosine | S::Plateau) {
        return refuse("--min-lr", "cosine or plateau");
    }
    if args.plateau_patience.is_some() && s != S::Plateau {
        return refuse("--plateau-patience", "plateau");
    }
    let gamma = args.gamma.unwrap_or(0.1);
    let schedule = match s {
        S::Constant => Schedule::Constant,
        S::Step => Schedule::Step {
            step_size: args.step_size.ok_or_else(|| {
                invalid(
                    "--step-size",
                    "--schedule step needs it (epochs between decays)".into(),
                )
            })?,
            gamma,
        },
        S::Multistep => {
            let text = args.milestones.as_deref().ok_or_else(|| {
                invalid(
                    "--milestones",
                    "--schedule multistep needs them, e.g. 30,60".into(),
                )
            })?;
            let milestones = text
                .split(',')
                .map(|m| m.trim().parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| {
                    invalid(
                        "--milestones",
                        format!(
                            "expected increasing epoch numbers like 30,60, got {}",
                            wgtrain::error::quote(text)
                        ),
                    )
                })?;
            Schedule::MultiStep { milestones, gamma }
        }
        S::Exponential => Schedule::Exponential {
            gamma: args.gamma.ok_or_else(|| {
                invalid(
                    "--gamma",
                    "--schedule exponential needs it (e.g. 0.95)".into(),
                )
            })?,
        },
        S::Cosine => Schedule::Cosine {
            min_lr: args.min_lr.unwrap_or(0.0),
        },
        S::Onecycle => Schedule::OneCycle,
        S::Plateau => Schedule::Plateau {
            factor: gamma,
            patience: args.plateau_patience.unwrap_or(10),
            min_lr: args.min_lr.unwrap_or(0.0),
        },
    };
    Ok(LrSchedule {
        schedule,
        warmup: args.warmup.unwrap_or(0),
    })
}

/// `torch.optim`'s default learning rate: 0.01 for RMSprop, 0.001 for the others.
pub fn default_learning_rate(optimizer: Optimizer) -> f32 {
    match optimizer {
        Optimizer::Rmsprop { .. } => 0.01,
        _ => 0.001,
    }
}

/// `"0.9,0.999"` → (0.9, 0.999), each in [0, 1).
fn parse_betas(text: &str) -> Result<(f32, f32)> {
    let bad = || {
        invalid(
            "--betas",
            format!(
                "expected two numbers in [0, 1) as B1,B2 (e.g. 0.9,0.999), got {}",
                wgtrain::error::quote(text)
            ),
        )
    };
    let mut parts = text.split(',').map(|p| p.trim().parse::<f32>());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(b1)), Some(Ok(b2)), None)
            if (0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2) =>
        {
            Ok((b1, b2))
        }
        _ => Err(bad()),
    }
}
