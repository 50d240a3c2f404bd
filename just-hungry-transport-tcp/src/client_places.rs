//! The places clients may hold among the inbound connections
//! ([`crate::TcpConfig::max_client_connections`]), shared fairly between client identities.
//!
//! Without fairness, one client certificate (there are many, on users' machines: the likeliest
//! to leak) could open connections until every client place is taken and keep every other
//! client out. So when every place is taken, a client whose identity holds at least two fewer
//! connections than the largest holder takes a place from that holder: the holder's oldest
//! connection is closed. An identity is refused only when no identity holds more than one
//! connection beyond its own count, so with `k` identities competing for `limit` places each
//! keeps at least `limit / k - 1` of them, however many the others open.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::transport::lock;

/// The client places of one transport.
#[derive(Debug)]
pub(crate) struct ClientPlaces {
    limit: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    /// The places taken, at most `limit`.
    open: usize,
    next_id: u64,
    /// Each identity's places, oldest first, with the token that closes each connection.
    by_identity: HashMap<String, VecDeque<(u64, CancellationToken)>>,
}

/// A place taken by [`ClientPlaces::take`]: given back when dropped, unless it was taken away
/// for another identity (its [`ClientPlace::taken_away`] is then cancelled).
#[derive(Debug)]
pub(crate) struct ClientPlace {
    places: Arc<ClientPlaces>,
    identity: String,
    id: u64,
    taken_away: CancellationToken,
}

/// What [`ClientPlaces::take`] did.
#[derive(Debug)]
pub(crate) enum Taken {
    /// A free place.
    Free(ClientPlace),
    /// Every place was taken: the oldest connection of `from`, the largest holder (which then
    /// held `held` places), was closed to make room.
    FromLargest {
        place: ClientPlace,
        from: String,
        held: usize,
    },
    /// Every place is taken and no identity holds two more than `own` (this identity's count).
    Refused { own: usize, largest: usize },
}

impl ClientPlaces {
    /// Places for at most `limit` client connections.
    pub(crate) fn new(limit: usize) -> Arc<ClientPlaces> {
        Arc::new(ClientPlaces {
            limit,
            held: Mutex::default(),
        })
    }

    /// Client connections holding a place now.
    pub(crate) fn open(&self) -> usize {
        lock(&self.held).open
    }

    /// Takes a place for a connection of `identity`: a free one, or, when none is free, one
    /// taken from the identity holding the most when it holds at least two more than
    /// `identity` does (see the module documentation).
    pub(crate) fn take(self: &Arc<Self>, identity: &str) -> Taken {
        let mut held = lock(&self.held);
        let own = held.by_identity.get(identity).map_or(0, VecDeque::len);
        let mut from_largest = None;
        if held.open >= self.limit {
            let largest = held
                .by_identity
                .iter()
                .max_by_key(|(_, places)| places.len())
                .map(|(name, places)| (name.clone(), places.len()));
            match largest {
                Some((name, count)) if own + 1 < count => {
                    let places = held.by_identity.get_mut(&name).expect("the largest holder");
                    let (_, token) = places.pop_front().expect("it holds places");
                    token.cancel();
                    held.open -= 1;
                    from_largest = Some((name, count));
                }
                largest => {
                    return Taken::Refused {
                        own,
                        largest: largest.map_or(0, |(_, count)| count),
                    };
                }
            }
        }
        let id = held.next_id;
        held.next_id += 1;
        held.open += 1;
        let taken_away = CancellationToken::new();
        held.by_identity
            .entry(identity.to_owned())
            .or_default()
            .push_back((id, taken_away.clone()));
        let place = ClientPlace {
            places: self.clone(),
            identity: identity.to_owned(),
            id,
            taken_away,
        };
        match from_largest {
            None => Taken::Free(place),
            Some((from, held)) => Taken::FromLargest { place, from, held },
        }
    }
}

impl ClientPlace {
    /// Cancelled when this place was taken for another identity's connection: the connection
    /// must close.
    pub(crate) fn taken_away(&self) -> &CancellationToken {
        &self.taken_away
    }
}

impl Drop for ClientPlace {
    fn drop(&mut self) {
        let mut held = lock(&self.places.held);
        let Some(places) = held.by_identity.get_mut(&self.identity) else {
            return;
        };
        let Some(at) = places.iter().position(|(id, _)| *id == self.id) else {
            // Taken away: already given to another connection.
            return;
        };
        places.remove(at);
        if places.is_empty() {
            held.by_identity.remove(&self.identity);
        }
        held.open -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(taken: Taken) -> ClientPlace {
        match taken {
            Taken::Free(place) | Taken::FromLargest { place, .. } => place,
            Taken::Refused { own, largest } => {
                panic!("refused (own {own}, largest {largest})")
            }
        }
    }

    #[test]
    fn places_are_free_up_to_the_limit_and_come_back_when_dropped() {
        let places = ClientPlaces::new(3);
        let held: Vec<_> = (0..3).map(|_| place(places.take("a"))).collect();
        assert_eq!(places.open(), 3);
        assert!(matches!(
            places.take("a"),
            Taken::Refused { own: 3, largest: 3 }
        ));
        drop(held);
        assert_eq!(places.open(), 0);
        assert!(matches!(places.take("a"), Taken::Free(_)));
    }

    #[test]
    fn one_identity_holding_every_place_gives_its_oldest_to_another() {
        let places = ClientPlaces::new(4);
        let flood: Vec<_> = (0..4).map(|_| place(places.take("leaked"))).collect();
        let honest = match places.take("honest") {
            Taken::FromLargest { place, from, held } => {
                assert_eq!((from.as_str(), held), ("leaked", 4));
                place
            }
            other => panic!("the honest client gets a place, not {other:?}"),
        };
        assert!(flood[0].taken_away().is_cancelled(), "the oldest is closed");
        assert!(flood[1..].iter().all(|p| !p.taken_away().is_cancelled()));
        assert_eq!(places.open(), 4);
        // The flood cannot take it back: it holds 3, the honest client 1.
        assert!(matches!(
            places.take("leaked"),
            Taken::Refused { own: 3, largest: 3 }
        ));
        // Two more identities are let in, from the flood again, down to one place each; a
        // fifth identity is not, as nobody holds two more than it does.
        let second = place(places.take("second"));
        let third = place(places.take("third"));
        assert!(flood[1].taken_away().is_cancelled() && flood[2].taken_away().is_cancelled());
        assert!(matches!(
            places.take("fifth"),
            Taken::Refused { own: 0, largest: 1 }
        ));
        // The flood's closed connections ending give nothing back twice.
        drop(flood);
        assert_eq!(places.open(), 3);
        drop((honest, second, third));
        assert_eq!(places.open(), 0);
    }

    #[test]
    fn identities_competing_each_keep_a_fair_share() {
        const LIMIT: usize = 60;
        let places = ClientPlaces::new(LIMIT);
        let mut held: Vec<(usize, ClientPlace)> = Vec::new();
        // Three identities open connections in turn, identity 0 ten times as often.
        for round in 0..400 {
            for who in 0..3 {
                let tries = if who == 0 { 10 } else { 1 };
                for _ in 0..tries {
                    if let Taken::Free(p) | Taken::FromLargest { place: p, .. } =
                        places.take(&format!("id-{who}"))
                    {
                        held.push((who, p));
                    }
                }
            }
            held.retain(|(_, p)| !p.taken_away().is_cancelled());
            if round > 100 {
                for who in 0..3 {
                    let count = held.iter().filter(|(w, _)| *w == who).count();
                    assert!(count >= LIMIT / 3 - 1, "identity {who} holds {count}");
                }
            }
        }
        assert_eq!(places.open(), held.len());
    }
}
