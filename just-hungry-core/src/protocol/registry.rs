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
}

impl RegistrationSchedule {
    /// The first `Register` is due at once.
    pub(crate) fn new(now: Time) -> Self {
        RegistrationSchedule { next: now }
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

    /// The registry acknowledged: the next `Register` renews the lease.
    pub(crate) fn acknowledged(&mut self, now: Time, timing: &Timing) {
        self.next = now + timing.lease_renewal();
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
            Answer::Registered { name } => Message::Registered { name },
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
