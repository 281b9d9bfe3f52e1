//! An attempt's `output.log`: everything its command printed, capped. The newest
//! [`OUTPUT_CAP`] bytes are in `output.log`, the ones before in `output.log.1`; older output
//! is gone. Readers that follow the log by offset notice a rotation (the file got shorter
//! than their offset) and start again at its beginning.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use berth_vm::logfile::RotatingLog;

/// Bytes per log file; at most twice this is kept per attempt.
pub const OUTPUT_CAP: u64 = 32 << 20;

/// Like [`open`], keeping the newest `cap` bytes in `output.log` (an attempt's output limit
/// is twice that).
pub fn open_capped(path: &Path, cap: u64) -> std::io::Result<RotatingLog> {
    RotatingLog::open_timed(path, cap.max(1 << 19))
}

/// Opens an attempt's output log for appending.
pub fn open(path: &Path) -> std::io::Result<RotatingLog> {
    RotatingLog::open_timed(path, OUTPUT_CAP)
}

/// A chunk of a log read by offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Where `data` starts: the offset asked for, or 0 after the log rotated past it.
    pub start: u64,
    pub data: Vec<u8>,
}

/// Reads at most `max` bytes of `path` from `offset` (from 0 if the file is now shorter
/// than `offset`: it was rotated). A missing file reads as empty.
pub fn read_from(path: &Path, offset: u64, max: u64) -> std::io::Result<LogChunk> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(LogChunk {
                start: offset,
                data: Vec::new(),
            });
        }
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = if offset > len { 0 } else { offset };
    f.seek(SeekFrom::Start(start))?;
    let mut data = Vec::new();
    f.take(max).read_to_end(&mut data)?;
    Ok(LogChunk { start, data })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_reader_past_a_rotation_starts_again_at_the_new_beginning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.log");
        let mut log = RotatingLog::open(&path, 10).unwrap();
        log.write_all(b"0123456789").unwrap();
        let first = read_from(&path, 0, 100).unwrap();
        assert_eq!(first.data, b"0123456789");
        log.write_all(b"abc").unwrap(); // rotates: output.log is now "abc"
        let next = read_from(&path, 10, 100).unwrap();
        assert_eq!((next.start, next.data.as_slice()), (0, &b"abc"[..]));
        assert_eq!(
            read_from(&dir.path().join("none"), 5, 10).unwrap().data,
            b""
        );
    }
}
