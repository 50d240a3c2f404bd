//! The load generator's failover figures (`just_hungry::loadgen::measure_failover`): from a
//! kill to the next acknowledgement, and the longest gap between acknowledgements in the window
//! around it, bounded by the kills before and after.

use just_hungry::loadgen::{Kill, measure_failover};

fn kill_at(at_s: f64) -> Kill {
    Kill {
        at_s,
        waited_ms: 0.0,
        victim: "replica-1".into(),
        view: 1,
        view_members: 3,
        replacement: "replica-4".into(),
        time_to_first_ack_ms: None,
        longest_gap_ms: None,
        longest_gap_from_ms: None,
    }
}

#[test]
fn failover_is_measured_from_the_kill_to_the_next_ack_and_the_longest_gap_around_it() {
    // Acks every 1 ms until 10 ms, a kill at 10.5 ms, the next ack at 30 ms.
    let mut acks: Vec<u64> = (1..=10).map(|ms| ms * 1000).collect();
    acks.extend([30_000, 31_000, 32_000]);
    let mut kill = kill_at(0.0105);
    measure_failover(&mut kill, &acks, None, None);
    assert_eq!(kill.time_to_first_ack_ms, Some(19.5));
    assert_eq!(kill.longest_gap_ms, Some(20.0));
    assert_eq!(kill.longest_gap_from_ms, Some(-0.5));
}

#[test]
fn gaps_outside_the_window_around_a_kill_do_not_count() {
    // A 3 s gap ending before kill - 1 s, then an ack every 10 ms.
    let mut acks = vec![0];
    acks.extend((0..700).map(|i| 3_000_000 + i * 10_000));
    let mut kill = kill_at(5.0);
    measure_failover(&mut kill, &acks, None, None);
    assert_eq!(kill.time_to_first_ack_ms, Some(10.0));
    assert_eq!(kill.longest_gap_ms, Some(10.0));
}

#[test]
fn a_gap_spanning_the_next_kill_counts_for_that_kill_only() {
    // Kills at 1 s and 2 s; acks every 1 ms except a 100 ms gap from 2.0 s.
    let mut acks: Vec<u64> = (0..2000).map(|ms| ms * 1000).collect();
    acks.extend((2100..3000).map(|ms| ms * 1000));
    let mut first = kill_at(1.0);
    measure_failover(&mut first, &acks, None, Some(2_000_000));
    assert_eq!(first.longest_gap_ms, Some(1.0));
    let mut second = kill_at(2.0);
    measure_failover(&mut second, &acks, Some(1_000_000), None);
    assert_eq!(second.time_to_first_ack_ms, Some(100.0));
    assert_eq!(second.longest_gap_ms, Some(101.0));
    assert_eq!(second.longest_gap_from_ms, Some(-1.0));
}

#[test]
fn no_ack_after_a_kill_leaves_its_time_to_first_ack_empty() {
    let mut kill = kill_at(1.0);
    measure_failover(&mut kill, &[100, 200], None, None);
    assert_eq!(kill.time_to_first_ack_ms, None);
    assert_eq!(kill.longest_gap_ms, None);
}
