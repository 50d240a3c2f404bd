//! Views at the front-end (docs/PROTOCOL.md, "Views", rules 2 to 5, and "Bootstrap"): what the
//! primaries report, when a view is active, the elections, persisting a view before publishing
//! it, and the joins of learners.

use std::collections::BTreeSet;

use super::{Frontend, Known};
use crate::ids::{Member, ReplicaId, Time, View, ViewNumber};
use crate::protocol::Output;
use crate::protocol::election::{Candidate, MostUpToDate, PrimaryElection};
use crate::protocol::messages::Message;
use crate::protocol::stats::{ViewChange, ViewChangeReason};
use crate::protocol::view_store::ViewRecord;
use crate::state_machine::StateMachine;

impl<S: StateMachine> Frontend<S> {
    /// A replica says it is the primary of a started `view`.
    pub(super) fn on_primary_report(&mut self, now: Time, view: &View, replica: &ReplicaId) {
        match &self.record {
            None if view.number.next() == view.number => {
                // A view that no view could follow (its number is u64::MAX): resuming from it
                // would freeze the cluster's membership for ever.
                tracing::warn!(node = %self.config.name, view = %view, replica = %replica, "refused to resume from a view numbered at the limit");
            }
            None => {
                // Rule 5: with no stored view, resume only from a view whose live primary
                // reports it active.
                tracing::info!(node = %self.config.name, view = %view, "no stored view: resuming from the view its primary reports active");
                let record = ViewRecord {
                    current: view.clone(),
                    current_active: true,
                    last_active: Some(view.clone()),
                };
                self.persist(record);
                for m in view.members() {
                    self.learn_replica(now, &m.id, &m.address);
                }
            }
            Some(r) if r.current.number == view.number && r.current.primary.id == *replica => {
                // The primary's ViewStarted may have been lost: its ping says the same.
                self.on_view_started(now, view.number);
            }
            Some(_) => {}
        }
    }

    pub(super) fn on_view_started(&mut self, now: Time, number: ViewNumber) {
        let Some(record) = self.record.as_ref() else {
            return;
        };
        if record.current.number != number || record.current_active {
            return;
        }
        let mut record = record.clone();
        record.current_active = true;
        record.last_active = Some(record.current.clone());
        tracing::info!(node = %self.config.name, view = %record.current, "view active: routing requests to its primary");
        self.persist(record);
        self.unavailable = None;
        self.forward_pending(now, true);
    }

    pub(super) fn persist(&mut self, record: ViewRecord) {
        self.outputs.push_back(Output::PersistView(record.clone()));
        self.record = Some(record);
    }

    /// Creates and publishes `view` (persisted first).
    pub(super) fn install(
        &mut self,
        now: Time,
        view: View,
        reason: ViewChangeReason,
        detail: &str,
    ) {
        let previous = self.record.clone();
        let last_active = previous.as_ref().and_then(|r| r.last_active.clone());
        tracing::info!(node = %self.config.name, view = %view, reason = detail, "view change");
        self.stats.view_changed(ViewChange {
            at: now,
            view: view.clone(),
            reason,
            detail: detail.to_owned(),
        });
        self.persist(ViewRecord {
            current: view.clone(),
            current_active: false,
            last_active,
        });
        let mut told = BTreeSet::new();
        let old_members = previous
            .iter()
            .flat_map(|r| r.current.members().cloned().collect::<Vec<_>>());
        let members: Vec<Member> = view.members().cloned().chain(old_members).collect();
        for m in members {
            if told.insert(m.address.clone()) {
                self.send(
                    m.address,
                    Message::ViewInfo {
                        view: Some(view.clone()),
                        answers: None,
                    },
                );
            }
        }
    }

    /// A live replica of `id`'s name, another incarnation, that started from the data
    /// directory `id` wrote to (`id` is in its lineage): it holds at least what `id` wrote
    /// there. With whether it syncs every write.
    pub(super) fn stand_in(&self, id: &ReplicaId, now: Time) -> Option<(&Known, bool)> {
        let k = self.replicas.get(&id.name)?;
        let recovered = k.recovered.as_ref()?;
        let descends = recovered.lineage.contains(&id.incarnation);
        (descends && k.id != *id && self.is_alive(k, now)).then_some((k, recovered.synced))
    }

    pub(super) fn member_of(&self, id: &ReplicaId) -> Option<Member> {
        self.replicas
            .get(&id.name)
            .filter(|k| k.id == *id)
            .map(|k| Member {
                id: k.id.clone(),
                address: k.address.clone(),
            })
    }

    /// Applies the rules of docs/PROTOCOL.md to what the front-end knows now.
    pub(super) fn evaluate(&mut self, now: Time) {
        let Some(record) = self.record.clone() else {
            self.maybe_bootstrap(now);
            return;
        };
        let current = record.current.clone();
        if self.alive_id(&current.primary.id, now).is_none() {
            self.replace_primary(now, &record);
            return;
        }
        let dead_backups: Vec<ReplicaId> = current
            .backups
            .iter()
            .filter(|b| self.alive_id(&b.id, now).is_none())
            .map(|b| b.id.clone())
            .collect();
        if !dead_backups.is_empty() {
            let backups: Vec<Member> = current
                .backups
                .iter()
                .filter(|b| !dead_backups.contains(&b.id))
                .filter_map(|b| self.member_of(&b.id))
                .collect();
            let view = View {
                number: current.number.next(),
                primary: current.primary.clone(),
                backups,
            };
            let names: Vec<String> = dead_backups.iter().map(|b| b.to_string()).collect();
            self.install(
                now,
                view,
                ViewChangeReason::BackupFailed,
                &format!("backup failed: {}", names.join(", ")),
            );
            return;
        }
        if record.current_active {
            self.request_learners(now, &current);
        }
    }

    /// The primary of the current view is dead: elect another (rules 2-4).
    pub(super) fn replace_primary(&mut self, now: Time, record: &ViewRecord) {
        let current = &record.current;
        let base = if record.current_active {
            Some(current.clone())
        } else {
            record.last_active.clone()
        };
        let Some(base) = base else {
            // No view was ever active, so nothing was ever acknowledged: bootstrap again.
            self.bootstrap(
                now,
                current.number.next(),
                ViewChangeReason::Bootstrap,
                "primary of the first view failed before it started",
            );
            return;
        };
        // Rule 3: the live members of the last active view, and for each dead one a replica of
        // its name restarted from its data directory (a stand-in, docs/PROTOCOL.md,
        // "Durability"). A live member holds every acknowledged op in memory, a stand-in that
        // syncs every write on its disk; one that does not may have lost the last ones.
        let mut candidates = Vec::new();
        let mut complete = false;
        let mut incomplete = false;
        let mut missing = Vec::new();
        for m in base.members() {
            let (known, synced) = match self.alive_id(&m.id, now) {
                Some(k) if m.id != current.primary.id => (k, true),
                Some(_) => continue,
                None => match self.stand_in(&m.id, now) {
                    Some((k, synced)) => (k, synced),
                    None => {
                        missing.push(m.id.to_string());
                        continue;
                    }
                },
            };
            complete |= synced;
            incomplete |= !synced;
            candidates.push(Candidate {
                id: known.id.clone(),
                applied: known.applied,
                registered: known.registered,
            });
        }
        if !complete && !candidates.is_empty() && !missing.is_empty() {
            if self.config.allow_unclean_recovery {
                tracing::warn!(node = %self.config.name, missing = missing.join(", "), "unclean recovery: promoting a member restarted from a disk that may lack the last writes, without waiting for the others (--allow-unclean-recovery)");
            } else {
                let reason = format!(
                    "the members of the last active view ({base}) that are back restarted from disks that do not sync every write; waiting for {} to return too (or restart the front-end with --allow-unclean-recovery to accept losing the last writes)",
                    missing.join(", ")
                );
                if self.unavailable.as_ref() != Some(&reason) {
                    tracing::warn!(node = %self.config.name, "service unavailable: {reason}");
                }
                self.unavailable = Some(reason);
                return;
            }
        }
        if candidates.is_empty() {
            if self.config.force_new_cluster {
                tracing::warn!(node = %self.config.name, "no member of the last active view is alive: forcing a new cluster (acknowledged writes held only by dead replicas are lost)");
                self.bootstrap(
                    now,
                    current.number.next(),
                    ViewChangeReason::ForcedNewCluster,
                    "forced new cluster",
                );
                return;
            }
            let reason = format!(
                "no member of the last active view ({base}) is alive or restarted from its data directory; waiting for one to return (a front-end started with --force-new-cluster starts over without them)"
            );
            if self.unavailable.as_ref() != Some(&reason) {
                tracing::warn!(node = %self.config.name, "service unavailable: {reason}");
            }
            self.unavailable = Some(reason);
            return;
        }
        // A candidate that may lack the last writes is promoted only if it holds the most.
        let policy_choice = if incomplete {
            None
        } else {
            self.election.choose(&candidates)
        };
        let chosen = policy_choice
            .filter(|id| candidates.iter().any(|c| c.id == *id))
            .or_else(|| MostUpToDate.choose(&candidates));
        let Some(chosen) = chosen else {
            return;
        };
        let Some(primary) = self.member_of(&chosen) else {
            return;
        };
        let backups = candidates
            .iter()
            .filter(|c| c.id != chosen)
            .filter_map(|c| self.member_of(&c.id))
            .collect();
        let view = View {
            number: current.number.next(),
            primary,
            backups,
        };
        tracing::info!(node = %self.config.name, failed = %current.primary.id, elected = %chosen, candidates = candidates.len(), "election: primary failed, promoting the most up-to-date live member of the last active view");
        self.stats.elections += 1;
        self.install(now, view, ViewChangeReason::PrimaryFailed, "primary failed");
    }

    pub(super) fn maybe_bootstrap(&mut self, now: Time) {
        if now.saturating_since(self.started_at) < self.config.bootstrap_grace {
            return;
        }
        let existing = self
            .replicas
            .values()
            .any(|k| self.is_alive(k, now) && k.view > ViewNumber(0));
        if existing {
            let reason =
                "replicas of an existing cluster are alive, but no primary reports an active view"
                    .to_owned();
            if self.unavailable.as_ref() != Some(&reason) {
                tracing::warn!(node = %self.config.name, "service unavailable: {reason}");
            }
            self.unavailable = Some(reason);
            return;
        }
        self.bootstrap(
            now,
            ViewNumber(1),
            ViewChangeReason::Bootstrap,
            "bootstrap: first replica becomes primary",
        );
    }

    /// Makes the first registered live replica primary of a view with no backups.
    pub(super) fn bootstrap(
        &mut self,
        now: Time,
        number: ViewNumber,
        reason: ViewChangeReason,
        detail: &str,
    ) {
        let first = self
            .replicas
            .values()
            .filter(|k| self.is_alive(k, now))
            .min_by_key(|k| k.registered)
            .map(|k| Member {
                id: k.id.clone(),
                address: k.address.clone(),
            });
        let Some(primary) = first else {
            return;
        };
        let view = View {
            number,
            primary,
            backups: Vec::new(),
        };
        self.install(now, view, reason, detail);
    }

    /// Asks the primary to bring live replicas outside the view up to date.
    pub(super) fn request_learners(&mut self, now: Time, view: &View) {
        let retry = self.config.timing.learner_request_interval();
        let mut asks = Vec::new();
        for k in self.replicas.values() {
            if view.contains(&k.id) || !self.is_alive(k, now) {
                continue;
            }
            let due = match k.learner_requested {
                Some((v, at)) => v != view.number || now.saturating_since(at) >= retry,
                None => true,
            };
            if due {
                asks.push(k.id.name.clone());
            }
        }
        for name in asks {
            let Some(k) = self.replicas.get_mut(&name) else {
                continue;
            };
            k.learner_requested = Some((view.number, now));
            let learner = Member {
                id: k.id.clone(),
                address: k.address.clone(),
            };
            tracing::info!(node = %self.config.name, learner = %learner.id, primary = %view.primary.id, "join: asking the primary to transfer its state to the newcomer");
            self.stats.join_requests += 1;
            self.send(
                view.primary.address.clone(),
                Message::AddLearner {
                    view: view.number,
                    learner,
                },
            );
        }
    }

    /// Adds the learners the primary reports caught up (those still alive and outside the
    /// view) to the view, all in one view change.
    pub(super) fn on_caught_up(&mut self, now: Time, number: ViewNumber, learners: Vec<ReplicaId>) {
        let Some(view) = self.active_view().cloned() else {
            return;
        };
        if view.number != number {
            return;
        }
        let mut next = view.clone();
        let mut joined = Vec::new();
        for learner in learners {
            if next.contains(&learner) || self.alive_id(&learner, now).is_none() {
                continue;
            }
            let Some(member) = self.member_of(&learner) else {
                continue;
            };
            joined.push(learner.to_string());
            next.backups.push(member);
        }
        if joined.is_empty() {
            return;
        }
        next.number = view.number.next();
        self.stats.joins += joined.len() as u64;
        let detail = format!("join: {} caught up", joined.join(", "));
        self.install(now, next, ViewChangeReason::Join, &detail);
    }

    pub(super) fn on_suspect_backup(&mut self, now: Time, number: ViewNumber, backup: ReplicaId) {
        // The current view, active or not: a backup that never confirms the state of a view
        // being started would keep it from starting. As for a dead backup (`evaluate`), the
        // next view keeps the primary, so no election is involved (rule 3 holds).
        let Some(view) = self.current_view().cloned() else {
            return;
        };
        if view.number != number || !view.is_backup(&backup) {
            return;
        }
        let mut next = view.clone();
        next.number = view.number.next();
        next.backups.retain(|b| b.id != backup);
        self.install(
            now,
            next,
            ViewChangeReason::BackupSuspected,
            &format!("backup {backup} reported slow or dead by the primary"),
        );
    }
}
