//! The columns of a CSV file, decided from its header by name, and its field separator.

use crate::error::{quote, Error, Result};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The field separator of a file whose header line is at the start of `head` (or is `head`'s first bytes):
/// a comma when the line has one; otherwise a semicolon or a tab when exactly one of the two appears in
/// it; otherwise a comma. Data rows are not looked at: decimal commas (`1,5;2,3`) do not fool it.
pub(super) fn sniff_delimiter(head: &[u8]) -> u8 {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let has = |d: u8| line.contains(&d);
    match (has(b','), has(b';'), has(b'\t')) {
        (true, _, _) => b',',
        (false, true, false) => b';',
        (false, false, true) => b'\t',
        _ => b',',
    }
}

/// Where each column goes, decided from the header.
pub(super) struct Columns {
    pub header: Vec<String>,
    /// Header index of each feature, in feature order.
    pub features: Vec<usize>,
    pub target: Option<usize>,
    pub ignored: Vec<String>,
}

/// Checks the header (distinct names) and maps the wanted columns by name.
pub(super) fn columns(
    path: &Path,
    header_line: u64,
    header: Vec<String>,
    target: Option<&str>,
    need_target: bool,
    features: Option<&[String]>,
    ignore: &[String],
) -> Result<Columns> {
    if header.iter().all(String::is_empty) {
        return Err(Error::format(
            path,
            "the file is empty (expected a header row)",
        ));
    }
    // Names to positions once, so wide files (100k columns) cost linear time.
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        if name.is_empty() {
            return Err(Error::format(
                path,
                format!(
                    "line {header_line}: column {} has no name (a trailing comma?); every column needs one",
                    i + 1
                ),
            ));
        }
        if let Some(j) = index.insert(name, i) {
            return Err(Error::format(
                path,
                format!(
                    "line {header_line}: column name {} appears twice (columns {} and {}); names must be distinct",
                    quote(name),
                    j + 1,
                    i + 1
                ),
            ));
        }
    }
    let find = |name: &str| index.get(name).copied();
    let target = match target {
        Some(name) => match find(name) {
            Some(i) => Some(i),
            None if need_target => {
                return Err(Error::value(
                    "target",
                    format!(
                        "no column {} in {} (columns: {})",
                        quote(name),
                        path.display(),
                        list(&header)
                    ),
                ))
            }
            None => None,
        },
        None if need_target => Some(header.len() - 1),
        None => None,
    };
    // Columns left out on request: each must exist and must not be the target.
    let mut left_out = HashSet::with_capacity(ignore.len());
    for name in ignore {
        let i = find(name).ok_or_else(|| {
            Error::value(
                "ignore",
                format!(
                    "no column {} in {} (columns: {})",
                    quote(name),
                    path.display(),
                    list(&header)
                ),
            )
        })?;
        if Some(i) == target {
            return Err(Error::value(
                "ignore",
                format!("{} is the target column", quote(name)),
            ));
        }
        left_out.insert(i);
    }
    let (features, ignored) = match features {
        Some(wanted) => {
            let mut indices = Vec::with_capacity(wanted.len());
            for name in wanted {
                let i = find(name).ok_or_else(|| {
                    Error::format(
                        path,
                        format!(
                            "no column {}, a feature of the model (columns: {})",
                            quote(name),
                            list(&header)
                        ),
                    )
                })?;
                if Some(i) == target {
                    return Err(Error::value(
                        "target",
                        format!(
                            "{} is one of the model's feature columns, not its target",
                            quote(name)
                        ),
                    ));
                }
                if left_out.contains(&i) {
                    return Err(Error::value(
                        "ignore",
                        format!("{} is also one of the features asked for", quote(name)),
                    ));
                }
                indices.push(i);
            }
            let used: HashSet<usize> = indices.iter().copied().collect();
            let ignored = (0..header.len())
                .filter(|i| Some(*i) != target && !used.contains(i))
                .map(|i| header[i].clone())
                .collect();
            (indices, ignored)
        }
        None => (
            (0..header.len())
                .filter(|&i| Some(i) != target && !left_out.contains(&i))
                .collect(),
            ignore.to_vec(),
        ),
    };
    if features.is_empty() {
        let separator = [';', '\t', '|']
            .into_iter()
            .find(|c| header.len() == 1 && header[0].contains(*c));
        let hint = match separator {
            Some(c) => format!(
                " (the header seems separated by `{}`; name the separator with --delimiter)",
                c.escape_default()
            ),
            None => String::new(),
        };
        return Err(Error::format(
            path,
            format!("only a target column, no feature columns{hint}"),
        ));
    }
    Ok(Columns {
        header,
        features,
        target,
        ignored,
    })
}

/// Up to ten column names, quoted, for a message.
pub(super) fn list(names: &[String]) -> String {
    let mut shown: Vec<String> = names.iter().take(10).map(|n| quote(n)).collect();
    if names.len() > 10 {
        shown.push(format!("… {} in all", names.len()));
    }
    shown.join(", ")
}
