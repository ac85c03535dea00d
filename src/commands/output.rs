//! What commands print on standard output.
//!
//! `print!` and `println!` panic when the write fails, and the usual failure
//! is not an error at all: the reader went away (`tenant-worker status | head
//! -3`). Rust ignores SIGPIPE, so such a write returns `BrokenPipe` (EPIPE)
//! instead of ending the process. Commands write through [`line`] and
//! [`text`], which return [`Error::Stdout`]; the command stops there,
//! unwinding normally (child processes stopped, traces flushed), and `main`
//! ends quietly with status 0 when [`Error::is_stdout_closed`], as `ripgrep`
//! and other well-behaved filters do. Resetting SIGPIPE to its default
//! instead would kill a long-running `dev` or `run` on any closed pipe or
//! socket, and needs `unsafe`.

use std::fmt::Display;
use std::io::Write;

use crate::error::Error;

/// Writes `out` and a newline to standard output, flushed.
///
/// # Errors
/// [`Error::Stdout`] when standard output cannot be written (closed by the reader).
pub fn line(out: impl Display) -> Result<(), Error> {
    write(format_args!("{out}\n"))
}

/// Writes `out` to standard output as it is, flushed.
///
/// # Errors
/// As [`line`].
pub fn text(out: impl Display) -> Result<(), Error> {
    write(format_args!("{out}"))
}

fn write(args: std::fmt::Arguments<'_>) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_fmt(args)
        .and_then(|()| stdout.flush())
        .map_err(Error::Stdout)
}
