//! Learning-rate schedules against the rates `torch.optim.lr_scheduler` (PyTorch 2.15) gives for the same
//! settings, base rate 0.1 over 10 epochs, stepped once per epoch (`fit`'s use of them: tests/fit.rs).

mod common;

use common::{assert_close, Tolerance};
use wgtrain::schedule::{LrSchedule, Schedule, Scheduler};

/// f32 rates against PyTorch's f64 ones.
const RATE: Tolerance = Tolerance {
    abs: 1e-9,
    rel: 1e-6,
};

fn rates(schedule: Schedule, warmup: usize, val_losses: Option<&[f32]>) -> Vec<f32> {
    let plan = LrSchedule { schedule, warmup };
    let mut scheduler = Scheduler::new(plan, 0.1, 10).expect("valid schedule");
    (0..10)
        .map(|e| {
            let rate = scheduler.rate(e);
            if let Some(v) = val_losses {
                scheduler.observe(v[e]);
            }
            rate
        })
        .collect()
}

/// PyTorch's scheduler, the schedule here, its warm-up, the validation losses it sees, PyTorch's rates.
type Case = (
    &'static str,
    Schedule,
    usize,
    Option<&'static [f32]>,
    [f64; 10],
);

#[test]
fn schedules_match_torch() {
    let cases: [Case; 6] = [
        (
            "StepLR(step_size=3, gamma=0.5)",
            Schedule::Step {
                step_size: 3,
                gamma: 0.5,
            },
            0,
            None,
            [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125],
        ),
        (
            "MultiStepLR([2, 5], gamma=0.1)",
            Schedule::MultiStep {
                milestones: vec![2, 5],
                gamma: 0.1,
            },
            0,
            None,
            [
                0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.001, 0.001,
            ],
        ),
        (
            "ExponentialLR(gamma=0.9)",
            Schedule::Exponential { gamma: 0.9 },
            0,
            None,
            [
                0.1,
                0.09,
                0.081,
                0.0729,
                0.06561,
                0.059049,
                0.0531441,
                0.04782969,
                0.043046721,
                0.0387420489,
            ],
        ),
        (
            "SequentialLR(LinearLR(1/3, 2), CosineAnnealingLR(T_max=8, eta_min=0.001), [2])",
            Schedule::Cosine { min_lr: 0.001 },
            2,
            None,
            [
                0.03333333333333333,
                0.06666666666666667,
                0.1,
                0.0962320368593087,
                0.0855017856687341,
                0.06944282990207196,
                0.0505,
                0.03155717009792806,
                0.0154982143312659,
                0.004767963140691306,
            ],
        ),
        (
            "OneCycleLR(max_lr=0.1, total_steps=10, cycle_momentum=False)",
            Schedule::OneCycle,
            0,
            None,
            [
                0.004,
                0.052,
                0.1,
                0.09504846320134738,
                0.0811745653949763,
                0.06112620219362893,
                0.03887419780637107,
                0.0188258346050237,
                0.004951936798652629,
                4e-07,
            ],
        ),
        (
            "ReduceLROnPlateau(factor=0.5, patience=1, min_lr=0.02)",
            Schedule::Plateau {
                factor: 0.5,
                patience: 1,
                min_lr: 0.02,
            },
            0,
            Some(&[1.0, 0.9, 0.9, 0.95, 0.9, 0.85, 0.86, 0.87, 0.88, 0.5]),
            [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025],
        ),
    ];
    for (torch, schedule, warmup, vals, expected) in cases {
        let expected: Vec<f32> = expected.iter().map(|&r| r as f32).collect();
        assert_close(torch, &rates(schedule, warmup, vals), &expected, RATE);
    }
    // Plateau never goes below its floor.
    let floor = rates(
        Schedule::Plateau {
            factor: 0.1,
            patience: 0,
            min_lr: 0.02,
        },
        0,
        Some(&[1.0; 10]),
    );
    assert_eq!(floor[9], 0.02);
}

#[test]
fn bad_schedules_are_refused() {
    let refused = |schedule: Schedule, warmup: usize, words: &str| {
        let err = Scheduler::new(LrSchedule { schedule, warmup }, 0.1, 10)
            .expect_err("should be refused")
            .to_string();
        assert!(err.contains(words), "`{err}` lacks `{words}`");
    };
    refused(
        Schedule::Step {
            step_size: 0,
            gamma: 0.5,
        },
        0,
        "step size",
    );
    refused(Schedule::Exponential { gamma: 1.5 }, 0, "gamma");
    refused(
        Schedule::MultiStep {
            milestones: vec![5, 2],
            gamma: 0.1,
        },
        0,
        "increasing",
    );
    refused(
        Schedule::Cosine { min_lr: 0.2 },
        0,
        "below the learning rate",
    );
    refused(Schedule::Cosine { min_lr: 0.0 }, 10, "leaves none");
    refused(Schedule::OneCycle, 2, "constant and cosine");
    refused(
        Schedule::Plateau {
            factor: 1.0,
            patience: 2,
            min_lr: 0.0,
        },
        0,
        "factor",
    );
}
