//! Progress of a long run on stderr: which phase, how long the run has taken, and what it is
//! waiting for — so that a 40-minute nightly job that sits on `kind create cluster` says so.
//!
//! Quiet with `-q` or `MESHPROOF_QUIET=1`. Colour (ANSI escapes) only when stderr is a
//! terminal and `NO_COLOR` is unset: logs captured by CI stay plain text.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `MESHPROOF_QUIET=1` (or `true`).
pub fn quiet_from_env() -> bool {
    std::env::var("MESHPROOF_QUIET")
        .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        .unwrap_or(false)
}

/// A progress printer. Cheap to share behind an `Arc`; lines from several threads never
/// interleave.
pub struct Progress {
    sink: Mutex<Box<dyn Write + Send>>,
    quiet: bool,
    ansi: bool,
    start: Instant,
}

impl Progress {
    /// Progress on stderr; quiet if `quiet_flag` or `MESHPROOF_QUIET=1`.
    pub fn stderr(quiet_flag: bool) -> Progress {
        let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Progress::to_writer(
            Box::new(std::io::stderr()),
            quiet_flag || quiet_from_env(),
            ansi,
        )
    }

    /// Progress into any writer (tests, log files).
    pub fn to_writer(sink: Box<dyn Write + Send>, quiet: bool, ansi: bool) -> Progress {
        Progress {
            sink: Mutex::new(sink),
            quiet,
            ansi,
            start: Instant::now(),
        }
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// A new phase begins: `[   1m02s] provision istio[k8s=1.34]: kind create cluster`.
    pub fn phase(&self, phase: &str, detail: &str) {
        let (b, r) = if self.ansi {
            ("\x1b[1m", "\x1b[0m")
        } else {
            ("", "")
        };
        self.line(&format!("{b}{phase}{r}: {detail}"));
    }

    /// What the run is waiting for right now, and for how long it is prepared to wait.
    pub fn waiting(&self, what: &str, timeout: Option<Duration>) {
        let limit = timeout
            .map(|t| format!(" (up to {})", humantime::format_duration(t)))
            .unwrap_or_default();
        self.line(&format!("  waiting for {what}{limit}"));
    }

    /// Something finished, with its outcome label (`passed`, `failed`, …).
    pub fn finished(&self, what: &str, outcome: &str, took: Duration) {
        let (c, r) = match (self.ansi, outcome) {
            (false, _) => ("", ""),
            (true, "passed") => ("\x1b[32m", "\x1b[0m"),
            (true, "ignored") => ("\x1b[33m", "\x1b[0m"),
            (true, _) => ("\x1b[31m", "\x1b[0m"),
        };
        self.line(&format!("{what}: {c}{outcome}{r} in {}", elapsed(took)));
    }

    /// A free-form note.
    pub fn note(&self, text: &str) {
        self.line(text);
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let stamp = format!("[{:>7}]", elapsed(self.start.elapsed()));
        let stamp = if self.ansi {
            format!("\x1b[2m{stamp}\x1b[0m")
        } else {
            stamp
        };
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        // Progress is best effort: a closed stderr must not fail the run.
        let _ = writeln!(sink, "{stamp} {text}");
        let _ = sink.flush();
    }
}

/// `4.2s`, `1m02s`, `1h05m`.
pub fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer whose bytes the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn exercise(p: &Progress) {
        p.phase("provision istio[k8s=1.34]", "kind create cluster");
        p.waiting("nodes Ready", Some(Duration::from_secs(300)));
        p.finished(
            "istio[k8s=1.34]::mtls",
            "failed",
            Duration::from_millis(1500),
        );
    }

    #[test]
    fn plain_when_not_a_terminal() {
        let out = Shared::default();
        exercise(&Progress::to_writer(Box::new(out.clone()), false, false));
        let t = out.text();
        assert!(!t.contains('\x1b'), "{t:?}");
        assert!(
            t.contains("provision istio[k8s=1.34]: kind create cluster"),
            "{t}"
        );
        assert!(t.contains("waiting for nodes Ready (up to 5m)"), "{t}");
        assert!(t.contains("istio[k8s=1.34]::mtls: failed in 1.5s"), "{t}");
        assert!(t.lines().all(|l| l.starts_with('[')), "{t}");
    }

    #[test]
    fn coloured_on_a_terminal_and_silent_when_quiet() {
        let out = Shared::default();
        exercise(&Progress::to_writer(Box::new(out.clone()), false, true));
        assert!(out.text().contains("\x1b[31mfailed"), "{:?}", out.text());
        let quiet = Shared::default();
        exercise(&Progress::to_writer(Box::new(quiet.clone()), true, true));
        assert_eq!(quiet.text(), "");
    }

    #[test]
    fn elapsed_is_compact() {
        assert_eq!(elapsed(Duration::from_millis(4200)), "4.2s");
        assert_eq!(elapsed(Duration::from_secs(62)), "1m02s");
        assert_eq!(elapsed(Duration::from_secs(3900)), "1h05m");
    }
}
