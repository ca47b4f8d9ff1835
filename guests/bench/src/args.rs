//! The benchmark guest's bootargs (`/chosen/bootargs`, space-separated `key=value`).

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Every benchmark (the default).
    Full,
    /// Only the boot stamp, then PSCI SYSTEM_OFF: for the other VMs of the boot-time system.
    Boot,
}

/// The parsed bootargs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub role: Role,
    /// Measured samples per benchmark (`n=`, 1..=[`MAX_SAMPLES`]).
    pub samples: usize,
    /// Unrecorded rounds before them (`warmup=`).
    pub warmup: usize,
    /// How far ahead each timer deadline is armed, in counter ticks (`period=`).
    pub period_ticks: u64,
}

/// The sample buffer's size.
pub const MAX_SAMPLES: usize = 4096;

impl Default for Args {
    fn default() -> Self {
        Self { role: Role::Full, samples: 1000, warmup: 10, period_ticks: 20_000 }
    }
}

impl Args {
    /// Parses `text`; words it cannot use are handed to `ignored` and skipped.
    pub fn parse<'a>(text: &'a str, mut ignored: impl FnMut(&'a str)) -> Self {
        let mut args = Self::default();
        for word in text.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                ignored(word);
                continue;
            };
            let number = value.parse::<u64>().ok();
            match (key, value, number) {
                ("role", "full", _) => args.role = Role::Full,
                ("role", "boot", _) => args.role = Role::Boot,
                ("n", _, Some(n)) if (1..=MAX_SAMPLES as u64).contains(&n) => args.samples = n as usize,
                ("warmup", _, Some(n)) if n <= 1_000_000 => args.warmup = n as usize,
                ("period", _, Some(n)) if n > 0 => args.period_ticks = n,
                _ => ignored(word),
            }
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        assert_eq!(Args::parse("", |_| panic!()), Args::default());
        assert_eq!(Args::default().samples, 1000);
    }

    #[test]
    fn every_key() {
        let args = Args::parse("role=boot n=50 warmup=3 period=7", |_| panic!());
        assert_eq!(args, Args { role: Role::Boot, samples: 50, warmup: 3, period_ticks: 7 });
    }

    #[test]
    fn bad_words_are_reported_and_skipped() {
        let mut bad = Vec::new();
        let args = Args::parse("n=0 n=99999 role=x period=0 junk console=ttyAMA0 n=5", |w| bad.push(w));
        assert_eq!(args.samples, 5);
        assert_eq!(bad, ["n=0", "n=99999", "role=x", "period=0", "junk", "console=ttyAMA0"]);
    }
}
