//! What a test asks the simulator to do: advance time, start client operations, inject faults.
//!
//! Indices are taken modulo what exists (a `CrashReplica(7)` in a cluster of three replicas
//! crashes replica `7 % 3`), so any sequence of actions is valid for any cluster: proptest can
//! shrink a failing sequence freely.

use std::fmt;

use crate::rng::SeededRng;
#[cfg(doc)]
use crate::sim::SimService;

/// A node to cut off the network with [`Action::Isolate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The front-end.
    Frontend,
    /// Replica slot `i` (modulo the number of slots).
    Replica(u8),
    /// Client `i` (modulo the number of clients).
    Client(u8),
}

/// One step of a simulated run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing (what shrinking turns an action into when it is not needed).
    Nop,
    /// Let this many milliseconds of virtual time pass, delivering every event due.
    Advance(u16),
    /// Client `client` writes [`SimService::write`]`(target)`; ignored while that client has
    /// an operation in flight.
    ClientWrite {
        /// Which client.
        client: u8,
        /// Which write: the service says what each value means.
        target: u8,
    },
    /// Client `client` reads key `key` of [`SimService::KEYS`] (modulo their number), as
    /// typed; ignored while that client has an operation in flight.
    ClientRead {
        /// Which client.
        client: u8,
        /// Index into [`SimService::KEYS`].
        key: u8,
    },
    /// Crash replica slot `i` (its in-memory state is lost).
    CrashReplica(u8),
    /// Restart replica slot `i` as a new incarnation with its pre-defined data; a running
    /// replica is killed first (a restart within `dead_after`).
    RestartReplica(u8),
    /// Crash the primary of the front-end's current view.
    CrashPrimary,
    /// Crash the front-end (its stored view survives).
    CrashFrontend,
    /// Restart the front-end from its stored view; a running one is killed first.
    RestartFrontend,
    /// Start a new replica (up to the configured maximum number of slots).
    AddReplica,
    /// Cut a node off from every other node, both ways.
    Isolate(Target),
    /// Cut the link from the first node to the second, one way only (the other way still
    /// works): a node that can speak but not hear, or hear but not speak.
    CutLink(Target, Target),
    /// Cut the primary of the front-end's current view off from its backups (not from the
    /// front-end), both ways.
    PartitionPrimaryFromBackups,
    /// Split the replicas in two groups: those whose slot index has its bit set in the mask stay
    /// with the front-end, the registry and the clients; the others are cut off from them.
    Split(u8),
    /// Remove every partition.
    Heal,
    /// Drop each message with this probability, in thousandths.
    SetDrop(u16),
    /// Deliver each message twice with this probability, in thousandths.
    SetDuplicate(u16),
    /// Make the longest network delay this many milliseconds (at least the shortest delay):
    /// long delays rival the ping and failure-detection timings.
    SetMaxDelay(u16),
    /// Crash every replica at once and restart each (durable replicas from their disks: see
    /// [`crate::sim::Sim::crash_every_replica`]); skipped for memory-only replicas when the last
    /// member is protected.
    CrashEveryReplica,
    /// Make the disk of replica slot `replica` fail ([`crate::sim::Sim::disk_fault`]: `fault`
    /// picks a sync error, a full disk or a flipped bit); nothing for memory-only replicas, and
    /// only a flipped bit for the protected last member.
    DiskFault {
        /// Which replica slot (modulo their number).
        replica: u8,
        /// Which fault (modulo 3).
        fault: u8,
    },
    /// The adversary sends forgery `what` (of [`crate::sim::FORGERY_KINDS`]) aimed at node
    /// `target`, `tweak` choosing its identity and details ([`crate::sim::Sim::forge`]).
    Forge {
        /// Which forgery.
        what: u8,
        /// Which node it aims at (modulo what exists).
        target: u8,
        /// Its identity (even: client, odd: replica) and details.
        tweak: u8,
    },
}

impl Action {
    /// A random action, with the same weights as the property tests' strategy.
    pub fn random(rng: &mut SeededRng) -> Action {
        let small = |rng: &mut SeededRng| rng.below(256) as u8;
        match rng.below(100) {
            0..=29 => Action::Advance(rng.between(1, 1500) as u16),
            30..=54 => Action::ClientWrite {
                client: small(rng),
                target: small(rng),
            },
            55..=64 => Action::ClientRead {
                client: small(rng),
                key: small(rng),
            },
            65..=67 => Action::CrashReplica(small(rng)),
            68..=71 => Action::RestartReplica(small(rng)),
            72..=73 => Action::CrashPrimary,
            74 => Action::CrashFrontend,
            75..=76 => Action::RestartFrontend,
            77 => Action::AddReplica,
            78..=79 => Action::Isolate(random_target(rng)),
            80..=81 => Action::PartitionPrimaryFromBackups,
            82 => Action::Split(small(rng)),
            83..=87 => Action::Heal,
            88..=91 => Action::SetDrop(rng.below(301) as u16),
            92..=95 => Action::SetDuplicate(rng.below(301) as u16),
            96 => Action::SetMaxDelay(rng.between(1, 400) as u16),
            97 => Action::CutLink(random_target(rng), random_target(rng)),
            _ => Action::Advance(rng.between(1, 200) as u16),
        }
    }
}

fn random_target(rng: &mut SeededRng) -> Target {
    match rng.below(4) {
        0 => Target::Frontend,
        1 => Target::Client(rng.below(256) as u8),
        _ => Target::Replica(rng.below(256) as u8),
    }
}

/// A random action of a run with durable replicas: one in twelve crashes every replica at once
/// or makes a disk fail, the others are as [`Action::random`].
pub fn random_durable(rng: &mut SeededRng) -> Action {
    match rng.below(24) {
        0 => Action::CrashEveryReplica,
        1 => Action::DiskFault {
            replica: rng.below(256) as u8,
            fault: rng.below(256) as u8,
        },
        _ => Action::random(rng),
    }
}

/// The whole run with durable replicas generated from one seed: as [`seeded_run`], with
/// [`random_durable`] actions and an fsync policy (`always`, `batch` or `never`) chosen by the
/// seed.
pub fn seeded_durable_run(seed: u64) -> (crate::sim::SimConfig, Vec<Action>) {
    let (mut config, actions) = seeded_run(seed);
    let mut rng = SeededRng::new(seed ^ 0xd15c_d15c_d15c_d15c);
    config.storage = Some(match rng.below(3) {
        0 => crate::storage::FsyncPolicy::Always,
        1 => crate::storage::FsyncPolicy::Batch(crate::storage::DEFAULT_BATCH_INTERVAL),
        _ => crate::storage::FsyncPolicy::Never,
    });
    let actions = (0..actions.len())
        .map(|_| random_durable(&mut rng))
        .collect();
    (config, actions)
}

/// A random action of a run with an adversary: one in four forges a message, the others are
/// as [`Action::random`].
pub fn random_adversarial(rng: &mut SeededRng) -> Action {
    if rng.below(4) == 0 {
        Action::Forge {
            what: rng.below(256) as u8,
            target: rng.below(256) as u8,
            tweak: rng.below(256) as u8,
        }
    } else {
        Action::random(rng)
    }
}

/// The whole run with an adversary generated from one seed: as [`seeded_run`], one action in
/// four a forgery.
pub fn seeded_adversarial_run(seed: u64) -> (crate::sim::SimConfig, Vec<Action>) {
    let (config, actions) = seeded_run(seed);
    let mut rng = SeededRng::new(seed ^ 0x0bad_0bad_0bad_0bad);
    let actions = (0..actions.len())
        .map(|_| random_adversarial(&mut rng))
        .collect();
    (config, actions)
}

/// Generates `count` random actions from `seed` (the replay of `JUST_HUNGRY_SIM_SEED`).
pub fn random_actions(seed: u64, count: usize) -> Vec<Action> {
    let mut rng = SeededRng::new(seed ^ 0x5eed_ac71_0a5e_ed00);
    (0..count).map(|_| Action::random(&mut rng)).collect()
}

/// A list of actions that prints without its [`Action::Nop`]s, each with its index: what a
/// shrunk failing case looks like in a test failure.
#[derive(Clone, PartialEq, Eq)]
pub struct Actions(pub Vec<Action>);

impl fmt::Debug for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (i, a) in self.0.iter().enumerate() {
            if *a != Action::Nop {
                list.entry(&format_args!("{i}: {a:?}"));
            }
        }
        list.finish()
    }
}

impl fmt::Display for Actions {
    /// As Rust source: `vec![Action::Advance(3), ...]` without the `Nop`s, to paste into a
    /// scenario test.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("vec![")?;
        let mut first = true;
        for a in self.0.iter().filter(|a| **a != Action::Nop) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            match a {
                Action::Isolate(t) => write!(f, "Action::Isolate(Target::{t:?})")?,
                Action::CutLink(a, b) => {
                    write!(f, "Action::CutLink(Target::{a:?}, Target::{b:?})")?
                }
                Action::Forge {
                    what,
                    target,
                    tweak,
                } => write!(
                    f,
                    "Action::Forge {{ what: {what}, target: {target}, tweak: {tweak} }}"
                )?,
                Action::DiskFault { replica, fault } => write!(
                    f,
                    "Action::DiskFault {{ replica: {replica}, fault: {fault} }}"
                )?,
                other => write!(f, "Action::{other:?}")?,
            }
        }
        f.write_str("]")
    }
}

/// The whole run generated from one seed: the cluster's size (3 to 5 replicas, 2 to 4
/// clients), whether the last member is protected (3 runs in 4) and 50 to 300 actions. What `JUST_HUNGRY_SIM_SEED` replays.
pub fn seeded_run(seed: u64) -> (crate::sim::SimConfig, Vec<Action>) {
    let mut rng = SeededRng::new(seed ^ 0x00c0_ffee_d00d_f00d);
    let config = crate::sim::SimConfig {
        replicas: rng.between(3, 5) as usize,
        clients: rng.between(2, 4) as usize,
        protect_last_member: rng.below(4) != 0,
        ..crate::sim::SimConfig::default()
    };
    let count = rng.between(50, 300) as usize;
    (config, random_actions(seed, count))
}
