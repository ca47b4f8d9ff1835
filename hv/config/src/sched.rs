//! CPU pools and per-vCPU real-time parameters, and the build-time schedulability checks.
//!
//! Every physical CPU a VM uses belongs to one pool. A pool's scheduler is `null` (each CPU
//! runs exactly one vCPU, no tick: the static-partitioning fast path) or `rtds` (several
//! vCPUs share a CPU, each a deferrable server with a budget per period, EDF among them).
//!
//! RTDS here is **partitioned** EDF: vCPU `i` of a VM is pinned to `cpus[i]`, and each CPU
//! schedules only its own vCPUs. The schedulability test is therefore per CPU: the sum of
//! `budget / period` over the vCPUs pinned to it must not exceed 1. That is exact for EDF
//! (Liu & Layland 1973) only if every server behaves like a periodic task. A plain
//! deferrable server does not: it can keep its budget while blocked and spend it just before
//! its deadline, back to back with its next period's budget, and two 50% servers that both
//! wake `Q` before a common deadline demand `2Q` in `Q`. The scheduler therefore applies the
//! revised wake-up rule of the constant-bandwidth server (Abeni & Buttazzo 1998; Linux
//! SCHED_DEADLINE): a vCPU that wakes at `t` with `c` budget left and deadline `d` keeps
//! `min(c, (d - t) * budget / period)`. With that rule each server's demand in any interval
//! `[t0, t1]` is at most `(t1 - t0) * budget / period`, so `Σ budget / period <= 1` per CPU
//! is necessary and sufficient (no server that is runnable with budget left at its deadline),
//! and a pool's load (the sum over its CPUs) can never exceed its CPU count. `docs/sched.md`
//! has the argument.

use crate::{Board, ConfigError, System, Vm, WfiPolicy};

/// A pool's scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Scheduler {
    /// One vCPU per CPU, no tick.
    Null,
    /// Partitioned EDF over deferrable servers (Xen's RTDS semantics, see the module docs).
    Rtds,
}

/// A set of physical CPUs under one scheduler (`/cpupools/<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuPool<'a> {
    pub name: &'a str,
    pub cpus: &'a [u32],
    pub scheduler: Scheduler,
}

/// A VM's RTDS parameters; each of its vCPUs is one server with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RtdsParams {
    /// CPU time per period, in microseconds.
    pub budget_us: u32,
    /// The replenishment period (and relative deadline), in microseconds.
    pub period_us: u32,
    /// Work-conserving: once out of budget, the vCPU may still run when no vCPU with budget
    /// left wants the CPU.
    pub extratime: bool,
}

/// Shortest RTDS period: 100 µs, so that the scheduler's own work (a few thousand
/// instructions per period) stays a small fraction.
pub const MIN_PERIOD_US: u32 = 100;
/// Longest RTDS period: 10 s.
pub const MAX_PERIOD_US: u32 = 10_000_000;
/// Most vCPUs one RTDS CPU schedules (the hypervisor's per-CPU run queue).
pub const MAX_VCPUS_PER_CPU: usize = 8;

/// Per-CPU load in parts per million, for messages (rounded up).
fn load_ppm(sum: Ratio) -> u64 {
    (sum.num.saturating_mul(1_000_000)).div_ceil(sum.den.max(1)) as u64
}

/// An exact fraction `num / den` (u128, reduced after each step).
#[derive(Debug, Clone, Copy)]
struct Ratio {
    num: u128,
    den: u128,
}

const fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Ratio {
    const ZERO: Ratio = Ratio { num: 0, den: 1 };

    /// `self + num / den`, exactly; `None` if the reduced result no longer fits in u128.
    fn add(self, num: u128, den: u128) -> Option<Ratio> {
        let g = gcd(self.den, den);
        let lcm = (self.den / g).checked_mul(den)?;
        let total = self.num.checked_mul(lcm / self.den)?.checked_add(num.checked_mul(lcm / den)?)?;
        let r = gcd(total, lcm).max(1);
        Some(Ratio { num: total / r, den: lcm / r })
    }

    fn exceeds_one(self) -> bool {
        self.num > self.den
    }
}

impl<'a> System<'a> {
    /// The pool CPU `cpu` belongs to. Without `/cpupools`, every CPU is alone in an implicit
    /// null pool and this returns `None`.
    pub fn pool_of(&self, cpu: u32) -> Option<&CpuPool<'a>> {
        self.pools.iter().find(|pool| pool.cpus.contains(&cpu))
    }

    /// The scheduler that runs CPU `cpu` (null for a CPU in no pool).
    pub fn scheduler_of(&self, cpu: u32) -> Scheduler {
        self.pool_of(cpu).map_or(Scheduler::Null, |pool| pool.scheduler)
    }
}

/// The pools themselves: not empty, CPUs on the board, each CPU in one pool.
pub(crate) fn check_pools<'a>(board: &Board<'a>, system: &System<'a>) -> Result<(), ConfigError<'a>> {
    for (i, pool) in system.pools.iter().enumerate() {
        if pool.cpus.is_empty() {
            return Err(ConfigError::EmptyPool { pool: pool.name });
        }
        for (j, &cpu) in pool.cpus.iter().enumerate() {
            if cpu as usize >= board.cpus.len() {
                return Err(ConfigError::PoolCpuNotOnBoard { pool: pool.name, cpu, board_cpus: board.cpus.len() });
            }
            let twice_here = pool.cpus[..j].contains(&cpu);
            if let Some(other) = system.pools[..i].iter().find(|p| p.cpus.contains(&cpu)).map(|p| p.name).or(twice_here.then_some(pool.name)) {
                return Err(ConfigError::CpuInTwoPools { cpu, first: other, second: pool.name });
            }
        }
    }
    Ok(())
}

/// One VM against the pools: every vCPU in a pool, RTDS parameters exactly where an RTDS
/// pool runs the VM, and sane.
pub(crate) fn check_vm<'a>(system: &System<'a>, vm: &Vm<'a>) -> Result<(), ConfigError<'a>> {
    for (vcpu, &cpu) in vm.cpus.iter().enumerate() {
        let scheduler = if system.pools.is_empty() {
            Scheduler::Null
        } else {
            match system.pool_of(cpu) {
                Some(pool) => pool.scheduler,
                None => return Err(ConfigError::VcpuInNoPool { vm: vm.name, vcpu, cpu }),
            }
        };
        match (scheduler, vm.rtds) {
            (Scheduler::Rtds, None) => return Err(ConfigError::RtdsParamsMissing { vm: vm.name, cpu }),
            (Scheduler::Null, Some(_)) => return Err(ConfigError::RtdsParamsOnNullCpu { vm: vm.name, cpu }),
            _ => {}
        }
    }
    let Some(params) = vm.rtds else { return Ok(()) };
    let (budget, period) = (params.budget_us, params.period_us);
    if budget == 0 || !(MIN_PERIOD_US..=MAX_PERIOD_US).contains(&period) {
        return Err(ConfigError::BadRtdsParams { vm: vm.name, budget_us: budget, period_us: period });
    }
    if budget > period {
        return Err(ConfigError::BudgetExceedsPeriod { vm: vm.name, budget_us: budget, period_us: period });
    }
    if vm.wfi != WfiPolicy::Trap {
        return Err(ConfigError::RtdsNeedsTrappedWfi { vm: vm.name });
    }
    Ok(())
}

/// The schedulability test, per RTDS CPU, in VM order: the VM whose vCPU first pushes a
/// CPU's load above 1 is named.
pub(crate) fn check_load<'a>(system: &System<'a>) -> Result<(), ConfigError<'a>> {
    for pool in system.pools.iter().filter(|p| p.scheduler == Scheduler::Rtds) {
        for &cpu in pool.cpus {
            let mut sum = Ratio::ZERO;
            let mut count = 0;
            let mut upper_ppm: u64 = 0;
            for vm in system.vms {
                let Some(params) = vm.rtds else { continue };
                for _ in vm.cpus.iter().filter(|&&c| c == cpu) {
                    count += 1;
                    if count > MAX_VCPUS_PER_CPU {
                        return Err(ConfigError::TooManyVcpusOnCpu { vm: vm.name, cpu, max: MAX_VCPUS_PER_CPU });
                    }
                    let (b, p) = (u128::from(params.budget_us), u128::from(params.period_us.max(1)));
                    upper_ppm += (b * 1_000_000).div_ceil(p) as u64;
                    let (over, load) = match sum.add(b, p) {
                        Some(next) => {
                            sum = next;
                            (next.exceeds_one(), load_ppm(next))
                        }
                        // Periods so unrelated that the exact sum overflows: fall back to a
                        // sum rounded up to parts per million (safe, slightly pessimistic).
                        None => (upper_ppm > 1_000_000, upper_ppm),
                    };
                    if over {
                        return Err(ConfigError::CpuOverloaded { vm: vm.name, pool: pool.name, cpu, load_ppm: load });
                    }
                }
            }
        }
    }
    Ok(())
}
