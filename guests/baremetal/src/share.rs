//! CPU share measured from inside a VM: a busy loop reads the virtual counter each
//! iteration; a step between two reads longer than `gap` ticks is time the VM did not run
//! (another vCPU had the CPU, or the hypervisor did). The share is the time it ran over the
//! time that passed.

/// Accumulates one measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareMeter {
    start: u64,
    last: u64,
    gap: u64,
    /// Ticks lost in steps longer than `gap`.
    lost: u64,
    pub iterations: u64,
}

impl ShareMeter {
    /// Starts at counter value `now`; steps longer than `gap` ticks count as lost.
    pub const fn new(now: u64, gap: u64) -> Self {
        Self { start: now, last: now, gap, lost: 0, iterations: 0 }
    }

    /// One loop iteration that read `now`.
    pub fn record(&mut self, now: u64) {
        let step = now.wrapping_sub(self.last);
        if step > self.gap {
            self.lost += step;
        }
        self.last = now;
        self.iterations += 1;
    }

    /// Ticks since the start.
    pub fn elapsed(&self) -> u64 {
        self.last.wrapping_sub(self.start)
    }

    /// The share of elapsed time the loop ran, in parts per thousand (1000 with no time).
    pub fn permille(&self) -> u64 {
        let elapsed = self.elapsed();
        if elapsed == 0 {
            return 1000;
        }
        ((elapsed - self.lost.min(elapsed)) as u128 * 1000 / elapsed as u128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_steps_are_lost_time() {
        let mut meter = ShareMeter::new(1000, 10);
        for t in (1005..=2000).step_by(5) {
            meter.record(t);
        }
        // Descheduled for 3000 ticks, then 1000 more of running.
        meter.record(5000);
        for t in (5005..=6000).step_by(5) {
            meter.record(t);
        }
        assert_eq!(meter.elapsed(), 5000);
        assert_eq!(meter.permille(), 400);
        assert_eq!(meter.iterations, 200 + 1 + 200);
    }

    #[test]
    fn no_time_is_a_full_share() {
        assert_eq!(ShareMeter::new(7, 1).permille(), 1000);
    }
}
