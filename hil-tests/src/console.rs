//! The console as a growing list of timestamped lines, fed by a reader thread and waited on by
//! tests.
//!
//! **Split lines.** The hypervisor's console mux (`hv/vdev/src/console_mux.rs`) may cut a VM's
//! line in two: the focused VM's open line is ended whenever another VM's whole line goes out
//! (the rest follows under the same tag), and a long line of an unfocused VM is cut after 160
//! bytes with a trailing `\`. The harness cannot tell such a cut from a real line end, so the
//! per-VM matchers (`*_from`) look at a VM's *stream*: its lines since the mark, joined with
//! nothing between them (a trailing `\` removed). A pattern found in one line is found there
//! too; a pattern that the mux cut is found across the cut. Patterns should therefore not
//! be able to span two of the guest's real lines (`"pong alpha"` is fine).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How many lines a failure message shows.
const TAIL_LINES: usize = 40;

/// One console line, without its line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Time since the target was started.
    pub at: Duration,
    pub text: String,
}

impl Line {
    /// The mux tag and the text after it: `[alpha] pong alpha` → `("alpha", "pong alpha")`.
    pub fn tag(&self) -> Option<(&str, &str)> {
        split_tag(&self.text)
    }

    /// Tagged `[vm]` and containing `pattern` after the tag.
    pub fn is_from(&self, vm: &str, pattern: &str) -> bool {
        matches!(self.tag(), Some((tag, text)) if tag == vm && text.contains(pattern))
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:>8.3}] {}", self.at.as_secs_f64(), self.text)
    }
}

/// Splits a console-mux line `[<tag>] <text>` (one space after `]` is dropped if present).
/// `None` when the line has no tag, or the tag is empty or contains whitespace or brackets.
pub fn split_tag(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('[')?;
    let end = rest.find(']')?;
    let tag = &rest[..end];
    if tag.is_empty() || tag.chars().any(|c| c.is_whitespace() || c == '[') {
        return None;
    }
    let text = &rest[end + 1..];
    Some((tag, text.strip_prefix(' ').unwrap_or(text)))
}

/// One VM's lines joined into a single string, remembering where each line starts.
struct VmStream<'a> {
    lines: Vec<&'a Line>,
    joined: String,
    /// Byte offset in `joined` where `lines[i]` starts.
    starts: Vec<usize>,
}

impl<'a> VmStream<'a> {
    fn new(lines: &'a [Line], vm: &str) -> Self {
        let mut stream = VmStream {
            lines: Vec::new(),
            joined: String::new(),
            starts: Vec::new(),
        };
        for line in lines {
            if let Some((tag, text)) = line.tag()
                && tag == vm
            {
                stream.lines.push(line);
                stream.starts.push(stream.joined.len());
                stream
                    .joined
                    .push_str(text.strip_suffix('\\').unwrap_or(text));
            }
        }
        stream
    }

    /// The line (or the lines, joined, if the match spans a cut) holding the first match.
    fn find(&self, pattern: &str) -> Option<(String, &'a Line)> {
        let start = self.joined.find(pattern)?;
        let end = start + pattern.len();
        let first = self
            .starts
            .partition_point(|&s| s <= start)
            .saturating_sub(1);
        let last = self
            .starts
            .partition_point(|&s| s < end)
            .saturating_sub(1)
            .max(first);
        let text = self.lines[first..=last]
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join(" ⏎ ");
        Some((text, self.lines[first]))
    }

    fn count(&self, pattern: &str) -> usize {
        if pattern.is_empty() {
            0
        } else {
            self.joined.matches(pattern).count()
        }
    }
}

#[derive(Debug)]
struct State {
    lines: Vec<Line>,
    /// Bytes after the last `\n`.
    partial: Vec<u8>,
    /// The byte stream ended (the target stopped or was killed).
    closed: bool,
    /// Expectations look at `lines[mark..]`.
    mark: usize,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    started: Instant,
    /// Where the target's own diagnostics go (QEMU's stderr), for failure messages.
    stderr: Option<PathBuf>,
}

/// A shareable, thread-safe console log. Clones share the same lines.
#[derive(Debug, Clone)]
pub struct ConsoleLog {
    shared: Arc<Shared>,
}

impl ConsoleLog {
    /// An empty log whose timestamps count from now.
    pub fn new(stderr: Option<PathBuf>) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    lines: Vec::new(),
                    partial: Vec::new(),
                    closed: false,
                    mark: 0,
                }),
                changed: Condvar::new(),
                started: Instant::now(),
                stderr,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only whole lines behind; keep going.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds received bytes: complete lines (split at `\n`, every `\r` removed) are appended.
    pub fn push_bytes(&self, bytes: &[u8]) {
        let at = self.shared.started.elapsed();
        let mut state = self.state();
        let mut added = false;
        for &byte in bytes {
            match byte {
                b'\n' => {
                    let text = String::from_utf8_lossy(&state.partial).into_owned();
                    state.partial.clear();
                    if echo_enabled() {
                        eprintln!(
                            "console {}",
                            Line {
                                at,
                                text: text.clone()
                            }
                        );
                    }
                    state.lines.push(Line { at, text });
                    added = true;
                }
                b'\r' => {}
                _ => state.partial.push(byte),
            }
        }
        drop(state);
        if added {
            self.shared.changed.notify_all();
        }
    }

    /// The stream ended; a pending partial line becomes a last line.
    pub fn close(&self) {
        let at = self.shared.started.elapsed();
        let mut state = self.state();
        if !state.partial.is_empty() {
            let text = String::from_utf8_lossy(&state.partial).into_owned();
            state.partial.clear();
            state.lines.push(Line { at, text });
        }
        state.closed = true;
        drop(state);
        self.shared.changed.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Sets the mark to the end of the log and returns it.
    pub fn mark(&self) -> usize {
        let mut state = self.state();
        state.mark = state.lines.len();
        state.mark
    }

    /// Sets the mark to line `index` (from an earlier [`ConsoleLog::mark`] or 0).
    pub fn set_mark(&self, index: usize) {
        self.state().mark = index;
    }

    pub fn lines(&self) -> Vec<Line> {
        self.state().lines.clone()
    }

    pub fn lines_since(&self, index: usize) -> Vec<Line> {
        self.state().lines.get(index..).unwrap_or_default().to_vec()
    }

    /// The last `count` lines.
    pub fn tail(&self, count: usize) -> Vec<Line> {
        let state = self.state();
        state.lines[state.lines.len().saturating_sub(count)..].to_vec()
    }

    /// Waits until `check` finds something in the lines since the mark. Fails after `timeout`,
    /// or at once when the stream has ended without a match.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&[Line]) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            let since = state.mark.min(state.lines.len());
            if let Some(found) = check(&state.lines[since..]) {
                return Ok(found);
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                let exited = state.closed;
                drop(state);
                return Err(Error::Timeout {
                    what: what.to_string(),
                    waited: timeout,
                    exited,
                    tail: self.tail(TAIL_LINES),
                    stderr: self.stderr_tail(),
                });
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// The first line since the mark containing `pattern`.
    pub fn expect_line(&self, pattern: &str, timeout: Duration) -> Result<String> {
        self.wait_for(&format!("containing {pattern:?}"), timeout, |lines| {
            lines
                .iter()
                .find(|line| line.text.contains(pattern))
                .map(|line| line.text.clone())
        })
    }

    /// The first line since the mark tagged `[vm]` whose text contains `pattern` (looking
    /// across lines the mux cut; see the module doc). Returns that line, or the cut lines
    /// joined with ` ⏎ `.
    pub fn expect_line_from(&self, vm: &str, pattern: &str, timeout: Duration) -> Result<String> {
        let what = format!("from [{vm}] containing {pattern:?}");
        self.wait_for(&what, timeout, |lines| {
            VmStream::new(lines, vm).find(pattern).map(|(text, _)| text)
        })
    }

    /// Waits until `pattern` occurs `count` times in `[vm]`'s stream since the mark.
    pub fn expect_count_from(
        &self,
        vm: &str,
        pattern: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<()> {
        let what = format!("×{count} from [{vm}] containing {pattern:?}");
        self.wait_for(&what, timeout, |lines| {
            (VmStream::new(lines, vm).count(pattern) >= count).then_some(())
        })
    }

    /// How often `pattern` occurs in `[vm]`'s stream since line `index`.
    pub fn count_from(&self, vm: &str, pattern: &str, index: usize) -> usize {
        VmStream::new(&self.lines_since(index), vm).count(pattern)
    }

    /// `[vm]`'s stream since line `index`: its lines joined with nothing between them, a
    /// trailing `\` removed (see the module doc). For scanning output whose own format
    /// shows where its records end (`rt: heartbeat 7 late 1234ns`, rows ending in a marker).
    pub fn stream_from(&self, vm: &str, index: usize) -> String {
        VmStream::new(&self.lines_since(index), vm).joined
    }

    /// Waits until `[vm]`'s stream since the mark holds `begin` and, after it, `end`, and
    /// returns the text between them. Line ends inside are lost (the stream joins lines), so
    /// the guest should end its records visibly (`irqs` in the Linux initramfs ends each
    /// row of `/proc/interrupts` with ` ~`). Choose markers that the echo of the typed
    /// command does not contain (print them with `$((…))` or from a script).
    pub fn expect_between_from(
        &self,
        vm: &str,
        begin: &str,
        end: &str,
        timeout: Duration,
    ) -> Result<String> {
        let what = format!("from [{vm}] between {begin:?} and {end:?}");
        self.wait_for(&what, timeout, |lines| {
            let stream = VmStream::new(lines, vm);
            let start = stream.joined.find(begin)? + begin.len();
            let length = stream.joined[start..].find(end)?;
            Some(stream.joined[start..start + length].to_string())
        })
    }

    /// Fails if `[vm]`'s stream since line `index` contains `pattern`.
    pub fn assert_absent_from(&self, vm: &str, pattern: &str, index: usize) -> Result<()> {
        let lines = self.lines_since(index);
        match VmStream::new(&lines, vm).find(pattern) {
            None => Ok(()),
            Some((_, line)) => Err(Error::Unexpected {
                what: format!("[{vm}] must not print {pattern:?} here"),
                line: line.clone(),
                tail: self.tail(TAIL_LINES),
            }),
        }
    }

    fn stderr_tail(&self) -> String {
        let Some(path) = &self.shared.stderr else {
            return String::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let mut tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if !tail.is_empty() {
            tail.push('\n');
        }
        tail
    }
}

/// `TESSERA_HIL_VERBOSE=1` echoes every console line to stderr as it arrives.
fn echo_enabled() -> bool {
    std::env::var_os("TESSERA_HIL_VERBOSE").is_some_and(|v| v != "0")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn texts(log: &ConsoleLog) -> Vec<String> {
        log.lines().into_iter().map(|line| line.text).collect()
    }

    #[test]
    fn splits_lines_and_strips_cr_across_chunks() {
        let log = ConsoleLog::new(None);
        log.push_bytes(b"[alpha] hel");
        log.push_bytes(b"lo\r");
        log.push_bytes(b"\n[beta] x\r\n\r\n[alpha] alpha> pi");
        assert_eq!(texts(&log), ["[alpha] hello", "[beta] x", ""]);
        log.push_bytes(b"ng\r\n");
        assert_eq!(texts(&log).last().unwrap(), "[alpha] alpha> ping");
        log.push_bytes(b"tail without newline");
        assert_eq!(log.lines().len(), 4);
        log.close();
        assert_eq!(texts(&log).last().unwrap(), "tail without newline");
        assert!(log.is_closed());
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let log = ConsoleLog::new(None);
        log.push_bytes(b"a\xffb\n");
        assert_eq!(texts(&log), ["a\u{fffd}b"]);
    }

    #[test]
    fn tags() {
        assert_eq!(
            split_tag("[alpha] pong alpha"),
            Some(("alpha", "pong alpha"))
        );
        assert_eq!(
            split_tag("[mux] input -> beta"),
            Some(("mux", "input -> beta"))
        );
        assert_eq!(split_tag("[beta]"), Some(("beta", "")));
        assert_eq!(split_tag("[beta]x"), Some(("beta", "x")));
        assert_eq!(split_tag("[beta]  two"), Some(("beta", " two")));
        assert_eq!(split_tag("[] x"), None);
        assert_eq!(split_tag("[a b] x"), None);
        assert_eq!(split_tag("[[a] x"), None);
        assert_eq!(split_tag("alpha] x"), None);
        assert_eq!(split_tag("[alpha x"), None);
        assert_eq!(split_tag(" [alpha] x"), None);
    }

    #[test]
    fn expectations_respect_the_mark() {
        let log = ConsoleLog::new(None);
        log.push_bytes(b"[alpha] pong alpha\n[beta] beta: heartbeat 1\n");
        let short = Duration::from_millis(10);
        assert!(log.expect_line_from("alpha", "pong", short).is_ok());
        assert!(log.expect_line_from("beta", "pong", short).is_err());
        assert!(log.expect_line("heartbeat 1", short).is_ok());
        let mark = log.mark();
        assert_eq!(mark, 2);
        assert!(log.expect_line_from("alpha", "pong", short).is_err());
        assert!(log.assert_absent_from("alpha", "pong", mark).is_ok());
        assert!(log.assert_absent_from("alpha", "pong", 0).is_err());
        log.set_mark(0);
        log.expect_count_from("beta", "heartbeat", 1, short)
            .unwrap();
        assert!(
            log.expect_count_from("beta", "heartbeat", 2, short)
                .is_err()
        );
    }

    #[test]
    fn matches_span_lines_the_mux_cut() {
        let log = ConsoleLog::new(None);
        // alpha (focused) was cut by beta's line; beta's long line was cut with a marker.
        log.push_bytes(
            b"[alpha] hello from alpha: el1, 1 cpus, memory 0x40000000+0x2000000, u\r\n",
        );
        log.push_bytes(b"[beta] beta: heart\\\r\n[beta] beat 1\r\n");
        log.push_bytes(b"[alpha] art 0x9000000\r\n[alpha] alpha> ping\r\n[alpha] pong alpha\r\n");
        let short = Duration::from_millis(10);
        let hello = log
            .expect_line_from(
                "alpha",
                "1 cpus, memory 0x40000000+0x2000000, uart 0x9000000",
                short,
            )
            .unwrap();
        assert_eq!(
            hello,
            "[alpha] hello from alpha: el1, 1 cpus, memory 0x40000000+0x2000000, u ⏎ [alpha] art 0x9000000"
        );
        assert_eq!(
            log.expect_line_from("alpha", "pong alpha", short).unwrap(),
            "[alpha] pong alpha"
        );
        assert_eq!(
            log.expect_line_from("beta", "heartbeat 1", short).unwrap(),
            "[beta] beta: heart\\ ⏎ [beta] beat 1"
        );
        assert_eq!(log.count_from("beta", "heartbeat", 0), 1);
        assert_eq!(log.count_from("alpha", "pong", 0), 1);
        assert!(log.assert_absent_from("beta", "uart", 0).is_ok());
        let error = log
            .assert_absent_from("alpha", "uart 0x9", 0)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unexpected console line"), "{error}");
    }

    #[test]
    fn text_between_markers_spans_cuts_and_ignores_other_vms() {
        let log = ConsoleLog::new(None);
        log.push_bytes(
            b"[linux] linux# irqs\r\n[linux] <irqs>\r\n[linux]  11:   5   7  arch_t\r\n",
        );
        log.push_bytes(b"[rt] rt: heartbeat 3 late 1000ns\r\n[linux] imer ~\r\n");
        let short = Duration::from_millis(10);
        assert!(
            log.expect_between_from("linux", "<irqs>", "</irqs>", short)
                .is_err(),
            "no end marker yet"
        );
        log.push_bytes(b"[linux] Err: 0 ~\r\n[linux] </irqs>\r\n[linux] linux# ");
        assert_eq!(
            log.expect_between_from("linux", "<irqs>", "</irqs>", short)
                .unwrap(),
            " 11:   5   7  arch_timer ~Err: 0 ~"
        );
        assert_eq!(
            log.stream_from("rt", 0),
            "rt: heartbeat 3 late 1000ns",
            "the rt VM's stream holds only its own text"
        );
        log.mark();
        assert!(
            log.expect_between_from("linux", "<irqs>", "</irqs>", short)
                .is_err(),
            "only text since the mark"
        );
    }

    #[test]
    fn waiting_sees_lines_from_another_thread() {
        let log = ConsoleLog::new(None);
        let writer = log.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            writer.push_bytes(b"[beta] beta: heartbeat 1\n");
        });
        let line = log
            .expect_line_from("beta", "heartbeat", Duration::from_secs(5))
            .unwrap();
        assert_eq!(line, "[beta] beta: heartbeat 1");
        thread.join().unwrap();
    }

    #[test]
    fn failure_shows_the_tail_and_ends_early_when_closed() {
        let log = ConsoleLog::new(None);
        for i in 0..50 {
            log.push_bytes(format!("line {i}\n").as_bytes());
        }
        log.close();
        let started = Instant::now();
        let error = log
            .expect_line("never", Duration::from_secs(30))
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        let message = error.to_string();
        assert!(message.contains("the target stopped"), "{message}");
        assert!(
            message.contains("line 49") && message.contains("line 10"),
            "{message}"
        );
        assert!(!message.contains("line 9\n"), "{message}");
    }
}
