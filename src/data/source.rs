//! Where data is read from (a file, or standard input for `-`), and a tap on the bytes that lets the CSV
//! reader tell the physical line of each record and refuse a record longer than its limit.

use crate::error::{Error, Result};
use crate::files::is_stdin;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

/// Bytes the CSV reader may hold beyond one record (its own buffer is 8 KiB).
const READ_AHEAD: usize = 64 * 1024;

/// How `path` is named in messages: `standard input` for `-`.
pub(crate) fn display_name(path: &Path) -> &Path {
    if is_stdin(path) {
        Path::new("standard input")
    } else {
        path
    }
}

/// The file at `path`, or standard input when `path` is `-`.
pub(crate) fn open(path: &Path) -> Result<Box<dyn Read>> {
    if is_stdin(path) {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    let meta = file.metadata().map_err(|e| Error::file(path, e))?;
    if meta.is_dir() {
        return Err(Error::file(path, "is a directory, expected a data file"));
    }
    Ok(Box::new(std::io::BufReader::new(file)))
}

/// Line ends in `bytes`: `\n`, `\r\n` and a lone `\r` (old Mac files) each count once. A `\r` at the end
/// counts: callers only pass one that is followed by something other than `\n`.
fn line_ends(bytes: impl Iterator<Item = u8>) -> u64 {
    let (mut ends, mut after_cr) = (0, false);
    for b in bytes {
        match b {
            b'\n' => ends += 1,
            _ if after_cr => ends += 1,
            _ => {}
        }
        after_cr = b == b'\r';
    }
    if after_cr {
        ends += 1;
    }
    ends
}

#[derive(Default)]
struct Window {
    /// Bytes read but not yet passed by [`Tape::consume_to`].
    bytes: VecDeque<u8>,
    /// Offset in the input of `bytes[0]`.
    start: u64,
    /// Newlines before `start`.
    lines: u64,
    limit: usize,
    too_long: bool,
}

/// The reader side of a tap: hands bytes to the CSV reader and keeps them until consumed.
pub(crate) struct Tap<R> {
    inner: R,
    window: Rc<RefCell<Window>>,
}

/// The caller's side: the line of the record being read, and how far the reader has got.
pub(crate) struct Tape {
    window: Rc<RefCell<Window>>,
}

/// A tap on `input` that fails a read once one record would exceed `max_record_bytes`.
pub(crate) fn tap<R: Read>(input: R, max_record_bytes: usize) -> (Tap<R>, Tape) {
    let window = Rc::new(RefCell::new(Window {
        limit: max_record_bytes.saturating_add(READ_AHEAD),
        ..Window::default()
    }));
    (
        Tap {
            inner: input,
            window: Rc::clone(&window),
        },
        Tape { window },
    )
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut window = self.window.borrow_mut();
        let room = window.limit.saturating_sub(window.bytes.len());
        if room == 0 {
            window.too_long = true;
            return Err(std::io::Error::other("record too long"));
        }
        let n = buf.len().min(room);
        let read = self.inner.read(&mut buf[..n])?;
        window.bytes.extend(&buf[..read]);
        Ok(read)
    }
}

impl Tape {
    /// Where the record that starts at the consumed offset begins: its physical line (from 1) and input
    /// offset, past any line ends the CSV reader skipped before it (blank lines, the `\n` of a `\r\n`).
    pub(crate) fn next_record(&self) -> (u64, u64) {
        let window = self.window.borrow();
        let run = window
            .bytes
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let skipped = line_ends(window.bytes.range(..run).copied());
        (window.lines + skipped + 1, window.start + run as u64)
    }

    /// Drops the bytes before input offset `offset`, counting their line ends. A `\r` that would be the
    /// last byte dropped stays, so whether a `\n` follows it is known when it is counted.
    pub(crate) fn consume_to(&self, offset: u64) {
        let mut window = self.window.borrow_mut();
        let mut n = (offset.saturating_sub(window.start) as usize).min(window.bytes.len());
        if n > 0 && window.bytes[n - 1] == b'\r' {
            n -= 1;
        }
        let ends = line_ends(window.bytes.range(..n).copied());
        window.bytes.drain(..n);
        window.lines += ends;
        window.start += n as u64;
    }

    /// Whether the record in input offsets `[start, end)` ends inside a quoted field, read as the CSV
    /// reader does: a quote opens a field only as its first byte, and `""` inside one is a quote.
    pub(crate) fn ends_inside_quotes(&self, start: u64, end: u64) -> bool {
        let window = self.window.borrow();
        let from = (start.saturating_sub(window.start) as usize).min(window.bytes.len());
        let to = (end.saturating_sub(window.start) as usize).min(window.bytes.len());
        let mut bytes = window.bytes.range(from..to).copied().peekable();
        let (mut quoted, mut field_start) = (false, true);
        while let Some(b) = bytes.next() {
            if quoted {
                if b == b'"' {
                    if bytes.peek() == Some(&b'"') {
                        bytes.next();
                    } else {
                        quoted = false;
                    }
                }
            } else {
                quoted = field_start && b == b'"';
                field_start = b == b',';
            }
        }
        quoted
    }

    /// Quote characters between the consumed offset and input offset `end`.
    pub(crate) fn quotes_before(&self, end: u64) -> usize {
        let window = self.window.borrow();
        let n = (end.saturating_sub(window.start) as usize).min(window.bytes.len());
        window.bytes.range(..n).filter(|&&b| b == b'"').count()
    }

    /// Whether a read failed because one record passed the limit.
    pub(crate) fn too_long(&self) -> bool {
        self.window.borrow().too_long
    }
}
