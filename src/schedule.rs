//! Learning-rate schedules, stepped once per epoch as `torch.optim.lr_scheduler` is usually stepped. The
//! rate of an epoch is set before its first step (one small host write into the hyperparameter buffer, no
//! pipeline rebuilt and nothing read back); within an epoch it does not change.

use crate::error::{Error, Result};

/// How the learning rate moves from epoch to epoch; `base` below is the configured learning rate and `e`
/// the 0-based epoch.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum Schedule {
    /// `base` throughout.
    #[default]
    Constant,
    /// `base · gamma^⌊e / step_size⌋` (`StepLR`).
    Step {
        /// Epochs between two decays, at least 1.
        step_size: usize,
        /// Factor the rate is multiplied by at each decay, in `(0, 1]`.
        gamma: f32,
    },
    /// `base · gamma^(milestones ≤ e)` (`MultiStepLR`; milestones are 0-based epochs).
    MultiStep {
        /// The 0-based epochs at which the rate decays, strictly increasing and not empty.
        milestones: Vec<usize>,
        /// Factor the rate is multiplied by at each milestone, in `(0, 1]`.
        gamma: f32,
    },
    /// `base · gamma^e` (`ExponentialLR`).
    Exponential {
        /// Factor the rate is multiplied by every epoch, in `(0, 1]`.
        gamma: f32,
    },
    /// Cosine from `base` down towards `min_lr` over the epochs after the warm-up
    /// (`CosineAnnealingLR` with `T_max` = those epochs).
    Cosine {
        /// The rate the cosine falls towards (`eta_min`), >= 0 and below `base`.
        min_lr: f32,
    },
    /// One cycle with `base` as the peak (`OneCycleLR` with `total_steps` = the epochs, cosine annealing,
    /// `pct_start` 0.3, `div_factor` 25, `final_div_factor` 1e4; the learning rate only: momentum is not
    /// cycled).
    OneCycle,
    /// Multiply by `factor` when the validation loss has not improved (by 1e-4 relative) for more than
    /// `patience` epochs, down to `min_lr` (`ReduceLROnPlateau`, mode min, no cooldown).
    Plateau {
        /// Factor the rate is multiplied by at each reduction, in `(0, 1)`.
        factor: f32,
        /// Epochs without improvement tolerated; the rate drops on the next one.
        patience: usize,
        /// Floor the rate never drops below, >= 0 and below `base`.
        min_lr: f32,
    },
}

/// A schedule with its warm-up: `warmup` epochs rising linearly to `base` first (`LinearLR` with
/// `start_factor` 1/(warmup+1): epoch `e < warmup` runs at `base · (e+1)/(warmup+1)`), for `Constant` and
/// `Cosine`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LrSchedule {
    /// The schedule that runs after the warm-up.
    pub schedule: Schedule,
    /// Epochs of linear warm-up before the schedule starts (0: none); fewer than the run's epochs.
    pub warmup: usize,
}

impl Schedule {
    /// The schedule's lower-case name, as the CLI's `--schedule` spells it (`step`, `onecycle`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Step { .. } => "step",
            Schedule::MultiStep { .. } => "multistep",
            Schedule::Exponential { .. } => "exponential",
            Schedule::Cosine { .. } => "cosine",
            Schedule::OneCycle => "onecycle",
            Schedule::Plateau { .. } => "plateau",
        }
    }
}

impl LrSchedule {
    /// Checks the constants against the run's `epochs` and learning rate.
    pub fn check(&self, epochs: usize, base: f32) -> Result<()> {
        let bad = |what: &str, message: String| Err(Error::value(what, message));
        let gamma_ok = |gamma: f32| gamma.is_finite() && gamma > 0.0 && gamma <= 1.0;
        if self.warmup > 0 && !matches!(self.schedule, Schedule::Constant | Schedule::Cosine { .. })
        {
            return bad(
                "warm-up",
                format!(
                    "applies to the constant and cosine schedules, not {}",
                    self.schedule.name()
                ),
            );
        }
        if self.warmup >= epochs && self.warmup > 0 {
            return bad(
                "warm-up",
                format!(
                    "{} epochs leaves none of the {epochs} to train at the full rate",
                    self.warmup
                ),
            );
        }
        match &self.schedule {
            Schedule::Constant | Schedule::OneCycle => Ok(()),
            Schedule::Step { step_size, gamma } => {
                if *step_size == 0 {
                    bad("step size", "must be at least 1 epoch, got 0".into())
                } else if !gamma_ok(*gamma) {
                    bad("gamma", format!("must be in (0, 1], got {gamma}"))
                } else {
                    Ok(())
                }
            }
            Schedule::MultiStep { milestones, gamma } => {
                if milestones.is_empty() || milestones.windows(2).any(|w| w[0] >= w[1]) {
                    bad(
                        "milestones",
                        format!("must be increasing epochs, got {milestones:?}"),
                    )
                } else if !gamma_ok(*gamma) {
                    bad("gamma", format!("must be in (0, 1], got {gamma}"))
                } else {
                    Ok(())
                }
            }
            Schedule::Exponential { gamma } => {
                if gamma_ok(*gamma) {
                    Ok(())
                } else {
                    bad("gamma", format!("must be in (0, 1], got {gamma}"))
                }
            }
            Schedule::Cosine { min_lr } | Schedule::Plateau { min_lr, .. }
                if !(min_lr.is_finite() && *min_lr >= 0.0 && *min_lr < base) =>
            {
                bad(
                    "minimum learning rate",
                    format!("must be >= 0 and below the learning rate {base}, got {min_lr}"),
                )
            }
            Schedule::Plateau { factor, .. }
                if !(factor.is_finite() && *factor > 0.0 && *factor < 1.0) =>
            {
                bad("plateau factor", format!("must be in (0, 1), got {factor}"))
            }
            Schedule::Cosine { .. } | Schedule::Plateau { .. } => Ok(()),
        }
    }

    /// Whether the rate depends on the validation loss.
    pub fn needs_validation(&self) -> bool {
        matches!(self.schedule, Schedule::Plateau { .. })
    }
}

/// The rate epoch by epoch: the closed forms, and for `Plateau` the state it keeps.
#[derive(Clone, Debug)]
pub struct Scheduler {
    plan: LrSchedule,
    base: f32,
    epochs: usize,
    /// `Plateau`: the current rate, the best validation loss and the epochs since it.
    current: f32,
    best: f32,
    bad_epochs: usize,
}

impl Scheduler {
    /// A scheduler for a run of `epochs` epochs at base rate `base`; fails with [`Error::InvalidValue`]
    /// when [`LrSchedule::check`] refuses the plan.
    pub fn new(plan: LrSchedule, base: f32, epochs: usize) -> Result<Scheduler> {
        plan.check(epochs, base)?;
        Ok(Scheduler {
            plan,
            base,
            epochs,
            current: base,
            best: f32::INFINITY,
            bad_epochs: 0,
        })
    }

    /// The learning rate of 0-based `epoch`.
    pub fn rate(&self, epoch: usize) -> f32 {
        let (base, warmup) = (f64::from(self.base), self.plan.warmup);
        if epoch < warmup {
            return (base * (epoch + 1) as f64 / (warmup + 1) as f64) as f32;
        }
        let rate = match &self.plan.schedule {
            Schedule::Constant => base,
            Schedule::Step { step_size, gamma } => {
                base * f64::from(*gamma).powi((epoch / step_size) as i32)
            }
            Schedule::MultiStep { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| m <= epoch).count();
                base * f64::from(*gamma).powi(passed as i32)
            }
            Schedule::Exponential { gamma } => base * f64::from(*gamma).powi(epoch as i32),
            Schedule::Cosine { min_lr } => {
                let (t, span) = ((epoch - warmup) as f64, (self.epochs - warmup) as f64);
                let min_lr = f64::from(*min_lr);
                min_lr + (base - min_lr) * (1.0 + (std::f64::consts::PI * t / span).cos()) / 2.0
            }
            Schedule::OneCycle => one_cycle(base, epoch, self.epochs),
            Schedule::Plateau { .. } => f64::from(self.current),
        };
        rate as f32
    }

    /// Tells the scheduler the validation loss after an epoch (only `Plateau` listens).
    pub fn observe(&mut self, val_loss: f32) {
        let Schedule::Plateau {
            factor,
            patience,
            min_lr,
        } = self.plan.schedule
        else {
            return;
        };
        if val_loss < self.best * (1.0 - 1e-4) {
            self.best = val_loss;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.bad_epochs > patience {
            self.current = (self.current * factor).max(min_lr);
            self.bad_epochs = 0;
        }
    }
}

/// `OneCycleLR`'s two cosine phases over `total` steps: from `peak/25` up to `peak` until step
/// `0.3·total − 1`, then down to `peak/25/1e4` at step `total − 1`.
fn one_cycle(peak: f64, step: usize, total: usize) -> f64 {
    let initial = peak / 25.0;
    let minimum = initial / 1e4;
    let rise_end = 0.3 * total as f64 - 1.0;
    let fall_end = total as f64 - 1.0;
    let anneal = |from: f64, to: f64, pct: f64| {
        to + (from - to) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
    };
    let step = step as f64;
    if step <= rise_end {
        anneal(initial, peak, step / rise_end)
    } else {
        anneal(peak, minimum, (step - rise_end) / (fall_end - rise_end))
    }
}
