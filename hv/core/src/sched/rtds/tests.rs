//! The EDF queue, replenishment, accounting at edge times, the wake-up rule.

use super::*;

const P: u64 = 10_000;

fn params(budget: u64, period: u64, extratime: bool) -> Params {
    Params { budget, period, extratime }
}

/// Runs the queue as the kernel does, from `start` to `end`: pick, run until the next event,
/// repeat. Returns each slot's run time.
fn simulate<const N: usize>(cpu: &mut RtdsCpu<N>, start: u64, end: u64) -> [u64; N] {
    let mut ran = [0u64; N];
    let mut now = start;
    while now < end {
        let picked = cpu.pick(now);
        let next = cpu.next_event().unwrap_or(end).min(end);
        assert!(next > now || picked.is_none(), "no progress at {now}");
        if let Some((slot, _)) = picked {
            ran[slot] += next - now;
        }
        if next <= now {
            break;
        }
        now = next;
    }
    cpu.advance(end);
    ran
}

#[test]
fn edf_picks_the_earliest_deadline_then_the_lowest_slot() {
    let mut cpu = RtdsCpu::<4>::new();
    cpu.add(0, params(100, 1000, false)).unwrap();
    cpu.add(1, params(100, 500, false)).unwrap();
    cpu.add(2, params(100, 500, false)).unwrap();
    for slot in 0..3 {
        cpu.activate(slot, 0).unwrap();
    }
    assert_eq!(cpu.pick(0), Some((1, true)), "deadline 500 before 1000; slot 1 before 2");
    cpu.advance(100);
    assert_eq!(cpu.server(1).unwrap().remaining, 0);
    assert_eq!(cpu.pick(100), Some((2, true)));
    cpu.advance(200);
    assert_eq!(cpu.pick(200), Some((0, true)));
    cpu.advance(300);
    assert_eq!(cpu.pick(300), None, "everyone out of budget, nobody extratime: idle");
    assert_eq!(cpu.next_event(), Some(500), "the next replenishment");
    assert_eq!(cpu.pick(500), Some((1, true)));
}

#[test]
fn three_servers_get_exactly_their_budgets() {
    let mut cpu = RtdsCpu::<4>::new();
    for (slot, budget) in [(0, 2000), (1, 3000), (2, 4000)] {
        cpu.add(slot, params(budget, P, false)).unwrap();
        cpu.activate(slot, 0).unwrap();
    }
    let ran = simulate(&mut cpu, 0, 100 * P);
    assert_eq!(&ran[..3], &[200 * P / 10, 300 * P / 10, 400 * P / 10]);
    for (slot, &ran) in ran.iter().enumerate().take(3) {
        let stats = cpu.server(slot).unwrap().stats;
        assert_eq!(stats.deadline_misses, 0, "slot {slot}");
        assert_eq!(stats.periods, 100);
        assert_eq!(stats.beyond_budget, 0);
        assert_eq!(stats.budget_used, ran);
    }
}

#[test]
fn extratime_soaks_up_idle_time_without_taking_from_others() {
    let mut cpu = RtdsCpu::<4>::new();
    for (slot, budget) in [(0, 2000), (1, 3000), (2, 4000)] {
        cpu.add(slot, params(budget, P, false)).unwrap();
        cpu.activate(slot, 0).unwrap();
    }
    cpu.add(3, params(500, P, true)).unwrap();
    cpu.activate(3, 0).unwrap();
    let ran = simulate(&mut cpu, 0, 50 * P);
    assert_eq!(ran, [100 * P / 10, 150 * P / 10, 200 * P / 10, 50 * P / 10]);
    let extra = cpu.server(3).unwrap().stats;
    assert_eq!(extra.budget_used, 50 * 500);
    assert_eq!(extra.beyond_budget, 50 * 500, "the idle 5% on top of its own 5%");
    assert!((0..4).all(|slot| cpu.server(slot).unwrap().stats.deadline_misses == 0));
}

#[test]
fn a_starved_server_counts_misses() {
    // Overloaded on purpose (the validator would refuse it): 0.6 + 0.6.
    let mut cpu = RtdsCpu::<2>::new();
    cpu.add(0, params(600, 1000, false)).unwrap();
    cpu.add(1, params(600, 1000, false)).unwrap();
    cpu.activate(0, 0).unwrap();
    cpu.activate(1, 0).unwrap();
    simulate(&mut cpu, 0, 10_000);
    let misses = cpu.server(0).unwrap().stats.deadline_misses + cpu.server(1).unwrap().stats.deadline_misses;
    assert_eq!(misses, 10, "one of the two misses each period");
}

#[test]
fn charging_splits_at_the_period_boundary() {
    let mut cpu = RtdsCpu::<1>::new();
    cpu.add(0, params(300, 1000, true)).unwrap();
    cpu.activate(0, 0).unwrap();
    assert_eq!(cpu.pick(0), Some((0, true)));
    // A late look at 1200: 1000 in the first period (300 budget + 700 beyond), 200 in the second.
    cpu.advance(1200);
    let server = cpu.server(0).unwrap();
    assert_eq!(server.stats.budget_used, 300 + 200);
    assert_eq!(server.stats.beyond_budget, 700);
    assert_eq!(server.remaining, 100);
    assert_eq!(server.deadline, 2000);
    assert_eq!(server.stats.deadline_misses, 0, "its budget was used up before the boundary");
}

#[test]
fn exhaustion_exactly_at_the_boundary_is_not_a_miss() {
    let mut cpu = RtdsCpu::<2>::new();
    cpu.add(0, params(1000, 1000, false)).unwrap();
    cpu.activate(0, 0).unwrap();
    assert_eq!(cpu.pick(0), Some((0, true)));
    assert_eq!(cpu.next_event(), Some(1000));
    cpu.advance(1000);
    let server = cpu.server(0).unwrap();
    assert_eq!((server.stats.deadline_misses, server.remaining, server.deadline), (0, 1000, 2000));
    assert_eq!(server.stats.budget_used, 1000);
    // One tick short of the budget at the boundary is a miss.
    cpu.advance(2999);
    cpu.block(0, 2999).unwrap();
    cpu.wake(0, 2999).unwrap();
    cpu.deactivate(0, 2999).unwrap();
    cpu.add(1, params(1000, 1000, false)).unwrap();
    cpu.activate(1, 3000).unwrap();
    assert_eq!(cpu.pick(3000), Some((1, true)));
    cpu.advance(3999);
    assert_eq!(cpu.pick(3999), Some((1, false)));
    cpu.block(1, 3999).unwrap();
    cpu.wake(1, 3999).unwrap();
    // Woken with 1 tick to its deadline: it may keep only 1 tick (it had 1 left anyway).
    assert_eq!(cpu.server(1).unwrap().remaining, 1);
    cpu.advance(4000);
    assert_eq!(cpu.server(1).unwrap().stats.deadline_misses, 1);
}

#[test]
fn a_blocked_server_uses_no_budget_and_misses_nothing() {
    let mut cpu = RtdsCpu::<2>::new();
    cpu.add(0, params(500, 1000, false)).unwrap();
    cpu.activate(0, 0).unwrap();
    assert_eq!(cpu.pick(0), Some((0, true)));
    cpu.block(0, 100).unwrap();
    assert_eq!(cpu.pick(100), None);
    assert_eq!(cpu.next_event(), None, "nothing runnable: no tick");
    cpu.advance(5_000);
    let server = cpu.server(0).unwrap();
    assert_eq!(server.stats.budget_used, 100);
    assert_eq!(server.stats.deadline_misses, 0);
    assert_eq!(server.deadline, 6000, "replenished lazily on the period grid");
}

#[test]
fn wake_up_rule_clamps_a_late_waker_to_its_bandwidth() {
    let mut cpu = RtdsCpu::<2>::new();
    cpu.add(0, params(500, 1000, false)).unwrap();
    cpu.activate(0, 0).unwrap();
    cpu.block(0, 0).unwrap();
    // Wakes 200 before its deadline with 500 left: 200 * 0.5 = 100 is all it may use.
    cpu.wake(0, 800).unwrap();
    assert_eq!(cpu.server(0).unwrap().remaining, 100);
    // Waking early keeps everything.
    cpu.block(0, 1000).unwrap();
    cpu.wake(0, 1000).unwrap();
    assert_eq!(cpu.server(0).unwrap().remaining, 500);
}

#[test]
fn two_half_servers_waking_late_both_meet_their_deadlines() {
    // The deferrable-server back-to-back case: without the wake-up rule both would demand
    // 500 in the last 500 before a common deadline and one would miss.
    let mut cpu = RtdsCpu::<2>::new();
    for slot in 0..2 {
        cpu.add(slot, params(500, 1000, false)).unwrap();
        cpu.activate(slot, 0).unwrap();
        cpu.block(slot, 0).unwrap();
    }
    cpu.wake(0, 500).unwrap();
    cpu.wake(1, 500).unwrap();
    simulate(&mut cpu, 500, 3000);
    assert_eq!(cpu.server(0).unwrap().stats.deadline_misses, 0);
    assert_eq!(cpu.server(1).unwrap().stats.deadline_misses, 0);
}

#[test]
fn switches_are_counted_only_on_a_change_of_context() {
    let mut cpu = RtdsCpu::<2>::new();
    cpu.add(0, params(100, 1000, false)).unwrap();
    cpu.activate(0, 0).unwrap();
    assert_eq!(cpu.pick(0), Some((0, true)));
    cpu.block(0, 50).unwrap();
    assert_eq!(cpu.pick(50), None);
    cpu.wake(0, 60).unwrap();
    assert_eq!(cpu.pick(60), Some((0, false)), "its context is still loaded");
    assert_eq!(cpu.server(0).unwrap().stats.switches, 1);
}

#[test]
fn unknown_slots_are_errors() {
    let mut cpu = RtdsCpu::<2>::new();
    assert_eq!(cpu.add(2, params(1, 2, false)), Err(SchedError::NoSuchSlot { slot: 2 }));
    assert_eq!(cpu.activate(1, 0), Err(SchedError::NoSuchSlot { slot: 1 }));
}

#[test]
fn ticks_from_microseconds() {
    assert_eq!(ticks_from_us(1000, 62_500_000), 62_500);
    assert_eq!(ticks_from_us(u32::MAX, 1_000_000_000), u64::from(u32::MAX) * 1000);
    let p = Params::from_config(&RtdsParams { budget_us: 200, period_us: 1000, extratime: true }, 1_000_000);
    assert_eq!(p, params(200, 1000, true));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any set whose load is <= 1 meets every deadline with servers that never block, and
        /// each gets exactly its budget per period.
        #[test]
        fn schedulable_sets_never_miss(shares in proptest::collection::vec((1u64..=20, 1u64..=8), 1..=4)) {
            let mut cpu = RtdsCpu::<4>::new();
            // Periods 100 * k; budgets as fractions scaled so the sum stays <= 1.
            let total: u64 = shares.iter().map(|(b, _)| *b).sum();
            let mut load_num = 0u128;
            let mut parts = [(0u64, 0u64); 4];
            for (slot, (b, k)) in shares.iter().enumerate() {
                let period = 100 * k;
                let budget = (period * b / total.max(20)).max(1);
                parts[slot] = (budget, period);
                load_num += u128::from(budget) * 1_000_000 / u128::from(period);
                cpu.add(slot, params(budget, period, false)).unwrap();
                cpu.activate(slot, 0).unwrap();
            }
            prop_assume!(load_num <= 1_000_000);
            let hyper = 100 * 840; // lcm(1..=8) * 100
            let ran = simulate(&mut cpu, 0, hyper);
            for (slot, &(budget, period)) in parts.iter().enumerate().take(shares.len()) {
                let server = cpu.server(slot).unwrap();
                prop_assert_eq!(server.stats.deadline_misses, 0);
                prop_assert_eq!(ran[slot], budget * (hyper / period));
            }
        }
    }
}
