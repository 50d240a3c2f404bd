//! A small client of etcd's v3 API through its JSON gateway (`POST /v3/...`): the calls the
//! view store, the names and the front-ends' election need, over the HTTP client already in
//! the tree (no protoc, no gRPC stack).
//!
//! What the gateway does that a reader of the gRPC API would not guess, and this client
//! handles: keys and values are base64; 64-bit integers (revisions, lease ids, TTLs) come back
//! as JSON strings; fields at their default value are left out, so a transaction whose
//! comparison failed has **no `succeeded` field at all** (not `"succeeded": false`), a range
//! that matched nothing has no `kvs`, and a keep-alive of an expired lease has no `TTL`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

/// How long one call to one member may take before the next member is tried.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest answer read from a member. etcd's own request limit is 1.5 MiB; a range of
/// every name holds far less.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Why a call to etcd failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EtcdError {
    /// No member answered, or none could decide (a cluster without a quorum answers "no
    /// leader" or times out). Worth retrying later; nothing is known to have happened.
    #[error("etcd at {endpoints} unavailable: {reason}")]
    Unavailable {
        /// The members tried.
        endpoints: String,
        /// The last member's error.
        reason: String,
    },
    /// A member answered with an error that another try will not change (a lease not found,
    /// an invalid argument).
    #[error("etcd at {endpoint} refused: {message} (code {code})")]
    Refused {
        /// The member that answered.
        endpoint: String,
        /// The gRPC status code.
        code: i64,
        /// etcd's message.
        message: String,
    },
    /// A member answered with something that is not what the API says.
    #[error("etcd at {endpoint} answered malformed JSON: {reason}")]
    Malformed {
        /// The member that answered.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
    /// An endpoint is not a URL the client can use.
    #[error("etcd endpoint {endpoint:?}: {reason}")]
    BadEndpoint {
        /// The endpoint given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl EtcdError {
    /// Whether a later try may succeed (no member decided anything).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, EtcdError::Unavailable { .. })
    }
}

/// How the client authenticates etcd's `https://` members and itself to them. The default
/// trusts the web's roots and presents no certificate.
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    /// The CA that signed the members' certificates (PEM), trusted instead of the web's
    /// roots.
    pub ca_pem: Option<Vec<u8>>,
    /// This client's certificate and private key, both PEM in one buffer, for members that
    /// require client certificates.
    pub identity_pem: Option<Vec<u8>>,
}

/// One key's entry, as a range returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The revision that created the key (since it last did not exist).
    pub create_revision: i64,
    /// The revision of the last change to the key.
    pub mod_revision: i64,
    /// The lease the key is attached to; 0 for none.
    pub lease: i64,
}

/// What a compare-and-swap expects of the key before it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// The key does not exist.
    Absent,
    /// The key's last change was at this revision.
    ModRevision(i64),
}

/// What a compare-and-swap did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Swap {
    /// The key held what was expected and now holds the new value, written at `revision`.
    Swapped {
        /// The revision of the write.
        revision: i64,
    },
    /// The key did not hold what was expected; nothing was written. `current` is the key's
    /// entry read in the same transaction (`None`: absent).
    Failed {
        /// The key as it is.
        current: Option<KeyValue>,
    },
}

/// A lease granted by etcd: keys attached to it are deleted when it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Its id.
    pub id: i64,
    /// The time to live etcd granted (at least etcd's minimum, about 1.5 election timeouts).
    pub ttl: Duration,
}

/// A client of an etcd cluster: each call goes to the member that answered last, and to the
/// others in turn when that one cannot be reached or cannot decide. Cheap to clone (the
/// connections are shared).
///
/// Reads are linearizable (etcd's default): an answer reflects every write acknowledged
/// before the call began, whichever member answers.
#[derive(Clone, Debug)]
pub struct EtcdClient {
    endpoints: Arc<[String]>,
    http: reqwest::Client,
    preferred: Arc<AtomicUsize>,
}

impl EtcdClient {
    /// A client of the members at `endpoints` (`http://host:port`), each call bounded by
    /// [`DEFAULT_REQUEST_TIMEOUT`] per member.
    pub fn new<I, E>(endpoints: I) -> Result<Self, EtcdError>
    where
        I: IntoIterator<Item = E>,
        E: Into<String>,
    {
        Self::with_timeout(endpoints, DEFAULT_REQUEST_TIMEOUT)
    }

    /// As [`EtcdClient::new`], with each call to one member bounded by `timeout`.
    pub fn with_timeout<I, E>(endpoints: I, timeout: Duration) -> Result<Self, EtcdError>
    where
        I: IntoIterator<Item = E>,
        E: Into<String>,
    {
        Self::with_tls(endpoints, timeout, &EtcdTls::default())
    }

    /// As [`EtcdClient::with_timeout`], the `https://` members authenticated by `tls.ca_pem`
    /// (instead of the web's roots) and this client by `tls.identity_pem` (etcd's
    /// `--client-cert-auth`). A certificate that does not parse is a `BadEndpoint` error.
    pub fn with_tls<I, E>(endpoints: I, timeout: Duration, tls: &EtcdTls) -> Result<Self, EtcdError>
    where
        I: IntoIterator<Item = E>,
        E: Into<String>,
    {
        let endpoints: Vec<String> = endpoints
            .into_iter()
            .map(|e| e.into().trim_end_matches('/').to_owned())
            .collect();
        if endpoints.is_empty() {
            return Err(EtcdError::BadEndpoint {
                endpoint: String::new(),
                reason: "no endpoint given".into(),
            });
        }
        for endpoint in &endpoints {
            let url = reqwest::Url::parse(endpoint).map_err(|e| EtcdError::BadEndpoint {
                endpoint: endpoint.clone(),
                reason: e.to_string(),
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(EtcdError::BadEndpoint {
                    endpoint: endpoint.clone(),
                    reason: "not an http:// or https:// URL".into(),
                });
            }
        }
        let bad_tls = |what: &str, e: reqwest::Error| EtcdError::BadEndpoint {
            endpoint: endpoints.join(","),
            reason: format!("{what}: {e}"),
        };
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(timeout)
            .timeout(timeout);
        if let Some(ca) = &tls.ca_pem {
            let ca = reqwest::Certificate::from_pem(ca)
                .map_err(|e| bad_tls("etcd's CA certificate", e))?;
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(ca);
        }
        if let Some(identity) = &tls.identity_pem {
            let identity = reqwest::Identity::from_pem(identity)
                .map_err(|e| bad_tls("the client certificate and key for etcd", e))?;
            builder = builder.identity(identity);
        }
        let http = builder.build().map_err(|e| EtcdError::BadEndpoint {
            endpoint: endpoints.join(","),
            reason: format!("cannot build the HTTP client: {e}"),
        })?;
        Ok(EtcdClient {
            endpoints: endpoints.into(),
            http,
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The members, as given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The key's entry, or `None` if it does not exist.
    pub async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, EtcdError> {
        let (endpoint, answer) = self
            .call("kv/range", json!({ "key": BASE64.encode(key) }))
            .await?;
        let mut kvs = key_values(&endpoint, &answer)?;
        Ok(kvs.pop())
    }

    /// Every key that starts with `prefix`, in key order.
    pub async fn get_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, EtcdError> {
        let body = json!({
            "key": BASE64.encode(prefix),
            "range_end": BASE64.encode(prefix_end(prefix)),
        });
        let (endpoint, answer) = self.call("kv/range", body).await?;
        key_values(&endpoint, &answer)
    }

    /// The key's entry as it was at `revision` (older revisions stay readable until etcd
    /// compacts them), or `None` if it did not exist then.
    pub async fn get_at(&self, key: &[u8], revision: i64) -> Result<Option<KeyValue>, EtcdError> {
        let body = json!({ "key": BASE64.encode(key), "revision": revision.to_string() });
        let (endpoint, answer) = self.call("kv/range", body).await?;
        let mut kvs = key_values(&endpoint, &answer)?;
        Ok(kvs.pop())
    }

    /// Writes `value` at `key`, attached to `lease` if given; returns the write's revision.
    pub async fn put(
        &self,
        key: &[u8],
        value: &[u8],
        lease: Option<i64>,
    ) -> Result<i64, EtcdError> {
        let mut body = json!({ "key": BASE64.encode(key), "value": BASE64.encode(value) });
        if let Some(lease) = lease {
            body["lease"] = json!(lease.to_string());
        }
        let (endpoint, answer) = self.call("kv/put", body).await?;
        revision(&endpoint, &answer)
    }

    /// Writes `value` at `key` (attached to `lease` if given) in one transaction, only if the
    /// key is as `expected`; otherwise reads it in the same transaction.
    ///
    /// A call retried on another member after a lost answer may find its own write: the
    /// caller recognises it by the value in [`Swap::Failed`].
    pub async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Expected,
        value: &[u8],
        lease: Option<i64>,
    ) -> Result<Swap, EtcdError> {
        let key64 = BASE64.encode(key);
        let compare = match expected {
            Expected::Absent => {
                json!({ "key": key64, "target": "CREATE", "result": "EQUAL", "create_revision": "0" })
            }
            Expected::ModRevision(r) => {
                json!({ "key": key64, "target": "MOD", "result": "EQUAL", "mod_revision": r.to_string() })
            }
        };
        let mut put = json!({ "key": key64, "value": BASE64.encode(value) });
        if let Some(lease) = lease {
            put["lease"] = json!(lease.to_string());
        }
        let body = json!({
            "compare": [compare],
            "success": [{ "request_put": put }],
            "failure": [{ "request_range": { "key": key64 } }],
        });
        let (endpoint, answer) = self.call("kv/txn", body).await?;
        // The gateway leaves `succeeded` out when it is false.
        let succeeded = match answer.get("succeeded") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(malformed(&endpoint, format!("succeeded is {other}"))),
        };
        if succeeded {
            return Ok(Swap::Swapped {
                revision: revision(&endpoint, &answer)?,
            });
        }
        let range = answer
            .get("responses")
            .and_then(|r| r.get(0))
            .and_then(|r| r.get("response_range"))
            .ok_or_else(|| malformed(&endpoint, "a failed transaction without its range".into()))?;
        let mut kvs = key_values(&endpoint, range)?;
        Ok(Swap::Failed { current: kvs.pop() })
    }

    /// Deletes `key` only if it is attached to `lease` (so an owner whose lease lapsed does
    /// not delete a successor's key); returns whether it deleted.
    pub async fn delete_if_owned(&self, key: &[u8], lease: i64) -> Result<bool, EtcdError> {
        let key64 = BASE64.encode(key);
        let body = json!({
            "compare": [{ "key": key64, "target": "LEASE", "result": "EQUAL", "lease": lease.to_string() }],
            "success": [{ "request_delete_range": { "key": key64 } }],
        });
        let (_, answer) = self.call("kv/txn", body).await?;
        Ok(answer.get("succeeded") == Some(&Value::Bool(true)))
    }

    /// A lease of (at least) `ttl`, rounded up to whole seconds.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<Lease, EtcdError> {
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let (endpoint, answer) = self
            .call("lease/grant", json!({ "TTL": seconds.max(1).to_string() }))
            .await?;
        let id = int_field(&endpoint, &answer, "ID")?
            .ok_or_else(|| malformed(&endpoint, "a granted lease without an ID".into()))?;
        let ttl = int_field(&endpoint, &answer, "TTL")?.unwrap_or(0);
        Ok(Lease {
            id,
            ttl: Duration::from_secs(ttl.max(0) as u64),
        })
    }

    /// Renews `lease`: its time to live now, or `None` if it has expired (its keys are gone).
    pub async fn keep_alive(&self, lease: i64) -> Result<Option<Duration>, EtcdError> {
        let (endpoint, answer) = self
            .call("lease/keepalive", json!({ "ID": lease.to_string() }))
            .await?;
        // A stream of one answer: {"result": {...}}; an expired lease's has no TTL.
        let result = answer
            .get("result")
            .ok_or_else(|| malformed(&endpoint, "a keep-alive without a result".into()))?;
        match int_field(&endpoint, result, "TTL")? {
            Some(ttl) if ttl > 0 => Ok(Some(Duration::from_secs(ttl as u64))),
            _ => Ok(None),
        }
    }

    /// Ends `lease` now: its keys are deleted. A lease already gone is not an error.
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        match self
            .call("lease/revoke", json!({ "ID": lease.to_string() }))
            .await
        {
            Ok(_) => Ok(()),
            Err(EtcdError::Refused { code: 5, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Posts `body` to `/v3/{path}` on the preferred member, then on each other in turn while
    /// they cannot be reached or cannot decide. Returns the member that answered and its
    /// answer.
    async fn call(&self, path: &str, body: Value) -> Result<(String, Value), EtcdError> {
        let body = body.to_string();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.endpoints.len() {
            let index = (first + i) % self.endpoints.len();
            let endpoint = &self.endpoints[index];
            match self.call_one(endpoint, path, body.clone()).await {
                Ok(answer) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok((endpoint.clone(), answer));
                }
                Err(Failure::Retry(reason)) => last = format!("{endpoint}: {reason}"),
                Err(Failure::Final(e)) => return Err(e),
            }
        }
        Err(EtcdError::Unavailable {
            endpoints: self.endpoints.join(","),
            reason: last,
        })
    }

    async fn call_one(&self, endpoint: &str, path: &str, body: String) -> Result<Value, Failure> {
        let url = format!("{endpoint}/v3/{path}");
        let mut response = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::Retry(without_url(e)))?;
        let status = response.status();
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(Failure::Final(malformed(
                            endpoint,
                            format!("an answer longer than {MAX_RESPONSE_BYTES} bytes"),
                        )));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(Failure::Retry(without_url(e))),
            }
        }
        let answer: Value = serde_json::from_slice(&bytes).map_err(|e| {
            let reason = format!("HTTP {status}: {e}");
            if status.is_success() {
                Failure::Final(malformed(endpoint, reason))
            } else {
                Failure::Retry(reason)
            }
        })?;
        if let Some(message) = answer.get("error").or_else(|| answer.get("message")) {
            let message = message.as_str().unwrap_or_default().to_owned();
            let code = answer.get("code").and_then(Value::as_i64).unwrap_or(2);
            // Unavailable (no leader, request timed out), deadline exceeded, aborted,
            // cancelled: this member could not decide; another may.
            return Err(
                if matches!(code, 1 | 4 | 10 | 14) || status.is_server_error() && code == 2 {
                    Failure::Retry(format!("{message} (code {code})"))
                } else {
                    Failure::Final(EtcdError::Refused {
                        endpoint: endpoint.to_owned(),
                        code,
                        message,
                    })
                },
            );
        }
        if !status.is_success() {
            return Err(Failure::Retry(format!("HTTP {status}")));
        }
        Ok(answer)
    }
}

enum Failure {
    Retry(String),
    Final(EtcdError),
}

fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "failed"
    };
    let e = e.without_url();
    // reqwest's own message is only "error sending request": the causes say why (a refused
    // connection, a TLS alert such as etcd asking for a client certificate).
    let mut reason = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        reason.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    reason
}

fn malformed(endpoint: &str, reason: String) -> EtcdError {
    EtcdError::Malformed {
        endpoint: endpoint.to_owned(),
        reason,
    }
}

/// The end of the range of keys that start with `prefix` (etcd's `range_end`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte is 0xff (or none): the range runs to the end of the key space.
    vec![0]
}

/// An integer field, which the gateway writes as a string (or leaves out at 0).
fn int_field(endpoint: &str, object: &Value, field: &str) -> Result<Option<i64>, EtcdError> {
    match object.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| malformed(endpoint, format!("{field} is {s:?}"))),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| malformed(endpoint, format!("{field} is {n}"))),
        Some(other) => Err(malformed(endpoint, format!("{field} is {other}"))),
    }
}

fn bytes_field(endpoint: &str, object: &Value, field: &str) -> Result<Vec<u8>, EtcdError> {
    match object.get(field) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => BASE64
            .decode(s)
            .map_err(|e| malformed(endpoint, format!("{field}: {e}"))),
        Some(other) => Err(malformed(endpoint, format!("{field} is {other}"))),
    }
}

/// The revision in an answer's header.
fn revision(endpoint: &str, answer: &Value) -> Result<i64, EtcdError> {
    let header = answer
        .get("header")
        .ok_or_else(|| malformed(endpoint, "an answer without a header".into()))?;
    int_field(endpoint, header, "revision")?
        .ok_or_else(|| malformed(endpoint, "a header without a revision".into()))
}

fn key_values(endpoint: &str, range: &Value) -> Result<Vec<KeyValue>, EtcdError> {
    let Some(kvs) = range.get("kvs") else {
        return Ok(Vec::new());
    };
    let kvs = kvs
        .as_array()
        .ok_or_else(|| malformed(endpoint, "kvs is not a list".into()))?;
    kvs.iter()
        .map(|kv| {
            Ok(KeyValue {
                key: bytes_field(endpoint, kv, "key")?,
                value: bytes_field(endpoint, kv, "value")?,
                create_revision: int_field(endpoint, kv, "create_revision")?.unwrap_or(0),
                mod_revision: int_field(endpoint, kv, "mod_revision")?.unwrap_or(0),
                lease: int_field(endpoint, kv, "lease")?.unwrap_or(0),
            })
        })
        .collect()
}
