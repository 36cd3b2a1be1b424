//! Reads records in sequence order across segment files, for replay and for a reader that has fallen
//! behind the writer. Only the caller knows how far the log is committed; the cursor treats the end of
//! the newest segment as "not yet", and skips to the next segment when an older one is damaged.

use super::record::Record;
use super::segment::{self, ReadStop};
use std::fs::File;
use std::path::PathBuf;

pub struct Cursor {
    dir: PathBuf,
    open: Option<Open>,
    /// Records skipped because their bytes were damaged (a later segment was found past them).
    pub skipped_segments: u64,
}

struct Open {
    file: File,
    first_seq: u64,
    offset: u64,
    /// The file's length when last looked at; looked at again only when reading reaches it.
    len: u64,
}

/// What [`Cursor::next`] found.
#[derive(Debug)]
pub enum Next {
    Record(Record),
    /// Nothing at or after the wanted sequence number yet.
    NotYet,
}

impl Cursor {
    pub fn new(dir: PathBuf) -> Self {
        Cursor {
            dir,
            open: None,
            skipped_segments: 0,
        }
    }

    /// The first record with sequence number `>= want`. Damaged bytes in a segment that has a
    /// successor are skipped (the successor is where writing continued); in the newest segment they
    /// are the part not written yet.
    pub fn next(&mut self, want: u64) -> std::io::Result<Next> {
        let reopen = self.open.as_ref().is_none_or(|o| o.first_seq > want);
        if reopen && !self.open_segment_for(want)? {
            return Ok(Next::NotYet);
        }
        let mut jumped = false;
        loop {
            let Some(open) = self.open.as_mut() else {
                return Ok(Next::NotYet);
            };
            if open.offset + (super::record::HEADER as u64) > open.len {
                open.len = open.file.metadata()?.len();
            }
            let stop = match segment::read_header(&open.file, open.offset, open.len) {
                Ok((h, _)) if h.seq < want => {
                    // Far behind what is wanted: a later segment may start closer.
                    if !jumped {
                        jumped = true;
                        if self.open_segment_for(want)? {
                            continue;
                        }
                        return Ok(Next::NotYet);
                    }
                    open.offset += h.total_len();
                    continue;
                }
                Ok((h, head)) => match segment::read_body(&open.file, open.offset, h, &head) {
                    Ok(rec) => {
                        open.offset += h.total_len();
                        return Ok(Next::Record(rec));
                    }
                    Err(stop) => stop,
                },
                Err(stop) => stop,
            };
            // What looked short may only be what the writer appended since the length was read.
            let len = open.file.metadata()?.len();
            if len > open.len {
                open.len = len;
                continue;
            }
            if !self.advance(stop == ReadStop::Invalid)? {
                return Ok(Next::NotYet);
            }
        }
    }

    /// Moves to the segment after the open one, if there is one; `damaged` counts the skip.
    fn advance(&mut self, damaged: bool) -> std::io::Result<bool> {
        let Some(current) = self.open.as_ref().map(|o| o.first_seq) else {
            return Ok(false);
        };
        let Some((first, path)) = segment::list(&self.dir)?
            .into_iter()
            .find(|(s, _)| *s > current)
        else {
            return Ok(false);
        };
        let file = match File::open(path) {
            Ok(f) => f,
            // Deleted between listing and opening (delivered, or dropped when the disk was full):
            // the next call looks again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if damaged {
            self.skipped_segments += 1;
        }
        self.open = Some(Open {
            file,
            first_seq: first,
            offset: segment::FILE_HEADER,
            len: 0,
        });
        Ok(true)
    }

    /// Opens the segment that holds `want`: the last one starting at or before it, or else the first.
    /// Keeps the open one (and its position) when that is the pick.
    fn open_segment_for(&mut self, want: u64) -> std::io::Result<bool> {
        let segments = segment::list(&self.dir)?;
        let pick = segments
            .iter()
            .rev()
            .find(|(s, _)| *s <= want)
            .or_else(|| segments.first());
        let Some((first, path)) = pick else {
            return Ok(false);
        };
        if self.open.as_ref().is_some_and(|o| o.first_seq == *first) {
            return Ok(true);
        }
        let file = match File::open(path) {
            Ok(f) => f,
            // Deleted between listing and opening (delivered, or dropped when the disk was full).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        // A file whose header is wrong reads as damaged from its first byte.
        let offset = if segment::check_file_header(&file) {
            segment::FILE_HEADER
        } else {
            0
        };
        self.open = Some(Open {
            file,
            first_seq: *first,
            offset,
            len: 0,
        });
        Ok(true)
    }
}
