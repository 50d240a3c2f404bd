//! postcodes.io: the first directory of the chain.
//!
//! # What we rely on (POSTCODES.md section 2; the API's documentation and source)
//!
//! - `GET {base}/postcodes/{POSTCODE}`. We send the compact upper-case form (`SW1A1AA`),
//!   percent-encoded as a path segment (it only holds letters and digits, so nothing changes):
//!   no space to encode, and `+`, `%` and double encoding, which postcodes.io handles in
//!   surprising ways, never occur. No `callback` parameter (it would switch to JSONP).
//! - 200 with `{"status":200,"result":{"postcode":"SW1A 1AA",...}}`: the postcode exists.
//!   Only `result.postcode` is read, and it must be the postcode we asked about; the ~40 other
//!   fields (latitude and longitude may be null) are ignored, as are fields added later.
//! - 404 with `{"status":404,"error":"Invalid postcode"}`: its own shape check refused it (it
//!   refuses `GIR 0AA`, which ours accepts): [`PostcodeError::Refused`], never retried
//!   elsewhere.
//! - 404 with `{"status":404,"error":"Postcode not found"}`: well formed, not in the live
//!   directory: [`PostcodeError::NotFound`]. When the same body has a `terminated` object
//!   (`year_terminated`, `month_terminated`...), the postcode was withdrawn:
//!   [`PostcodeError::Terminated`], which tells the customer since when. Both are refusals: an
//!   order to a terminated postcode is refused, not accepted on the strength of its past.
//! - The JSON content type, `application/json; charset=utf-8`.
//!
//! Everything else is "could not answer", and the chain asks getthedata: 429 (no rate limit is
//! published, so one is treated as an outage), 503 and any other 5xx, any other status
//! (including a 404 whose `error` is not one of the two above, such as a wrong base URL's
//! "Resource not found"), a body that is not JSON or not of the shape above, a content type
//! that is not JSON, an answer about another postcode, a timeout, a connection error.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, Url};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::Lookup;
use super::http::{self, Response};
use crate::postcode::{
    Directory, Postcode, PostcodeCheck, PostcodeConfigError, PostcodeError, PostcodeValidator,
    Validated, normalise,
};

/// The `error` of a 404 for a postcode that fails postcodes.io's shape check.
const INVALID_POSTCODE: &str = "Invalid postcode";
/// The `error` of a 404 for a well-formed postcode that is not in the live directory.
const POSTCODE_NOT_FOUND: &str = "Postcode not found";

/// The postcodes.io validator: the format check, then a lookup at postcodes.io.
///
/// On its own it refuses with [`PostcodeError::Unreachable`] when postcodes.io cannot answer,
/// and has no cache; [`super::OnlineValidator`] (what [`crate::postcode::PostcodeConfig`]
/// builds) adds the fallback, the cache and the operator's policy. Cloning shares the client
/// and the in-flight bound.
#[derive(Clone, Debug)]
pub struct PostcodesIo {
    client: Client,
    base: Url,
    slots: Arc<Semaphore>,
    timeout: Duration,
}

impl PostcodesIo {
    /// A postcodes.io validator sending its requests through `client` (share one client
    /// between validators: one connection pool) to `base_url`, at most `max_in_flight` at a
    /// time, each validation within `timeout`.
    pub fn new(
        client: Client,
        base_url: &str,
        max_in_flight: usize,
        timeout: Duration,
    ) -> Result<PostcodesIo, PostcodeConfigError> {
        http::check_limits(max_in_flight, timeout)?;
        Ok(PostcodesIo {
            client,
            base: http::parse_base_url("postcodes.io", base_url)?,
            slots: Arc::new(Semaphore::new(max_in_flight)),
            timeout,
        })
    }

    /// The URL a postcode is looked up at: `{base}/postcodes/{compact form}`.
    pub fn lookup_url(&self, postcode: &Postcode) -> Url {
        http::join_path(&self.base, &["postcodes", &postcode.compact()])
    }

    /// Looks `postcode` up, answering before `deadline`.
    pub(super) async fn lookup(&self, postcode: &Postcode, deadline: Instant) -> Lookup {
        let url = self.lookup_url(postcode);
        match http::get(&self.client, &self.slots, url, deadline).await {
            Ok(response) => interpret(postcode, &response),
            Err(failure) => Lookup::NoAnswer(failure.describe().to_owned()),
        }
    }
}

#[async_trait::async_trait]
impl PostcodeValidator for PostcodesIo {
    async fn validate(&self, input: &str) -> Result<Validated, PostcodeError> {
        let postcode = normalise(input)?;
        let deadline = Instant::now() + self.timeout;
        match self.lookup(&postcode, deadline).await {
            Lookup::Found(directory) => Ok(Validated {
                postcode,
                check: PostcodeCheck::Confirmed(directory),
            }),
            Lookup::Refused(error) => Err(error),
            Lookup::NoAnswer(reason) => Err(PostcodeError::Unreachable {
                reason: format!("{}: {reason}", Directory::PostcodesIo),
            }),
        }
    }
}

/// The body of a 200.
#[derive(Deserialize)]
struct FoundBody {
    result: FoundResult,
}

#[derive(Deserialize)]
struct FoundResult {
    postcode: String,
}

/// The body of a 404.
#[derive(Deserialize)]
struct RefusalBody {
    error: String,
    #[serde(default)]
    terminated: Option<serde_json::Value>,
}

/// What a postcodes.io response says about `postcode`, by the rules of the module docs:
/// [`Lookup::Found`] only for a 200 labelled JSON whose `result.postcode` is `postcode` (in any
/// spelling); [`Lookup::Refused`] only for a JSON 404 saying `Invalid postcode` or `Postcode
/// not found` (terminated, with its year and month when they are plausible, if the body says
/// so); [`Lookup::NoAnswer`] for everything else. Pure; never panics, whatever the response.
pub fn interpret(postcode: &Postcode, response: &Response) -> Lookup {
    let no_answer = |reason: String| Lookup::NoAnswer(reason);
    match response.status {
        200 | 404 => {}
        429 => return no_answer("rate limited (HTTP 429)".into()),
        503 => return no_answer("unavailable (HTTP 503)".into()),
        status @ 500..=599 => return no_answer(format!("server error (HTTP {status})")),
        status => return no_answer(format!("unexpected HTTP status {status}")),
    }
    let media_type = http::media_type(response.content_type.as_deref());
    if !media_type.as_deref().is_some_and(http::is_json) {
        return no_answer("answer is not JSON (wrong content type)".into());
    }
    if response.status == 200 {
        let Ok(body) = serde_json::from_slice::<FoundBody>(&response.body) else {
            return no_answer("malformed answer".into());
        };
        return match normalise(&body.result.postcode) {
            Ok(found) if found == *postcode => Lookup::Found(Directory::PostcodesIo),
            _ => no_answer("answered about another postcode".into()),
        };
    }
    let Ok(body) = serde_json::from_slice::<RefusalBody>(&response.body) else {
        return no_answer("malformed answer".into());
    };
    if body.error.eq_ignore_ascii_case(INVALID_POSTCODE) {
        Lookup::Refused(PostcodeError::Refused {
            postcode: postcode.clone(),
            directory: Directory::PostcodesIo,
            reason: INVALID_POSTCODE.to_owned(),
        })
    } else if body.error.eq_ignore_ascii_case(POSTCODE_NOT_FOUND) {
        match body.terminated {
            Some(serde_json::Value::Object(terminated)) => {
                let number =
                    |field: &str| terminated.get(field).and_then(serde_json::Value::as_u64);
                Lookup::Refused(PostcodeError::Terminated {
                    postcode: postcode.clone(),
                    year: number("year_terminated")
                        .filter(|year| (1900..=9999).contains(year))
                        .and_then(|year| u16::try_from(year).ok()),
                    month: number("month_terminated")
                        .filter(|month| (1..=12).contains(month))
                        .and_then(|month| u8::try_from(month).ok()),
                })
            }
            _ => Lookup::Refused(PostcodeError::NotFound {
                postcode: postcode.clone(),
            }),
        }
    } else {
        no_answer("unrecognised 404 answer".into())
    }
}
