//! JSON-lines sinks: a file per topic (optionally gzipped), stdout, memory (for programs
//! that embed the simulator) and a null sink.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use warehouse::raw::EventKind;

use super::{Sink, SinkError};

const BUFFER_BYTES: usize = 1 << 20;

/// The encoder is boxed because its deflate state is eight times the size of a plain
/// writer, and there are only four outputs, so the indirection costs nothing measurable.
enum Output {
    Plain(BufWriter<File>),
    Gzip(Box<GzEncoder<BufWriter<File>>>),
}

impl Output {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Plain(w) => w,
            Output::Gzip(w) => w,
        }
    }
}

/// `DIR/<topic>.jsonl` (or `.jsonl.gz`) for each of the four topics, all created up
/// front so that a kind with no events still has its (empty) file.
pub struct Files {
    outputs: Vec<(PathBuf, Output)>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<_> = self.outputs.iter().map(|(p, _)| p).collect();
        f.debug_struct("Files").field("paths", &paths).finish()
    }
}

impl Files {
    pub fn create(dir: &Path, gzip: bool) -> Result<Files, SinkError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| SinkError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut outputs = Vec::new();
        for kind in EventKind::ALL {
            let name = if gzip {
                format!("{}.jsonl.gz", kind.topic())
            } else {
                format!("{}.jsonl", kind.topic())
            };
            let path = dir.join(name);
            let file =
                BufWriter::with_capacity(BUFFER_BYTES, File::create(&path).map_err(io(&path))?);
            let output = if gzip {
                Output::Gzip(Box::new(GzEncoder::new(file, Compression::fast())))
            } else {
                Output::Plain(file)
            };
            outputs.push((path, output));
        }
        Ok(Files { outputs })
    }

    /// The files, in the order of [`EventKind::ALL`].
    pub fn paths(&self) -> Vec<&Path> {
        self.outputs.iter().map(|(p, _)| p.as_path()).collect()
    }
}

impl Sink for Files {
    fn write(&mut self, kind: EventKind, _key: i64, json: &[u8]) -> Result<(), SinkError> {
        let (path, output) = &mut self.outputs[kind.index()];
        let w = output.writer();
        w.write_all(json)
            .and_then(|()| w.write_all(b"\n"))
            .map_err(|source| SinkError::Io {
                path: path.display().to_string(),
                source,
            })
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        for (path, output) in &mut self.outputs {
            let result = match output {
                Output::Plain(w) => w.flush().and_then(|()| w.get_ref().sync_all()),
                // Writing the gzip trailer now makes the file complete even if the process
                // is killed later; further writes would start a new member, which
                // gzip readers accept.
                Output::Gzip(w) => w
                    .try_finish()
                    .and_then(|()| w.get_mut().flush())
                    .and_then(|()| w.get_ref().get_ref().sync_all()),
            };
            result.map_err(|source| SinkError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Every event as a JSON line on stdout, all kinds interleaved in time order.
pub struct Stdout(BufWriter<std::io::Stdout>);

impl std::fmt::Debug for Stdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stdout")
    }
}

impl Stdout {
    pub fn new() -> Stdout {
        Stdout(BufWriter::with_capacity(BUFFER_BYTES, std::io::stdout()))
    }
}

impl Default for Stdout {
    fn default() -> Stdout {
        Stdout::new()
    }
}

impl Sink for Stdout {
    fn write(&mut self, _kind: EventKind, _key: i64, json: &[u8]) -> Result<(), SinkError> {
        self.0
            .write_all(json)
            .and_then(|()| self.0.write_all(b"\n"))
            .map_err(stdout_error)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.0.flush().map_err(stdout_error)
    }
}

fn stdout_error(source: std::io::Error) -> SinkError {
    SinkError::Io {
        path: "stdout".to_owned(),
        source,
    }
}

/// Discards events: measures the simulator alone.
#[derive(Debug, Default)]
pub struct Null;

impl Sink for Null {
    fn write(&mut self, _: EventKind, _: i64, json: &[u8]) -> Result<(), SinkError> {
        std::hint::black_box(json);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Keeps every event, in order: for programs and tests that use the simulator as a
/// library.
#[derive(Debug, Default)]
pub struct Memory {
    /// Kind, Kafka key and JSON of each event.
    pub events: Vec<(EventKind, i64, Vec<u8>)>,
}

impl Sink for Memory {
    fn write(&mut self, kind: EventKind, key: i64, json: &[u8]) -> Result<(), SinkError> {
        self.events.push((kind, key, json.to_vec()));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
