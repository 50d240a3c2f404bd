//! The postcode validator's configuration: the library's builder, and what the binaries' flags
//! (`--validator`, `--postcodes-io-url`, `--getthedata-url`, `--validation-timeout`,
//! `--when-unreachable`) fill in.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::{OfflineValidator, PostcodeValidator};

/// Where postcodes.io is: its public API.
pub const DEFAULT_POSTCODES_IO_URL: &str = "https://api.postcodes.io";

/// Where getthedata is: its public API (their documentation shows `http://`; we use TLS).
pub const DEFAULT_GETTHEDATA_URL: &str = "https://api.getthedata.com";

/// How long one validation may take in all, every directory of the chain included.
pub const DEFAULT_VALIDATION_TIMEOUT: Duration = Duration::from_secs(5);

/// How long opening a connection (TCP and TLS) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How many requests may be in flight at once to each directory.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;

/// The most requests in flight to one directory that a configuration may ask for.
pub const MAX_IN_FLIGHT_LIMIT: usize = 1024;

/// How many postcodes found to exist are remembered.
pub const DEFAULT_FOUND_ENTRIES: u64 = 10_000;

/// How long a postcode found to exist is remembered: postcodes are rarely withdrawn.
pub const DEFAULT_FOUND_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How many refused postcodes (not found, terminated, refused by the directory) are remembered.
pub const DEFAULT_REFUSED_ENTRIES: u64 = 10_000;

/// How long a refused postcode is remembered: shorter than a found one, as new postcodes
/// appear and the fallback's data is older.
pub const DEFAULT_REFUSED_TTL: Duration = Duration::from_secs(10 * 60);

/// Which validator to build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ValidatorMode {
    /// The offline format check only: no network, nothing sent to anyone.
    Offline,
    /// The format check, then a lookup at postcodes.io.
    PostcodesIo,
    /// The format check, then a lookup at getthedata.
    GetTheData,
    /// The format check, then postcodes.io, then getthedata only when postcodes.io could not
    /// answer (timeout, connection error, 5xx, 429, garbage), never after it refused. The
    /// default of the binaries run by hand.
    #[default]
    Online,
}

impl ValidatorMode {
    /// Every mode, in the order of the documentation.
    pub const ALL: [ValidatorMode; 4] = [
        ValidatorMode::Offline,
        ValidatorMode::PostcodesIo,
        ValidatorMode::GetTheData,
        ValidatorMode::Online,
    ];

    /// The name used on the command line: `offline`, `postcodes-io`, `getthedata`, `online`.
    pub fn as_str(self) -> &'static str {
        match self {
            ValidatorMode::Offline => "offline",
            ValidatorMode::PostcodesIo => "postcodes-io",
            ValidatorMode::GetTheData => "getthedata",
            ValidatorMode::Online => "online",
        }
    }
}

impl fmt::Display for ValidatorMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ValidatorMode {
    type Err = ParseChoiceError;

    /// Parses a name of [`ValidatorMode::as_str`], ignoring ASCII case.
    fn from_str(s: &str) -> Result<ValidatorMode, ParseChoiceError> {
        ValidatorMode::ALL
            .into_iter()
            .find(|mode| mode.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseChoiceError {
                what: "validator mode",
                given: s.to_owned(),
                expected: "offline, postcodes-io, getthedata or online",
            })
    }
}

/// What to do with an order when no directory can answer (timeouts, connection errors, server
/// errors, rate limits, garbage; or, for a Northern Ireland postcode, only getthedata, which
/// has no data for it, could be asked).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WhenUnreachable {
    /// Refuse it with [`super::PostcodeError::Unreachable`], "cannot validate the postcode now,
    /// please try again later". Nothing is replicated; the client may retry.
    #[default]
    Refuse,
    /// Accept it on the offline format check alone, as [`super::PostcodeCheck::Unverified`]:
    /// the order book stores it marked unverified.
    AcceptUnverified,
}

impl WhenUnreachable {
    /// Both policies.
    pub const ALL: [WhenUnreachable; 2] =
        [WhenUnreachable::Refuse, WhenUnreachable::AcceptUnverified];

    /// The name used on the command line: `refuse`, `accept-unverified`.
    pub fn as_str(self) -> &'static str {
        match self {
            WhenUnreachable::Refuse => "refuse",
            WhenUnreachable::AcceptUnverified => "accept-unverified",
        }
    }
}

impl fmt::Display for WhenUnreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WhenUnreachable {
    type Err = ParseChoiceError;

    /// Parses a name of [`WhenUnreachable::as_str`], ignoring ASCII case.
    fn from_str(s: &str) -> Result<WhenUnreachable, ParseChoiceError> {
        WhenUnreachable::ALL
            .into_iter()
            .find(|policy| policy.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseChoiceError {
                what: "when-unreachable policy",
                given: s.to_owned(),
                expected: "refuse or accept-unverified",
            })
    }
}

/// A name that is none of the choices ([`ValidatorMode`], [`WhenUnreachable`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}: expected {expected}")]
pub struct ParseChoiceError {
    what: &'static str,
    given: String,
    expected: &'static str,
}

/// The cache of the online validators: answers found and refused are kept apart, each with its
/// own bound and time to live, so a flood of made-up postcodes cannot push out the real ones.
/// "Could not answer" is never cached. An entry count of 0 disables that half (concurrent
/// lookups of one postcode are still coalesced into one request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// The most postcodes found to exist that are remembered.
    pub found_entries: u64,
    /// How long one is remembered.
    pub found_ttl: Duration,
    /// The most refused postcodes (not found, terminated, refused) that are remembered.
    pub refused_entries: u64,
    /// How long one is remembered.
    pub refused_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            found_entries: DEFAULT_FOUND_ENTRIES,
            found_ttl: DEFAULT_FOUND_TTL,
            refused_entries: DEFAULT_REFUSED_ENTRIES,
            refused_ttl: DEFAULT_REFUSED_TTL,
        }
    }
}

impl CacheConfig {
    /// No caching at all (lookups of one postcode are still coalesced while in flight).
    pub fn disabled() -> CacheConfig {
        CacheConfig {
            found_entries: 0,
            found_ttl: Duration::ZERO,
            refused_entries: 0,
            refused_ttl: Duration::ZERO,
        }
    }
}

/// The configuration of a postcode validator, and its builder: [`PostcodeConfig::build`].
///
/// Every field has a default ([`PostcodeConfig::default`]: mode `online`, the public APIs,
/// policy `refuse`), so set only what differs:
///
/// ```
/// use std::time::Duration;
/// use just_hungry::postcode::{PostcodeConfig, ValidatorMode, WhenUnreachable};
///
/// let config = PostcodeConfig {
///     mode: "online".parse().unwrap(),
///     postcodes_io_url: "http://127.0.0.1:9001".into(),
///     getthedata_url: "http://127.0.0.1:9002".into(),
///     validation_timeout: Duration::from_millis(1500),
///     when_unreachable: "accept-unverified".parse().unwrap(),
///     ..PostcodeConfig::default()
/// };
/// assert_eq!(config.mode, ValidatorMode::Online);
/// assert_eq!(config.when_unreachable, WhenUnreachable::AcceptUnverified);
/// let validator = config.build().unwrap(); // no request is made yet
/// # let _ = validator;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostcodeConfig {
    /// Which validator (`--validator`).
    pub mode: ValidatorMode,
    /// The base URL of postcodes.io (`--postcodes-io-url`); lookups go to
    /// `{base}/postcodes/{POSTCODE}`. Default [`DEFAULT_POSTCODES_IO_URL`].
    pub postcodes_io_url: String,
    /// The base URL of getthedata (`--getthedata-url`); lookups go to
    /// `{base}/postcode/{POSTCODE}`. Default [`DEFAULT_GETTHEDATA_URL`].
    pub getthedata_url: String,
    /// How long one validation may take in all (`--validation-timeout`), waiting for a free
    /// request slot and every directory of the chain included. The chain shares it out: each
    /// directory still to be asked gets an equal part of what is left, so a directory that
    /// fails fast leaves its time to the next. Default [`DEFAULT_VALIDATION_TIMEOUT`].
    pub validation_timeout: Duration,
    /// How long opening one connection (TCP and TLS) may take, within the above. Default
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// What to do when no directory can answer (`--when-unreachable`). Default
    /// [`WhenUnreachable::Refuse`].
    pub when_unreachable: WhenUnreachable,
    /// How many requests may be in flight at once to each directory; more wait for a slot,
    /// within the validation timeout. Default [`DEFAULT_MAX_IN_FLIGHT`], at most
    /// [`MAX_IN_FLIGHT_LIMIT`].
    pub max_in_flight: usize,
    /// The cache of answers.
    pub cache: CacheConfig,
}

impl Default for PostcodeConfig {
    fn default() -> PostcodeConfig {
        PostcodeConfig {
            mode: ValidatorMode::default(),
            postcodes_io_url: DEFAULT_POSTCODES_IO_URL.to_owned(),
            getthedata_url: DEFAULT_GETTHEDATA_URL.to_owned(),
            validation_timeout: DEFAULT_VALIDATION_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            when_unreachable: WhenUnreachable::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            cache: CacheConfig::default(),
        }
    }
}

impl PostcodeConfig {
    /// The defaults with `mode`.
    pub fn new(mode: ValidatorMode) -> PostcodeConfig {
        PostcodeConfig {
            mode,
            ..PostcodeConfig::default()
        }
    }

    /// The offline format check only.
    pub fn offline() -> PostcodeConfig {
        PostcodeConfig::new(ValidatorMode::Offline)
    }

    /// Checks the limits that do not depend on the network code: timeouts not zero, the
    /// in-flight bound within `1..=MAX_IN_FLIGHT_LIMIT`.
    pub fn check(&self) -> Result<(), PostcodeConfigError> {
        if self.validation_timeout.is_zero() {
            return Err(PostcodeConfigError::ZeroTimeout {
                which: "validation timeout",
            });
        }
        if self.connect_timeout.is_zero() {
            return Err(PostcodeConfigError::ZeroTimeout {
                which: "connect timeout",
            });
        }
        if !(1..=MAX_IN_FLIGHT_LIMIT).contains(&self.max_in_flight) {
            return Err(PostcodeConfigError::InFlightOutOfRange {
                given: self.max_in_flight,
                max: MAX_IN_FLIGHT_LIMIT,
            });
        }
        Ok(())
    }

    /// Builds the configured validator. Makes no request: the online validators connect on
    /// their first lookup. Needs no tokio runtime, but validating does.
    ///
    /// `offline` gives an [`OfflineValidator`]; the other modes an
    /// [`OnlineValidator`](super::OnlineValidator) (one shared HTTP client, the cache, the
    /// policy), which needs the `online-postcodes` cargo feature.
    pub fn build(&self) -> Result<Arc<dyn PostcodeValidator>, PostcodeConfigError> {
        self.check()?;
        match self.mode {
            ValidatorMode::Offline => Ok(Arc::new(OfflineValidator)),
            #[cfg(feature = "online-postcodes")]
            _ => Ok(Arc::new(super::OnlineValidator::from_config(self)?)),
            #[cfg(not(feature = "online-postcodes"))]
            mode => Err(PostcodeConfigError::OnlineNotBuilt { mode }),
        }
    }
}

/// Why a [`PostcodeConfig`] could not be built into a validator.
#[derive(Debug, thiserror::Error)]
pub enum PostcodeConfigError {
    /// An online mode was asked of a build without the `online-postcodes` cargo feature.
    #[error(
        "validator mode {mode} needs the `online-postcodes` feature of just-hungry, which this build lacks: use --validator offline"
    )]
    OnlineNotBuilt {
        /// The mode asked for.
        mode: ValidatorMode,
    },

    /// [`OnlineValidator::from_config`](super::OnlineValidator::from_config) was given the
    /// offline mode.
    #[error("validator mode offline has no online validator: use PostcodeConfig::build")]
    NotOnline,

    /// A base URL does not parse, is not `http` or `https`, has no host, or carries a query or
    /// a fragment.
    #[error("bad {which} URL {url:?}: {reason}")]
    BadUrl {
        /// Which one (`postcodes.io`, `getthedata`).
        which: &'static str,
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A timeout is zero.
    #[error("the {which} must be more than zero")]
    ZeroTimeout {
        /// Which timeout.
        which: &'static str,
    },

    /// [`PostcodeConfig::max_in_flight`] is 0 or more than [`MAX_IN_FLIGHT_LIMIT`].
    #[error("max in-flight requests must be between 1 and {max}, not {given}")]
    InFlightOutOfRange {
        /// The value given.
        given: usize,
        /// [`MAX_IN_FLIGHT_LIMIT`].
        max: usize,
    },

    /// The HTTP client could not be built (its TLS set-up failed).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}
