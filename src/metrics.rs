//! Evaluation metrics computed on the host from a model's outputs: per-class precision, recall and F1
//! (with macro and weighted averages), the confusion matrix, log loss, ROC AUC and top-k accuracy for
//! classifiers; MSE, RMSE, MAE and R² for regression. Definitions follow scikit-learn's
//! (`precision_recall_fscore_support`, `log_loss`, `roc_auc_score`, `top_k_accuracy_score`, `r2_score`).

use serde::Serialize;

/// One class's scores; a score whose denominator is 0 is 0, as scikit-learn's `zero_division=0`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassScores {
    /// The class's name, as the data labels it.
    pub class: String,
    /// Of the rows predicted as this class, the fraction that are: `TP / (TP + FP)`.
    pub precision: f64,
    /// Of the rows of this class, the fraction predicted as it: `TP / (TP + FN)`.
    pub recall: f64,
    /// Harmonic mean of precision and recall, `2·P·R / (P + R)`.
    pub f1: f64,
    /// Rows whose true class this is.
    pub support: usize,
}

/// Precision, recall and F1 averaged over classes: `macro` unweighted, `weighted` by support.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Averages {
    /// The average of the classes' precisions.
    pub precision: f64,
    /// The average of the classes' recalls.
    pub recall: f64,
    /// The average of the classes' F1 scores (not the F1 of the averaged precision and recall).
    pub f1: f64,
}

/// A classifier's metrics over a set of rows, each row's predicted class being its most probable (the
/// first of equal maxima).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Classification {
    /// Fraction of the rows whose predicted class is the true one.
    pub accuracy: f64,
    /// Each class's scores, in class-index order.
    pub per_class: Vec<ClassScores>,
    /// The unweighted mean over the classes (scikit-learn's `average="macro"`).
    #[serde(rename = "macro")]
    pub macro_avg: Averages,
    /// The mean over the classes weighted by their support (`average="weighted"`).
    pub weighted: Averages,
    /// `confusion[true][predicted]` row counts.
    pub confusion: Vec<Vec<usize>>,
    /// Mean of −ln p(true class), each probability clipped to [1e-15, 1 − 1e-15].
    pub log_loss: f64,
    /// Binary: the AUC of p(second class); more classes: the unweighted mean of one-vs-rest AUCs over the
    /// classes present with both labels. `None` when no class has both.
    pub roc_auc: Option<f64>,
    /// With five classes or more: the fraction of rows whose true class is among the 3 most probable.
    pub top_3_accuracy: Option<f64>,
}

/// A regression model's errors over a set of rows, computed in f64.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Regression {
    /// Mean of the squared errors, in the target's units squared.
    pub mse: f64,
    /// Square root of `mse`, in the target's units.
    pub rmse: f64,
    /// Mean of the absolute errors, in the target's units.
    pub mae: f64,
    /// `1 − SS_res / SS_tot`; for a constant target, 1 when predicted exactly and 0 otherwise, as
    /// scikit-learn's `force_finite`.
    pub r2: f64,
}

/// Per-class precision, recall, F1 and support from `confusion[true][predicted]`, with their macro and
/// support-weighted averages; `names` labels the classes.
pub fn class_scores(
    confusion: &[Vec<usize>],
    names: &[String],
) -> (Vec<ClassScores>, Averages, Averages) {
    let classes = names.len();
    let per_class: Vec<ClassScores> = (0..classes)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let predicted: usize = (0..classes).map(|t| confusion[t][c]).sum();
            let support: usize = confusion[c].iter().sum();
            let ratio = |n: f64, d: usize| if d == 0 { 0.0 } else { n / d as f64 };
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            ClassScores {
                class: names[c].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let average = |weight: &dyn Fn(&ClassScores) -> f64| {
        let total: f64 = per_class.iter().map(weight).sum();
        let mean = |score: &dyn Fn(&ClassScores) -> f64| {
            if total == 0.0 {
                0.0
            } else {
                per_class.iter().map(|s| weight(s) * score(s)).sum::<f64>() / total
            }
        };
        Averages {
            precision: mean(&|s| s.precision),
            recall: mean(&|s| s.recall),
            f1: mean(&|s| s.f1),
        }
    };
    let (macro_avg, weighted) = (average(&|_| 1.0), average(&|s| s.support as f64));
    (per_class, macro_avg, weighted)
}

/// The metrics of `probabilities` (`[rows, classes]`, each row summing to 1) against the true class of each
/// row; `names` labels the classes.
pub fn classification(probabilities: &[f32], labels: &[usize], names: &[String]) -> Classification {
    let classes = names.len();
    let rows = labels.len();
    let row = |i: usize| &probabilities[i * classes..(i + 1) * classes];
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut log_loss = 0.0;
    let mut top3 = 0usize;
    for (i, &truth) in labels.iter().enumerate() {
        let p = row(i);
        // The first of equal maxima, as the predicted class everywhere else in wgtrain.
        let predicted = (0..classes).fold(0, |b, j| if p[j] > p[b] { j } else { b });
        confusion[truth][predicted] += 1;
        log_loss -= f64::from(p[truth]).clamp(1e-15, 1.0 - 1e-15).ln();
        let above = p.iter().filter(|&&q| q > p[truth]).count();
        top3 += usize::from(above < 3);
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let (per_class, macro_avg, weighted) = class_scores(&confusion, names);
    let roc_auc = if classes == 2 {
        let scores: Vec<f32> = (0..rows).map(|i| row(i)[1]).collect();
        let positive: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
        auc(&scores, &positive)
    } else {
        let aucs: Vec<f64> = (0..classes)
            .filter_map(|c| {
                let scores: Vec<f32> = (0..rows).map(|i| row(i)[c]).collect();
                let positive: Vec<bool> = labels.iter().map(|&l| l == c).collect();
                auc(&scores, &positive)
            })
            .collect();
        (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
    };
    let n = rows.max(1) as f64;
    Classification {
        accuracy: correct as f64 / n,
        macro_avg,
        weighted,
        per_class,
        confusion,
        log_loss: log_loss / n,
        roc_auc,
        top_3_accuracy: (classes >= 5).then(|| top3 as f64 / n),
    }
}

/// The area under the ROC curve of `scores` for the rows marked `positive`: the probability that a positive
/// row scores above a negative one, ties counting half (the Mann–Whitney statistic). `None` without both.
pub fn auc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let positives = positive.iter().filter(|&&p| p).count();
    let negatives = positive.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) over runs of equal scores.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j + 2) as f64 / 2.0;
        rank_sum += rank * order[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        i = j + 1;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// MSE, RMSE, MAE and R² of `predictions` against `targets`, in f64.
pub fn regression(predictions: &[f32], targets: &[f32]) -> Regression {
    let n = targets.len().max(1) as f64;
    let mean = targets.iter().map(|&y| f64::from(y)).sum::<f64>() / n;
    let (mut squares, mut absolute, mut total) = (0.0, 0.0, 0.0);
    for (&p, &y) in predictions.iter().zip(targets) {
        let e = f64::from(p) - f64::from(y);
        squares += e * e;
        absolute += e.abs();
        total += (f64::from(y) - mean).powi(2);
    }
    let mse = squares / n;
    let r2 = if total > 0.0 {
        1.0 - squares / total
    } else if squares == 0.0 {
        1.0
    } else {
        0.0
    };
    Regression {
        mse,
        rmse: mse.sqrt(),
        mae: absolute / n,
        r2,
    }
}

/// The confusion matrix as a text table: true classes down, predicted across.
pub fn confusion_table(confusion: &[Vec<usize>], names: &[String]) -> String {
    const CORNER: &str = "true \\ predicted";
    let name_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(1);
    let label = name_width.max(CORNER.len());
    let cell = confusion
        .iter()
        .flatten()
        .map(|c| c.to_string().len())
        .chain([name_width])
        .max()
        .unwrap_or(1);
    let mut text = format!("{CORNER:>label$}");
    for name in names {
        text += &format!("  {name:>cell$}");
    }
    for (name, row) in names.iter().zip(confusion) {
        text += &format!("\n{name:>label$}");
        for count in row {
            text += &format!("  {count:>cell$}");
        }
    }
    text
}
