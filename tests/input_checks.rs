//! What a user types is checked, never trusted: sizes give an error instead of an abort, endless input is
//! cut off, columns are matched by name, and messages name the file, the physical line, the column and
//! the value (cut short).

mod common;

use common::cli::*;
use std::path::{Path, PathBuf};
use wgtrain::data::{self, CsvOptions};
use wgtrain::{Activation, Device, Error, Loss, Model, Network};

#[test]
fn sizes_give_an_error_never_an_abort_or_a_wrap() {
    let cases: [(&str, &[&str]); 4] = [
        (
            "4000000000",
            &[
                "not enough memory",
                "layer 0 (dense:4000000000, 4 → 4000000000)",
                "available",
            ],
        ),
        ("18446744073709551615", &["--layers", "at most 4294967295"]),
        ("18446744073709551616", &["--layers", "whole number"]),
        (
            "3000000000,3000000000",
            &[
                "not enough memory",
                "layer 2 (dense:3000000000, 3000000000 → 3000000000)",
            ],
        ),
    ];
    for (layers, words) in cases {
        fails(&strs(&train_cpu(&iris(), &["--layers", layers])), words);
    }
    let out = ok(&[
        "summary",
        "--inputs",
        "4",
        "--layers",
        "4294967295,4294967295",
        "--outputs",
        "3",
    ]);
    let w = 4_294_967_295u128;
    let total = (4 * w + w) + (w * w + w) + (w * 3 + 3);
    assert!(out.contains(&format!("total parameters: {total}")), "{out}");
    assert!(out.contains(&format!("{}", w * w + w)), "{out}");

    let network = Network::builder(4)
        .dense(4_000_000_000, Activation::Relu)
        .dense(3, Activation::Softmax)
        .build(Loss::Ce)
        .expect("a valid description");
    match Model::new(network, Device::Cpu, 0) {
        Err(Error::Memory(message)) => assert!(message.contains("layer 0"), "{message}"),
        Err(e) => panic!("expected a memory error, got {e}"),
        Ok(_) => panic!("a 64 GB layer must be refused"),
    }
}

#[test]
fn a_network_larger_than_the_adapter_allows_is_refused_on_the_gpu() {
    if !have_fallback_adapter() {
        return;
    }
    let args = [
        "train",
        "--data",
        &iris(),
        "--layers",
        "4294967295",
        "--device",
        "fallback",
    ];
    fails(&args, &["not enough memory", "in one buffer", "layer 0"]);
}

fn idx_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

fn be(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

#[test]
fn endless_or_oversized_input_is_cut_off() {
    let args = ["train", "--data", "/dev/zero", "--device", "cpu"];
    fails(
        &args,
        &[
            "/dev/zero",
            "line 1",
            "longer than 1048576 bytes",
            "--max-record-bytes",
        ],
    );
    fails(
        &strs(&train_cpu(&iris(), &["--max-record-bytes", "30"])),
        &["line 1", "longer than 30 bytes"],
    );
    let options = CsvOptions {
        max_record_bytes: 8,
        ..CsvOptions::default()
    };
    let err = data::parse_csv("short.csv", b"a,y\n1,0\n2,1\n333333333,0\n", &options)
        .expect_err("a long record");
    assert!(err.to_string().contains("line 4"), "{err}");
    // --model and --init read regular files only.
    fails(
        &["eval", "--model", "/dev/zero", "--data", &iris()],
        &["/dev/zero", "is a character device"],
    );
    fails(
        &strs(&train_cpu(&iris(), &["--init", "/dev/zero"])),
        &["/dev/zero", "is a character device"],
    );

    // IDX headers that claim more than the file holds fail before anything is allocated.
    let dir = scratch("idx-claims");
    let labels = [be(&[0x801, 2]), vec![0, 1]].concat();
    idx_file(&dir, "big-labels-idx1-ubyte", &labels);
    let images = idx_file(
        &dir,
        "big-images-idx3-ubyte",
        &[be(&[0x803, 60000, 28, 28]), vec![0; 100]].concat(),
    );
    fails(
        &strs(&train_cpu(&text(&images), &[])),
        &[
            "truncated IDX data",
            "100 bytes after the header",
            "47040000",
        ],
    );
    // A gzip stream of a few dozen bytes cannot hold 4 GB.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &be(&[0x803, 65536, 256, 256])).expect("gzip");
    let gz = gz.finish().expect("gzip");
    idx_file(&dir, "gz-labels-idx1-ubyte", &labels);
    let images = idx_file(&dir, "gz-images-idx3-ubyte", &gz);
    fails(
        &strs(&train_cpu(&text(&images), &[])),
        &["4294967296 bytes", "more than a gzip stream"],
    );
}

/// Iris with its columns in another order, and with an extra column.
fn reordered_iris(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let text = std::fs::read_to_string(iris()).expect("iris");
    let order = [4, 3, 0, 2, 1];
    let (mut shuffled, mut extra, mut renamed) = (Vec::new(), Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let picked: Vec<&str> = order.iter().map(|&c| cells[c]).collect();
        shuffled.push(picked.join(","));
        extra.push(format!("{},{}", if i == 0 { "notes" } else { "x" }, line));
        renamed.push(if i == 0 {
            line.replace("sepal_width", "sepal_w")
        } else {
            line.to_string()
        });
    }
    let write = |name: &str, lines: Vec<String>| {
        let path = dir.join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        path
    };
    (
        write("reordered.csv", shuffled),
        write("extra.csv", extra),
        write("renamed.csv", renamed),
    )
}

#[test]
fn columns_are_matched_by_name() {
    let dir = scratch("columns");
    let model = dir.join("iris.safetensors");
    ok(&strs(&train_cpu(
        &iris(),
        &["--epochs", "30", "--lr", "0.01", "--out", &text(&model)],
    )));
    let model = text(&model);
    let (reordered, extra, renamed) = reordered_iris(&dir);
    let eval = |data: &Path| {
        let args = [
            "eval",
            "--model",
            &model,
            "--data",
            &text(data),
            "--device",
            "cpu",
            "--json",
        ];
        let output = run(&args);
        (succeeded(&args, &output), stderr(&output))
    };
    let (original, quiet) = eval(Path::new(&iris()));
    assert!(quiet.is_empty(), "{quiet}");
    let accuracy: serde_json::Value = serde_json::from_str(original.trim()).expect("JSON");
    assert!(
        accuracy["accuracy"].as_f64().expect("accuracy") > 0.8,
        "{accuracy}"
    );
    assert_eq!(eval(&reordered).0, original, "columns in another order");
    let (with_extra, warning) = eval(&extra);
    assert_eq!(with_extra, original, "an extra column is ignored");
    let warnings: Vec<&str> = warning.lines().collect();
    assert_eq!(warnings.len(), 1, "{warning}");
    assert!(
        warnings[0].starts_with("warning:") && warnings[0].contains("`notes`"),
        "{warning}"
    );

    let files = [
        PathBuf::from(&model),
        PathBuf::from(iris()),
        reordered.clone(),
        extra.clone(),
        renamed.clone(),
    ];
    let before = snapshot(&files);
    let predict = |data: &Path| ok(&["predict", "--model", &model, "--data", &text(data)]);
    assert_eq!(predict(&reordered), predict(Path::new(&iris())));
    fails(
        &["eval", "--model", &model, "--data", &text(&renamed)],
        &[
            "renamed.csv",
            "no column `sepal_width`",
            "a feature of the model",
        ],
    );
    fails(
        &["predict", "--model", &model, "--data", &text(&renamed)],
        &["no column `sepal_width`"],
    );
    let duplicate = dir.join("duplicate.csv");
    std::fs::write(&duplicate, "a,b,a,y\n1,2,3,x\n4,5,6,z\n").expect("write");
    fails(
        &strs(&train_cpu(&text(&duplicate), &[])),
        &[
            "duplicate.csv",
            "line 1",
            "`a` appears twice",
            "columns 1 and 3",
        ],
    );
    fails(
        &[
            "eval",
            "--model",
            &model,
            "--data",
            &iris(),
            "--target",
            "sepal_width",
        ],
        &["`sepal_width` is one of the model's feature columns"],
    );
    let test_report = |test: &Path| {
        let args = train_cpu(
            &iris(),
            &["--epochs", "5", "--json", "--test-data", &text(test)],
        );
        report(&strs(&args))["test_accuracy"].clone()
    };
    assert_eq!(test_report(&reordered), test_report(Path::new(&iris())));
    assert_eq!(snapshot(&files), before, "no input was changed");
}

#[test]
fn messages_name_the_file_line_column_and_value() {
    let dir = scratch("messages");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        text(&path)
    };
    let crlf = write("crlf.csv", b"a,b,y\r\n1,2,x\r\n\r\n3,4,y\r\n5,zz,x\r\n");
    fails(
        &strs(&train_cpu(&crlf, &[])),
        &[
            "crlf.csv",
            "line 5, column `b`",
            "expected a number",
            "got `zz`",
        ],
    );
    let quoted = write(
        "quoted.csv",
        b"a,b,y\n1,2,\"two\nlines\"\n\n3,4,y\n5,6,x\n7,8e39,y\n",
    );
    fails(
        &strs(&train_cpu(&quoted, &[])),
        &[
            "line 7, column `b`",
            "`8e39` is out of range for a 32-bit float",
        ],
    );
    let short = write("short.csv", b"a,b,y\n1,2,x\n\n3,4\n");
    fails(
        &strs(&train_cpu(&short, &[])),
        &["line 4", "2 fields, expected 3"],
    );
    let long_cell = "9".repeat(200_000) + "x";
    let long = write("long.csv", format!("a,y\n{long_cell},1\n2,0\n").as_bytes());
    let line = fails(&strs(&train_cpu(&long, &[])), &["line 2, column `a`", "…"]);
    assert!(line.len() < 300, "{} bytes", line.len());
    let wide_header: Vec<String> = (0..5000).map(|i| format!("column{i}")).collect();
    let wide = write(
        "wide.csv",
        format!("{}\n{}\n", wide_header.join(","), vec!["1"; 5000].join(",")).as_bytes(),
    );
    fails(
        &strs(&train_cpu(&wide, &["--target", "nope"])),
        &["no column `nope`", "5000 in all"],
    );
    let unclosed = write(
        "unclosed.csv",
        b"a,b,y\n1,2,x\n3,4,z\n5,6,\"oops\n7,8,x\n9,10,z\n",
    );
    fails(
        &strs(&train_cpu(&unclosed, &[])),
        &["line 4", "a quote that is never closed"],
    );
    let open_quote = write("open-quote.csv", b"a,b,y\n1,\"2,x\n3,4,z\n");
    fails(
        &strs(&train_cpu(&open_quote, &[])),
        &["fields, expected 3", "a quote left open?"],
    );
    for (name, bytes) in [
        ("last-line.csv", &b"a,b\n1,x\n2,\"y\n"[..]),
        ("no-newline.csv", &b"a,b\n1,x\n3,\"4"[..]),
    ] {
        let path = write(name, bytes);
        fails(
            &strs(&train_cpu(&path, &[])),
            &["line 3", "a quote that is never closed"],
        );
    }
    let unnamed = write("unnamed.csv", b"a,b,y,\n1,2,x,\n3,4,z,\n");
    fails(
        &strs(&train_cpu(&unnamed, &[])),
        &["line 1", "column 4 has no name"],
    );
    // Semicolons and tabs are detected (tests/data.rs); a pipe is not, and the message says so.
    let pipes = write("pipes.csv", b"a|b|y\n1|2|x\n");
    fails(
        &strs(&train_cpu(&pipes, &[])),
        &["no feature columns", "separated by `|`", "--delimiter"],
    );
    let bidi = write(
        "bidi.csv",
        "a,b\u{202e}x,y\n1,zz,0\n2,3,1\n3,4,0\n".as_bytes(),
    );
    fails(&strs(&train_cpu(&bidi, &[])), &["column `b\\u{202e}x`"]);
    fails(
        &strs(&train_cpu(&iris(), &["--lr", "1e39"])),
        &["--lr", "`1e39` is not a finite 32-bit number"],
    );
    fails(
        &["summary", "--inputs", "1", "--layers", "3"],
        &["not provided", "--outputs"],
    );
    // A huge flag value is quoted cut short too (`failed` holds every error line under 600 bytes).
    let huge = "x".repeat(100_000);
    fails(&strs(&train_cpu(&iris(), &["--lr", &huge])), &["--lr"]);
    fails(
        &strs(&train_cpu(&iris(), &["--optimizer", &huge])),
        &["--optimizer"],
    );
}

/// A FIFO at `path` that a thread fills with `bytes` once a reader opens it.
fn fifo_with(path: &Path, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    assert!(std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo")
        .success());
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        // Opening for writing waits for the reader; a reader that gave up leaves a broken pipe, not a hang.
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) {
            let _ = std::io::Write::write_all(&mut f, &bytes);
        }
    })
}

#[test]
fn pipes_are_read_once_and_fifos_are_not_models() {
    let dir = scratch("pipes");
    let pipe = dir.join("pipe");
    let writer = fifo_with(&pipe, b"a,b,y\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n".to_vec());
    let model = dir.join("m.safetensors");
    let args = train_cpu(&text(&pipe), &["--out", &text(&model)]);
    let output = run_with(bounded(&strs(&args)), None);
    succeeded(&strs(&args), &output);
    writer.join().expect("writer");
    let (network, _, meta) = wgtrain::checkpoint::load(&model).expect("load");
    assert_eq!(network.inputs(), 2);
    assert_eq!(
        meta.feature_names,
        ["a", "b"],
        "every byte of the pipe was read once"
    );

    // A pipe named twice can be read only once.
    let args = [
        "train",
        "--data",
        "-",
        "--test-data",
        "/dev/stdin",
        "--device",
        "cpu",
    ];
    let bytes = std::fs::read(iris()).expect("iris");
    failed(
        &args,
        &run_with(bounded(&args), Some(&bytes)),
        &["/dev/stdin is the same stream as --data -"],
    );

    // A checkpoint whose header does not cover the file is refused before the rest is read.
    let sparse = dir.join("sparse.safetensors");
    std::fs::File::create(&sparse)
        .and_then(|f| f.set_len(2 << 30))
        .expect("a sparse file");
    fails(
        &["eval", "--model", &text(&sparse), "--data", &iris()],
        &["sparse.safetensors", "not a safetensors file"],
    );
    let padded = dir.join("padded.safetensors");
    let mut bytes = std::fs::read(&model).expect("model");
    bytes.extend(vec![0u8; 1000]);
    std::fs::write(&padded, bytes).expect("write");
    fails(
        &["eval", "--model", &text(&padded), "--data", &iris()],
        &["the header describes", "but the file holds"],
    );

    // Opening a FIFO for reading waits for a writer: --model and --init are refused before opening.
    let fifo = dir.join("model-fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    for args in [
        vec!["eval", "--model", fifo.to_str().unwrap(), "--data", &iris()],
        vec![
            "predict",
            "--model",
            fifo.to_str().unwrap(),
            "--data",
            &iris(),
        ],
    ] {
        failed(
            &args,
            &run_with(bounded(&args), None),
            &["is a FIFO", "safetensors"],
        );
    }
    let args = train_cpu(&iris(), &["--init", &text(&fifo)]);
    failed(
        &strs(&args),
        &run_with(bounded(&strs(&args)), None),
        &["is a FIFO"],
    );
}

#[test]
fn reading_flags_and_targets_are_checked() {
    // A `.csv` name is CSV even when it contains `idx`.
    let named = scratch("idx-name").join("ridx1.csv");
    std::fs::copy(iris(), &named).expect("copy");
    ok(&strs(&train_cpu(&text(&named), &[])));
    fails(
        &strs(&train_cpu(&iris(), &["--val-split", "1e-300"])),
        &["--val-split", "`1e-300` is too small", "rounds to 0"],
    );
    let images = format!("{DATA}/mnist10k-test-images-idx3-ubyte.gz");
    fails(
        &strs(&train_cpu(&iris(), &["--test-data", &images])),
        &["--test-data", "not in the format of --data"],
    );
    fails(
        &["eval", "--model", "-", "--data", &iris()],
        &["standard input is not read here", "safetensors"],
    );
    fails(
        &strs(&train_cpu(&iris(), &["--max-record-bytes", "1073741825"])),
        &["--max-record-bytes", "1 GiB"],
    );
    fails(
        &strs(&train_cpu(&images, &["--max-record-bytes", "100"])),
        &["--max-record-bytes", "IDX"],
    );
    let dir = scratch("targets");
    let empty = dir.join("empty-target.csv");
    std::fs::write(&empty, "a,b,y\n1,2,x\n3,4,\n5,6,y\n").expect("write");
    fails(
        &strs(&train_cpu(&text(&empty), &[])),
        &["line 3, column `y`", "the target is empty"],
    );
    let mac = dir.join("mac.csv");
    std::fs::write(&mac, "a,b,y\r1,2,x\r\r3,4,y\r5,zz,x\r").expect("write");
    fails(
        &strs(&train_cpu(&text(&mac), &[])),
        &["line 5, column `b`", "`zz`"],
    );
}

#[test]
fn predict_reads_idx_images_without_labels() {
    let dir = scratch("idx-predict");
    let images = format!("{DATA}/mnist10k-test-images-idx3-ubyte.gz");
    let model = text(&dir.join("mnist.safetensors"));
    ok(&strs(&train_cpu(&images, &["--out", &model])));
    let alone = dir.join("alone-images-idx3-ubyte.gz");
    std::fs::copy(&images, &alone).expect("copy");
    let out = ok(&[
        "predict",
        "--model",
        &model,
        "--data",
        &text(&alone),
        "--device",
        "cpu",
    ]);
    assert_eq!(out.lines().count(), 2001, "a header and one row per image");
    assert!(out.starts_with("prediction,p_0,p_1,"), "{}", &out[..40]);

    let iris_model = text(&dir.join("iris.safetensors"));
    ok(&strs(&train_cpu(&iris(), &["--out", &iris_model])));
    fails(
        &["predict", "--model", &iris_model, "--data", &text(&alone)],
        &["4 feature columns", "784"],
    );
}

#[test]
fn idx_files_with_more_than_their_header_says_are_refused() {
    let dir = scratch("idx-trailing");
    let labels = [be(&[0x801, 2]), vec![0, 1]].concat();
    idx_file(&dir, "junk-labels-idx1-ubyte", &labels);
    let images = idx_file(
        &dir,
        "junk-images-idx3-ubyte",
        &[be(&[0x803, 2, 1, 2]), vec![1, 2, 3, 4], b"JUNK".to_vec()].concat(),
    );
    fails(
        &strs(&train_cpu(&text(&images), &[])),
        &["more data than the header's shape [2, 1, 2] describes"],
    );
    // Two gzip members: the second is data the header does not describe.
    let gz = |bytes: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, bytes).expect("gzip");
        e.finish().expect("gzip")
    };
    let member = gz(&[be(&[0x803, 2, 1, 2]), vec![1, 2, 3, 4]].concat());
    idx_file(&dir, "twice-labels-idx1-ubyte.gz", &gz(&labels));
    let twice = idx_file(
        &dir,
        "twice-images-idx3-ubyte.gz",
        &[member.clone(), member].concat(),
    );
    fails(
        &strs(&train_cpu(&text(&twice), &[])),
        &["more data than the header's shape"],
    );
}
