//! OTLP/JSON lines on local disk: one file per signal (`traces.jsonl`, `logs.jsonl`, `metrics.jsonl`),
//! each line one `Export*ServiceRequest` in the OTLP/JSON encoding (hex ids, 64-bit integers as strings),
//! so any OTLP/JSON reader, `jq`, or a replay through OTLP/HTTP can consume it.
//!
//! A file is rotated to `<signal>.1.jsonl`, `<signal>.2.jsonl`, … when it reaches `rotate_bytes`, and only
//! `max_files` rotated files are kept, so disk use is bounded. Writes happen on tokio's blocking pool:
//! a slow disk (or a pipe nobody reads) stalls this exporter only, never a runtime worker.

use crate::exporter::{Encoded, ExportError, Exporter};
use bytes::Bytes;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use weir_pipeline::{Batch, Signal};

/// The `file` destination (configured by [`weir_config::FileExporter`]): OTLP/JSON lines, rotated.
pub struct JsonLines {
    state: Arc<Mutex<FileState>>,
}

struct FileState {
    dir: PathBuf,
    signal: &'static str,
    rotate_bytes: u64,
    max_files: usize,
    /// Opened on first write, not at start: opening a FIFO blocks until a reader appears.
    file: Option<File>,
    written: u64,
}

impl JsonLines {
    /// Creates the directory if needed; the file itself is opened on first write.
    pub fn new(
        cfg: &weir_config::FileExporter,
        signal: weir_config::SignalKind,
    ) -> Result<Self, ExportError> {
        let dir = PathBuf::from(&cfg.path);
        fs::create_dir_all(&dir).map_err(|e| {
            ExportError::permanent(
                "io",
                format!("cannot create directory {}: {e}", dir.display()),
            )
        })?;
        Ok(JsonLines {
            state: Arc::new(Mutex::new(FileState {
                dir,
                signal: signal.as_str(),
                rotate_bytes: cfg.rotate_bytes.0,
                max_files: cfg.max_files,
                file: None,
                written: 0,
            })),
        })
    }

    /// The path of the live file for `signal` under `dir`.
    pub fn live_path(dir: &Path, signal: weir_config::SignalKind) -> PathBuf {
        dir.join(format!("{}.jsonl", signal.as_str()))
    }
}

fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}

impl FileState {
    fn path(&self, generation: usize) -> PathBuf {
        if generation == 0 {
            self.dir.join(format!("{}.jsonl", self.signal))
        } else {
            self.dir.join(format!("{}.{generation}.jsonl", self.signal))
        }
    }

    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let path = self.path(0);
            // Write-only: opening a FIFO for reading too would make it its own reader.
            let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
            self.written = file.metadata()?.len();
            if self.written > 0 && file.metadata()?.is_file() && !ends_with_newline(&path)? {
                // A crash mid-line left a torn last line: end it, so the next line stands alone.
                file.write_all(b"\n")?;
                self.written += 1;
            }
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        if self.max_files == 0 {
            fs::remove_file(self.path(0))?;
        } else {
            let _ = fs::remove_file(self.path(self.max_files));
            for g in (1..self.max_files).rev() {
                let from = self.path(g);
                if from.exists() {
                    fs::rename(&from, self.path(g + 1))?;
                }
            }
            fs::rename(self.path(0), self.path(1))?;
        }
        self.written = 0;
        Ok(())
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let file = self.open()?;
        let is_regular = file.metadata()?.is_file();
        if is_regular && self.written > 0 && self.written + line.len() as u64 > self.rotate_bytes {
            self.rotate()?;
        }
        let start = self.written;
        let file = self.open()?;
        if let Err(e) = file.write_all(line) {
            // Cut a half-written line off, so a retry leaves the file valid line by line.
            if file.metadata().map(|m| m.is_file()).unwrap_or(false) {
                let _ = file.set_len(start);
            }
            self.file = None;
            return Err(e);
        }
        self.written += line.len() as u64;
        Ok(())
    }
}

impl<S: Signal> Exporter<S> for JsonLines {
    type Request = Bytes;

    fn kind(&self) -> &'static str {
        "file"
    }

    fn encode(&self, batch: Batch<S>) -> Result<Vec<Encoded<Bytes>>, ExportError> {
        let items = batch.items();
        let request = batch.into_request();
        let mut line = serde_json::to_vec(&request).map_err(|e| {
            ExportError::permanent("encode", format!("OTLP/JSON encoding failed: {e}"))
        })?;
        line.push(b'\n');
        Ok(vec![Encoded {
            bytes: line.len(),
            request: Bytes::from(line),
            items,
        }])
    }

    async fn send(&self, line: &Bytes) -> Result<(), ExportError> {
        let state = self.state.clone();
        let line = line.clone();
        tokio::task::spawn_blocking(move || {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            state.write_line(&line).map_err(|e| {
                ExportError::retryable("io", format!("writing {}: {e}", state.path(0).display()))
            })
        })
        .await
        .map_err(|e| ExportError::retryable("io", format!("file writer task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use weir_config::{ByteSize, SignalKind};
    use weir_pipeline::{fixtures, Logs, Traces};

    fn cfg(dir: &Path, rotate: u64, max_files: usize) -> weir_config::FileExporter {
        weir_config::FileExporter {
            path: dir.display().to_string(),
            rotate_bytes: ByteSize(rotate),
            max_files,
        }
    }

    async fn write(e: &JsonLines, batch: Batch<Logs>) {
        for r in Exporter::<Logs>::encode(e, batch).unwrap() {
            Exporter::<Logs>::send(e, &r.request).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_torn_last_line_from_a_crash_is_ended_before_writing_on() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("logs.jsonl"), "{\"resourceLogs\":[{\"torn").unwrap();
        let e = JsonLines::new(&cfg(dir.path(), 1 << 30, 2), SignalKind::Logs).unwrap();
        write(&e, Batch::measured(fixtures::resource_logs(1, 2))).await;
        let text = fs::read_to_string(dir.path().join("logs.jsonl")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(serde_json::from_str::<ExportLogsServiceRequest>(lines[1]).is_ok());
    }

    #[tokio::test]
    async fn writes_otlp_json_lines_that_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let e = JsonLines::new(&cfg(dir.path(), 1 << 30, 2), SignalKind::Logs).unwrap();
        let resources = fixtures::resource_logs(2, 3);
        write(&e, Batch::measured(resources.clone())).await;
        let text = fs::read_to_string(dir.path().join("logs.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(
            text.contains("\"traceId\":\"0000000000000001"),
            "ids are hex: {text}"
        );
        assert!(
            text.contains("\"timeUnixNano\":\"17640"),
            "u64 as string: {text}"
        );
        let back: ExportLogsServiceRequest = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(back.resource_logs, resources);
    }

    #[tokio::test]
    async fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let one = Exporter::<Logs>::encode(
            &JsonLines::new(&cfg(dir.path(), 1, 1), SignalKind::Logs).unwrap(),
            Batch::measured(fixtures::resource_logs(1, 1)),
        )
        .unwrap()[0]
            .request
            .len() as u64;
        let e = JsonLines::new(&cfg(dir.path(), one * 2, 2), SignalKind::Logs).unwrap();
        for _ in 0..7 {
            write(&e, Batch::measured(fixtures::resource_logs(1, 1))).await;
        }
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|d| d.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["logs.1.jsonl", "logs.2.jsonl", "logs.jsonl"]);
        for n in &names {
            let lines = fs::read_to_string(dir.path().join(n))
                .unwrap()
                .lines()
                .count();
            assert!(lines <= 2, "{n} has {lines} lines");
        }
        assert_eq!(
            fs::read_to_string(dir.path().join("logs.jsonl"))
                .unwrap()
                .lines()
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn one_file_per_signal() {
        let dir = tempfile::tempdir().unwrap();
        let t = JsonLines::new(&cfg(dir.path(), 1 << 30, 2), SignalKind::Traces).unwrap();
        let r = Exporter::<Traces>::encode(&t, Batch::measured(fixtures::resource_spans(1, 2)))
            .unwrap();
        Exporter::<Traces>::send(&t, &r[0].request).await.unwrap();
        assert!(JsonLines::live_path(dir.path(), SignalKind::Traces).exists());
        assert!(!dir.path().join("logs.jsonl").exists());
    }
}
