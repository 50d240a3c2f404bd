//! The online validators: [`PostcodesIo`], [`GetTheData`], and [`OnlineValidator`], the chain
//! of them with a cache and the operator's policy, which is what
//! [`PostcodeConfig::build`] gives for every mode but `offline`. Built with the
//! `online-postcodes` cargo feature (on by default).
//!
//! # The chain
//!
//! For each validation, in this order:
//!
//! 1. the offline format check ([`normalise`]): a malformed input is refused with its error and
//!    costs no request;
//! 2. the cache: a postcode found or refused recently is answered from memory; a lookup of the
//!    same postcode already in flight is waited for instead of sending another request;
//! 3. the directories of the mode in order (`online`: postcodes.io, then getthedata), each
//!    given an equal share of what is left of [`PostcodeConfig::validation_timeout`]. The first
//!    definitive answer ends the chain: *found* accepts the postcode
//!    ([`PostcodeCheck::Confirmed`]); *refused* (not found, terminated, invalid by the
//!    directory's own rules) refuses it, and the next directory is never asked. Only "could not
//!    answer" (timeout, connection error, 5xx, 429, a body or content type we cannot read, an
//!    answer about another postcode) moves on to the next directory;
//! 4. when no directory answered, [`WhenUnreachable`]: refuse with
//!    [`PostcodeError::Unreachable`] (the default), or accept with
//!    [`PostcodeCheck::Unverified`].
//!
//! A Northern Ireland (`BT`) postcode is never sent to getthedata, which has no data for it: if
//! postcodes.io cannot answer, the policy decides, as in an outage. It is never refused as
//! invalid on getthedata's account.
//!
//! # Limits
//!
//! One HTTP client for all directories (one connection pool: consecutive lookups reuse a
//! kept-alive connection), TLS by rustls on `ring` with the bundled web PKI roots (nothing to
//! install, no cmake), [`PostcodeConfig::connect_timeout`] per connection,
//! [`PostcodeConfig::max_in_flight`] requests at once per directory (waiting for a slot counts
//! against the validation timeout), response bodies of at most [`MAX_RESPONSE_BYTES`],
//! and the cache bounds of [`crate::postcode::CacheConfig`]. A slow directory delays only
//! the validations waiting on it, each at most the validation timeout: the runtime runs every
//! validation in its own task, at the primary, before replication.
//!
//! # Privacy
//!
//! Each postcode looked up is sent to the directory (a third party unless the URL points at a
//! service you run), with this host's IP address. Nothing else about the order is sent. The
//! `offline` mode sends nothing.
//!
//! The API facts each directory relies on are in [`postcodes_io`] and [`getthedata`].

mod cache;
pub mod getthedata;
mod http;
pub mod postcodes_io;

use std::time::Duration;

use tokio::time::Instant;

use cache::AnswerCache;
pub use cache::MAX_CACHE_TTL;
pub use getthedata::GetTheData;
pub use http::{
    MAX_REDIRECTS, MAX_RESPONSE_BYTES, POOL_IDLE_TIMEOUT, Response, build_client, is_loopback,
    join_path,
};
pub use postcodes_io::PostcodesIo;

use crate::postcode::{
    Directory, Postcode, PostcodeCheck, PostcodeConfig, PostcodeConfigError, PostcodeError,
    PostcodeValidator, Validated, ValidatorMode, WhenUnreachable, normalise,
};

/// What one directory, or the chain, says about a well-formed postcode: the answer of
/// [`postcodes_io::interpret`] and [`getthedata::interpret`]. Only [`Lookup::NoAnswer`] moves
/// the chain on to the next directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// It exists, live, in this directory.
    Found(Directory),
    /// A definitive refusal: not found, terminated, or invalid by the directory's rules.
    Refused(PostcodeError),
    /// No answer could be had: why (a fixed description, never text from the network).
    NoAnswer(String),
}

/// One directory of the chain.
#[derive(Clone, Debug)]
enum Source {
    PostcodesIo(PostcodesIo),
    GetTheData(GetTheData),
}

impl Source {
    fn directory(&self) -> Directory {
        match self {
            Source::PostcodesIo(_) => Directory::PostcodesIo,
            Source::GetTheData(_) => Directory::GetTheData,
        }
    }

    async fn lookup(&self, postcode: &Postcode, deadline: Instant) -> Lookup {
        match self {
            Source::PostcodesIo(source) => source.lookup(postcode, deadline).await,
            Source::GetTheData(source) => source.lookup(postcode, deadline).await,
        }
    }
}

/// The online validator: the format check, the cache, the directories of its mode in order,
/// then the operator's policy (see the [module docs](self)).
#[derive(Debug)]
pub struct OnlineValidator {
    mode: ValidatorMode,
    sources: Vec<Source>,
    when_unreachable: WhenUnreachable,
    validation_timeout: Duration,
    cache: AnswerCache,
}

impl OnlineValidator {
    /// The validator of `config`, whose mode must not be `offline`
    /// ([`PostcodeConfigError::NotOnline`]). Builds the one HTTP client the directories share;
    /// makes no request.
    pub fn from_config(config: &PostcodeConfig) -> Result<OnlineValidator, PostcodeConfigError> {
        config.check()?;
        let (asks_postcodes_io, asks_getthedata) = match config.mode {
            ValidatorMode::Offline => return Err(PostcodeConfigError::NotOnline),
            ValidatorMode::PostcodesIo => (true, false),
            ValidatorMode::GetTheData => (false, true),
            ValidatorMode::Online => (true, true),
        };
        let mut urls = Vec::new();
        if asks_postcodes_io {
            urls.push(http::parse_base_url(
                "postcodes.io",
                &config.postcodes_io_url,
            )?);
        }
        if asks_getthedata {
            urls.push(http::parse_base_url("getthedata", &config.getthedata_url)?);
        }
        let all_loopback = urls.iter().all(http::is_loopback);
        let client = http::build_client(
            config.connect_timeout,
            config.validation_timeout,
            config.max_in_flight,
            all_loopback,
        )?;
        let timeout = config.validation_timeout;
        let mut sources = Vec::new();
        if asks_postcodes_io {
            sources.push(Source::PostcodesIo(PostcodesIo::new(
                client.clone(),
                &config.postcodes_io_url,
                config.max_in_flight,
                timeout,
            )?));
        }
        if asks_getthedata {
            sources.push(Source::GetTheData(GetTheData::new(
                client,
                &config.getthedata_url,
                config.max_in_flight,
                timeout,
            )?));
        }
        Ok(OnlineValidator {
            mode: config.mode,
            sources,
            when_unreachable: config.when_unreachable,
            validation_timeout: timeout,
            cache: AnswerCache::new(&config.cache),
        })
    }

    /// Its mode (never `offline`).
    pub fn mode(&self) -> ValidatorMode {
        self.mode
    }

    /// What it does when no directory can answer.
    pub fn when_unreachable(&self) -> WhenUnreachable {
        self.when_unreachable
    }

    /// Asks the directories in order, each with an equal share of the time left, until one
    /// gives a definitive answer.
    async fn ask_directories(&self, postcode: &Postcode) -> Lookup {
        let deadline = Instant::now() + self.validation_timeout;
        let mut reasons = Vec::with_capacity(self.sources.len());
        for (index, source) in self.sources.iter().enumerate() {
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                reasons.push(format!("{}: no time left", source.directory()));
                continue;
            }
            let still_to_ask = u32::try_from(self.sources.len() - index).unwrap_or(u32::MAX);
            let lookup = source.lookup(postcode, now + left / still_to_ask).await;
            let outcome = match &lookup {
                Lookup::Found(_) => "found",
                Lookup::Refused(_) => "refused",
                Lookup::NoAnswer(_) => "no_answer",
            };
            metrics::counter!("just_hungry_postcode_lookups_total", "directory" => source.directory().label(), "outcome" => outcome)
                .increment(1);
            match lookup {
                Lookup::NoAnswer(reason) => {
                    tracing::debug!(%postcode, directory = %source.directory(), %reason, "postcode directory could not answer");
                    reasons.push(format!("{}: {reason}", source.directory()));
                }
                definitive => return definitive,
            }
        }
        Lookup::NoAnswer(reasons.join("; "))
    }
}

#[async_trait::async_trait]
impl PostcodeValidator for OnlineValidator {
    async fn validate(&self, input: &str) -> Result<Validated, PostcodeError> {
        let postcode = normalise(input)?;
        // The cache answers without asking when it holds the postcode (or another request is
        // asking for it already).
        let asked = std::sync::atomic::AtomicBool::new(false);
        let lookup = async {
            asked.store(true, std::sync::atomic::Ordering::Relaxed);
            self.ask_directories(&postcode).await
        };
        let answer = self.cache.answer(&postcode, lookup).await;
        let cache = if asked.load(std::sync::atomic::Ordering::Relaxed) {
            "miss"
        } else {
            "hit"
        };
        metrics::counter!("just_hungry_postcode_cache_requests_total", "result" => cache)
            .increment(1);
        match answer {
            Lookup::Found(directory) => Ok(Validated {
                postcode,
                check: PostcodeCheck::Confirmed(directory),
            }),
            Lookup::Refused(refusal) => Err(refusal),
            Lookup::NoAnswer(reason) => match self.when_unreachable {
                WhenUnreachable::Refuse => {
                    tracing::warn!(%postcode, %reason, "no postcode directory could answer: refused");
                    Err(PostcodeError::Unreachable { reason })
                }
                WhenUnreachable::AcceptUnverified => {
                    tracing::warn!(%postcode, %reason, "no postcode directory could answer: accepted unverified");
                    Ok(Validated {
                        postcode,
                        check: PostcodeCheck::Unverified { reason },
                    })
                }
            },
        }
    }
}
