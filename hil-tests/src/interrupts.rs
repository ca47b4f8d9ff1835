//! Linux's `/proc/interrupts`, parsed: one row per interrupt, a count per CPU.
//!
//! The text comes from a console, where the mux may cut a line in two and the harness joins
//! the pieces (see `console.rs`), so real line ends can be lost. [`Interrupts::parse`] therefore
//! takes rows ended by `\n` *or* by [`ROW_END`], which the initramfs's `irqs` helper appends to
//! each row (`sed 's/$/ ~/'`). The format is the kernel's `show_interrupts()` (6.1,
//! `kernel/irq/proc.c` and `arch/arm64/kernel/smp.c`):
//!
//! ```text
//!            CPU0       CPU1
//!  11:        483        562     GICv3  27 Level     arch_timer
//! IPI0:         8         48       Rescheduling interrupts
//! Err:          0
//! ```

use std::fmt;

/// What `irqs` (scripts/linux/init) writes after each row.
pub const ROW_END: char = '~';

/// Why a `/proc/interrupts` text did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterruptsError {
    /// There is no row at all.
    Empty,
    /// The first row is not the `CPU0 CPU1 …` header.
    Header(String),
    /// A row has no `label:`.
    NoLabel(String),
    /// A row's label is followed by no count.
    NoCounts(String),
    /// Two rows have the same label.
    Duplicate(String),
}

impl fmt::Display for InterruptsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterruptsError::Empty => write!(f, "no rows"),
            InterruptsError::Header(row) => write!(f, "not a `CPU0 CPU1 …` header: {row:?}"),
            InterruptsError::NoLabel(row) => write!(f, "row without `label:`: {row:?}"),
            InterruptsError::NoCounts(row) => write!(f, "row without counts: {row:?}"),
            InterruptsError::Duplicate(label) => write!(f, "label {label:?} appears twice"),
        }
    }
}

impl std::error::Error for InterruptsError {}

/// One row: `label: count… description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptRow {
    /// `11`, `IPI0`, `Err`.
    pub label: String,
    /// One per CPU column (fewer for the summary rows `Err`/`MIS`).
    pub counts: Vec<u64>,
    /// The rest, with runs of spaces collapsed: `GICv3 27 Level arch_timer`,
    /// `Rescheduling interrupts`.
    pub description: String,
}

impl InterruptRow {
    /// The count on CPU column `cpu` (0 if the row has no such column).
    pub fn on(&self, cpu: usize) -> u64 {
        self.counts.get(cpu).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// A parsed `/proc/interrupts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupts {
    /// The header's column names, `CPU0`, `CPU1`, … (online CPUs only).
    pub cpus: Vec<String>,
    pub rows: Vec<InterruptRow>,
}

impl Interrupts {
    /// Parses rows ended by `\n` or [`ROW_END`]; blank rows are skipped. A row holds up to
    /// one count per header column; the first word that is not a number starts its
    /// description.
    pub fn parse(text: &str) -> Result<Self, InterruptsError> {
        let mut rows = text
            .split(['\n', ROW_END])
            .map(str::trim)
            .filter(|row| !row.is_empty());
        let header = rows.next().ok_or(InterruptsError::Empty)?;
        let cpus: Vec<String> = header.split_whitespace().map(String::from).collect();
        let is_cpu = |word: &String| {
            word.strip_prefix("CPU")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        if cpus.is_empty() || !cpus.iter().all(is_cpu) {
            return Err(InterruptsError::Header(header.to_string()));
        }
        let mut parsed: Vec<InterruptRow> = Vec::new();
        for row in rows {
            let (label, rest) = row
                .split_once(':')
                .filter(|(label, _)| !label.is_empty() && !label.contains(char::is_whitespace))
                .ok_or_else(|| InterruptsError::NoLabel(row.to_string()))?;
            let mut words = rest.split_whitespace().peekable();
            let mut counts = Vec::new();
            while counts.len() < cpus.len() {
                match words.peek().and_then(|word| word.parse::<u64>().ok()) {
                    Some(count) => {
                        counts.push(count);
                        words.next();
                    }
                    None => break,
                }
            }
            if counts.is_empty() {
                return Err(InterruptsError::NoCounts(row.to_string()));
            }
            if parsed.iter().any(|known| known.label == label) {
                return Err(InterruptsError::Duplicate(label.to_string()));
            }
            parsed.push(InterruptRow {
                label: label.to_string(),
                counts,
                description: words.collect::<Vec<_>>().join(" "),
            });
        }
        Ok(Self { cpus, rows: parsed })
    }

    /// The row labelled `label` (`IPI0`, `Err`, `11`).
    pub fn row(&self, label: &str) -> Option<&InterruptRow> {
        self.rows.iter().find(|row| row.label == label)
    }

    /// The first row whose description ends with `name` (the device, `arch_timer`, or the
    /// IPI's name, `Rescheduling interrupts`).
    pub fn named(&self, name: &str) -> Option<&InterruptRow> {
        self.rows.iter().find(|row| row.description.ends_with(name))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    /// Tessera's Linux VM, as `cat /proc/interrupts` printed it (6.1.0-56-arm64).
    const TWO_CPUS: &str = "           CPU0       CPU1       
 11:        483        562     GICv3  27 Level     arch_timer
 13:          0          0     GICv3  33 Level     uart-pl011
IPI0:         8         48       Rescheduling interrupts
IPI1:       159        120       Function call interrupts
IPI2:         0          0       CPU stop interrupts
IPI3:         0          0       CPU stop (for crash dump) interrupts
IPI4:         0          0       Timer broadcast interrupts
IPI5:         0          0       IRQ work interrupts
IPI6:         0          0       CPU wake-up interrupts
Err:          0
";

    #[test]
    fn parses_the_linux_vm_table() {
        let table = Interrupts::parse(TWO_CPUS).unwrap();
        assert_eq!(table.cpus, ["CPU0", "CPU1"]);
        assert_eq!(table.rows.len(), 10);
        let timer = table.named("arch_timer").unwrap();
        assert_eq!(timer.label, "11");
        assert_eq!(timer.counts, [483, 562]);
        assert_eq!(timer.description, "GICv3 27 Level arch_timer");
        assert_eq!(timer.total(), 1045);
        let uart = table.named("uart-pl011").unwrap();
        assert_eq!((uart.label.as_str(), uart.total()), ("13", 0));
        let reschedule = table.named("Rescheduling interrupts").unwrap();
        assert_eq!(reschedule.label, "IPI0");
        assert_eq!((reschedule.on(0), reschedule.on(1)), (8, 48));
        assert_eq!(table.row("IPI1").unwrap().counts, [159, 120]);
        let crash = table.row("IPI3").unwrap();
        assert_eq!(crash.description, "CPU stop (for crash dump) interrupts");
        let err = table.row("Err").unwrap();
        assert_eq!((err.counts.as_slice(), err.on(1)), (&[0][..], 0));
        assert!(table.named("virtio").is_none() && table.row("12").is_none());
    }

    /// `irqs` output as the harness gets it: rows ended by ` ~`, the lines joined with
    /// nothing between them, one row cut in two by the mux and joined again.
    #[test]
    fn parses_marked_rows_without_line_ends() {
        let joined: String = TWO_CPUS
            .lines()
            .map(|row| format!("{row} {ROW_END}"))
            .collect();
        assert!(!joined.contains('\n'));
        assert_eq!(
            Interrupts::parse(&joined).unwrap(),
            Interrupts::parse(TWO_CPUS).unwrap()
        );
    }

    #[test]
    fn a_description_starting_with_a_number_is_not_a_count() {
        let table = Interrupts::parse("CPU0 CPU1\n 40: 1 2 3 ITS-MSI 0000:00:01.0\n").unwrap();
        let row = table.row("40").unwrap();
        assert_eq!(row.counts, [1, 2], "at most one count per CPU column");
        assert_eq!(row.description, "3 ITS-MSI 0000:00:01.0");
    }

    #[test]
    fn errors() {
        assert_eq!(Interrupts::parse(" \n ~ "), Err(InterruptsError::Empty));
        assert_eq!(
            Interrupts::parse("hello\n"),
            Err(InterruptsError::Header("hello".into()))
        );
        assert_eq!(
            Interrupts::parse("CPU0 CPUx\n"),
            Err(InterruptsError::Header("CPU0 CPUx".into()))
        );
        assert_eq!(
            Interrupts::parse("CPU0\n 11 5 arch_timer\n"),
            Err(InterruptsError::NoLabel("11 5 arch_timer".into()))
        );
        assert_eq!(
            Interrupts::parse("CPU0\nIPI 0: 5 x\n"),
            Err(InterruptsError::NoLabel("IPI 0: 5 x".into()))
        );
        assert_eq!(
            Interrupts::parse("CPU0\n11: arch_timer\n"),
            Err(InterruptsError::NoCounts("11: arch_timer".into()))
        );
        assert_eq!(
            Interrupts::parse("CPU0\n11: 1 a\n11: 2 b\n"),
            Err(InterruptsError::Duplicate("11".into()))
        );
        assert!(
            InterruptsError::NoCounts("11: x".into())
                .to_string()
                .contains("11: x")
        );
    }
}
