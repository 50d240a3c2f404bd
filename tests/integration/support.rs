//! Local fakes of postcodes.io and getthedata for the tests: minimal HTTP/1.1 servers on
//! 127.0.0.1:0 that answer as the real APIs do (status codes, JSON bodies, content types; see
//! POSTCODES.md sections 2 and 3), count what they receive, and can be made slow, broken or
//! unreachable. No test reaches the internet.
//!
//! Used by the online validators' tests and the facade's end-to-end test
//! (`postcode_e2e`), and as a fake etcd gateway (`etcd_client`); it needs nothing but tokio
//! and serde_json.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The content type postcodes.io answers with.
pub const JSON: &str = "application/json; charset=utf-8";

/// The most bytes of a request head the fake reads.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// What the fake does with one request.
#[derive(Clone)]
pub enum Reply {
    /// Answers `status` with `body` and the given content type (none: no header).
    Send {
        status: u16,
        content_type: Option<String>,
        body: Vec<u8>,
    },
    /// Reads the request and never answers (until the test ends).
    Hang,
    /// Sends the head and the first half of the body, then nothing more.
    HangMidBody { status: u16, body: Vec<u8> },
    /// Closes the connection without answering.
    Close,
    /// Waits for the gate to open, then does the inner reply.
    Gated(Gate, Box<Reply>),
}

impl Reply {
    /// `status` with a JSON body and postcodes.io's content type.
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply::Send {
            status,
            content_type: Some(JSON.to_owned()),
            body: body.into().into_bytes(),
        }
    }

    /// `status` with a body of any content type.
    pub fn raw(status: u16, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Send {
            status,
            content_type: content_type.map(str::to_owned),
            body: body.into(),
        }
    }

    /// This reply, once `gate` opens.
    pub fn gated(self, gate: &Gate) -> Reply {
        Reply::Gated(gate.clone(), Box::new(self))
    }
}

/// Holds gated replies until [`Gate::open`].
#[derive(Clone)]
pub struct Gate(Arc<Semaphore>);

impl Default for Gate {
    fn default() -> Gate {
        Gate::new()
    }
}

impl Gate {
    pub fn new() -> Gate {
        Gate(Arc::new(Semaphore::new(0)))
    }

    /// Lets every held and future gated reply through.
    pub fn open(&self) {
        // A closed semaphore answers every `acquire`, at once, with an error: the gate is open.
        self.0.close();
    }

    async fn wait(&self) {
        // Never granted a permit: only closing the semaphore ends the wait.
        let _ = self.0.acquire().await;
    }
}

type Handler = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

#[derive(Default)]
struct Counters {
    connections: AtomicUsize,
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// One fake server. Dropping it stops it and every connection it holds.
pub struct FakeServer {
    address: SocketAddr,
    counters: Arc<Counters>,
    heads: Arc<Mutex<Vec<String>>>,
    handler: Arc<Mutex<Handler>>,
    _tasks: JoinSet<()>,
}

impl FakeServer {
    /// A server answering each request with `handler(path)` (the request target as sent,
    /// query included).
    pub async fn start(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let counters = Arc::new(Counters::default());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Mutex<Handler>> = Arc::new(Mutex::new(Arc::new(handler)));
        let mut tasks = JoinSet::new();
        let (c, h, hd) = (counters.clone(), heads.clone(), handler.clone());
        tasks.spawn(async move {
            // The connections live in this set: dropping the accept loop drops them too.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                c.connections.fetch_add(1, Ordering::SeqCst);
                connections.spawn(serve(stream, c.clone(), h.clone(), hd.clone()));
            }
        });
        FakeServer {
            address,
            counters,
            heads,
            handler,
            _tasks: tasks,
        }
    }

    /// A fake postcodes.io holding `data`.
    pub async fn postcodes_io(data: Postcodes) -> FakeServer {
        let data = Arc::new(data);
        FakeServer::start(move |target| postcodes_io_reply(&data, target)).await
    }

    /// A fake getthedata holding `data` (minus Northern Ireland, as the real one).
    pub async fn getthedata(data: Postcodes) -> FakeServer {
        let data = Arc::new(data);
        FakeServer::start(move |target| getthedata_reply(&data, target)).await
    }

    /// Answers every request from now on with `handler(path)`.
    pub fn set(&self, handler: impl Fn(&str) -> Reply + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Arc::new(handler);
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// How many requests it has read.
    pub fn requests(&self) -> usize {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// How many connections it has accepted.
    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// The most requests it was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.counters.max_in_flight.load(Ordering::SeqCst)
    }

    /// The request targets it has read, in order.
    pub fn targets(&self) -> Vec<String> {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .filter_map(|head| head.split(' ').nth(1).map(str::to_owned))
            .collect()
    }

    /// The request heads it has read (request line and headers), in order.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Waits (polling, at most 10 s) until it has read `n` requests.
    pub async fn wait_for_requests(&self, n: usize) {
        let start = tokio::time::Instant::now();
        while self.requests() < n {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the fake saw {} requests, expected {n}",
                self.requests()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// A base URL nothing listens on: connections to it are refused.
pub async fn unreachable_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}")
}

async fn serve(
    mut stream: TcpStream,
    counters: Arc<Counters>,
    heads: Arc<Mutex<Vec<String>>>,
    handler: Arc<Mutex<Handler>>,
) {
    let mut buffer = Vec::new();
    loop {
        // Read one request head (GET has no body).
        let end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if buffer.len() > MAX_REQUEST_HEAD {
                return;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        buffer.drain(..end);
        let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
        heads.lock().unwrap().push(head);
        counters.requests.fetch_add(1, Ordering::SeqCst);
        let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counters.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let reply = {
            let handler = handler.lock().unwrap().clone();
            handler(&target)
        };
        let keep_going = answer(&mut stream, reply).await;
        counters.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !keep_going {
            return;
        }
    }
}

/// Sends `reply`; whether the connection can serve another request.
async fn answer(stream: &mut TcpStream, mut reply: Reply) -> bool {
    while let Reply::Gated(gate, inner) = reply {
        gate.wait().await;
        reply = *inner;
    }
    match reply {
        Reply::Send {
            status,
            content_type,
            body,
        } => {
            let head = response_head(status, content_type.as_deref(), body.len());
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(&body);
            stream.write_all(&bytes).await.is_ok()
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            false
        }
        Reply::HangMidBody { status, body } => {
            let head = response_head(status, Some(JSON), body.len());
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(&body[..body.len() / 2]);
            let _ = stream.write_all(&bytes).await;
            std::future::pending::<()>().await;
            false
        }
        Reply::Close => false,
        Reply::Gated(..) => unreachable!("unwrapped above"),
    }
}

fn response_head(status: u16, content_type: Option<&str>, len: usize) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {len}\r\nAccess-Control-Allow-Origin: *\r\nConnection: keep-alive\r\n\r\n"
    ));
    head
}

/// What a fake directory knows: live postcodes and terminated ones (with year and month), in
/// canonical form.
#[derive(Clone, Debug, Default)]
pub struct Postcodes {
    live: BTreeSet<String>,
    terminated: BTreeMap<String, (u16, u8)>,
}

impl Postcodes {
    pub fn new() -> Postcodes {
        Postcodes::default()
    }

    /// These postcodes are live.
    pub fn live(mut self, postcodes: &[&str]) -> Postcodes {
        self.live.extend(postcodes.iter().map(|p| (*p).to_owned()));
        self
    }

    /// This postcode was terminated in `month` of `year`.
    pub fn terminated(mut self, postcode: &str, year: u16, month: u8) -> Postcodes {
        self.terminated.insert(postcode.to_owned(), (year, month));
        self
    }
}

/// Decodes `%XX` escapes (and, if `plus_is_space`, `+`); `None` for a bad escape.
fn percent_decode(segment: &str, plus_is_space: bool) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = segment.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// postcodes.io's loose shape check (the npm `postcode` package's `isValid`):
/// `^[a-z]{1,2}\d[a-z\d]?\s*\d[a-z]{2}$`, case-insensitive.
fn postcodes_io_shape_ok(input: &str) -> bool {
    let compact: Vec<u8> = input
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if compact.len() < 5 || !input.is_ascii() {
        return false;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward_ok = inward[0].is_ascii_digit()
        && inward[1].is_ascii_uppercase()
        && inward[2].is_ascii_uppercase();
    let letters = outward
        .iter()
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    let rest = &outward[letters..];
    let outward_ok = (1..=2).contains(&letters)
        && !rest.is_empty()
        && rest.len() <= 2
        && rest[0].is_ascii_digit()
        && rest.iter().all(u8::is_ascii_alphanumeric);
    inward_ok && outward_ok
}

/// `OUTWARD INWARD`, upper case, from any spacing.
fn canonical(input: &str) -> String {
    let compact: String = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let split = compact.len().saturating_sub(3);
    format!("{} {}", &compact[..split], &compact[split..])
}

/// A postcodes.io lookup result with the ~40 fields of the real one (values made up but of the
/// right types; latitude and longitude are null in the Channel Islands and the Isle of Man).
pub fn postcodes_io_result(postcode: &str) -> serde_json::Value {
    let (outcode, incode) = postcode.split_once(' ').unwrap_or((postcode, ""));
    let crown = ["JE", "GY", "IM"].iter().any(|a| postcode.starts_with(a));
    let (longitude, latitude) = if crown {
        (serde_json::Value::Null, serde_json::Value::Null)
    } else {
        (serde_json::json!(-0.141588), serde_json::json!(51.501009))
    };
    serde_json::json!({
        "postcode": postcode,
        "quality": 1,
        "eastings": 529090,
        "northings": 179645,
        "country": "England",
        "nhs_ha": "London",
        "longitude": longitude,
        "latitude": latitude,
        "european_electoral_region": "London",
        "primary_care_trust": "Westminster",
        "region": "London",
        "lsoa": "Westminster 018C",
        "msoa": "Westminster 018",
        "incode": incode,
        "outcode": outcode,
        "parliamentary_constituency": "Cities of London and Westminster",
        "parliamentary_constituency_2024": "Cities of London and Westminster",
        "admin_district": "Westminster",
        "parish": "Westminster, unparished area",
        "admin_county": null,
        "date_of_introduction": "198001",
        "admin_ward": "St James's",
        "ced": null,
        "ccg": "NHS North West London",
        "nuts": "Westminster",
        "pfa": "Metropolitan Police",
        "codes": {
            "admin_district": "E09000033",
            "admin_county": "E99999999",
            "admin_ward": "E05013806",
            "parish": "E43000236",
            "parliamentary_constituency": "E14001172",
            "parliamentary_constituency_2024": "E14001172",
            "ccg": "E38000256",
            "ccg_id": "W2U3Z",
            "ced": "E99999999",
            "nuts": "TLI32",
            "lsoa": "E01004736",
            "msoa": "E02000977",
            "lau2": "E09000033",
            "pfa": "E23000001"
        }
    })
}

/// What postcodes.io answers to `GET {target}`.
pub fn postcodes_io_reply(data: &Postcodes, target: &str) -> Reply {
    let path = target.split('?').next().unwrap_or_default();
    let Some(segment) = path.strip_prefix("/postcodes/") else {
        return Reply::json(404, r#"{"status":404,"error":"Resource not found"}"#);
    };
    let Some(input) = percent_decode(segment, false) else {
        return Reply::json(500, r#"{"status":500,"error":"Internal Server Error"}"#);
    };
    if !postcodes_io_shape_ok(input.trim()) {
        return Reply::json(404, r#"{"status":404,"error":"Invalid postcode"}"#);
    }
    let postcode = canonical(&input);
    if data.live.contains(&postcode) {
        let body = serde_json::json!({"status": 200, "result": postcodes_io_result(&postcode)});
        return Reply::json(200, body.to_string());
    }
    if let Some((year, month)) = data.terminated.get(&postcode) {
        let body = serde_json::json!({
            "status": 404,
            "error": "Postcode not found",
            "terminated": {
                "postcode": postcode,
                "year_terminated": year,
                "month_terminated": month,
                "longitude": -0.127695,
                "latitude": 51.50354
            }
        });
        return Reply::json(404, body.to_string());
    }
    Reply::json(404, r#"{"status":404,"error":"Postcode not found"}"#)
}

/// A getthedata unit match for `postcode` with `status` (`live`, `terminated`).
pub fn getthedata_match(postcode: &str, status: &str) -> String {
    let (outcode, incode) = postcode.split_once(' ').unwrap_or((postcode, ""));
    serde_json::json!({
        "status": "match",
        "match_type": "unit_postcode",
        "input": postcode,
        "data": {
            "postcode": postcode,
            "status": status,
            "usertype": "small",
            "easting": 510364,
            "northing": 176971,
            "positional_quality_indicator": 1,
            "country": "England",
            "latitude": "51.480938",
            "longitude": "-0.412088",
            "postcode_no_space": postcode.replace(' ', ""),
            "postcode_fixed_width_seven": postcode,
            "postcode_fixed_width_eight": postcode,
            "postcode_area": outcode.trim_end_matches(|c: char| !c.is_ascii_alphabetic()),
            "postcode_district": outcode,
            "postcode_sector": format!("{outcode} {}", &incode[..1.min(incode.len())]),
            "outcode": outcode,
            "incode": incode
        },
        "copyright": [
            "Contains OS data (c) Crown copyright and database right 2023",
            "Contains Royal Mail data (c) Royal Mail copyright and database right 2023"
        ]
    })
    .to_string()
}

/// What getthedata answers to `GET {target}`: no Northern Ireland data.
pub fn getthedata_reply(data: &Postcodes, target: &str) -> Reply {
    let json = |body: String| Reply::raw(200, Some("application/json"), body);
    let path = target.split('?').next().unwrap_or_default();
    let input = path
        .strip_prefix("/postcode/")
        .and_then(|segment| percent_decode(segment, true));
    let no_match =
        |input: &str| json(serde_json::json!({"status": "no_match", "input": input}).to_string());
    let Some(input) = input else {
        return no_match("");
    };
    let postcode = canonical(&input);
    if postcode.starts_with("BT") {
        return no_match(&input);
    }
    if data.live.contains(&postcode) {
        return json(getthedata_match(&postcode, "live"));
    }
    if data.terminated.contains_key(&postcode) {
        return json(getthedata_match(&postcode, "terminated"));
    }
    no_match(&input)
}
