//! `/chosen/bootargs`: space-separated `key=value` words.
//!
//! | key | value | effect |
//! |---|---|---|
//! | `heartbeat` | decimal milliseconds, > 0 | print `<name>: heartbeat <k>` every period |
//! | `smp` | `1` (or `0`) | start every other CPU in the DT with PSCI CPU_ON |
//! | `poke` | hex address | one 32-bit store there at boot (fault test) |
//! | `rt` | `1` (or `0`) | take interrupts: heartbeat from the virtual timer, UART RX interrupt |
//! | `share` | decimal milliseconds, > 0 | at boot, busy-loop that long and print the CPU share it got |
//! | `canary` | `1` (or `0`) | fill free RAM with a pattern and checksum RAM (`status`): the isolation tests' victim |
//! | `wdog` | decimal milliseconds (`0`: off) | kick Tessera's VM watchdog (`TESSERA_WDOG_KICK`) every period from boot |
//! | `deaf` | `1` (or `0`) | each secondary CPU sets ICC_AP1R0_EL1 bit 0 before it parks (direct-mode tests) |
//!
//! Unknown keys and bad values are reported through a callback and otherwise ignored, so a
//! typo never stops the guest from booting.

use crate::hex;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bootargs {
    /// Heartbeat period in milliseconds.
    pub heartbeat_ms: Option<u32>,
    /// Start the secondary CPUs.
    pub smp: bool,
    /// Address to store to at boot.
    pub poke: Option<u64>,
    /// Real-time mode: GICv3, virtual-timer heartbeat, interrupt-driven console.
    pub rt: bool,
    /// Measure the CPU share over this many milliseconds at boot.
    pub share_ms: Option<u32>,
    /// Victim mode: fill free RAM with a pattern at boot; `status` checksums RAM.
    pub canary: bool,
    /// Watchdog kick period in milliseconds.
    pub wdog_ms: Option<u32>,
    /// Secondaries make themselves deaf to every interrupt before they park.
    pub deaf: bool,
}

/// Why one bootargs word was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem<'a> {
    UnknownKey(&'a str),
    BadValue(&'a str),
    /// A word with no `=`.
    NotKeyValue(&'a str),
}

impl core::fmt::Display for Problem<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Problem::UnknownKey(word) => write!(f, "unknown bootarg '{word}'"),
            Problem::BadValue(word) => write!(f, "bad bootarg value '{word}'"),
            Problem::NotKeyValue(word) => write!(f, "bootarg '{word}' is not key=value"),
        }
    }
}

impl Bootargs {
    /// Parses `text`; every ignored word is passed to `problem`. Later words override earlier.
    pub fn parse<'a>(text: &'a str, mut problem: impl FnMut(Problem<'a>)) -> Self {
        let mut args = Self::default();
        for word in text.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                problem(Problem::NotKeyValue(word));
                continue;
            };
            let ok = match key {
                "heartbeat" => match hex::parse_decimal_u32(value) {
                    Some(0) => {
                        args.heartbeat_ms = None;
                        true
                    }
                    Some(ms) => {
                        args.heartbeat_ms = Some(ms);
                        true
                    }
                    None => false,
                },
                "smp" => match flag(value) {
                    Some(on) => {
                        args.smp = on;
                        true
                    }
                    None => false,
                },
                "rt" => match flag(value) {
                    Some(on) => {
                        args.rt = on;
                        true
                    }
                    None => false,
                },
                "share" => match hex::parse_decimal_u32(value) {
                    Some(ms) if ms > 0 => {
                        args.share_ms = Some(ms);
                        true
                    }
                    _ => false,
                },
                "canary" => match flag(value) {
                    Some(on) => {
                        args.canary = on;
                        true
                    }
                    None => false,
                },
                "deaf" => match flag(value) {
                    Some(on) => {
                        args.deaf = on;
                        true
                    }
                    None => false,
                },
                "wdog" => match hex::parse_decimal_u32(value) {
                    Some(ms) => {
                        args.wdog_ms = (ms != 0).then_some(ms);
                        true
                    }
                    None => false,
                },
                "poke" => match hex::parse_u64(value) {
                    Some(address) => {
                        args.poke = Some(address);
                        true
                    }
                    None => false,
                },
                _ => {
                    problem(Problem::UnknownKey(word));
                    continue;
                }
            };
            if !ok {
                problem(Problem::BadValue(word));
            }
        }
        args
    }
}

/// `1` or `0`.
fn flag(value: &str) -> Option<bool> {
    match value {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn parse(text: &str) -> (Bootargs, Vec<Problem<'_>>) {
        let mut problems = Vec::new();
        let args = Bootargs::parse(text, |p| problems.push(p));
        (args, problems)
    }

    #[test]
    fn empty() {
        assert_eq!(parse(""), (Bootargs::default(), vec![]));
        assert_eq!(parse("   \t "), (Bootargs::default(), vec![]));
    }

    #[test]
    fn all_keys() {
        let (args, problems) = parse("heartbeat=250 smp=1  poke=0x10000000 rt=1 canary=1 wdog=100 share=2000 deaf=1");
        assert!(problems.is_empty());
        assert_eq!(
            args,
            Bootargs {
                heartbeat_ms: Some(250),
                smp: true,
                poke: Some(0x1000_0000),
                rt: true,
                share_ms: Some(2000),
                canary: true,
                wdog_ms: Some(100),
                deaf: true,
            }
        );
        assert_eq!(parse("share=0").1, vec![Problem::BadValue("share=0")]);
    }

    #[test]
    fn later_words_override_and_zero_disables() {
        let (args, _) = parse("heartbeat=100 smp=1 rt=1 canary=1 wdog=50 deaf=1 heartbeat=0 smp=0 rt=0 canary=0 wdog=0 deaf=0");
        assert_eq!(args, Bootargs::default());
    }

    #[test]
    fn problems_are_reported_and_skipped() {
        let (args, problems) =
            parse("console=ttyAMA0 quiet heartbeat=fast smp=2 poke=zz rt=yes wdog=-1 heartbeat=7");
        assert_eq!(
            args,
            Bootargs {
                heartbeat_ms: Some(7),
                ..Bootargs::default()
            }
        );
        assert_eq!(
            problems,
            vec![
                Problem::UnknownKey("console=ttyAMA0"),
                Problem::NotKeyValue("quiet"),
                Problem::BadValue("heartbeat=fast"),
                Problem::BadValue("smp=2"),
                Problem::BadValue("poke=zz"),
                Problem::BadValue("rt=yes"),
                Problem::BadValue("wdog=-1"),
            ]
        );
        assert_eq!(problems[0].to_string(), "unknown bootarg 'console=ttyAMA0'");
    }
}
