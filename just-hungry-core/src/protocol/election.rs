//! The pluggable primary election policy.
//!
//! The front-end decides *who may* become primary (docs/PROTOCOL.md, rule 3: live members of the
//! last active view, never a newcomer); a [`PrimaryElection`] only ranks those candidates. A
//! policy that returns someone who is not a candidate is ignored and the default is used.

use crate::ids::{OpNumber, ReplicaId};

/// A replica eligible to become primary, as the front-end knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Who.
    pub id: ReplicaId,
    /// The last op it reported applied.
    pub applied: OpNumber,
    /// The order in which the front-end first heard of it (0 = first).
    pub registered: u64,
}

/// Ranks eligible candidates for primary.
///
/// # To ensure correctness
///
/// Nothing a policy returns can break safety: the front-end only offers live members of
/// the last active view and ignores an answer outside them. A policy decides only which of
/// the safe choices is taken (prefer the most up to date to lose fewest unacknowledged ops).
pub trait PrimaryElection: Send + 'static {
    /// Picks one of `candidates` (never empty), or `None` to use the default.
    fn choose(&self, candidates: &[Candidate]) -> Option<ReplicaId>;
}

/// The default policy: the highest applied op; ties go to the replica that registered first,
/// as the original system took the first replica found.
#[derive(Clone, Copy, Debug, Default)]
pub struct MostUpToDate;

impl PrimaryElection for MostUpToDate {
    fn choose(&self, candidates: &[Candidate]) -> Option<ReplicaId> {
        candidates
            .iter()
            .max_by(|a, b| {
                a.applied
                    .cmp(&b.applied)
                    .then(b.registered.cmp(&a.registered))
            })
            .map(|c| c.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(name: &str, applied: u64, registered: u64) -> Candidate {
        Candidate {
            id: ReplicaId::new(name, 1),
            applied: OpNumber(applied),
            registered,
        }
    }

    #[test]
    fn highest_applied_wins_then_first_registered() {
        let c = [
            candidate("a", 5, 0),
            candidate("b", 7, 2),
            candidate("c", 7, 1),
        ];
        assert_eq!(MostUpToDate.choose(&c), Some(ReplicaId::new("c", 1)));
    }
}
