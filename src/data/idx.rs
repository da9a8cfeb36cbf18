//! IDX, the MNIST format (optionally gzipped): an images file (`0x00000803`, n × rows × cols bytes) and its
//! labels file (`0x00000801`, n bytes), found by replacing `images-idx3` with `labels-idx1` in the name.

use super::{Dataset, Task};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Most bytes one byte of a deflate stream can expand to (RFC 1951's longest match per code, ~1032:1).
const MAX_GZIP_RATIO: u64 = 1032;

/// Reads one IDX file from `input` (gunzipped when it starts with the gzip magic number): checks the magic
/// number, then the size the header claims against what `input_len` bytes can hold, before allocating.
/// Without `payload`, stops after those checks and returns the shape alone.
fn read_idx(
    path: &Path,
    mut input: impl Read,
    input_len: u64,
    magic: u32,
    dims: usize,
    payload: bool,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let mut first = Vec::with_capacity(2);
    (&mut input)
        .take(2)
        .read_to_end(&mut first)
        .map_err(|e| Error::file(path, e))?;
    let gzip = first == [0x1f, 0x8b];
    let joined = std::io::Cursor::new(first).chain(input);
    let (mut reader, most): (Box<dyn Read + '_>, u64) = if gzip {
        // Every member of the stream: a second gzip member appended is data too, and is refused below.
        let reader = flate2::read::MultiGzDecoder::new(joined);
        (Box::new(reader), input_len.saturating_mul(MAX_GZIP_RATIO))
    } else {
        (Box::new(joined), input_len)
    };
    let io = |e: std::io::Error| {
        if gzip && e.kind() != std::io::ErrorKind::UnexpectedEof {
            Error::format(path, format!("corrupt gzip stream: {e}"))
        } else {
            Error::file(path, e)
        }
    };
    let header_len = 4 + 4 * dims;
    let mut header = Vec::with_capacity(header_len);
    (&mut reader)
        .take(header_len as u64)
        .read_to_end(&mut header)
        .map_err(io)?;
    if header.len() < header_len {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX header: {} bytes, expected at least {header_len}",
                header.len()
            ),
        ));
    }
    let found = be_u32(&header, 0);
    if found != magic {
        return Err(Error::format(
            path,
            format!("IDX magic number is {found:#010x}, expected {magic:#010x}"),
        ));
    }
    let shape: Vec<usize> = (0..dims)
        .map(|d| be_u32(&header, 4 + 4 * d) as usize)
        .collect();
    let expected = shape.iter().map(|&d| d as u128).product::<u128>();
    let available = u128::from(most.saturating_sub(header_len as u64));
    if expected > available {
        let message = if gzip {
            format!(
                "the header's shape {shape:?} needs {expected} bytes, more than a gzip stream of {input_len} bytes can hold"
            )
        } else {
            format!(
                "truncated IDX data: {available} bytes after the header, expected {expected} for shape {shape:?}"
            )
        };
        return Err(Error::format(path, message));
    }
    // The payload, and the f32 features made from it: checked against the host before either exists.
    if !payload {
        return Ok((shape, Vec::new()));
    }
    // A feature name (`pixelN`) per pixel of an image too: about 40 bytes each.
    let names = if dims == 3 {
        shape[1] as u128 * shape[2] as u128 * 40
    } else {
        0
    };
    if let Some(available) = crate::memory::host_available_bytes() {
        if expected * 5 + names > u128::from(available) {
            return Err(Error::Memory(format!(
                "{}: the header's shape {shape:?} needs {} as bytes and 32-bit floats, but the host has {} available",
                path.display(),
                crate::memory::human_bytes(expected * 5 + names),
                crate::memory::human_bytes(available.into())
            )));
        }
    }
    let expected = expected as usize;
    let mut payload = Vec::new();
    payload.try_reserve_exact(expected).map_err(|_| {
        Error::Memory(format!(
            "{}: IDX data of {} does not fit in memory",
            path.display(),
            crate::memory::human_bytes(expected as u128)
        ))
    })?;
    (&mut reader)
        .take(expected as u64)
        .read_to_end(&mut payload)
        .map_err(io)?;
    if payload.len() < expected {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX data: {} bytes, expected {expected} for shape {shape:?}",
                payload.len()
            ),
        ));
    }
    // Anything after the data (junk, padding, a second gzip member) is refused, however it reads.
    let mut more = [0u8; 1];
    if !matches!(reader.read(&mut more), Ok(0)) {
        return Err(Error::format(
            path,
            format!("more data than the header's shape {shape:?} describes ({expected} bytes after the header)"),
        ));
    }
    Ok((shape, payload))
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Opens an IDX file and reads it with [`read_idx`]; the file's length bounds what its header may claim.
fn read_idx_file(path: &Path, magic: u32, dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let meta = crate::files::regular_file(path, "an IDX file")?;
    let file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    read_idx(
        path,
        std::io::BufReader::new(file),
        meta.len(),
        magic,
        dims,
        true,
    )
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
    let images = read_idx_file(images_path, IMAGES_MAGIC, 3)?;
    let labels = read_idx_file(&labels_path, LABELS_MAGIC, 1)?;
    dataset(images_path, images, &labels_path, labels, classes)
}

/// The images of an IDX file without labels (for prediction): pixels scaled to [0, 1], and the pixels per
/// image.
pub fn load_idx_images(images_path: &Path) -> Result<(Vec<f32>, usize)> {
    let (shape, pixels) = read_idx_file(images_path, IMAGES_MAGIC, 3)?;
    if shape[0] == 0 || shape[1].saturating_mul(shape[2]) == 0 {
        return Err(Error::format(images_path, "no images"));
    }
    Ok((scaled(images_path, shape[0], &pixels)?, shape[1] * shape[2]))
}

/// Pixels per image of an IDX images file, from its header alone (checked like a full read).
pub fn idx_image_size(images_path: &Path) -> Result<usize> {
    idx_image_shape(images_path).map(|(rows, cols)| rows.saturating_mul(cols))
}

/// Rows and columns of one image of an IDX images file, from its header alone (checked like a full read).
pub fn idx_image_shape(images_path: &Path) -> Result<(usize, usize)> {
    let meta = crate::files::regular_file(images_path, "an IDX file")?;
    let file = std::fs::File::open(images_path).map_err(|e| Error::file(images_path, e))?;
    let (shape, _) = read_idx(
        images_path,
        std::io::BufReader::new(file),
        meta.len(),
        IMAGES_MAGIC,
        3,
        false,
    )?;
    Ok((shape[1], shape[2]))
}

/// Pixels as f32 in [0, 1], reserved fallibly.
fn scaled(path: &Path, images: usize, pixels: &[u8]) -> Result<Vec<f32>> {
    let mut features = Vec::new();
    features.try_reserve_exact(pixels.len()).map_err(|_| {
        Error::Memory(format!(
            "{}: {images} images as 32-bit floats do not fit in memory",
            path.display()
        ))
    })?;
    features.extend(pixels.iter().map(|&p| f32::from(p) / 255.0));
    Ok(features)
}

/// [`load_idx`] on the two files' bytes (each optionally gzipped); the paths name them in messages.
pub fn parse_idx(
    (images_path, images): (&Path, Vec<u8>),
    (labels_path, labels): (&Path, Vec<u8>),
    classes: Option<&[String]>,
) -> Result<Dataset> {
    let read = |path: &Path, bytes: &[u8], magic: u32, dims: usize| {
        read_idx(path, bytes, bytes.len() as u64, magic, dims, true)
    };
    let image_data = read(images_path, &images, IMAGES_MAGIC, 3)?;
    let label_data = read(labels_path, &labels, LABELS_MAGIC, 1)?;
    dataset(images_path, image_data, labels_path, label_data, classes)
}

fn dataset(
    images_path: &Path,
    (shape, pixels): (Vec<usize>, Vec<u8>),
    labels_path: &Path,
    (label_shape, labels): (Vec<usize>, Vec<u8>),
    classes: Option<&[String]>,
) -> Result<Dataset> {
    if shape[0] != label_shape[0] {
        return Err(Error::format(
            labels_path,
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
    let index = super::ClassIndex::new(&class_names);
    let targets = labels
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            index
                .get(&label.to_string())
                .map(|c| c as f32)
                .ok_or_else(|| {
                    Error::format(
                        labels_path,
                        format!("label {label} of image {} was not seen in training", i + 1),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    if class_names.len() < 2 {
        return Err(Error::format(
            labels_path,
            "a single class; classification needs at least 2",
        ));
    }
    let features = scaled(images_path, shape[0], &pixels)?;
    Ok(Dataset {
        features,
        feature_names: (0..shape[1] * shape[2])
            .map(|i| format!("pixel{i}"))
            .collect(),
        target_name: "label".into(),
        targets,
        task: Task::Classify,
        class_names,
        ignored_columns: Vec::new(),
        lines: Vec::new(),
        categories: Vec::new(),
        dropped_rows: 0,
    })
}
