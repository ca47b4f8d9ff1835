//! The bare-metal guest's real-time lines (`guests/baremetal/README.md`, `rt=1`), scanned
//! out of a VM's console stream:
//!
//! ```text
//! <vm>: heartbeat <k> late <ns>ns
//! <vm>: jitter n=<n> min=<ns> avg=<ns> max=<ns>
//! ```
//!
//! The stream joins the VM's lines with nothing between them (`ConsoleLog::stream_from`), so
//! a record ends where its last number ends: `…late 86560nsrt: jitter n=40 …` scans as two.

/// One `heartbeat <k> late <ns>ns` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The beat's number: interrupts taken so far (1, 2, …).
    pub k: u64,
    /// How late the timer interrupt was taken.
    pub late_ns: u64,
}

/// One `jitter n=… min=… avg=… max=…` line: the guest's own statistics since its boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jitter {
    pub n: u64,
    pub min_ns: u64,
    pub avg_ns: u64,
    pub max_ns: u64,
}

/// Lateness over a run of heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lateness {
    pub count: usize,
    pub avg_ns: u64,
    pub max_ns: u64,
}

/// The decimal number at the start of `text`, and the rest.
fn number(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    Some((text[..digits].parse().ok()?, &text[digits..]))
}

/// Every rt heartbeat of `vm` in `stream`, in order. Polled-mode beats (`heartbeat <k>`
/// without `late`) are skipped.
pub fn heartbeats(stream: &str, vm: &str) -> Vec<Heartbeat> {
    let prefix = format!("{vm}: heartbeat ");
    stream
        .match_indices(&prefix)
        .filter_map(|(at, _)| {
            let (k, rest) = number(&stream[at + prefix.len()..])?;
            let (late_ns, rest) = number(rest.strip_prefix(" late ")?)?;
            rest.starts_with("ns").then_some(Heartbeat { k, late_ns })
        })
        .collect()
}

/// Every `jitter` line of `vm` in `stream`, in order.
pub fn jitters(stream: &str, vm: &str) -> Vec<Jitter> {
    let prefix = format!("{vm}: jitter n=");
    stream
        .match_indices(&prefix)
        .filter_map(|(at, _)| {
            let (n, rest) = number(&stream[at + prefix.len()..])?;
            let (min_ns, rest) = number(rest.strip_prefix(" min=")?)?;
            let (avg_ns, rest) = number(rest.strip_prefix(" avg=")?)?;
            let (max_ns, _) = number(rest.strip_prefix(" max=")?)?;
            Some(Jitter {
                n,
                min_ns,
                avg_ns,
                max_ns,
            })
        })
        .collect()
}

/// Where `k` does not go up by exactly one: `(previous, next)` pairs. The guest prints only
/// the latest beat when its console loop falls behind, so a gap means a beat went unprinted
/// (or the guest restarted, when `next` is smaller).
pub fn gaps(beats: &[Heartbeat]) -> Vec<(u64, u64)> {
    beats
        .windows(2)
        .filter(|pair| pair[1].k != pair[0].k + 1)
        .map(|pair| (pair[0].k, pair[1].k))
        .collect()
}

/// Count, mean and maximum lateness of `beats` (all zero for none).
pub fn lateness(beats: &[Heartbeat]) -> Lateness {
    let count = beats.len();
    let sum: u128 = beats.iter().map(|beat| u128::from(beat.late_ns)).sum();
    Lateness {
        count,
        avg_ns: u64::try_from(sum / count.max(1) as u128).unwrap_or(u64::MAX),
        max_ns: beats.iter().map(|beat| beat.late_ns).max().unwrap_or(0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    /// Lines as the console gives them, joined with nothing between them; a jitter line cut
    /// by the mux and joined again; another VM's name in between.
    const STREAM: &str = "hello from rt: el1, 1 cpus\
        rt: heartbeat 9 late 216560nsrt: heartbeat 10 late 388640ns\
        rt: jitter n=10 min=216560 avg=8718628 max=82114160\
        rt: heartbeat 11 late 244416nsrt> pingpong rt\
        xx: heartbeat 99 late 1nsrt: heartbeat 12 late 1nsrt: heartbeat 14 late 5ns";

    #[test]
    fn scans_heartbeats_and_jitter_lines() {
        let beats = heartbeats(STREAM, "rt");
        let ks: Vec<u64> = beats.iter().map(|beat| beat.k).collect();
        assert_eq!(ks, [9, 10, 11, 12, 14], "xx's beat is not rt's");
        assert_eq!(beats[1].late_ns, 388_640);
        assert_eq!(
            jitters(STREAM, "rt"),
            [Jitter {
                n: 10,
                min_ns: 216_560,
                avg_ns: 8_718_628,
                max_ns: 82_114_160
            }]
        );
        assert_eq!(heartbeats(STREAM, "xx").len(), 1);
    }

    #[test]
    fn incomplete_and_polled_beats_are_skipped() {
        assert!(heartbeats("rt: heartbeat 3rt: heartbeat 4 late 12", "rt").is_empty());
        assert!(jitters("rt: jitter n=1 min=2 avg=3", "rt").is_empty());
        assert!(heartbeats("rt: heartbeat x late 5ns", "rt").is_empty());
    }

    #[test]
    fn gaps_and_lateness() {
        let beats = heartbeats(STREAM, "rt");
        assert_eq!(gaps(&beats), [(12, 14)]);
        assert!(gaps(&beats[..4]).is_empty());
        let restarted = [
            Heartbeat { k: 7, late_ns: 0 },
            Heartbeat { k: 1, late_ns: 0 },
        ];
        assert_eq!(gaps(&restarted), [(7, 1)]);
        let summary = lateness(&beats[..3]);
        assert_eq!(
            summary,
            Lateness {
                count: 3,
                avg_ns: (216_560 + 388_640 + 244_416) / 3,
                max_ns: 388_640
            }
        );
        assert_eq!(
            lateness(&[]),
            Lateness {
                count: 0,
                avg_ns: 0,
                max_ns: 0
            }
        );
    }
}
