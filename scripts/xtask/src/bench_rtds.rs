//! The RTDS part of `cargo xtask bench`: boots `dts/systems/qemu-virt/rtds.dts` (three VMs
//! sharing one CPU at 20/30/40%, 10 ms period) under `-icount` and reads from the guests'
//! lines the context-switch cost and the scheduler's EL2 work per period.

/// What the RTDS run reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtdsFigures {
    /// EL2 instructions of one context switch (save, restore, VM controls).
    pub switch_instructions: Option<u64>,
    /// EL2 instructions on the shared CPU per scheduling period, during the measurement.
    pub el2_per_period: Option<u64>,
    /// Each VM's measured share (permille) and deadline misses, in VM order.
    pub shares: [Option<(u64, u64)>; 3],
}

/// The system the run boots and its period (µs) and window (ms), as that file says.
pub const SYSTEM: &str = "dts/systems/qemu-virt/rtds.dts";
pub const PERIOD_US: u64 = 10_000;
pub const WINDOW_MS: u64 = 300;
pub const VMS: [&str; 3] = ["a20", "b30", "c40"];

/// The number after `key ` in `text`.
fn field(text: &str, key: &str) -> Option<u64> {
    let rest = text.split(&format!("{key} ")).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Parses the guests' `share …` and `sched …` lines.
pub fn parse(output: &str) -> RtdsFigures {
    let mut figures = RtdsFigures::default();
    for (i, vm) in VMS.iter().enumerate() {
        let tagged = |what: &str| {
            output.lines().find(|line| line.contains(&format!("[{vm}] {vm}: {what}"))).map(str::to_owned)
        };
        let share = tagged("share ");
        let sched = tagged("sched vcpu 0 ");
        if let (Some(share), Some(sched)) = (&share, &sched) {
            figures.shares[i] = field(share, "share").zip(field(sched, "misses"));
        }
        // The first VM's window is the clean one: it starts first and ends while the others
        // still busy-loop (afterwards each polls its console, which traps).
        if i == 0 {
            let periods = WINDOW_MS * 1000 / PERIOD_US;
            figures.el2_per_period = share.as_deref().and_then(|s| field(s, "el2")).map(|el2| el2 / periods);
            figures.switch_instructions = sched.as_deref().and_then(|s| field(s, "switch-cost"));
        }
    }
    figures
}

/// The table rows' texts: (switch cost, overhead per period, shares).
pub fn texts(figures: &RtdsFigures) -> (String, String, String) {
    let or_not = |v: Option<u64>| v.map_or("not measured".to_owned(), |v| v.to_string());
    let shares: Vec<String> = VMS
        .iter()
        .zip(figures.shares)
        .map(|(vm, s)| s.map_or(format!("{vm} not measured"), |(share, misses)| format!("{vm} {share}‰ ({misses} misses)")))
        .collect();
    (or_not(figures.switch_instructions), or_not(figures.el2_per_period), shares.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "[a20] a20: share 199 permille over 300 ms, 4608305 iterations, el2 61234\r\n\
[a20] a20: sched vcpu 0 used 60438 us beyond 3 us misses 0 switches 31 periods 30 switch-cost 585\r\n\
[b30] b30: share 299 permille over 300 ms, 6915993 iterations, el2 61000\r\n\
[b30] b30: sched vcpu 0 used 90430 us beyond 3 us misses 0 switches 31 periods 30 switch-cost 585\r\n\
[c40] c40: share 399 permille over 300 ms, 9223694 iterations, el2 60000\r\n\
[c40] c40: sched vcpu 0 used 120425 us beyond 3 us misses 1 switches 31 periods 30 switch-cost 585\r\n";

    #[test]
    fn parses_the_guests_lines() {
        let figures = parse(OUTPUT);
        assert_eq!(figures.switch_instructions, Some(585));
        assert_eq!(figures.el2_per_period, Some(61234 / 30));
        assert_eq!(figures.shares, [Some((199, 0)), Some((299, 0)), Some((399, 1))]);
        let (switch, overhead, shares) = texts(&figures);
        assert_eq!((switch.as_str(), overhead.as_str()), ("585", "2041"));
        assert_eq!(shares, "a20 199‰ (0 misses), b30 299‰ (0 misses), c40 399‰ (1 misses)");
    }

    #[test]
    fn missing_lines_are_not_measured() {
        let figures = parse("[a20] a20: share 199 permille over 300 ms, 1 iterations\r\n");
        assert_eq!(figures, RtdsFigures::default());
        assert_eq!(texts(&figures).0, "not measured");
    }
}
