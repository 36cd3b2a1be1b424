//! Segment files: `<first seq, 20 digits>.wal`, a 16-byte file header, then records back to back.
//! Reading is positional (`pread`), so a reader and the writer never share a file offset.

use super::record::{Header, Record, HEADER};
use super::Checkpoint;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"WEIRWAL\0";
const VERSION: u32 = 1;
/// Size of the file header that precedes the first record.
pub const FILE_HEADER: u64 = 16;

pub fn name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

/// The first sequence number a segment file name stands for, if it is one.
pub fn parse_name(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(".wal")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Segment files in `dir`, by first sequence number.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_name) {
            out.push((seq, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(s, _)| *s);
    Ok(out)
}

/// The segment being appended to.
pub struct SegmentWriter {
    file: File,
    pub first_seq: u64,
    pub path: PathBuf,
    /// Bytes in the file that are known good.
    len: u64,
}

impl SegmentWriter {
    pub fn create(dir: &Path, first_seq: u64) -> io::Result<Self> {
        let path = dir.join(name(first_seq));
        // Owner-only: the log holds requests as received, before redaction.
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .read(true)
            .mode(0o600)
            .open(&path)?;
        let mut head = [0u8; FILE_HEADER as usize];
        head[..8].copy_from_slice(MAGIC);
        head[8..12].copy_from_slice(&VERSION.to_le_bytes());
        file.write_all(&head)?;
        Ok(SegmentWriter {
            file,
            first_seq,
            path,
            len: FILE_HEADER,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == FILE_HEADER
    }

    /// Writes encoded records; on error the file is cut back to its last good length, so a half-written
    /// record never sits in front of later ones.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.file.write_all_at(bytes, self.len) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Cuts the file back to `len` (best effort: the segment is abandoned for a fresh one next).
    pub fn cut(&mut self, len: u64) {
        let _ = self.file.set_len(len);
        self.len = len.min(self.len);
    }
}

/// Why reading stopped short of a record.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadStop {
    /// Clean end: nothing after the last record.
    End,
    /// Bytes that are not a whole, valid record: a torn write or corruption.
    Invalid,
}

/// Reads the header at `offset`; the body is left for [`read_body`] or skipped.
pub fn read_header(
    file: &File,
    offset: u64,
    file_len: u64,
) -> Result<(Header, [u8; HEADER]), ReadStop> {
    if offset >= file_len {
        return Err(ReadStop::End);
    }
    if file_len - offset < HEADER as u64 {
        return Err(ReadStop::Invalid);
    }
    let mut head = [0u8; HEADER];
    file.read_exact_at(&mut head, offset)
        .map_err(|_| ReadStop::Invalid)?;
    let h = Header::parse(&head).ok_or(ReadStop::Invalid)?;
    if offset + h.total_len() > file_len {
        return Err(ReadStop::Invalid);
    }
    Ok((h, head))
}

/// Reads and checks the body of the record whose header was read at `offset`.
pub fn read_body(
    file: &File,
    offset: u64,
    h: Header,
    head: &[u8; HEADER],
) -> Result<Record, ReadStop> {
    let mut body = vec![0u8; h.body_len as usize];
    file.read_exact_at(&mut body, offset + HEADER as u64)
        .map_err(|_| ReadStop::Invalid)?;
    if !h.verify(head, &body) {
        return Err(ReadStop::Invalid);
    }
    Ok(h.into_record(body))
}

/// Whether the file starts with a segment header this version can read.
pub fn check_file_header(file: &File) -> bool {
    let mut head = [0u8; FILE_HEADER as usize];
    file.read_exact_at(&mut head, 0).is_ok()
        && &head[..8] == MAGIC
        && head[8..12] == VERSION.to_le_bytes()
}

/// What a full pass over a segment found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    pub records: u64,
    pub items: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Length up to the end of the last valid record.
    pub valid_len: u64,
    pub file_len: u64,
}

impl Scan {
    /// Bytes after the last valid record: a torn tail or corruption.
    pub fn invalid_bytes(&self) -> u64 {
        self.file_len - self.valid_len
    }
}

/// Checks every record of a segment (checksums included) up to the first invalid byte. Records the
/// checkpoint says were delivered are not counted in `records`/`items`.
pub fn scan(path: &Path, checkpoint: &Checkpoint) -> io::Result<Scan> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut s = Scan {
        file_len,
        ..Scan::default()
    };
    if !check_file_header(&file) {
        return Ok(s);
    }
    let mut offset = FILE_HEADER;
    let mut prev: Option<u64> = None;
    while let Ok((h, head)) = read_header(&file, offset, file_len) {
        // Sequence numbers only grow within a segment; anything else is garbage that happens to parse.
        if prev.is_some_and(|p| h.seq <= p) || read_body(&file, offset, h, &head).is_err() {
            break;
        }
        prev = Some(h.seq);
        s.first_seq.get_or_insert(h.seq);
        s.last_seq = Some(h.seq);
        if !checkpoint.delivered(h.seq) {
            s.records += 1;
            s.items += u64::from(h.items);
        }
        offset += h.total_len();
    }
    s.valid_len = offset;
    Ok(s)
}

/// (sequence number, items) of every record whose header reads, in order; bodies are not checked.
/// For counting what a segment held, cheaply.
pub fn headers(path: &Path) -> io::Result<Vec<(u64, u32)>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut out = Vec::new();
    if !check_file_header(&file) {
        return Ok(out);
    }
    let mut offset = FILE_HEADER;
    while let Ok((h, _)) = read_header(&file, offset, len) {
        out.push((h.seq, h.items));
        offset += h.total_len();
    }
    Ok(out)
}
