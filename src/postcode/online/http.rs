//! The HTTP side of the online validators: the shared client, and one bounded GET.
//!
//! Everything here is about getting bytes or a reason why not; what the bytes mean is decided
//! by each directory's `interpret`, which is pure and tested without a network.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Client, Url};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::postcode::{MAX_IN_FLIGHT_LIMIT, PostcodeConfigError};

/// The most bytes of a response body that are read; a longer body is "unusable". A
/// postcodes.io lookup answers about 2 KB, a getthedata one about 1 KB.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How long an idle pooled connection is kept for reuse.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The most redirects followed (none are expected; an `http` URL redirected to `https` is).
pub const MAX_REDIRECTS: usize = 3;

/// Sent with every request, so the directories' operators can tell who calls them.
const USER_AGENT: &str = concat!(
    "just-hungry/",
    env!("CARGO_PKG_VERSION"),
    " (postcode validation)"
);

/// The one HTTP client every online validator shares: one connection pool (keep-alive, so
/// consecutive lookups reuse a connection), TLS by rustls on `ring` with the bundled web PKI
/// roots, `connect_timeout` for TCP and TLS, `timeout` as an outer bound of any request.
///
/// Proxies named in the environment (`HTTPS_PROXY`...) are honoured, except when every base URL
/// is on a loopback address: a local fake or service is always reached directly.
pub fn build_client(
    connect_timeout: Duration,
    timeout: Duration,
    max_idle_per_host: usize,
    all_loopback: bool,
) -> Result<Client, PostcodeConfigError> {
    let mut builder = Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(max_idle_per_host)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS));
    if all_loopback {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|e| PostcodeConfigError::HttpClient(e.to_string()))
}

/// Parses and checks a base URL: `http` or `https`, a host, no query, no fragment, usable as a
/// base for path segments.
pub fn parse_base_url(which: &'static str, url: &str) -> Result<Url, PostcodeConfigError> {
    let bad = |reason: &str| PostcodeConfigError::BadUrl {
        which,
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = Url::parse(url.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) || parsed.cannot_be_a_base() {
        return Err(bad("it has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("it must not have a query or a fragment"));
    }
    Ok(parsed)
}

/// Checks the limits of one directory: `1..=MAX_IN_FLIGHT_LIMIT` requests in flight, a
/// timeout above zero.
pub fn check_limits(max_in_flight: usize, timeout: Duration) -> Result<(), PostcodeConfigError> {
    if !(1..=MAX_IN_FLIGHT_LIMIT).contains(&max_in_flight) {
        return Err(PostcodeConfigError::InFlightOutOfRange {
            given: max_in_flight,
            max: MAX_IN_FLIGHT_LIMIT,
        });
    }
    if timeout.is_zero() {
        return Err(PostcodeConfigError::ZeroTimeout {
            which: "validation timeout",
        });
    }
    Ok(())
}

/// Whether `url`'s host is a loopback address (`localhost`, `127.0.0.0/8`, `::1`).
pub fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `base` with `segments` appended to its path, each percent-encoded as a path segment.
pub fn join_path(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// A response that arrived whole, within the limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, if present and printable.
    pub content_type: Option<String>,
    /// The body, at most [`MAX_RESPONSE_BYTES`].
    pub body: Vec<u8>,
}

/// Why no usable response arrived. Each is "could not answer", never a verdict on a postcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Every request slot stayed busy until the deadline.
    Busy,
    /// The deadline passed while connecting, waiting or reading.
    Timeout,
    /// The connection could not be opened (refused, DNS, TLS).
    Connect,
    /// The body was longer than [`MAX_RESPONSE_BYTES`].
    TooLarge,
    /// Any other transport error (connection reset, bad HTTP, too many redirects).
    Transport,
}

impl Failure {
    /// A short, fixed description for logs and for [`crate::postcode::PostcodeError::Unreachable`].
    pub fn describe(self) -> &'static str {
        match self {
            Failure::Busy => "too many lookups in flight",
            Failure::Timeout => "timed out",
            Failure::Connect => "cannot connect",
            Failure::TooLarge => "answer too large",
            Failure::Transport => "connection failed",
        }
    }
}

fn classify(error: &reqwest::Error) -> Failure {
    if error.is_timeout() {
        Failure::Timeout
    } else if error.is_connect() {
        Failure::Connect
    } else {
        Failure::Transport
    }
}

/// GETs `url` asking for JSON, holding one slot of `slots` from before the request until the
/// body is read, all before `deadline` (waiting for a slot included). Never reads more than
/// [`MAX_RESPONSE_BYTES`] of body.
pub async fn get(
    client: &Client,
    slots: &Semaphore,
    url: Url,
    deadline: Instant,
) -> Result<Response, Failure> {
    let _slot = match tokio::time::timeout_at(deadline, slots.acquire()).await {
        Ok(Ok(slot)) => slot,
        Ok(Err(_)) | Err(_) => return Err(Failure::Busy),
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(Failure::Timeout);
    }
    let exchange = async {
        let mut response = client
            .get(url)
            .header(ACCEPT, "application/json")
            .timeout(remaining)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        if response
            .content_length()
            .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
        {
            return Err(Failure::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Failure::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            content_type,
            body,
        })
    };
    tokio::time::timeout_at(deadline, exchange)
        .await
        .unwrap_or(Err(Failure::Timeout))
}

/// The media type of a `Content-Type` value, lower case, without parameters
/// (`application/json; charset=utf-8` gives `application/json`).
pub fn media_type(content_type: Option<&str>) -> Option<String> {
    content_type.map(|value| {
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

/// Whether a media type is JSON: `application/json`, `text/json` or `*/*+json`.
pub fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type == "text/json" || media_type.ends_with("+json")
}
