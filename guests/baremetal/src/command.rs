//! Console commands, one per line.

use crate::hex;

/// The `help` text, one command per line.
pub const HELP: &[&str] = &[
    "ping              answer 'pong <name>'",
    "off               PSCI SYSTEM_OFF",
    "reset             PSCI SYSTEM_RESET",
    "poke <hex> [hex]  32-bit store (default value 0), then 'poke done'",
    "peek <hex>        32-bit load, print it",
    "hvc <hex>         hvc #0 with x0 = function id, print x0",
    "debug <hex>       set hardware breakpoint 0 there, print the debug registers read back",
    "jitter            heartbeat lateness: count, min/avg/max in ns",
    "sched             this VM's RTDS accounting per vCPU (TESSERA_SCHED_STATS)",
    "status            RAM checksum (canary=1), heartbeats, lateness, unexpected interrupts",
    "wdog <ms>|stop    kick the VM watchdog every <ms> (decimal), or stop kicking",
    "gicspray          SGIs to every target by SGI0R/SGI1R/ASGI1R, PMR/IGRPEN/BPR/EOIR/DIR writes",
    "deafen            ICC_AP1R0_EL1 bit 0: the highest running priority on this CPU",
    "pmr <hex>         set the priority mask ICC_PMR_EL1 (0-ff), then 'pmr done'",
    "help              this text",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// A blank line.
    Empty,
    Ping,
    Off,
    Reset,
    Poke {
        address: u64,
        value: u32,
    },
    Peek {
        address: u64,
    },
    Hvc {
        function: u32,
    },
    Debug {
        address: u64,
    },
    Help,
    Jitter,
    Sched,
    Status,
    /// Spray the GIC CPU interface (`spray.rs`).
    GicSpray,
    /// Set ICC_AP1R0_EL1 bit 0 (this CPU stops taking any interrupt).
    Deafen,
    /// Write ICC_PMR_EL1: only interrupts of a higher priority (lower value) are signalled.
    Pmr {
        mask: u8,
    },
    /// Kick the watchdog every `ms` milliseconds; `None`: stop kicking.
    Wdog {
        ms: Option<u32>,
    },
    Unknown(&'a str),
    /// A known command with missing, extra or malformed arguments; holds the usage line.
    Usage(&'static str),
}

impl<'a> Command<'a> {
    pub fn parse(line: &'a str) -> Self {
        let mut words = line.split_ascii_whitespace();
        let Some(name) = words.next() else {
            return Command::Empty;
        };
        let first = words.next();
        let second = words.next();
        let extra = words.next().is_some();
        let no_args = first.is_none() && !extra;
        match name {
            "ping" if no_args => Command::Ping,
            "off" if no_args => Command::Off,
            "reset" if no_args => Command::Reset,
            "help" if no_args => Command::Help,
            "jitter" if no_args => Command::Jitter,
            "sched" if no_args => Command::Sched,
            "status" if no_args => Command::Status,
            "gicspray" if no_args => Command::GicSpray,
            "deafen" if no_args => Command::Deafen,
            "ping" | "off" | "reset" | "help" | "jitter" | "sched" | "status" | "gicspray" | "deafen" => {
                Command::Usage(usage(name))
            }
            "poke" => {
                let address = first.and_then(hex::parse_u64);
                let value = match second {
                    None => Some(0),
                    Some(text) => hex::parse_u64(text).and_then(|v| u32::try_from(v).ok()),
                };
                match (address, value, extra) {
                    (Some(address), Some(value), false) => Command::Poke { address, value },
                    _ => Command::Usage(usage(name)),
                }
            }
            "peek" => match (first.and_then(hex::parse_u64), second, extra) {
                (Some(address), None, false) => Command::Peek { address },
                _ => Command::Usage(usage(name)),
            },
            "debug" => match (first.and_then(hex::parse_u64), second, extra) {
                (Some(address), None, false) => Command::Debug { address },
                _ => Command::Usage(usage(name)),
            },
            "wdog" => match (first, second) {
                (Some("stop"), None) => Command::Wdog { ms: None },
                (Some(text), None) => match crate::hex::parse_decimal_u32(text) {
                    Some(ms) if ms > 0 => Command::Wdog { ms: Some(ms) },
                    _ => Command::Usage(usage(name)),
                },
                _ => Command::Usage(usage(name)),
            },
            "pmr" => match (first.and_then(hex::parse_u64), second, extra) {
                (Some(mask), None, false) => match u8::try_from(mask) {
                    Ok(mask) => Command::Pmr { mask },
                    Err(_) => Command::Usage(usage(name)),
                },
                _ => Command::Usage(usage(name)),
            },
            "hvc" => match (first.and_then(hex::parse_u64), second, extra) {
                (Some(function), None, false) => match u32::try_from(function) {
                    Ok(function) => Command::Hvc { function },
                    Err(_) => Command::Usage(usage(name)),
                },
                _ => Command::Usage(usage(name)),
            },
            _ => Command::Unknown(name),
        }
    }
}

fn usage(name: &str) -> &'static str {
    HELP.iter()
        .find(|line| line.split(' ').next() == Some(name))
        .copied()
        .unwrap_or("help")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn simple_commands() {
        assert_eq!(Command::parse(""), Command::Empty);
        assert_eq!(Command::parse("   "), Command::Empty);
        assert_eq!(Command::parse("ping"), Command::Ping);
        assert_eq!(Command::parse("  ping  "), Command::Ping);
        assert_eq!(Command::parse("off"), Command::Off);
        assert_eq!(Command::parse("reset"), Command::Reset);
        assert_eq!(Command::parse("help"), Command::Help);
        assert_eq!(Command::parse("jitter"), Command::Jitter);
        assert_eq!(Command::parse("sched"), Command::Sched);
        assert_eq!(Command::parse("status"), Command::Status);
        assert_eq!(Command::parse("gicspray"), Command::GicSpray);
        assert_eq!(Command::parse("deafen"), Command::Deafen);
        assert_eq!(Command::parse("pmr 0x90"), Command::Pmr { mask: 0x90 });
        assert_eq!(Command::parse("pmr ff"), Command::Pmr { mask: 0xff });
        assert!(matches!(Command::parse("pmr 100"), Command::Usage(_)));
        assert!(matches!(Command::parse("pmr"), Command::Usage(_)));
        assert!(matches!(Command::parse("gicspray now"), Command::Usage(_)));
    }

    #[test]
    fn commands_with_arguments() {
        assert_eq!(
            Command::parse("poke 0x10000000"),
            Command::Poke {
                address: 0x1000_0000,
                value: 0
            }
        );
        assert_eq!(
            Command::parse("poke 40001000 0xcafe"),
            Command::Poke {
                address: 0x4000_1000,
                value: 0xcafe
            }
        );
        assert_eq!(
            Command::parse("peek 0x9000018"),
            Command::Peek {
                address: 0x900_0018
            }
        );
        assert_eq!(Command::parse("debug 40200000"), Command::Debug { address: 0x4020_0000 });
        assert_eq!(Command::parse("wdog 100"), Command::Wdog { ms: Some(100) });
        assert_eq!(Command::parse("wdog stop"), Command::Wdog { ms: None });
        assert_eq!(
            Command::parse("hvc 84000000"),
            Command::Hvc {
                function: 0x8400_0000
            }
        );
    }

    #[test]
    fn bad_arguments_give_usage() {
        for line in [
            "ping 1",
            "jitter now",
            "sched 1",
            "status 1",
            "poke",
            "poke xyz",
            "poke 0x1 0x100000000",
            "poke 1 2 3",
            "peek",
            "peek 1 2",
            "hvc",
            "hvc 0x100000000",
            "debug",
            "debug 1 2",
            "wdog",
            "wdog 0",
            "wdog 0x10",
            "wdog 100 200",
        ] {
            let parsed = Command::parse(line);
            let name = line.split(' ').next().unwrap();
            match parsed {
                Command::Usage(text) => assert!(text.starts_with(name), "{line:?} -> {text:?}"),
                other => panic!("{line:?} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn unknown() {
        assert_eq!(Command::parse("pong x"), Command::Unknown("pong"));
    }
}
