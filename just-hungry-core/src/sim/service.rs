//! What the simulator needs of a replicated service: [`SimService`], and [`KeyedLists`], the
//! smallest service that provides it.
//!
//! The simulator checks a service through one model, the *list-append* model of Jepsen's Elle:
//! the state is a map from keys to lists of ids, a write appends the id of its own request
//! (known before it is sent) to one key's list, and a read returns one key's list, page by page.
//! Lost, doubled, phantom and stale entries are then visible in the ids, whatever else the
//! service's commands carry. The order book is one such service (a key is a postcode, an id an
//! order); a counter is not, and is tested through the runtime instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::RequestId;
use crate::rng::SeededRng;
use crate::state_machine::{ApplyContext, StateMachine};

/// A key the simulated clients use: as they type it, and its canonical form (the key of the
/// history). A service whose keys have one spelling gives the same string twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimKey {
    /// As typed (sometimes loosely).
    pub typed: &'static str,
    /// Canonical form: the key of the history.
    pub canonical: &'static str,
}

/// One page of a key's list, as a read answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimPage {
    /// The position of the page's first id in the list.
    pub start: u64,
    /// The ids of the page, in list order.
    pub ids: Vec<RequestId>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<u64>,
}

/// A service the simulator can drive and check: a list-append model (module docs).
///
/// # To ensure correctness
///
/// - A write command built by [`SimService::write`] or [`SimService::final_write`], once
///   validated and applied as request `r`, adds `r` to the list of [`SimService::write_key`]
///   and to nothing else; its reply names `r` ([`SimService::written`]).
/// - A refused write ([`SimService::written`] is `None`) changes nothing.
/// - [`SimService::ids`] lists every id in the state, an id applied twice twice, so the
///   simulator sees a doubled write.
pub trait SimService: StateMachine<Reply: PartialEq> + std::fmt::Debug + Sized {
    /// The keys clients write to and read (at least one).
    const KEYS: &'static [SimKey];

    /// The state every replica starts with, on each start: the service's pre-defined data.
    /// Its ids are declared in the history as the initial state.
    fn initial() -> Self;

    /// The write of an [`Action::ClientWrite`](crate::sim::Action::ClientWrite) whose target
    /// is `target`: the service chooses what each value means (mostly valid writes to
    /// [`SimService::KEYS`], some it must refuse), and may draw its payload from `rng`.
    fn write(target: u8, rng: &mut SeededRng) -> Self::Command;

    /// A write to `key` that validation accepts: the writes that must succeed after healing.
    fn final_write(key: &SimKey) -> Self::Command;

    /// The history key of a write: the canonical key it appends to (or its key as typed when
    /// it has no canonical form; such a write is refused).
    fn write_key(command: &Self::Command) -> String;

    /// The canonical form of a key as typed (itself when it has none).
    fn canonical_key(typed: &str) -> String;

    /// A read of the page of `key`'s list that starts at `start`, of at most `limit` ids.
    fn read(key: &str, start: u64, limit: u32) -> Self::Query;

    /// What a write's reply says: the id it appended, or `None` for a refusal.
    fn written(reply: &Self::Reply) -> Option<RequestId>;

    /// What a read's answer says: its page, or `None` for a refusal.
    fn page(answer: &Self::QueryReply) -> Option<SimPage>;

    /// The validation a primary asks for ([`Output::Validate`](crate::protocol::Output)), as
    /// the simulator answers it after a random delay: synchronous and deterministic.
    fn validate(command: Self::Command) -> Result<Self::Command, Self::Reply>;

    /// Every id in the state, in stored order, key by key; an id held twice appears twice.
    fn ids(&self) -> Vec<RequestId>;

    /// Every key's list of ids, in stored order (keys that hold none may be left out): what
    /// the history declares as the initial state, for [`SimService::initial`].
    fn lists(&self) -> BTreeMap<String, Vec<RequestId>>;

    /// Whether the state holds `id`.
    fn contains(&self, id: RequestId) -> bool;

    /// A plausible write for the adversary to forge.
    fn forged_write() -> Self::Command;
}

/// The smallest [`SimService`]: keys that hold lists of request ids, and nothing else. A
/// reference for a service's own implementation, and the core's own test of the simulator.
///
/// Keys are [`KeyedLists::KEYS`] in any letter case (canonical: upper case); a write to any
/// other key, or with an empty key, is refused. It starts with one id under the first key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedLists {
    lists: BTreeMap<String, Vec<RequestId>>,
}

/// A write or a read of [`KeyedLists`]: the key as typed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListKey(pub String);

/// A read of [`KeyedLists`]: a page of one key's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRead {
    /// The key, as typed.
    pub key: String,
    /// The first position.
    pub start: u64,
    /// The most ids.
    pub limit: u32,
}

/// Why [`KeyedLists`] refused a write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownKey(pub String);

const KEYED_LISTS_KEYS: &[SimKey] = &[
    SimKey {
        typed: "a",
        canonical: "A",
    },
    SimKey {
        typed: "B",
        canonical: "B",
    },
    SimKey {
        typed: "c",
        canonical: "C",
    },
];

impl KeyedLists {
    fn canonical(typed: &str) -> Option<String> {
        let upper = typed.trim().to_uppercase();
        KEYED_LISTS_KEYS
            .iter()
            .any(|k| k.canonical == upper)
            .then_some(upper)
    }
}

impl StateMachine for KeyedLists {
    type Command = ListKey;
    type Reply = Result<RequestId, UnknownKey>;
    type Query = ListRead;
    type QueryReply = Result<SimPage, UnknownKey>;
    const SERVICE: &'static str = "just-hungry/keyed-lists";

    fn apply(&mut self, context: &ApplyContext, command: &ListKey) -> Self::Reply {
        let key = Self::canonical(&command.0).ok_or_else(|| UnknownKey(command.0.clone()))?;
        self.lists.entry(key).or_default().push(context.request);
        Ok(context.request)
    }

    fn query(&self, query: &ListRead) -> Self::QueryReply {
        let key = Self::canonical(&query.key).ok_or_else(|| UnknownKey(query.key.clone()))?;
        let list = self.lists.get(&key).map(Vec::as_slice).unwrap_or_default();
        let start = usize::try_from(query.start)
            .unwrap_or(usize::MAX)
            .min(list.len());
        let end = start
            .saturating_add(query.limit.max(1) as usize)
            .min(list.len());
        Ok(SimPage {
            start: start as u64,
            ids: list[start..end].to_vec(),
            next: (end < list.len()).then_some(end as u64),
        })
    }
}

impl SimService for KeyedLists {
    const KEYS: &'static [SimKey] = KEYED_LISTS_KEYS;

    fn initial() -> Self {
        let mut lists = BTreeMap::new();
        let seed = RequestId {
            client: crate::ids::ClientId(0),
            seq: 1,
        };
        lists.insert(KEYED_LISTS_KEYS[0].canonical.to_owned(), vec![seed]);
        KeyedLists { lists }
    }

    fn write(target: u8, _rng: &mut SeededRng) -> ListKey {
        let keys = KEYED_LISTS_KEYS;
        match usize::from(target) % (keys.len() + 1) {
            i if i < keys.len() => ListKey(keys[i].typed.to_owned()),
            _ => ListKey("no such key".to_owned()),
        }
    }

    fn final_write(key: &SimKey) -> ListKey {
        ListKey(key.typed.to_owned())
    }

    fn write_key(command: &ListKey) -> String {
        Self::canonical_key(&command.0)
    }

    fn canonical_key(typed: &str) -> String {
        Self::canonical(typed).unwrap_or_else(|| typed.to_owned())
    }

    fn read(key: &str, start: u64, limit: u32) -> ListRead {
        ListRead {
            key: key.to_owned(),
            start,
            limit,
        }
    }

    fn written(reply: &Self::Reply) -> Option<RequestId> {
        reply.as_ref().ok().copied()
    }

    fn page(answer: &Self::QueryReply) -> Option<SimPage> {
        answer.as_ref().ok().cloned()
    }

    fn validate(command: ListKey) -> Result<ListKey, Self::Reply> {
        match Self::canonical(&command.0) {
            Some(key) => Ok(ListKey(key)),
            None => Err(Err(UnknownKey(command.0))),
        }
    }

    fn ids(&self) -> Vec<RequestId> {
        self.lists.values().flatten().copied().collect()
    }

    fn lists(&self) -> BTreeMap<String, Vec<RequestId>> {
        self.lists.clone()
    }

    fn contains(&self, id: RequestId) -> bool {
        self.lists.values().any(|l| l.contains(&id))
    }

    fn forged_write() -> ListKey {
        ListKey(KEYED_LISTS_KEYS[0].typed.to_owned())
    }
}
