//! The front-end's view in etcd: one key, changed only by a compare-and-swap on the revision
//! this store last read or wrote, so no view is ever overwritten by an older or a concurrent
//! one, however many front-ends believe they are active.

use std::time::Duration;

use just_hungry_core::protocol::view_store::ViewRecord;
use just_hungry_core::runtime::view_store::{ViewStore, ViewStoreError};

use super::client::{EtcdClient, EtcdError, Expected, Swap};

/// The key that holds the view unless told otherwise.
pub const DEFAULT_VIEW_KEY: &str = "/just-hungry/view";

/// The longest wait between two tries while etcd is unavailable.
const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// A [`ViewStore`] on one etcd key, holding the [`ViewRecord`] as JSON (readable with
/// `etcdctl get /just-hungry/view`).
///
/// # Guarantees
///
/// - `save` writes only over the revision this store last loaded or saved (etcd's
///   transaction compares the key's `mod_revision`); if another front-end wrote since, it
///   writes nothing and returns [`ViewStoreError::Conflict`]. A retried write whose first
///   answer was lost is recognised by its value and counts as saved.
/// - `save` returns once etcd acknowledged the write, that is once a quorum of members has it
///   on disk.
/// - While etcd cannot decide (no member reachable, no quorum), `load` and `save` wait and
///   try again, logging each failure: the front-end holds its view change until etcd
///   returns, and never acts on a view etcd has not recorded.
#[derive(Debug)]
pub struct EtcdViewStore {
    client: EtcdClient,
    key: String,
    /// The key's `mod_revision` as this store last read or wrote it; `Absent` before a load
    /// found none.
    expected: Expected,
}

impl EtcdViewStore {
    /// A store at `key` of the cluster `client` talks to. Nothing is read until `load`;
    /// a `save` before it expects the key to be absent.
    pub fn new(client: EtcdClient, key: impl Into<String>) -> Self {
        EtcdViewStore {
            client,
            key: key.into(),
            expected: Expected::Absent,
        }
    }

    /// Every view etcd has kept at this key, oldest first, read back through the key's
    /// revisions (etcd keeps them until it compacts; a compacted revision ends the walk with
    /// an error). For audits: [`check_view_history`] says whether it is sound.
    pub async fn history(&self) -> Result<Vec<ViewRecord>, ViewStoreError> {
        let unavailable = |e: EtcdError| ViewStoreError::Unavailable {
            store: self.describe(),
            reason: e.to_string(),
        };
        let key = self.key.as_bytes();
        let mut records = Vec::new();
        let mut next = self.client.get(key).await.map_err(unavailable)?;
        while let Some(kv) = next {
            records.push(self.decode(&kv.value)?);
            next = match kv.mod_revision - 1 {
                0 => None,
                revision => self
                    .client
                    .get_at(key, revision)
                    .await
                    .map_err(unavailable)?,
            };
        }
        records.reverse();
        Ok(records)
    }

    /// The store's name in errors and logs: its endpoints and key.
    fn describe(&self) -> String {
        format!(
            "etcd {} key {}",
            self.client.endpoints().join(","),
            self.key
        )
    }

    fn decode(&self, value: &[u8]) -> Result<ViewRecord, ViewStoreError> {
        serde_json::from_slice(value).map_err(|e| ViewStoreError::Malformed {
            store: self.describe(),
            reason: e.to_string(),
        })
    }

    /// Calls `f` until etcd decides, waiting longer between tries (up to a second).
    async fn until_decided<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, ViewStoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, EtcdError>>,
    {
        let mut wait = Duration::from_millis(50);
        loop {
            match f().await {
                Ok(value) => return Ok(value),
                Err(e) if e.is_unavailable() => {
                    tracing::warn!(store = %self.describe(), error = %e, retry_in = ?wait, "cannot {what} the view: etcd cannot decide; waiting");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_RETRY_INTERVAL);
                }
                Err(e) => {
                    return Err(ViewStoreError::Unavailable {
                        store: self.describe(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
}

/// Whether a history of views (oldest first, as [`EtcdViewStore::history`] reads it) is what
/// compare-and-swap promises: view numbers never go back, and no number is held by two
/// different views. The error names the first pair at fault.
pub fn check_view_history(records: &[ViewRecord]) -> Result<(), String> {
    for (i, pair) in records.windows(2).enumerate() {
        let (before, after) = (&pair[0].current, &pair[1].current);
        if after.number < before.number {
            return Err(format!(
                "record {}: view {} follows view {}: the view went back",
                i + 1,
                after.number,
                before.number
            ));
        }
        if after.number == before.number && after != before {
            return Err(format!(
                "record {}: two different views numbered {}: {before:?} and {after:?}",
                i + 1,
                after.number
            ));
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl ViewStore for EtcdViewStore {
    async fn load(&mut self) -> Result<Option<ViewRecord>, ViewStoreError> {
        let key = self.key.clone();
        let client = self.client.clone();
        let entry = self
            .until_decided("load", || client.get(key.as_bytes()))
            .await?;
        match entry {
            None => {
                self.expected = Expected::Absent;
                Ok(None)
            }
            Some(kv) => {
                let record = self.decode(&kv.value)?;
                self.expected = Expected::ModRevision(kv.mod_revision);
                Ok(Some(record))
            }
        }
    }

    async fn save(&mut self, record: &ViewRecord) -> Result<(), ViewStoreError> {
        let value = serde_json::to_vec(record).map_err(|e| ViewStoreError::Malformed {
            store: self.describe(),
            reason: e.to_string(),
        })?;
        let key = self.key.clone();
        let client = self.client.clone();
        let expected = self.expected;
        let swap = self
            .until_decided("save", || {
                client.compare_and_swap(key.as_bytes(), expected, &value, None)
            })
            .await?;
        match swap {
            Swap::Swapped { revision } => {
                self.expected = Expected::ModRevision(revision);
                Ok(())
            }
            // Our own write, whose answer was lost before a retry.
            Swap::Failed { current: Some(kv) } if kv.value == value => {
                self.expected = Expected::ModRevision(kv.mod_revision);
                Ok(())
            }
            Swap::Failed { current } => {
                let found = match &current {
                    None => "no view".to_owned(),
                    Some(kv) => match self.decode(&kv.value) {
                        Ok(r) => format!("view {} at revision {}", r.current, kv.mod_revision),
                        Err(_) => format!("something else at revision {}", kv.mod_revision),
                    },
                };
                let expected = match expected {
                    Expected::Absent => "no view".to_owned(),
                    Expected::ModRevision(r) => format!("revision {r}"),
                };
                Err(ViewStoreError::Conflict {
                    store: self.describe(),
                    reason: format!(
                        "holds {found}, not {expected}: another front-end stored a view; not saving view {}",
                        record.current
                    ),
                })
            }
        }
    }
}
