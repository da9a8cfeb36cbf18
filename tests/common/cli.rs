//! Driving the `wgtrain` binary as a user would, for the command-line tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

pub fn iris() -> String {
    format!("{DATA}/iris.csv")
}

/// `train` on `data` on the CPU backend, one epoch unless `extra` sets `--epochs`, then `extra`.
pub fn train_cpu(data: &str, extra: &[&str]) -> Vec<String> {
    let epochs: &[&str] = if extra.contains(&"--epochs") {
        &[]
    } else {
        &["--epochs", "1"]
    };
    ["train", "--data", data, "--device", "cpu"]
        .iter()
        .chain(epochs)
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgtrain-t-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The binary with a clean device environment (no `WGTRAIN_DEVICE`; Mesa's device-select layer off).
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wgtrain"));
    command
        .args(args)
        .env("NODEVICE_SELECT", "1")
        .env_remove("WGTRAIN_DEVICE");
    command
}

/// Runs `command`, feeding `stdin` when given.
pub fn run_with(mut command: Command, stdin: Option<&[u8]>) -> Output {
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("run wgtrain");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        // The process may stop reading early (a failed check); a broken pipe is not the test's failure.
        let _ = pipe.write_all(bytes);
    }
    child.wait_with_output().expect("wait for wgtrain")
}

/// The binary under coreutils' `timeout` (120 s), so a run that would block (on a FIFO, say) fails the
/// test instead of hanging it.
pub fn bounded(args: &[&str]) -> Command {
    let mut command = Command::new("timeout");
    command
        .arg("120")
        .arg(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .env("NODEVICE_SELECT", "1")
        .env_remove("WGTRAIN_DEVICE");
    command
}

pub fn run(args: &[&str]) -> Output {
    run_with(command(args), None)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Checks that `output` succeeded and returns its stdout.
#[track_caller]
pub fn succeeded(args: &[&str], output: &Output) -> String {
    assert!(
        output.status.success(),
        "wgtrain {args:?} failed: {}",
        stderr(output)
    );
    stdout(output)
}

#[track_caller]
pub fn ok(args: &[&str]) -> String {
    succeeded(args, &run(args))
}

/// The JSON object on the last stdout line of a run that must succeed.
#[track_caller]
pub fn report(args: &[&str]) -> serde_json::Value {
    let out = ok(args);
    let last = out.lines().last().expect("some output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

/// Exit code 2, exactly one stderr line, starting `error:` and containing every word; returns the line.
#[track_caller]
pub fn failed(args: &[&str], output: &Output, words: &[&str]) -> String {
    let err = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "wgtrain {args:?}: expected exit 2, stderr: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "wgtrain {args:?}: expected one line: {lines:?}"
    );
    let line = lines[0];
    assert!(line.starts_with("error:"), "{line}");
    assert!(line.len() < 600, "an error line of {} bytes", line.len());
    for word in words {
        assert!(line.contains(word), "`{line}` lacks `{word}`");
    }
    assert!(
        stdout(output).is_empty(),
        "nothing on stdout: {}",
        stdout(output)
    );
    line.to_string()
}

#[track_caller]
pub fn fails(args: &[&str], words: &[&str]) -> String {
    failed(args, &run(args), words)
}

/// The bytes of each file, to compare before and after a run.
pub fn snapshot<P: AsRef<Path>>(paths: &[P]) -> Vec<Vec<u8>> {
    paths
        .iter()
        .map(|p| {
            let p = p.as_ref();
            std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        })
        .collect()
}

pub fn text(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_string()
}

/// Whether a wgpu adapter exists for `--device fallback`; under `CI=true` a missing one fails.
pub fn have_fallback_adapter() -> bool {
    match wgtrain::gpu::fallback_adapter() {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but no wgpu adapter was found ({e}); GPU tests must run in CI");
            }
            eprintln!("SKIPPED: no wgpu adapter ({e})");
            false
        }
    }
}
