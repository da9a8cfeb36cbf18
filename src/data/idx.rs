//! IDX, the MNIST format (optionally gzipped): an images file (`0x00000803`, n × rows × cols bytes) and its
//! labels file (`0x00000801`, n bytes), found by replacing `images-idx3` with `labels-idx1` in the name.

use super::{Dataset, Task};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// The bytes, gunzipped when they start with the gzip magic number; `path` names them in messages.
fn gunzip_if_needed(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::format(path, format!("corrupt gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Checks the magic number and header length; returns the dimensions and the payload.
fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    dims: usize,
) -> Result<(Vec<usize>, &'a [u8])> {
    let header = 4 + 4 * dims;
    if bytes.len() < header {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX header: {} bytes, expected at least {header}",
                bytes.len()
            ),
        ));
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(Error::format(
            path,
            format!("IDX magic number is {found:#010x}, expected {magic:#010x}"),
        ));
    }
    let shape: Vec<usize> = (0..dims)
        .map(|d| be_u32(bytes, 4 + 4 * d) as usize)
        .collect();
    let expected = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::format(path, format!("IDX dimensions {shape:?} are too large")))?;
    let payload = &bytes[header..];
    if payload.len() < expected {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX data: {} bytes, expected {expected} for shape {shape:?}",
                payload.len()
            ),
        ));
    }
    Ok((shape, &payload[..expected]))
}

/// The labels file that belongs to an images file.
pub fn labels_path(images: &Path) -> Result<PathBuf> {
    let name = images
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains("images-idx3") {
        return Err(Error::value(
            "IDX data",
            format!("{}: name the images file (containing `images-idx3`); its labels file is found from it", images.display()),
        ));
    }
    Ok(images.with_file_name(name.replacen("images-idx3", "labels-idx1", 1)))
}

/// Loads images (pixels scaled to [0, 1]) and labels. Classes are the label values `0..=max`, or, when
/// `classes` is given, those names (a label must be one of them).
pub fn load_idx(images_path: &Path, classes: Option<&[String]>) -> Result<Dataset> {
    let labels_path = labels_path(images_path)?;
    let images = std::fs::read(images_path).map_err(|e| Error::file(images_path, e))?;
    let labels = std::fs::read(&labels_path).map_err(|e| Error::file(&labels_path, e))?;
    parse_idx((images_path, images), (&labels_path, labels), classes)
}

/// [`load_idx`] on the two files' bytes (each optionally gzipped); the paths name them in messages.
pub fn parse_idx(
    (images_path, images): (&Path, Vec<u8>),
    (labels_path, labels): (&Path, Vec<u8>),
    classes: Option<&[String]>,
) -> Result<Dataset> {
    let labels_path = labels_path.to_path_buf();
    let image_bytes = gunzip_if_needed(images_path, images)?;
    let label_bytes = gunzip_if_needed(&labels_path, labels)?;
    let (shape, pixels) = parse(images_path, &image_bytes, IMAGES_MAGIC, 3)?;
    let (label_shape, labels) = parse(&labels_path, &label_bytes, LABELS_MAGIC, 1)?;
    if shape[0] != label_shape[0] {
        return Err(Error::format(
            &labels_path,
            format!(
                "{} labels for {} images in {}",
                label_shape[0],
                shape[0],
                images_path.display()
            ),
        ));
    }
    if shape[0] == 0 || shape[1].saturating_mul(shape[2]) == 0 {
        return Err(Error::format(images_path, "no images"));
    }
    let class_names: Vec<String> = match classes {
        Some(names) => names.to_vec(),
        None => (0..=labels.iter().copied().max().unwrap_or(0))
            .map(|l| l.to_string())
            .collect(),
    };
    let targets = labels
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            super::class_index(&class_names, &label.to_string())
                .map(|c| c as f32)
                .ok_or_else(|| {
                    Error::format(
                        &labels_path,
                        format!("label {label} of image {} was not seen in training", i + 1),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    if class_names.len() < 2 {
        return Err(Error::format(
            &labels_path,
            "a single class; classification needs at least 2",
        ));
    }
    Ok(Dataset {
        features: pixels.iter().map(|&p| f32::from(p) / 255.0).collect(),
        feature_names: (0..shape[1] * shape[2])
            .map(|i| format!("pixel{i}"))
            .collect(),
        target_name: "label".into(),
        targets,
        task: Task::Classify,
        class_names,
    })
}
