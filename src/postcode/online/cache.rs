//! The answer cache of the online validator (moka): found and refused postcodes kept apart,
//! "could not answer" never kept, concurrent lookups of one postcode coalesced.

use std::future::Future;
use std::time::Duration;

use moka::future::Cache;

use super::Lookup;
use crate::postcode::{CacheConfig, Directory, Postcode, PostcodeError};

/// The longest time to live an entry gets, whatever the configuration says (moka refuses
/// absurd ones).
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Found postcodes (which directory found them) and refused ones (the refusal), each with its
/// own bound and time to live.
///
/// # To ensure correctness
///
/// - Only definitive answers are kept: [`Lookup::Found`] in `found`, [`Lookup::Refused`] in
///   `refused`. [`Lookup::NoAnswer`] is never kept, so an outage is not remembered once it is
///   over.
/// - While a lookup of a postcode is in flight, other lookups of the same postcode wait for
///   its answer instead of sending their own request (moka's `try_get_with` runs one init per
///   key at a time and hands its result to every waiter, `Err` included).
pub struct AnswerCache {
    found: Cache<Postcode, Directory>,
    refused: Cache<Postcode, PostcodeError>,
    /// Whether found answers are kept (the `found` cache still coalesces when they are not).
    keep_found: bool,
    /// Whether refusals are kept.
    keep_refused: bool,
}

impl std::fmt::Debug for AnswerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerCache")
            .field("found", &self.found.entry_count())
            .field("refused", &self.refused.entry_count())
            .finish()
    }
}

fn build<V: Clone + Send + Sync + 'static>(entries: u64, ttl: Duration) -> Cache<Postcode, V> {
    Cache::builder()
        .max_capacity(entries)
        .time_to_live(ttl.clamp(Duration::from_millis(1), MAX_CACHE_TTL))
        .build()
}

impl AnswerCache {
    /// An empty cache with these bounds.
    pub fn new(config: &CacheConfig) -> AnswerCache {
        AnswerCache {
            found: build(config.found_entries, config.found_ttl),
            refused: build(config.refused_entries, config.refused_ttl),
            keep_found: config.found_entries > 0 && !config.found_ttl.is_zero(),
            keep_refused: config.refused_entries > 0 && !config.refused_ttl.is_zero(),
        }
    }

    /// The answer for `postcode`: from the cache, from a lookup already in flight, or from
    /// `lookup`, whose definitive answer is then kept.
    pub async fn answer(
        &self,
        postcode: &Postcode,
        lookup: impl Future<Output = Lookup>,
    ) -> Lookup {
        if let Some(refusal) = self.refused.get(postcode).await {
            return Lookup::Refused(refusal);
        }
        // `Ok` is kept by moka; an `Err` is handed to every waiter and not kept.
        let outcome = self
            .found
            .try_get_with(postcode.clone(), async {
                match lookup.await {
                    Lookup::Found(directory) => Ok(directory),
                    other => Err(other),
                }
            })
            .await;
        match outcome {
            Ok(directory) => {
                if !self.keep_found {
                    self.found.invalidate(postcode).await;
                }
                Lookup::Found(directory)
            }
            Err(shared) => {
                let answer = Lookup::clone(&shared);
                if let (true, Lookup::Refused(refusal)) = (self.keep_refused, &answer) {
                    self.refused.insert(postcode.clone(), refusal.clone()).await;
                }
                answer
            }
        }
    }
}
