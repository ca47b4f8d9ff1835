//! Console commands, one per line.

/// The `help` text, one command per line.
pub const HELP: &[&str] = &[
    "attack <class>    run one class of probes: all, mem, gic, smccc, sysreg, abort",
    "ping              answer 'pong <name>'",
    "help              this text",
];

/// A class of probes (`guests/attack/README.md` lists what each does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    All,
    /// Loads and stores across the physical address space outside the VM's own RAM.
    Mem,
    /// vGIC misuse: interrupts it does not own, redistributors it does not have, SGIs.
    Gic,
    /// HVC and SMC with function IDs Tessera does not implement.
    Smccc,
    /// System registers and instructions: set/way, TLBI, PMU, debug, timer, IMPDEF, WFE.
    Sysreg,
    /// Accesses the hypervisor cannot emulate (the abort path itself).
    Abort,
}

impl Class {
    /// Every class `all` runs, in order.
    pub const EACH: [Class; 5] = [Class::Mem, Class::Gic, Class::Smccc, Class::Sysreg, Class::Abort];

    pub fn parse(word: &str) -> Option<Class> {
        Some(match word {
            "all" => Class::All,
            "mem" => Class::Mem,
            "gic" => Class::Gic,
            "smccc" => Class::Smccc,
            "sysreg" => Class::Sysreg,
            "abort" => Class::Abort,
            _ => return None,
        })
    }

    pub const fn name(self) -> &'static str {
        match self {
            Class::All => "all",
            Class::Mem => "mem",
            Class::Gic => "gic",
            Class::Smccc => "smccc",
            Class::Sysreg => "sysreg",
            Class::Abort => "abort",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    Empty,
    Ping,
    Help,
    Attack(Class),
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
        let extra = words.next().is_some();
        match (name, first, extra) {
            ("ping", None, false) => Command::Ping,
            ("help", None, false) => Command::Help,
            ("attack", Some(class), false) => match Class::parse(class) {
                Some(class) => Command::Attack(class),
                None => Command::Usage(HELP[0]),
            },
            ("attack", _, _) => Command::Usage(HELP[0]),
            ("ping", _, _) => Command::Usage(HELP[1]),
            ("help", _, _) => Command::Usage(HELP[2]),
            _ => Command::Unknown(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(Command::parse("  "), Command::Empty);
        assert_eq!(Command::parse("ping"), Command::Ping);
        assert_eq!(Command::parse("help"), Command::Help);
        assert_eq!(Command::parse("attack all"), Command::Attack(Class::All));
        assert_eq!(Command::parse(" attack  sysreg "), Command::Attack(Class::Sysreg));
        for class in Class::EACH {
            assert_eq!(Command::parse(&format!("attack {}", class.name())), Command::Attack(class));
        }
        assert_eq!(Command::parse("peek 0"), Command::Unknown("peek"));
    }

    #[test]
    fn bad_arguments_give_usage() {
        for line in ["attack", "attack everything", "attack mem gic", "ping 1", "help me"] {
            match Command::parse(line) {
                Command::Usage(text) => assert!(text.starts_with(line.split(' ').next().unwrap_or("")), "{line}: {text}"),
                other => panic!("{line:?} parsed as {other:?}"),
            }
        }
    }
}
