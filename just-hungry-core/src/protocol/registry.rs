//! The registry (name server): names with leases, dropped when not renewed (autoclean).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::ids::{Address, Identity, Time};
use crate::protocol::messages::Message;
use crate::protocol::trust::{self, Refusals};
use crate::protocol::{Node, Output, Timing};
use crate::state_machine::StateMachine;

/// When a node (replica or front-end) sends its next `Register`: a lease renewal after the
/// registry acknowledged the last one (`Registered`), a retransmission interval after one it
/// has not, so a node is found again soon after its registry comes back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RegistrationSchedule {
    next: Time,
    /// The registry's lease when it is shorter than this node's own, once said.
    shorter_lease: Option<Duration>,
}

impl RegistrationSchedule {
    /// The first `Register` is due at once.
    pub(crate) fn new(now: Time) -> Self {
        RegistrationSchedule {
            next: now,
            shorter_lease: None,
        }
    }

    /// Whether a `Register` is due at `now`. If so, the one after is due a retransmission
    /// interval later, unless the registry acknowledges this one first.
    pub(crate) fn due(&mut self, now: Time, timing: &Timing) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + timing.retransmit_interval;
        true
    }

    /// The registry acknowledged, holding the name for `lease`: the next `Register` renews
    /// it, after a quarter of the registry's lease or of this node's own autoclean, whichever
    /// is sooner. A registry lease shorter than this node's autoclean (the two configured
    /// differently) is logged once by `node`.
    pub(crate) fn acknowledged(&mut self, now: Time, timing: &Timing, lease: Duration, node: &str) {
        let registry_pace = Timing {
            autoclean: lease,
            ..*timing
        }
        .lease_renewal();
        if lease < timing.autoclean && self.shorter_lease != Some(lease) {
            self.shorter_lease = Some(lease);
            tracing::warn!(node = %node, registry_autoclean = ?lease, own_autoclean = ?timing.autoclean, "the registry drops entries sooner than this node's --autoclean: renewing at the registry's pace (give every node the registry's --autoclean)");
        }
        self.next = now + timing.lease_renewal().min(registry_pace);
    }

    /// The registry could not be reached: try again within a retransmission interval.
    pub(crate) fn retry_soon(&mut self, now: Time, timing: &Timing) {
        self.next = self.next.min(now + timing.retransmit_interval);
    }

    /// When the next `Register` is due.
    pub(crate) fn next(&self) -> Time {
        self.next
    }
}

/// The most names the registry holds; registrations beyond are ignored (and logged).
pub const MAX_REGISTRY_ENTRIES: usize = 10_000;

/// The longest name accepted.
pub const MAX_NAME_BYTES: usize = 256;

#[derive(Clone, Debug)]
struct Lease {
    address: Address,
    expires: Time,
}

/// What the registry answers: its messages carry no command, reply or state of the service.
#[derive(Clone, Debug)]
enum Answer {
    Registered {
        name: String,
    },
    LookupReply {
        name: String,
        address: Option<Address>,
    },
}

/// The name server: maps names to addresses; each entry is a lease its owner renews by
/// registering again; an entry not renewed within `autoclean` is dropped.
///
/// It knows nothing of the replicated service: it is a [`Node`] of every [`StateMachine`]
/// (its messages, `Register`, `Lookup` and their answers, are the same in every service's
/// [`Message`]), so one registry type, and one running registry, serves any service.
pub struct Registry {
    name: String,
    autoclean: Duration,
    entries: BTreeMap<String, Lease>,
    outputs: VecDeque<(Address, Answer)>,
    refusals: Refusals,
}

impl Registry {
    /// A registry whose leases last `autoclean`.
    pub fn new(name: impl Into<String>, autoclean: Duration) -> Self {
        Registry {
            name: name.into(),
            autoclean,
            entries: BTreeMap::new(),
            outputs: VecDeque::new(),
            refusals: Refusals::default(),
        }
    }

    /// Where `name` is now, if registered and not expired at `now`.
    pub fn lookup(&self, now: Time, name: &str) -> Option<&Address> {
        self.entries
            .get(name)
            .filter(|l| l.expires > now)
            .map(|l| &l.address)
    }

    /// Every live entry.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Address)> {
        self.entries.iter().map(|(n, l)| (n.as_str(), &l.address))
    }

    /// When the next lease expires (the [`Node::next_timeout`] of every service).
    pub fn next_timeout(&self) -> Option<Time> {
        self.entries.values().map(|l| l.expires).min()
    }

    /// Drops the leases expired at `now` (the [`Node::handle_timeout`] of every service).
    pub fn handle_timeout(&mut self, now: Time) {
        self.expire(now);
    }

    /// Its name, as it logs it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many messages it refused ([`trust`]).
    pub fn refused(&self) -> u64 {
        self.refusals.total()
    }

    fn expire(&mut self, now: Time) {
        let name = &self.name;
        self.entries.retain(|entry, lease| {
            let keep = lease.expires > now;
            if !keep {
                tracing::info!(node = %name, entry = %entry, address = %lease.address, "autoclean: dropped entry not renewed in time");
            }
            keep
        });
    }
}

impl<S: StateMachine> Node<S> for Registry {
    fn handle_message(&mut self, now: Time, from: Address, sender: &Identity, message: Message<S>) {
        if let Err(why) = trust::check(sender, &message) {
            self.refusals
                .refuse(&self.name, sender, &from, message.kind(), &why);
            return;
        }
        self.expire(now);
        match message {
            Message::Register { name, address } => {
                if name.len() > MAX_NAME_BYTES {
                    tracing::info!(node = %self.name, from = %from, "refused registration: name too long");
                    return;
                }
                let expires = now + self.autoclean;
                let full = self.entries.len() >= MAX_REGISTRY_ENTRIES;
                match self.entries.get_mut(&name) {
                    Some(lease) if lease.address == address => lease.expires = expires,
                    Some(lease) => {
                        tracing::info!(node = %self.name, entry = %name, old = %lease.address, new = %address, "entry moved");
                        *lease = Lease { address, expires };
                    }
                    None if full => {
                        tracing::info!(node = %self.name, entry = %name, "refused registration: registry full");
                        return;
                    }
                    None => {
                        tracing::info!(node = %self.name, entry = %name, address = %address, "registered");
                        self.entries
                            .insert(name.clone(), Lease { address, expires });
                    }
                }
                self.outputs.push_back((from, Answer::Registered { name }));
            }
            Message::Lookup { name } => {
                let address = self.lookup(now, &name).cloned();
                self.outputs
                    .push_back((from, Answer::LookupReply { name, address }));
            }
            other => {
                tracing::debug!(node = %self.name, from = %from, kind = other.kind(), "ignored message not for a registry");
            }
        }
    }

    fn handle_unreachable(&mut self, _now: Time, _to: &Address) {}

    fn handle_timeout(&mut self, now: Time) {
        Registry::handle_timeout(self, now);
    }

    fn next_timeout(&self) -> Option<Time> {
        Registry::next_timeout(self)
    }

    fn poll_output(&mut self) -> Option<Output<S>> {
        let (to, answer) = self.outputs.pop_front()?;
        let message = match answer {
            Answer::Registered { name } => Message::Registered {
                name,
                lease: self.autoclean,
            },
            Answer::LookupReply { name, address } => Message::LookupReply { name, address },
        };
        Some(Output::Send { to, message })
    }

    fn name(&self) -> &str {
        Registry::name(self)
    }

    fn refused(&self) -> u64 {
        Registry::refused(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeRole;
    use crate::sim::KeyedLists;

    /// A node registering on its schedule with `registry`, every 100 ms of simulated time for
    /// `span`: whether the registry held its name at every step.
    fn always_registered(registry_autoclean: Duration, own_autoclean: Duration) -> bool {
        let mut registry = Registry::new("registry", registry_autoclean);
        let timing = Timing {
            autoclean: own_autoclean,
            ..Timing::default()
        };
        let node = Identity::new(NodeRole::Replica, "replica-1");
        let mut schedule = RegistrationSchedule::new(Time::ZERO);
        let mut held = true;
        let mut now = Time::ZERO;
        while now < Time::ZERO + Duration::from_secs(30) {
            if schedule.due(now, &timing) {
                let register = Message::<KeyedLists>::Register {
                    name: crate::protocol::replica_registry_name("replica-1"),
                    address: Address::new("replica-1"),
                };
                Node::<KeyedLists>::handle_message(
                    &mut registry,
                    now,
                    Address::new("replica-1"),
                    &node,
                    register,
                );
                while let Some(output) = Node::<KeyedLists>::poll_output(&mut registry) {
                    if let Output::Send {
                        message: Message::Registered { lease, .. },
                        ..
                    } = output
                    {
                        schedule.acknowledged(now, &timing, lease, "replica-1");
                    }
                }
            }
            now = now + Duration::from_millis(100);
            Registry::handle_timeout(&mut registry, now);
            // Once registered, the name must stay (the first registration is at time 0).
            let name = crate::protocol::replica_registry_name("replica-1");
            held &= registry.lookup(now, &name).is_some();
        }
        held
    }

    #[test]
    fn a_node_whose_autoclean_is_longer_than_the_registry_s_renews_at_the_registry_s_pace() {
        // Issue 18: a node told --autoclean 20s beside a registry of 2 s renewed every 5 s,
        // so the registry dropped its entry every 2 s and took it back at each renewal.
        assert!(always_registered(
            Duration::from_secs(2),
            Duration::from_secs(20)
        ));
        assert!(always_registered(
            Duration::from_secs(20),
            Duration::from_secs(2)
        ));
        assert!(always_registered(
            Duration::from_secs(20),
            Duration::from_secs(20)
        ));
    }
}
