//! The metrics against scikit-learn 1.x's values for the same inputs (computed once in Python with
//! `precision_recall_fscore_support(zero_division=0)`, `confusion_matrix`, `log_loss`,
//! `roc_auc_score(multi_class="ovr")`, `top_k_accuracy_score(k=3)`, `mean_squared_error`,
//! `mean_absolute_error`, `r2_score`).

use wgtrain::metrics::{auc, classification, confusion_table, regression};

fn close(what: &str, actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-6,
        "{what}: {actual}, scikit-learn {expected}"
    );
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i}")).collect()
}

#[test]
fn three_classes_match_scikit_learn() {
    let p: [[f32; 3]; 12] = [
        [0.7, 0.2, 0.1],
        [0.1, 0.8, 0.1],
        [0.2, 0.2, 0.6],
        [0.5, 0.4, 0.1],
        [0.3, 0.3, 0.4],
        [0.1, 0.6, 0.3],
        [0.6, 0.3, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.1, 0.8],
        [0.4, 0.35, 0.25],
        [0.25, 0.5, 0.25],
        [0.3, 0.3, 0.4],
    ];
    let labels = [0, 1, 2, 1, 2, 1, 0, 0, 2, 2, 1, 1];
    let m = classification(p.as_flattened(), &labels, &names(3));
    assert_eq!(m.confusion, [[2, 1, 0], [1, 3, 1], [1, 0, 3]]);
    let expected = [
        (0.5, 2.0 / 3.0, 0.5714285714285714, 3),
        (0.75, 0.6, 0.6666666666666666, 5),
        (0.75, 0.75, 0.75, 4),
    ];
    for (s, (p, r, f, n)) in m.per_class.iter().zip(expected) {
        close("precision", s.precision, p);
        close("recall", s.recall, r);
        close("f1", s.f1, f);
        assert_eq!(s.support, n);
    }
    close("accuracy", m.accuracy, 8.0 / 12.0);
    close("macro precision", m.macro_avg.precision, 0.6666666666666666);
    close("macro recall", m.macro_avg.recall, 0.6722222222222222);
    close("macro f1", m.macro_avg.f1, 0.6626984126984127);
    close("weighted precision", m.weighted.precision, 0.6875);
    close("weighted recall", m.weighted.recall, 0.6666666666666666);
    close("weighted f1", m.weighted.f1, 0.6706349206349206);
    close("log loss", m.log_loss, 0.755072701969307);
    close(
        "roc auc (ovr macro)",
        m.roc_auc.expect("auc"),
        0.8475749559082892,
    );
    assert_eq!(
        m.top_3_accuracy, None,
        "top-k only with five classes or more"
    );
    let table = confusion_table(&m.confusion, &names(3));
    let expected = [
        "true \\ predicted  c0  c1  c2",
        "              c0   2   1   0",
        "              c1   1   3   1",
        "              c2   1   0   3",
    ]
    .join("\n");
    assert_eq!(table, expected);
}

#[test]
fn binary_auc_with_ties_and_top_k() {
    let scores = [0.9, 0.4, 0.4, 0.6, 0.2, 0.4, 0.8, 0.1];
    let positive = [true, false, true, true, false, false, true, false];
    close(
        "auc with ties",
        auc(&scores, &positive).expect("auc"),
        0.9375,
    );
    assert_eq!(auc(&scores, &[true; 8]), None, "no negatives, no AUC");

    let p: [[f32; 5]; 10] = [
        [0.299273, 0.448777, 0.008718, 0.000999, 0.242234],
        [0.136587, 0.056445, 0.063293, 0.236043, 0.507632],
        [0.490606, 0.000192, 0.338736, 0.010823, 0.159643],
        [0.137989, 0.511999, 0.057542, 0.049919, 0.242551],
        [0.009961, 0.036431, 0.277326, 0.208506, 0.467777],
        [0.086857, 0.09411, 0.388879, 0.362238, 0.067916],
        [0.054379, 0.315625, 0.138894, 0.220519, 0.270583],
        [0.17847, 0.424122, 0.022261, 0.21231, 0.162837],
        [0.468967, 0.147998, 0.115802, 0.201889, 0.065345],
        [0.139925, 0.019898, 0.308986, 0.427611, 0.103581],
    ];
    let labels = [3, 4, 0, 0, 3, 1, 2, 0, 4, 2];
    let m = classification(p.as_flattened(), &labels, &names(5));
    close(
        "top-3 accuracy",
        m.top_3_accuracy.expect("five classes"),
        0.7,
    );
}

#[test]
fn regression_matches_scikit_learn() {
    let m = regression(&[2.5, 0.0, 2.0, 8.0, 3.9], &[3.0, -0.5, 2.0, 7.0, 4.2]);
    let mse = 1.59 / 5.0; // squared errors 0.25, 0.25, 0, 1, 0.09
    close("mse", m.mse, mse);
    close("rmse", m.rmse, mse.sqrt());
    close("mae", m.mae, 0.46);
    close("r2", m.r2, 0.9480256276150627);
    assert_eq!(regression(&[1.0, 1.0], &[1.0, 1.0]).r2, 1.0);
    assert_eq!(regression(&[1.0, 2.0], &[1.0, 1.0]).r2, 0.0);
}
