//! Files the engine writes. An output is checked before any work starts (it is not a device, directory,
//! FIFO or socket; not one of the inputs; not named twice; its format known; its directory writable) and
//! written atomically: bytes go to a new temporary file beside it, which is synced and renamed over it, so a
//! crash or a failed write leaves the previous file whole. A symbolic link is followed: its target is
//! replaced and the link stays; a link to nothing is refused.

use crate::error::{Error, Result};
use std::fs::{File, Metadata, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Standard input where a data path is expected (`--data -`).
pub const STDIN: &str = "-";

/// Whether `path` means standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == STDIN
}

/// A file the caller will write, named by the flag (or role) that chose it.
#[derive(Clone, Copy, Debug)]
pub struct Output<'a> {
    pub flag: &'a str,
    pub path: &'a Path,
    /// The file name extension the writer needs (lower case, no dot), if it needs one.
    pub extension: Option<&'a str>,
}

/// A file the caller reads, named by its flag.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub flag: &'a str,
    pub path: &'a Path,
}

fn kind(meta: &Metadata) -> &'static str {
    let file_type = meta.file_type();
    if file_type.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// The file an output path will replace: the path itself, or the target of a symbolic link. Anything but a
/// regular file or a path that does not exist yet is refused.
pub fn resolve_output(path: &Path) -> Result<PathBuf> {
    let link = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => return Err(Error::file(path, e)),
        Ok(meta) => meta,
    };
    let (target, meta) = if link.file_type().is_symlink() {
        let target = match std::fs::canonicalize(path) {
            Ok(target) => target,
            // A link to something without a path, such as a pipe (`/dev/fd/63`, `/dev/stdin`).
            Err(_) => match std::fs::metadata(path) {
                Ok(meta) => {
                    return Err(Error::file(
                        path,
                        format!("leads to {}; refusing to replace it", kind(&meta)),
                    ))
                }
                Err(_) => {
                    return Err(Error::file(
                        path,
                        "is a symbolic link to nothing (a missing target or a loop); refusing to write through it",
                    ))
                }
            },
        };
        let meta = std::fs::metadata(&target).map_err(|e| Error::file(&target, e))?;
        (target, meta)
    } else {
        (path.to_path_buf(), link)
    };
    if !meta.is_file() {
        return Err(Error::file(
            path,
            format!(
                "exists and is {}; refusing to replace it (expected a regular file or a new name)",
                kind(&meta)
            ),
        ));
    }
    if meta.permissions().readonly() {
        return Err(Error::file(
            path,
            "is read-only; refusing to replace it (make it writable first)",
        ));
    }
    Ok(target)
}

/// What an input path reads: the file (or pipe) behind standard input for `-`, else the path's target.
pub fn input_metadata(path: &Path) -> Option<Metadata> {
    if is_stdin(path) {
        stdin_metadata()
    } else {
        std::fs::metadata(path).ok()
    }
}

/// Two metadata of the same file (the same device and inode; elsewhere the same length and times).
pub fn same_file(a: &Metadata, b: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        a.len() == b.len()
            && a.modified().ok() == b.modified().ok()
            && a.created().ok() == b.created().ok()
    }
}

/// What standard input is open on (a file, a pipe), from a duplicate of its descriptor.
fn stdin_metadata() -> Option<Metadata> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
        File::from(fd).metadata().ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// A regular file's metadata, taken before opening it, so a FIFO (whose open would wait for a writer) or
/// a device is refused instead of read. `what` says what was expected, e.g. `a safetensors file`.
pub fn regular_file(path: &Path, what: &str) -> Result<Metadata> {
    if is_stdin(path) {
        return Err(Error::file(
            path,
            format!("standard input is not read here; expected the path of {what}"),
        ));
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::file(path, e))?;
    if !meta.is_file() {
        return Err(Error::file(
            path,
            format!("is {}, expected {what}", kind(&meta)),
        ));
    }
    Ok(meta)
}

/// `path` made absolute with the symbolic links of its existing part resolved, for comparing names of files
/// that may not exist yet; `existing` is its nearest existing ancestor directory.
fn absolute_name(path: &Path, existing: &Path) -> Result<PathBuf> {
    let base = std::fs::canonicalize(existing).map_err(|e| Error::file(existing, e))?;
    let rest = path.strip_prefix(existing).unwrap_or(path);
    // The rest does not exist yet, so `..` is resolved by name, as it will be once its directories are made.
    let mut name = base;
    for part in rest.components() {
        match part {
            std::path::Component::ParentDir => {
                name.pop();
            }
            std::path::Component::Normal(p) => name.push(p),
            _ => {}
        }
    }
    Ok(name)
}

/// Checks every output before work starts (see the module docs); creates nothing.
pub fn check_outputs(outputs: &[Output], inputs: &[Input]) -> Result<()> {
    // Standard input counts as the file (or pipe) behind it: `--out /dev/stdin` must not replace it.
    let input_files: Vec<(&Input, Metadata)> = inputs
        .iter()
        .filter_map(|i| input_metadata(i.path).map(|m| (i, m)))
        .collect();
    let mut seen: Vec<(&Output, PathBuf, Option<Metadata>)> = Vec::new();
    for output in outputs {
        let path = output.path;
        let named =
            |message: String| Error::value(output.flag, format!("{}: {message}", path.display()));
        // `dir/` and `dir/.` name directories (Rust's `file_name` would quietly drop the slash).
        let text = path.as_os_str().to_string_lossy();
        let last = text
            .rsplit(['/', std::path::MAIN_SEPARATOR])
            .next()
            .unwrap_or("");
        let names_a_directory = matches!(last, "" | "." | "..");
        if is_stdin(path) || path.file_name().is_none() || names_a_directory {
            return Err(named("expected a file name, not a directory".into()));
        }
        if let Some(wanted) = output.extension {
            let found = path
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            let stem = path.file_stem().map(|s| s.to_string_lossy().to_lowercase());
            if stem.as_deref() == Some(&format!(".{wanted}")) {
                return Err(named(format!("needs a name before .{wanted}")));
            }
            if found != wanted {
                return Err(named(format!(
                    "the file name must end in .{wanted}, the only format written here"
                )));
            }
        }
        let target = resolve_output(path).map_err(|e| match e {
            Error::File { message, .. } => named(message),
            other => other,
        })?;
        let existing = std::fs::metadata(&target).ok();
        if let Some(meta) = &existing {
            if let Some((input, _)) = input_files.iter().find(|(_, m)| same_file(m, meta)) {
                return Err(named(format!(
                    "is the same file as {} {}; refusing to overwrite an input",
                    input.flag,
                    input.path.display()
                )));
            }
        }
        let dir = target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Missing directories are made when the file is written; now their nearest existing ancestor must
        // be a directory we can write in, so a run that fails later leaves no empty directories behind.
        let existing_dir = dir
            .ancestors()
            .find(|d| d.as_os_str().is_empty() || std::fs::symlink_metadata(d).is_ok())
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .unwrap_or(Path::new("."));
        if !existing_dir.is_dir() {
            return Err(named(format!(
                "its directory cannot be made: {} is not a directory",
                existing_dir.display()
            )));
        }
        probe_writable(existing_dir).map_err(|e| named(e.to_string()))?;
        let name = absolute_name(&target, existing_dir)?;
        for (other, other_name, other_meta) in &seen {
            let same = *other_name == name
                || matches!((&existing, other_meta), (Some(a), Some(b)) if same_file(a, b));
            if same {
                return Err(named(format!(
                    "is the same file as {} {}; each output needs its own file",
                    other.flag,
                    other.path.display()
                )));
            }
        }
        seen.push((output, name, existing));
    }
    Ok(())
}

/// Creates and removes a temporary file in `dir`, so an unwritable directory is found before training.
fn probe_writable(dir: &Path) -> Result<()> {
    let (probe, file) = create_temp(&dir.join("wgtrain-probe"))
        .map_err(|e| Error::file(dir, format!("cannot write in this directory: {e}")))?;
    drop(file);
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// A new file `.wgtrain-PID-N.tmp` beside `path`, created exclusively so nothing existing is touched. The
/// name is short, so a target whose name is near the file system's limit still has room for it.
fn create_temp(path: &Path) -> std::io::Result<(PathBuf, File)> {
    let mut attempt = 0u32;
    loop {
        let temp = path.with_file_name(format!(".wgtrain-{}-{attempt}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over `path` (over the target
/// when `path` is a symbolic link). Refuses paths that are not regular files, like [`check_outputs`].
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |file| file.write_all(bytes))
}

/// [`write_atomically`] with the writing step given, so tests can make it fail part-way.
pub(crate) fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    let target = resolve_output(path)?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    }
    let (temp, mut file) =
        create_temp(&target).map_err(|e| Error::file(path, format!("could not write: {e}")))?;
    // The replacement keeps the replaced file's permission bits.
    let permissions = std::fs::metadata(&target).ok().map(|m| m.permissions());
    let written = write(&mut file)
        .and_then(|()| match permissions {
            Some(p) => file.set_permissions(p),
            None => Ok(()),
        })
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            std::fs::rename(&temp, &target)
        });
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        Error::file(path, format!("could not write: {e}"))
    })
}
