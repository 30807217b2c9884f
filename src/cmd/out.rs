//! Standard output for every command: buffered, and its first write error remembered, so
//! that main can tell a reader that went away (`| head`: exit 0, quietly) from a real write
//! failure (`> /dev/full`: one line, exit 2) however the error was wrapped on its way up
//! (csv and serde_json wrap io errors in their own types).

use std::io::{self, BufWriter, StdoutLock, Write};
use std::sync::Mutex;

/// The first error standard output gave: its kind and its text.
static FAILED: Mutex<Option<(io::ErrorKind, String)>> = Mutex::new(None);

/// Standard output, locked, passing every write through and noting the first failure.
pub struct Guard(StdoutLock<'static>);

/// What commands write to; call `flush()` at the end so a failure is seen, not dropped.
pub type Out = BufWriter<Guard>;

pub fn stdout() -> Out {
    BufWriter::with_capacity(64 * 1024, Guard(io::stdout().lock()))
}

fn note<T>(r: io::Result<T>) -> io::Result<T> {
    if let Err(e) = &r {
        // write_all retries an interrupted write itself.
        if e.kind() != io::ErrorKind::Interrupted {
            if let Ok(mut f) = FAILED.lock() {
                f.get_or_insert_with(|| (e.kind(), e.to_string()));
            }
        }
    }
    r
}

impl Write for Guard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        note(self.0.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        note(self.0.flush())
    }
}

/// How standard output failed, if it did.
pub fn failure() -> Option<(io::ErrorKind, String)> {
    FAILED.lock().ok().and_then(|f| f.clone())
}
