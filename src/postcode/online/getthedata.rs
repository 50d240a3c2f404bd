//! getthedata: the fallback directory, asked only when postcodes.io could not answer.
//!
//! # What we rely on (POSTCODES.md section 3; much of it is *unverified*)
//!
//! - `GET {base}/postcode/{POSTCODE}`, with the compact upper-case form (`TW59RL`),
//!   percent-encoded as a path segment.
//! - HTTP 200 with `{"status":"match","match_type":"unit_postcode","data":{"postcode":"TW5 9RL",
//!   "status":"live",...},...}`: the postcode exists. `status` is a string. Partial input can
//!   "match" a district, sector or area, so only `match_type == "unit_postcode"` confirms a
//!   postcode, and only when `data.postcode` is the postcode we asked about and `data.status`
//!   is `live`. With `data.status == "terminated"` (their field list names that value; whether
//!   such units are returned is unverified) it is [`PostcodeError::Terminated`], date unknown.
//! - HTTP 200 with `{"status":"no_match",...}` (inferred): [`PostcodeError::NotFound`].
//! - Its data is older than postcodes.io's (August 2023 release) and **has no Northern Ireland
//!   postcodes**. So a `BT` postcode is never sent to it: the request could only come back
//!   "no match", which for `BT` means "cannot say", not "invalid", and sending it would give
//!   a third party a postcode for nothing. The chain treats it as "could not answer", and the
//!   operator's policy decides (refuse, or accept unverified).
//! - Its errors, content type and rate limits are unverified. Any status but 200, a body that
//!   is not a JSON object with a string `status`, an unknown `status` or `data.status`, a match
//!   that is not a unit postcode, an answer about another postcode: "could not answer". The
//!   content type is not required to be JSON (unverified), but an HTML or JavaScript one (a
//!   captive portal, JSONP) is refused before the body is read as JSON.

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

/// Why a Northern Ireland postcode gets no answer from getthedata.
pub(super) const NO_NORTHERN_IRELAND: &str = "has no Northern Ireland (BT) postcodes";

/// The getthedata validator: the format check, then a lookup at getthedata.
///
/// On its own it refuses with [`PostcodeError::Unreachable`] when getthedata cannot answer
/// (and for every `BT` postcode, see the module docs), and has no cache;
/// [`super::OnlineValidator`] adds the cache and the operator's policy. Cloning shares the
/// client and the in-flight bound.
#[derive(Clone, Debug)]
pub struct GetTheData {
    client: Client,
    base: Url,
    slots: Arc<Semaphore>,
    timeout: Duration,
}

impl GetTheData {
    /// A getthedata validator sending its requests through `client` to `base_url`, at most
    /// `max_in_flight` at a time, each validation within `timeout`.
    pub fn new(
        client: Client,
        base_url: &str,
        max_in_flight: usize,
        timeout: Duration,
    ) -> Result<GetTheData, PostcodeConfigError> {
        http::check_limits(max_in_flight, timeout)?;
        Ok(GetTheData {
            client,
            base: http::parse_base_url("getthedata", base_url)?,
            slots: Arc::new(Semaphore::new(max_in_flight)),
            timeout,
        })
    }

    /// The URL a postcode is looked up at: `{base}/postcode/{compact form}`.
    pub fn lookup_url(&self, postcode: &Postcode) -> Url {
        http::join_path(&self.base, &["postcode", &postcode.compact()])
    }

    /// Looks `postcode` up, answering before `deadline`. A Northern Ireland postcode is not
    /// sent (see the module docs).
    pub(super) async fn lookup(&self, postcode: &Postcode, deadline: Instant) -> Lookup {
        if postcode.is_northern_ireland() {
            return Lookup::NoAnswer(NO_NORTHERN_IRELAND.to_owned());
        }
        let url = self.lookup_url(postcode);
        match http::get(&self.client, &self.slots, url, deadline).await {
            Ok(response) => interpret(postcode, &response),
            Err(failure) => Lookup::NoAnswer(failure.describe().to_owned()),
        }
    }
}

#[async_trait::async_trait]
impl PostcodeValidator for GetTheData {
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
                reason: format!("{}: {reason}", Directory::GetTheData),
            }),
        }
    }
}

#[derive(Deserialize)]
struct Body {
    status: String,
    #[serde(default)]
    match_type: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    postcode: String,
    status: String,
}

/// What a getthedata response says about `postcode`, by the rules of the module docs:
/// [`Lookup::Found`] only for a 200 that is a `live` `unit_postcode` match about `postcode`;
/// [`Lookup::Refused`] for a 200 `no_match` (not found) or a `terminated` unit (date unknown);
/// [`Lookup::NoAnswer`] for everything else, an HTML or JavaScript content type included.
/// Pure; never panics, whatever the response.
pub fn interpret(postcode: &Postcode, response: &Response) -> Lookup {
    let no_answer = |reason: String| Lookup::NoAnswer(reason);
    match response.status {
        200 => {}
        429 => return no_answer("rate limited (HTTP 429)".into()),
        503 => return no_answer("unavailable (HTTP 503)".into()),
        status @ 500..=599 => return no_answer(format!("server error (HTTP {status})")),
        status => return no_answer(format!("unexpected HTTP status {status}")),
    }
    let media_type = http::media_type(response.content_type.as_deref()).unwrap_or_default();
    if media_type.contains("html") || media_type.contains("javascript") {
        return no_answer("answer is not JSON (wrong content type)".into());
    }
    let Ok(body) = serde_json::from_slice::<Body>(&response.body) else {
        return no_answer("malformed answer".into());
    };
    match body.status.as_str() {
        "no_match" => Lookup::Refused(PostcodeError::NotFound {
            postcode: postcode.clone(),
        }),
        "match" => {
            if body.match_type.as_deref() != Some("unit_postcode") {
                return no_answer("matched less than a whole postcode".into());
            }
            let Some(data) = body.data else {
                return no_answer("malformed answer".into());
            };
            if normalise(&data.postcode).ok().as_ref() != Some(postcode) {
                return no_answer("answered about another postcode".into());
            }
            match data.status.as_str() {
                "live" => Lookup::Found(Directory::GetTheData),
                "terminated" => Lookup::Refused(PostcodeError::Terminated {
                    postcode: postcode.clone(),
                    year: None,
                    month: None,
                }),
                _ => no_answer("unknown postcode status".into()),
            }
        }
        _ => no_answer("unknown answer status".into()),
    }
}
