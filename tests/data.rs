//! Loaders, task detection, class numbering, splits and standardisation.

use std::io::Write;
use std::path::PathBuf;
use wgtrain::data::{self, CsvOptions, Standardizer, Task, TaskChoice};
use wgtrain::{Error, Loss};

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgtrain-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

fn csv(name: &str, text: &str, options: &CsvOptions) -> wgtrain::Result<data::Dataset> {
    data::load_csv(&write(name, text.as_bytes()), options)
}

#[test]
fn iris_is_three_string_classes_in_sorted_order() {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv"));
    let d = data::load(&path, &CsvOptions::default()).expect("iris");
    assert_eq!((d.rows(), d.cols()), (150, 4));
    assert_eq!(d.task, Task::Classify);
    assert_eq!(d.class_names, ["setosa", "versicolor", "virginica"]);
    assert_eq!(d.target_name, "species");
    assert_eq!(&d.features[..4], &[5.1, 3.5, 1.4, 0.2]);
    assert_eq!((d.targets[0], d.targets[149]), (0.0, 2.0));
}

#[test]
fn task_auto_rules_and_numeric_class_order() {
    // Integers with few distinct values: classes, numbered in numeric (not string) order.
    let d = csv(
        "ints.csv",
        "x,y\n1,10\n2,9\n3,10\n4,2\n",
        &CsvOptions::default(),
    )
    .expect("load");
    assert_eq!(d.task, Task::Classify);
    assert_eq!(d.class_names, ["2", "9", "10"]);
    assert_eq!(d.targets, [2.0, 1.0, 2.0, 0.0]);
    // Non-integers: regression.
    let d = csv(
        "floats.csv",
        "x,y\n1,0.5\n2,1.5\n3,2.25\n",
        &CsvOptions::default(),
    )
    .expect("load");
    assert_eq!(d.task, Task::Regress);
    assert_eq!(d.targets, [0.5, 1.5, 2.25]);
    // More than 20 distinct integers: regression.
    let many: String = (0..30).map(|i| format!("{i},{i}\n")).collect();
    let d = csv("many.csv", &format!("x,y\n{many}"), &CsvOptions::default()).expect("load");
    assert_eq!(d.task, Task::Regress);
    // --task forces it; --target picks the column.
    let options = CsvOptions {
        target: Some("x".into()),
        task: TaskChoice::Classify,
        ..CsvOptions::default()
    };
    let d = csv("forced.csv", "x,y\n1,0.5\n2,1.5\n1,2.25\n", &options).expect("load");
    assert_eq!(
        (d.task, d.class_names.len(), d.feature_names.clone()),
        (Task::Classify, 2, vec!["y".to_string()])
    );
}

#[test]
fn known_classes_map_test_data_and_reject_unseen_ones() {
    let known = CsvOptions {
        target: None,
        task: TaskChoice::Classify,
        classes: Some(vec!["a".into(), "b".into()]),
        ..CsvOptions::default()
    };
    let d = csv("known.csv", "x,label\n1,b\n2,a\n", &known).expect("load");
    assert_eq!(d.targets, [1.0, 0.0]);
    let err = csv("unseen.csv", "x,label\n1,b\n2,c\n", &known).unwrap_err();
    assert!(
        err.to_string().contains("`c`") && err.to_string().contains("not seen in training"),
        "{err}"
    );
}

#[test]
fn malformed_csv_errors_name_the_place() {
    let expect = |name: &str, text: &str, words: &[&str]| {
        let err = csv(name, text, &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(err, Error::Format { .. } | Error::InvalidValue { .. }),
            "{err:?}"
        );
        for w in words {
            assert!(err.to_string().contains(w), "`{err}` lacks `{w}`");
        }
    };
    expect("empty.csv", "", &["empty"]);
    expect("header.csv", "a,b\n", &["no data rows"]);
    expect(
        "ragged.csv",
        "a,b\n1,2\n3\n",
        &["line 3", "1 fields", "expected 2"],
    );
    expect(
        "text.csv",
        "a,b,c\n1,2,x\n1,two,y\n",
        &["line 3", "`b`", "`two`"],
    );
    expect(
        "nan.csv",
        "a,b\n1,0\nNaN,1\n",
        &["line 3", "`a`", "1 missing cell", "--missing"],
    );
    expect(
        "inf.csv",
        "a,b\n1,0\n-inf,1\n",
        &["line 3", "`a`", "expected a finite number"],
    );
    expect("single.csv", "a,b\n1,x\n2,x\n", &["single class"]);
    let err = csv(
        "target.csv",
        "a,b\n1,2\n",
        &CsvOptions {
            target: Some("z".into()),
            ..CsvOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("no column `z`"), "{err}");
}

fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for v in [0x0803, n, rows, cols] {
        bytes.extend_from_slice(&u32::to_be_bytes(v));
    }
    bytes.extend_from_slice(pixels);
    bytes
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = [0x0801u32, labels.len() as u32]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect::<Vec<_>>();
    bytes.extend_from_slice(labels);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

#[test]
fn idx_plain_and_gzipped_with_scaled_pixels() {
    let images = idx_images(3, 1, 2, &[0, 255, 51, 102, 255, 0]);
    let labels = idx_labels(&[1, 0, 2]);
    for (suffix, wrap) in [("", false), (".gz", true)] {
        let enc = |b: &[u8]| if wrap { gzip(b) } else { b.to_vec() };
        let path = write(&format!("toy-images-idx3-ubyte{suffix}"), &enc(&images));
        write(&format!("toy-labels-idx1-ubyte{suffix}"), &enc(&labels));
        let d = data::load(&path, &CsvOptions::default()).expect("idx");
        assert_eq!((d.rows(), d.cols()), (3, 2));
        assert_eq!(d.features, [0.0, 1.0, 0.2, 0.4, 1.0, 0.0]);
        assert_eq!(d.targets, [1.0, 0.0, 2.0]);
        assert_eq!(d.class_names, ["0", "1", "2"]);
    }
}

#[test]
fn broken_idx_files_are_format_errors() {
    let labels = idx_labels(&[1, 0]);
    let check = |name: &str, images: Vec<u8>, labels: &[u8], words: &[&str]| {
        let path = write(&format!("{name}-images-idx3-ubyte"), &images);
        write(&format!("{name}-labels-idx1-ubyte"), labels);
        let err = data::load(&path, &CsvOptions::default()).unwrap_err();
        for w in words {
            assert!(err.to_string().contains(w), "`{err}` lacks `{w}`");
        }
    };
    let mut wrong_magic = idx_images(2, 1, 1, &[1, 2]);
    wrong_magic[3] = 0x01;
    check(
        "magic",
        wrong_magic,
        &labels,
        &["magic", "0x00000801", "0x00000803"],
    );
    check(
        "truncated",
        idx_images(2, 2, 2, &[1, 2, 3]),
        &labels,
        &["truncated", "3 bytes", "expected 8"],
    );
    check(
        "counts",
        idx_images(3, 1, 1, &[1, 2, 3]),
        &labels,
        &["2 labels for 3 images"],
    );
    let mut corrupt = gzip(&idx_images(2, 1, 1, &[1, 2]));
    let mid = corrupt.len() / 2;
    corrupt[mid..].fill(0xff);
    check("corrupt", corrupt, &labels, &["gzip stream"]);
}

#[test]
fn stratified_split_keeps_every_class_and_is_seeded() {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv"));
    let d = data::load(&path, &CsvOptions::default()).expect("iris");
    let (train, val) = d.split(0.2, 7).expect("split");
    assert_eq!((train.rows(), val.rows()), (120, 30));
    for class in 0..3 {
        let count = val.targets.iter().filter(|&&t| t == class as f32).count();
        assert_eq!(count, 10, "class {class} in the validation split");
    }
    assert_eq!(
        d.split(0.2, 7).expect("split").1,
        val,
        "same seed, same split"
    );
    assert_ne!(
        d.split(0.2, 8).expect("split").1,
        val,
        "other seed, other split"
    );
    assert!(d.split(1.0, 0).is_err());
}

#[test]
fn standardizer_uses_training_statistics_and_keeps_constant_columns_finite() {
    let d = csv(
        "std.csv",
        "a,b,y\n1,5,0\n3,5,1\n5,5,0\n",
        &CsvOptions::default(),
    )
    .expect("load");
    let s = Standardizer::fit(&d);
    assert_eq!(s.mean, [3.0, 5.0]);
    assert!((s.std[0] - (8.0f32 / 3.0).sqrt()).abs() < 1e-6);
    assert_eq!(s.std[1], 1.0, "a constant column keeps std 1");
    let mut features = d.features.clone();
    s.apply(&mut features);
    assert!(
        (features[0] + 1.2247449).abs() < 1e-5 && features[1] == 0.0,
        "{features:?}"
    );
}

#[test]
fn targets_are_encoded_for_the_output_layer() {
    let d = csv("enc.csv", "x,y\n1,a\n2,c\n3,b\n", &CsvOptions::default()).expect("load");
    assert_eq!(d.encode_targets(Loss::Ce, 3), [0.0, 2.0, 1.0]);
    assert_eq!(
        d.encode_targets(Loss::Bce, 3),
        [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    );
    let two = csv("two.csv", "x,y\n1,no\n2,yes\n", &CsvOptions::default()).expect("load");
    assert_eq!(two.encode_targets(Loss::Bce, 1), [0.0, 1.0]);
}

/// The separator is read from the header line: a comma where it has one, else a semicolon or a tab when
/// only that one appears; `delimiter` forces one.
#[test]
fn separators_are_detected_from_the_header_or_given() {
    let options = CsvOptions::default();
    for (name, text) in [
        ("comma.csv", "a,b,y\n1,2,0\n3,4,1\n"),
        ("semicolon.csv", "a;b;y\n1;2;0\n3;4;1\n"),
        ("tab.tsv", "a\tb\ty\n1\t2\t0\n3\t4\t1\n"),
    ] {
        let d = csv(name, text, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(d.feature_names, ["a", "b"], "{name}");
        assert_eq!(d.features, [1.0, 2.0, 3.0, 4.0], "{name}");
    }
    // Decimal commas in the rows do not make the file comma-separated; they are not numbers either.
    let err = csv("decimal.csv", "a;b;y\n1,5;2;0\n", &options).expect_err("decimal comma");
    assert!(err.to_string().contains("`1,5`"), "{err}");
    // Both a semicolon and a tab in a comma-less header: a comma, as before (one column).
    let err = csv("mixed.csv", "a;b\tc\n1;2\t3\n", &options).expect_err("ambiguous");
    assert!(err.to_string().contains("no feature columns"), "{err}");
    let forced = CsvOptions {
        delimiter: Some(b'|'),
        ..CsvOptions::default()
    };
    let d = csv("pipe.csv", "a|b,c|y\n1|2|0\n3|4|1\n", &forced).expect("pipe");
    assert_eq!(d.feature_names, ["a", "b,c"]);
}

/// `ignore` leaves named columns out of the features; each must exist and none may be the target.
#[test]
fn ignored_columns_are_left_out_by_name() {
    let text = "id,a,name,b,y\n7,1,x,2,0\n8,3,z,4,1\n";
    let options = CsvOptions {
        ignore: vec!["name".into(), "id".into()],
        ..CsvOptions::default()
    };
    let d = csv("ignore.csv", text, &options).expect("ignore");
    assert_eq!(d.feature_names, ["a", "b"]);
    assert_eq!(d.features, [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(d.ignored_columns, ["name", "id"]);
    for (ignore, words) in [("nope", "no column `nope`"), ("y", "`y` is the target")] {
        let options = CsvOptions {
            ignore: vec![ignore.into()],
            ..CsvOptions::default()
        };
        let err = csv("ignore-bad.csv", text, &options).expect_err("refused");
        assert!(err.to_string().contains(words), "{err}");
    }
}
