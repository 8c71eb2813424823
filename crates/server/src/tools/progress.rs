//! A small progress display on stderr: a redrawn bar when stderr is a
//! terminal, one plain line per item otherwise (logs and CI stay readable).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::tools::format_bytes;

const BAR_WIDTH: usize = 30;
const REDRAW_EVERY: Duration = Duration::from_millis(80);

/// Progress over a known number of items and bytes.
#[derive(Debug)]
pub struct Progress {
    total_items: usize,
    total_bytes: u64,
    done_items: usize,
    done_bytes: u64,
    failed: usize,
    tty: bool,
    started: Instant,
    last_draw: Option<Instant>,
}

impl Progress {
    /// Progress over `total_items` items of `total_bytes` bytes, drawn as a
    /// bar if stderr is a terminal.
    pub fn new(total_items: usize, total_bytes: u64) -> Self {
        Self::with_terminal(total_items, total_bytes, std::io::stderr().is_terminal())
    }

    /// [`Progress::new`] with the terminal decision made by the caller.
    pub fn with_terminal(total_items: usize, total_bytes: u64, tty: bool) -> Self {
        Progress {
            total_items,
            total_bytes,
            done_items: 0,
            done_bytes: 0,
            failed: 0,
            tty,
            started: Instant::now(),
            last_draw: None,
        }
    }

    /// Records one finished item: `error` is `None` on success.
    pub fn item_done(&mut self, name: &str, bytes: u64, error: Option<&str>) {
        self.item_done_as(name, bytes, error, "ok")
    }

    /// [`Progress::item_done`] with the word printed for a success
    /// (`ok`, `skip`, ...) in plain mode.
    pub fn item_done_as(&mut self, name: &str, bytes: u64, error: Option<&str>, word: &str) {
        self.done_items += 1;
        self.done_bytes += bytes;
        let mut err = std::io::stderr().lock();
        if let Some(e) = error {
            self.failed += 1;
            if self.tty {
                let _ = write!(err, "\r\x1b[2K");
            }
            let _ = writeln!(err, "error  {name}: {e}");
        } else if !self.tty {
            let _ = writeln!(
                err,
                "{word:<6} {name} ({}) [{}/{}]",
                format_bytes(bytes as f64),
                self.done_items,
                self.total_items
            );
        }
        if self.tty {
            let due = self
                .last_draw
                .is_none_or(|t| t.elapsed() >= REDRAW_EVERY || self.done_items == self.total_items);
            if due {
                let _ = write!(err, "\r\x1b[2K{}", self.bar_line(name));
                let _ = err.flush();
                self.last_draw = Some(Instant::now());
            }
        }
    }

    /// Ends the display (the bar line is kept, followed by a newline).
    pub fn finish(&mut self) {
        if self.tty && self.last_draw.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", self.bar_line(""));
            let _ = writeln!(err);
        }
    }

    /// The bar: `[=====>    ] 12/40 files  1.2 MiB/3.4 MiB  3 errors  name`.
    pub fn bar_line(&self, name: &str) -> String {
        let fraction = if self.total_bytes > 0 {
            self.done_bytes as f64 / self.total_bytes as f64
        } else if self.total_items > 0 {
            self.done_items as f64 / self.total_items as f64
        } else {
            1.0
        };
        let filled = ((fraction.clamp(0.0, 1.0) * BAR_WIDTH as f64) as usize).min(BAR_WIDTH);
        let mut bar = "=".repeat(filled);
        if filled < BAR_WIDTH {
            bar.push('>');
            bar.push_str(&" ".repeat(BAR_WIDTH - filled - 1));
        }
        let mut line = format!(
            "[{bar}] {}/{} files  {}/{}  {:.1}s",
            self.done_items,
            self.total_items,
            format_bytes(self.done_bytes as f64),
            format_bytes(self.total_bytes as f64),
            self.started.elapsed().as_secs_f64()
        );
        if self.failed > 0 {
            line.push_str(&format!("  {} errors", self.failed));
        }
        if !name.is_empty() {
            let short: String = if name.chars().count() > 40 {
                let tail: String = name
                    .chars()
                    .rev()
                    .take(39)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                format!("…{tail}")
            } else {
                name.to_owned()
            };
            line.push_str("  ");
            line.push_str(&short);
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_fills_with_bytes() {
        let mut p = Progress::with_terminal(4, 400, false);
        assert!(p.bar_line("").starts_with("[>      "));
        p.done_items = 2;
        p.done_bytes = 200;
        let line = p.bar_line("a/b.pprof");
        assert!(line.starts_with(&format!("[{}>", "=".repeat(15))), "{line}");
        assert!(line.contains("2/4 files"), "{line}");
        assert!(line.ends_with("a/b.pprof"), "{line}");
        p.done_items = 4;
        p.done_bytes = 400;
        assert!(p.bar_line("").starts_with(&format!("[{}]", "=".repeat(30))));
    }
}
