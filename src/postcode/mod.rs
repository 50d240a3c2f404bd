//! UK postcodes for the order book: everything of
//! [`crate::postcode`] (the canonical [`Postcode`], the offline format check, the
//! [`PostcodeValidator`] trait), and the validators that look a postcode up online:
//! postcodes.io, getthedata, and the fallback chain of the two with a cache.
//!
//! # Choosing a validator
//!
//! Build one from a [`PostcodeConfig`] (the library's builder, and what the binaries' flags
//! fill in): its [`ValidatorMode`] is one of
//!
//! | mode | what it does | network |
//! |---|---|---|
//! | `offline` | the format check below, nothing else ([`OfflineValidator`]) | none |
//! | `postcodes-io` | format check, then a lookup at postcodes.io | postcodes.io |
//! | `getthedata` | format check, then a lookup at getthedata | getthedata |
//! | `online` | format check, then postcodes.io, then getthedata only when postcodes.io could not answer | both |
//!
//! Every mode runs the format check first, so malformed input never costs an HTTP call. The
//! online modes share one HTTP client (one connection pool, TLS by rustls on `ring`), bound
//! their time ([`PostcodeConfig::validation_timeout`]) and their requests in flight, and cache
//! answers (found and refused separately, never "could not answer"), coalescing concurrent
//! lookups of one postcode into one request. They are built only with the `online-postcodes`
//! cargo feature (on by default); see [`online`] for the API facts they rely on.
//!
//! # When no directory can answer
//!
//! [`WhenUnreachable`] is the operator's choice: `refuse` (the default) refuses the order with
//! [`PostcodeError::Unreachable`], "cannot validate the postcode now, please try again later";
//! `accept-unverified` accepts it on the format check alone and says so
//! ([`PostcodeCheck::Unverified`]; the order book stores the order marked unverified). A
//! Northern Ireland postcode (`BT`) that only getthedata could be asked about is such a case:
//! getthedata has no Northern Ireland data, so its "no match" means "cannot say", not "invalid".
//!
//! # Privacy
//!
//! In every mode but `offline`, each postcode typed by a customer is sent, over HTTPS unless the
//! configured URL says otherwise, to a third party (postcodes.io, and getthedata when the chain
//! falls back to it), with our IP address. Nothing else about the order is sent. Choose
//! `offline`, or point the URLs at a service you run, if that is not acceptable.
//!

mod config;
#[cfg(feature = "online-postcodes")]
pub mod online;

pub use config::{
    CacheConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_FOUND_ENTRIES, DEFAULT_FOUND_TTL,
    DEFAULT_GETTHEDATA_URL, DEFAULT_MAX_IN_FLIGHT, DEFAULT_POSTCODES_IO_URL,
    DEFAULT_REFUSED_ENTRIES, DEFAULT_REFUSED_TTL, DEFAULT_VALIDATION_TIMEOUT, MAX_IN_FLIGHT_LIMIT,
    ParseChoiceError, PostcodeConfig, PostcodeConfigError, ValidatorMode, WhenUnreachable,
};
pub use just_hungry_core::postcode::*;
#[cfg(feature = "online-postcodes")]
pub use online::{GetTheData, OnlineValidator, PostcodesIo};
