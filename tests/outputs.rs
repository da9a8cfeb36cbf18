//! Nothing a user types loses a file: outputs that are devices, FIFOs, sockets, directories or inputs are
//! refused before training and left as they were; symbolic links are followed; identical runs write
//! identical bytes; standard input reads like a file; a successful run prints no `error:` line.

mod common;

use common::cli::*;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `wgtrain train` on `data` on the CPU (one epoch unless `extra` says), with `extra` flags.
fn train_args(data: &Path, extra: &[&str]) -> Vec<String> {
    train_cpu(&text(data), extra)
}

/// Runs under coreutils' `timeout`, so a write that blocked on a FIFO fails the test instead of hanging.
fn run_bounded(args: &[String]) -> std::process::Output {
    run_with(bounded(&strs(args)), None)
}

fn copy_of(dir: &Path, source: &str, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(source, &path).expect("copy");
    path
}

/// Whether a file type is the kind of node made for a case.
type IsKind = fn(&std::fs::FileType) -> bool;

#[test]
fn outputs_that_are_not_regular_files_are_refused_before_training() {
    let dir = scratch("nodes");
    let data = copy_of(&dir, &iris(), "train.csv");
    let before = snapshot(&[&data]);
    let mut nodes: Vec<(PathBuf, &str, IsKind)> = Vec::new();
    // A character device with /dev/null's numbers, made here (as root, which CI is), never the real one.
    let device = dir.join("device.png");
    let made = Command::new("mknod")
        .arg(&device)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if made {
        nodes.push((device, "character device", |t| t.is_char_device()));
    } else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI runs as root and must test a device node"
        );
        eprintln!("not root: testing FIFOs, sockets and directories only");
    }
    let fifo = dir.join("fifo.png");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    nodes.push((fifo, "FIFO", |t| t.is_fifo()));
    let socket = dir.join("socket.png");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind a socket");
    nodes.push((socket, "socket", |t| t.is_socket()));
    let folder = dir.join("folder.png");
    std::fs::create_dir(&folder).expect("dir");
    nodes.push((folder, "directory", |t| t.is_dir()));

    for (node, kind, is_kind) in &nodes {
        for flag in ["--out", "--plot"] {
            let args = train_args(&data, &[flag, &text(node)]);
            let output = run_bounded(&args);
            failed(
                &strs(&args),
                &output,
                &[&text(node), kind, "refusing to replace it", flag],
            );
            let file_type = std::fs::symlink_metadata(node)
                .expect("still there")
                .file_type();
            assert!(is_kind(&file_type), "{} is still a {kind}", node.display());
        }
    }
    assert_eq!(snapshot(&[&data]), before, "the training data is unchanged");
}

#[test]
fn outputs_that_are_inputs_or_each_other_are_refused() {
    let dir = scratch("same");
    let data = copy_of(&dir, &iris(), "train.csv");
    let test = copy_of(&dir, &iris(), "test.csv");
    let as_png = copy_of(&dir, &iris(), "iris.png");
    let init = dir.join("init.safetensors");
    ok(&strs(&train_args(&data, &["--out", &text(&init)])));
    std::fs::create_dir(dir.join("sub")).expect("dir");
    let respelled = dir.join("sub/../train.csv");
    let hard = dir.join("hard.csv");
    std::fs::hard_link(&data, &hard).expect("hard link");
    let link = dir.join("link.csv");
    std::os::unix::fs::symlink(&data, &link).expect("symlink");
    let init_png = dir.join("init-link.png");
    std::os::unix::fs::symlink(&init, &init_png).expect("symlink");
    let images = copy_of(
        &dir,
        &format!("{DATA}/mnist10k-test-images-idx3-ubyte.gz"),
        "t-images-idx3-ubyte.gz",
    );
    let labels = copy_of(
        &dir,
        &format!("{DATA}/mnist10k-test-labels-idx1-ubyte.gz"),
        "t-labels-idx1-ubyte.gz",
    );
    let files = [&data, &test, &as_png, &init, &images, &labels];
    let before = snapshot(&files);

    let out = |path: &Path| vec!["--out".to_string(), text(path)];
    let cases: Vec<(PathBuf, Vec<String>, &[&str])> = vec![
        (data.clone(), out(&data), &["same file as --data"]),
        (data.clone(), out(&respelled), &["same file as --data"]),
        (data.clone(), out(&hard), &["same file as --data"]),
        (data.clone(), out(&link), &["same file as --data"]),
        (
            data.clone(),
            [out(&test), vec!["--test-data".into(), text(&test)]].concat(),
            &["same file as --test-data"],
        ),
        (
            data.clone(),
            [out(&init), vec!["--init".into(), text(&init)]].concat(),
            &["same file as --init"],
        ),
        (
            as_png.clone(),
            vec!["--plot".into(), text(&as_png)],
            &["--plot", "same file as --data"],
        ),
        (
            data.clone(),
            [
                out(&dir.join("x.png")),
                vec!["--plot".into(), text(&dir.join("x.png"))],
            ]
            .concat(),
            &["--plot", "same file as --out"],
        ),
        (
            data.clone(),
            [out(&init), vec!["--plot".into(), text(&init_png)]].concat(),
            &["--plot", "same file as --out"],
        ),
        (
            images.clone(),
            out(&labels),
            &["same file as the labels file of --data"],
        ),
    ];
    for (input, extra, words) in cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let args = train_args(&input, &extra);
        failed(&strs(&args), &run_bounded(&args), words);
    }
    assert_eq!(snapshot(&files), before, "every input is unchanged");
    assert!(std::fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    assert!(!dir.join("x.png").exists(), "nothing was written");
}

#[test]
fn a_symbolic_link_is_followed_and_kept() {
    let dir = scratch("links");
    let data = copy_of(&dir, &iris(), "train.csv");
    let target = dir.join("real.safetensors");
    std::fs::write(&target, b"old").expect("write");
    let link = dir.join("model.safetensors");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    ok(&strs(&train_args(&data, &["--out", &text(&link)])));
    assert!(std::fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    let (network, _, _) = wgtrain::checkpoint::load(&target).expect("the target holds the model");
    assert_eq!(network.inputs(), 4);

    let dangling = dir.join("dangling.safetensors");
    std::os::unix::fs::symlink(dir.join("missing/nowhere"), &dangling).expect("symlink");
    let args = train_args(&data, &["--out", &text(&dangling)]);
    fails(&strs(&args), &["symbolic link to nothing"]);
    assert!(!dir.join("missing").exists());
}

#[test]
fn every_output_is_checked_before_training() {
    let dir = scratch("early");
    let data = copy_of(&dir, &iris(), "train.csv");
    let svg = dir.join("curves.svg");
    fails(
        &strs(&train_args(&data, &["--plot", &text(&svg)])),
        &["--plot", "curves.svg", ".png"],
    );
    let under_a_file = data.join("model.safetensors");
    fails(
        &strs(&train_args(&data, &["--out", &text(&under_a_file)])),
        &["train.csv", "directory"],
    );
    fails(&strs(&train_args(&data, &["--out", ""])), &["--out"]);
    for named_directory in [
        format!("{}/", dir.display()),
        "newd/".into(),
        "newd/.".into(),
    ] {
        fails(
            &strs(&train_args(&data, &["--out", &named_directory])),
            &["--out", "expected a file name, not a directory"],
        );
    }
    let dangling = dir.join("dangling-dir");
    std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).expect("symlink");
    fails(
        &strs(&train_args(
            &data,
            &["--out", &text(&dangling.join("m.safetensors"))],
        )),
        &["--out", "is not a directory"],
    );
    fails(
        &strs(&train_args(&data, &["--plot", &text(&dir.join(".png"))])),
        &["--plot", "needs a name before .png"],
    );
    assert!(!svg.exists());
}

#[test]
fn standard_input_reads_like_a_file() {
    let flags = ["--epochs", "3", "--device", "cpu", "--json"];
    let path = iris();
    let from_file: Vec<&str> = ["train", "--data", &path]
        .into_iter()
        .chain(flags)
        .collect();
    let from_file = report(&from_file);
    let args: Vec<&str> = ["train", "--data", "-"].into_iter().chain(flags).collect();
    let bytes = std::fs::read(iris()).expect("iris");
    let output = run_with(command(&args), Some(&bytes));
    let last = succeeded(&args, &output);
    let from_stdin: serde_json::Value =
        serde_json::from_str(last.lines().last().expect("a line")).expect("JSON");
    assert_eq!(from_stdin, from_file);

    let output = run_with(command(&args), Some(b""));
    failed(&args, &output, &["standard input", "empty"]);
    let twice = ["train", "--data", "-", "--test-data", "-"];
    let output = run_with(command(&twice), Some(&bytes));
    failed(&twice, &output, &["--test-data", "can be read only once"]);
    let output = run_with(command(&args), Some(b"a,b,y\n1,x,0\n2,3,1\n4,5,0\n"));
    failed(&args, &output, &["standard input", "line 2", "`x`"]);
}

#[test]
fn identical_runs_write_identical_files() {
    let dir = scratch("bytes");
    let runs: Vec<(PathBuf, PathBuf)> = (0..3)
        .map(|i| {
            let (model, plot) = (
                dir.join(format!("m{i}.safetensors")),
                dir.join(format!("p{i}.png")),
            );
            let mut args = train_args(Path::new(&iris()), &["--epochs", "3"]);
            args.extend(["--out".into(), text(&model), "--plot".into(), text(&plot)]);
            ok(&strs(&args));
            (model, plot)
        })
        .collect();
    let first = snapshot(&[&runs[0].0, &runs[0].1]);
    for (model, plot) in &runs[1..] {
        assert_eq!(snapshot(&[model, plot]), first, "{}", model.display());
    }
    // The metadata map is written in sorted key order (safetensors itself writes HashMap order).
    let bytes = &first[0];
    let header = String::from_utf8_lossy(&bytes[8..]);
    let (format, wgtrain) = (header.find("\"format\""), header.find("\"wgtrain\""));
    assert!(format.is_some() && format < wgtrain, "{header:.120}");
}

#[test]
fn successful_runs_print_no_error_lines() {
    let mut devices = vec!["cpu"];
    if have_fallback_adapter() {
        devices.push("fallback");
    }
    for device in devices {
        let args = [
            "train",
            "--data",
            &iris(),
            "--epochs",
            "1",
            "--device",
            device,
            "--quiet",
        ];
        let mut command = command(&args);
        for name in ["NODEVICE_SELECT", "XDG_RUNTIME_DIR", "WAYLAND_DISPLAY"] {
            command.env_remove(name);
        }
        let output = run_with(command, None);
        succeeded(&args, &output);
        let err = stderr(&output);
        assert!(
            !err.lines().any(|l| l.starts_with("error")),
            "{device}: {err}"
        );
    }
}

#[test]
fn standard_input_is_an_input_too() {
    let dir = scratch("stdin-out");
    let data = copy_of(&dir, &iris(), "piped.csv");
    let link = dir.join("fd0.png");
    std::os::unix::fs::symlink("/proc/self/fd/0", &link).expect("symlink");
    let before = snapshot(&[&data]);
    for extra in [
        vec!["--out", "/dev/stdin"],
        vec!["--out", "/proc/self/fd/0"],
        vec!["--plot", link.to_str().expect("path")],
    ] {
        let args: Vec<&str> = ["train", "--data", "-", "--epochs", "1", "--device", "cpu"]
            .into_iter()
            .chain(extra)
            .collect();
        let mut command = bounded(&args);
        command.stdin(std::fs::File::open(&data).expect("open"));
        let output = command.output().expect("run");
        failed(&args, &output, &["same file as --data -"]);
        assert_eq!(snapshot(&[&data]), before, "{args:?}");
    }
    // Through a pipe, /dev/stdin leads to the pipe itself.
    let args = [
        "train",
        "--data",
        "-",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        "/dev/stdin",
    ];
    let output = run_with(bounded(&args), Some(&before[0]));
    failed(&args, &output, &["/dev/stdin", "leads to a FIFO"]);
}

#[test]
fn a_failed_run_leaves_no_directories_behind() {
    let dir = scratch("no-dirs");
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "a,y\n1,0\nx,1\n").expect("write");
    let out = dir.join("new/deeper/model.safetensors");
    let plot = dir.join("other/plot.png");
    let args = train_args(&bad, &["--out", &text(&out), "--plot", &text(&plot)]);
    fails(&strs(&args), &["line 3", "`x`"]);
    assert!(!dir.join("new").exists() && !dir.join("other").exists());
}

#[test]
fn long_names_read_only_files_and_permissions() {
    let dir = scratch("names");
    let data = copy_of(&dir, &iris(), "train.csv");
    // A name at the file system's 255-byte limit: the temporary file's name must not be longer.
    let long = dir.join(format!("{}.safetensors", "m".repeat(243)));
    ok(&strs(&train_args(&data, &["--out", &text(&long)])));
    assert!(long.exists());

    use std::os::unix::fs::PermissionsExt;
    let read_only = dir.join("kept.safetensors");
    std::fs::write(&read_only, b"keep me").expect("write");
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    fails(
        &strs(&train_args(&data, &["--out", &text(&read_only)])),
        &["--out", "is read-only"],
    );
    assert_eq!(std::fs::read(&read_only).expect("read"), b"keep me");

    let shared = dir.join("shared.safetensors");
    std::fs::write(&shared, b"old").expect("write");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    ok(&strs(&train_args(&data, &["--out", &text(&shared)])));
    let mode = std::fs::metadata(&shared)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640, "the replaced file's permission bits are kept");
}

#[test]
fn a_failed_write_to_standard_output_is_an_error() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let args = [
        "train",
        "--data",
        &iris(),
        "--epochs",
        "1",
        "--device",
        "cpu",
    ];
    let mut command = bounded(&args);
    command.stdout(full);
    let output = command.output().expect("run");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.trim().starts_with("error: standard output:") && !err.contains("panicked"),
        "{err}"
    );
}
