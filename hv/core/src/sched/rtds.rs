//! One CPU's RTDS run queue: a deferrable server per vCPU, earliest deadline first.
//!
//! The semantics follow the design comment of Xen's `xen/common/sched/rt.c`: each vCPU has a
//! budget and a period; its budget is replenished and its deadline moves to the next period
//! boundary at each boundary; it is charged only while it runs; out of budget it waits for
//! the next boundary, unless it is `extratime`, in which case it may run when no vCPU with
//! budget wants the CPU (below every vCPU with budget, EDF among themselves). Differences:
//!
//! - **Partitioned**: a run queue belongs to one CPU and holds only the vCPUs pinned to it.
//! - **Wake-up rule**: a vCPU that wakes at `t` with `c` left and deadline `d` keeps
//!   `min(c, (d - t) * budget / period)` (the revised CBS rule; `tessera_config`'s `sched`
//!   module says why it makes `Σ budget / period <= 1` an exact test).
//!
//! Time is the counter (CNTPCT) in ticks; parameters are converted from microseconds once,
//! with [`ticks_from_us`]. Every operation is O(N) over at most N servers, N =
//! [`tessera_config::MAX_VCPUS_PER_CPU`] in the hypervisor.
//!
//! Accounting: a **deadline miss** is a period boundary reached while the vCPU is runnable
//! and still has budget (it wanted the CPU and did not get its share). Time a vCPU runs with
//! no budget left (extratime, or a late timer) is counted apart from its budget use.

use tessera_config::RtdsParams;

/// Converts microseconds to counter ticks at `frequency` Hz, rounding down.
pub const fn ticks_from_us(us: u32, frequency: u64) -> u64 {
    (us as u64 * frequency) / 1_000_000
}

/// A server's parameters in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub budget: u64,
    pub period: u64,
    pub extratime: bool,
}

impl Params {
    /// `params` at a counter of `frequency` Hz. The validator keeps budget <= period and the
    /// period >= 100 µs, so a 1 MHz counter still gives a non-zero period.
    pub const fn from_config(params: &RtdsParams, frequency: u64) -> Self {
        let period = ticks_from_us(params.period_us, frequency);
        let budget = ticks_from_us(params.budget_us, frequency);
        Self { budget, period: if period == 0 { 1 } else { period }, extratime: params.extratime }
    }
}

/// What a server is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Not started (vCPU off, VM stopped): takes no part and accrues nothing.
    Inactive,
    /// Wants the CPU.
    Runnable,
    /// Waiting (a trapped WFI) for an interrupt: uses no budget.
    Blocked,
}

/// Per-vCPU accounting, in ticks and counts since the vCPU was first activated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Time run against its budget.
    pub budget_used: u64,
    /// Time run with no budget left (extratime, or timer lateness).
    pub beyond_budget: u64,
    /// Period boundaries reached while runnable with budget left.
    pub deadline_misses: u32,
    /// Times this vCPU was switched in on its CPU.
    pub switches: u32,
    /// Period boundaries passed while active.
    pub periods: u32,
}

/// One vCPU's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    /// The slot holds a server (an empty slot is all zero, so that a run queue in a
    /// `static` needs no initialised data).
    present: bool,
    pub params: Params,
    pub activity: Activity,
    /// Absolute deadline: the end of the current period.
    pub deadline: u64,
    /// Budget left in the current period.
    pub remaining: u64,
    pub stats: Stats,
}

impl Server {
    const EMPTY: Server = Server { present: false, ..Server::new(Params { budget: 0, period: 0, extratime: false }) };

    const fn new(params: Params) -> Self {
        Self { present: true, params, activity: Activity::Inactive, deadline: 0, remaining: 0, stats: Stats { budget_used: 0, beyond_budget: 0, deadline_misses: 0, switches: 0, periods: 0 } }
    }

    /// Moves the deadline past `now`, replenishing; counts a miss for each boundary passed
    /// while runnable with budget left.
    fn replenish_until(&mut self, now: u64) {
        if self.activity == Activity::Inactive || now < self.deadline {
            return;
        }
        let boundaries = (now - self.deadline) / self.params.period + 1;
        if self.activity == Activity::Runnable && self.params.budget > 0 {
            // The first boundary is a miss if budget was left; any further boundary passed
            // while runnable found a whole fresh budget unused.
            let first = u64::from(self.remaining > 0);
            let misses = first + (boundaries - 1);
            self.stats.deadline_misses = self.stats.deadline_misses.saturating_add(saturating_u32(misses));
        }
        self.stats.periods = self.stats.periods.saturating_add(saturating_u32(boundaries));
        self.deadline = self.deadline.saturating_add(boundaries.saturating_mul(self.params.period));
        self.remaining = self.params.budget;
    }

    /// Charges `ticks` of running.
    fn charge(&mut self, ticks: u64) {
        let used = ticks.min(self.remaining);
        self.remaining -= used;
        self.stats.budget_used = self.stats.budget_used.saturating_add(used);
        self.stats.beyond_budget = self.stats.beyond_budget.saturating_add(ticks - used);
    }

    fn has_budget(&self) -> bool {
        self.activity == Activity::Runnable && self.remaining > 0
    }
}

const fn saturating_u32(value: u64) -> u32 {
    if value > u32::MAX as u64 { u32::MAX } else { value as u32 }
}

/// Errors from run-queue operations (a slot index out of range or never added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SchedError {
    NoSuchSlot { slot: usize },
}

/// One CPU's run queue of up to `N` servers, each in a fixed slot.
#[derive(Debug, Clone)]
pub struct RtdsCpu<const N: usize> {
    servers: [Server; N],
    /// The server charged for the time since `last` (the vCPU in the guest), if any.
    current: Option<usize>,
    /// The server whose context is loaded on the CPU (the last one picked).
    loaded: Option<usize>,
    /// Time up to which everything is accounted.
    last: u64,
}

impl<const N: usize> Default for RtdsCpu<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RtdsCpu<N> {
    pub const fn new() -> Self {
        Self { servers: [Server::EMPTY; N], current: None, loaded: None, last: 0 }
    }

    /// Puts a server (inactive) in `slot`.
    pub fn add(&mut self, slot: usize, params: Params) -> Result<(), SchedError> {
        let entry = self.servers.get_mut(slot).ok_or(SchedError::NoSuchSlot { slot })?;
        *entry = Server::new(params);
        Ok(())
    }

    pub fn server(&self, slot: usize) -> Option<&Server> {
        self.servers.get(slot).filter(|s| s.present)
    }

    fn server_mut(&mut self, slot: usize) -> Result<&mut Server, SchedError> {
        self.servers.get_mut(slot).filter(|s| s.present).ok_or(SchedError::NoSuchSlot { slot })
    }

    /// The slot charged for running now.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// Accounts everything up to `now`: charges the current server for the time since the
    /// last call (split at its period boundaries) and replenishes every server whose deadline
    /// has passed. Time never runs backwards here: an earlier `now` is taken as the last one.
    pub fn advance(&mut self, now: u64) {
        let now = now.max(self.last);
        if let Some(slot) = self.current
            && let Some(server) = self.servers.get_mut(slot).filter(|s| s.present)
        {
            let mut from = self.last;
            while from < now {
                if server.activity == Activity::Inactive {
                    break;
                }
                let until = now.min(server.deadline.max(from));
                server.charge(until - from);
                from = until;
                if from >= server.deadline {
                    server.replenish_until(from);
                } else {
                    break;
                }
            }
        }
        for server in self.servers.iter_mut().filter(|s| s.present) {
            server.replenish_until(now);
        }
        self.last = now;
    }

    /// Starts a server (a vCPU powered on): runnable, with a full budget and a period that
    /// begins `now`.
    pub fn activate(&mut self, slot: usize, now: u64) -> Result<(), SchedError> {
        self.advance(now);
        let server = self.server_mut(slot)?;
        server.activity = Activity::Runnable;
        server.deadline = now.saturating_add(server.params.period);
        server.remaining = server.params.budget;
        Ok(())
    }

    /// Stops a server (vCPU off, VM stopped).
    pub fn deactivate(&mut self, slot: usize, now: u64) -> Result<(), SchedError> {
        self.advance(now);
        self.server_mut(slot)?.activity = Activity::Inactive;
        if self.current == Some(slot) {
            self.current = None;
        }
        Ok(())
    }

    /// The vCPU waits for an interrupt (trapped WFI): it stops using budget.
    pub fn block(&mut self, slot: usize, now: u64) -> Result<(), SchedError> {
        self.advance(now);
        let server = self.server_mut(slot)?;
        if server.activity == Activity::Runnable {
            server.activity = Activity::Blocked;
        }
        if self.current == Some(slot) {
            self.current = None;
        }
        Ok(())
    }

    /// The vCPU has an interrupt to take. Applies the wake-up rule: the budget it keeps is at
    /// most its bandwidth times the time left to its deadline.
    pub fn wake(&mut self, slot: usize, now: u64) -> Result<(), SchedError> {
        self.advance(now);
        let server = self.server_mut(slot)?;
        if server.activity != Activity::Blocked {
            return Ok(());
        }
        server.activity = Activity::Runnable;
        let left = u128::from(server.deadline.saturating_sub(now));
        let fair = left * u128::from(server.params.budget) / u128::from(server.params.period);
        if u128::from(server.remaining) > fair {
            server.remaining = fair as u64;
        }
        Ok(())
    }

    /// Chooses who runs from `now` (call [`advance`](Self::advance) first): the runnable
    /// server with budget and the earliest deadline (ties: lowest slot); else the extratime
    /// server with the earliest deadline; else none (idle). Returns the slot and whether it
    /// is a switch (another slot than the one that ran last).
    pub fn pick(&mut self, now: u64) -> Option<(usize, bool)> {
        self.advance(now);
        let earliest = |want_budget: bool| {
            self.servers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.present)
                .filter(|(_, s)| {
                    if want_budget { s.has_budget() } else { s.activity == Activity::Runnable && s.params.extratime }
                })
                .min_by_key(|(slot, s)| (s.deadline, *slot))
                .map(|(slot, _)| slot)
        };
        let chosen = earliest(true).or_else(|| earliest(false));
        // Idle time is charged to nobody, but the last context stays loaded: running the
        // same vCPU after idling is no switch.
        self.current = chosen;
        let slot = chosen?;
        let switched = self.loaded != Some(slot);
        if switched && let Some(server) = self.servers.get_mut(slot) {
            server.stats.switches = server.stats.switches.saturating_add(1);
        }
        self.loaded = Some(slot);
        Some((slot, switched))
    }

    /// Forgets which context is loaded (the kernel reloaded or discarded it).
    pub fn forget_loaded(&mut self) {
        self.loaded = None;
    }

    /// When the scheduler must look again, absent other events: the current server running
    /// out of budget, or any runnable server's period boundary (a replenished server may
    /// preempt, an out-of-budget one may run again). `None`: nothing will change by itself.
    pub fn next_event(&self) -> Option<u64> {
        let exhaustion = self
            .current
            .and_then(|slot| self.server(slot))
            .filter(|s| s.has_budget())
            .map(|s| self.last.saturating_add(s.remaining));
        let boundaries = self
            .servers
            .iter()
            .filter(|s| s.present && s.activity == Activity::Runnable)
            .map(|s| s.deadline)
            .min();
        match (exhaustion, boundaries) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests;
