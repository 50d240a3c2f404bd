//! etcd's equivalent of an acknowledged order, for `benches/peers/etcd-put.sh` (issue 16):
//! closed-loop clients, each sending one `Put` of a new key and waiting for its answer before
//! the next, so that an answer means a majority of the members has the entry in its fsynced
//! log (etcd's raft acknowledges a put once it is committed, and commits an entry when a
//! majority has written and fdatasynced it). Prints throughput and latency percentiles, as one
//! JSON line with `--json`.
//!
//! ```sh
//! target/release/etcd_put --endpoints http://127.0.0.1:2379,http://127.0.0.1:2479 --clients 16 --duration 10s
//! ```
//!
//! It speaks etcd's native gRPC API, as etcd's own `benchmark put` does (not the JSON gateway,
//! which costs etcd a second decoding and an internal call per request): a unary gRPC call is
//! an HTTP/2 POST of one length-prefixed protobuf message, and `PutRequest`'s two fields and
//! the two fields read from `StatusResponse` are encoded and decoded here. Each client has its
//! own HTTP/2 connection (one stream at a time on it), as each of our clients has its own TCP
//! connection. By default every client talks to the leader, found with `Maintenance/Status`:
//! a follower would forward each put to it, one hop more.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::net::TcpStream;

/// Closed-loop gRPC `Put` clients against an etcd cluster.
#[derive(Parser, Debug)]
struct Args {
    /// The members' client URLs (`http://host:port`), comma-separated. Plaintext only.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// Concurrent clients, each on its own connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// How long clients put.
    #[arg(long, default_value = "10s", value_parser = just_hungry::cli::parse_duration)]
    duration: Duration,
    /// Bytes of each value (an order of the load generator encodes to about this many).
    #[arg(long, default_value_t = 64)]
    value_bytes: usize,
    /// Spread the clients over every endpoint instead of sending all to the leader.
    #[arg(long)]
    all_members: bool,
    /// How long to wait for the cluster to have a leader before the clients start.
    #[arg(long, default_value = "20s", value_parser = just_hungry::cli::parse_duration)]
    wait: Duration,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What one client did.
struct Outcome {
    latencies: Histogram<u64>,
    failures: u64,
}

/// An HTTP/2 connection to one member, one gRPC call at a time.
struct Connection {
    authority: String,
    send: h2::client::SendRequest<Bytes>,
}

impl Connection {
    async fn open(endpoint: &str) -> Result<Self, String> {
        let authority = endpoint
            .strip_prefix("http://")
            .ok_or_else(|| format!("{endpoint}: only http:// endpoints are supported"))?
            .trim_end_matches('/')
            .to_owned();
        let stream = TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (send, connection) = h2::client::handshake(stream)
            .await
            .map_err(|e| format!("HTTP/2 handshake with {authority}: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection { authority, send })
    }

    /// One unary call: `message` (a protobuf encoding) to `/service/method`; the answer's
    /// message, or why there is none (a gRPC status other than 0 included).
    async fn call(&mut self, path: &str, message: &[u8]) -> Result<Bytes, String> {
        let mut body = BytesMut::with_capacity(5 + message.len());
        body.put_u8(0); // not compressed
        body.put_u32(message.len() as u32);
        body.put_slice(message);
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|e| e.to_string())?;
        let mut send = self
            .send
            .clone()
            .ready()
            .await
            .map_err(|e| format!("{}: {e}", self.authority))?;
        let (response, mut stream) = send
            .send_request(request, false)
            .map_err(|e| format!("{}: {e}", self.authority))?;
        stream
            .send_data(body.freeze(), true)
            .map_err(|e| format!("{}: {e}", self.authority))?;
        let response = response
            .await
            .map_err(|e| format!("{}: {e}", self.authority))?;
        if let Some(status) = grpc_status(response.headers()) {
            return Err(status); // a trailers-only answer: an error
        }
        let mut body = response.into_body();
        let mut received = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| format!("{}: {e}", self.authority))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            received.extend_from_slice(&chunk);
        }
        let trailers = body
            .trailers()
            .await
            .map_err(|e| format!("{}: {e}", self.authority))?;
        if let Some(status) = trailers.as_ref().and_then(grpc_status) {
            return Err(status);
        }
        if received.len() < 5 {
            return Err(format!("{}: an answer without a message", self.authority));
        }
        Ok(received.freeze().slice(5..))
    }
}

/// A gRPC status other than OK in `headers`, as a message.
fn grpc_status(headers: &http::HeaderMap) -> Option<String> {
    let status = headers.get("grpc-status")?.to_str().unwrap_or("?");
    if status == "0" {
        return None;
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or("");
    Some(format!("grpc-status {status}: {message}"))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `PutRequest { key = 1, value = 2 }`.
fn put_request(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + value.len() + 8);
    for (tag, bytes) in [(0x0a, key), (0x12, value)] {
        out.push(tag);
        put_varint(&mut out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    out
}

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// One field of a protobuf message: the two wire types `StatusResponse` uses.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The fields of one protobuf message with their numbers, or `None` if it does not decode.
fn fields(mut bytes: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = read_varint(&mut bytes)?;
        let field = match key & 7 {
            0 => Field::Varint(read_varint(&mut bytes)?),
            2 => {
                let len = usize::try_from(read_varint(&mut bytes)?).ok()?;
                let (value, rest) = (bytes.get(..len)?, bytes.get(len..)?);
                bytes = rest;
                Field::Bytes(value)
            }
            _ => return None, // StatusResponse has no fixed-width fields
        };
        out.push((key >> 3, field));
    }
    Some(out)
}

/// `StatusResponse`'s `header.member_id` (1.2) and `leader` (4).
fn member_and_leader(status: &[u8]) -> Option<(u64, u64)> {
    let top = fields(status)?;
    let header = top.iter().find_map(|(n, f)| match (n, f) {
        (1, Field::Bytes(bytes)) => Some(*bytes),
        _ => None,
    })?;
    let member = fields(header)?
        .into_iter()
        .find_map(|(n, f)| match (n, f) {
            (2, Field::Varint(id)) => Some(id),
            _ => None,
        })?;
    let leader = top.iter().find_map(|(n, f)| match (n, f) {
        (4, Field::Varint(id)) => Some(*id),
        _ => None,
    })?;
    Some((member, leader))
}

/// The endpoint of the member that leads, if one says it does: each is asked in turn.
async fn leader(endpoints: &[String]) -> Result<String, String> {
    let mut answers = Vec::new();
    for endpoint in endpoints {
        let status = match Connection::open(endpoint).await {
            Ok(mut connection) => {
                connection
                    .call("/etcdserverpb.Maintenance/Status", &[])
                    .await
            }
            Err(e) => Err(e),
        };
        match status.map(|s| member_and_leader(&s)) {
            Ok(Some((member, leader))) if member == leader && leader != 0 => {
                return Ok(endpoint.clone());
            }
            Ok(Some(_)) => answers.push(format!("{endpoint}: a follower")),
            Ok(None) => answers.push(format!("{endpoint}: a StatusResponse that does not decode")),
            Err(e) => answers.push(e),
        }
    }
    Err(format!("no endpoint leads ({})", answers.join("; ")))
}

/// [`leader`], asked again every 100 ms until `wait` has passed (members starting up).
async fn wait_for_leader(endpoints: &[String], wait: Duration) -> Result<String, String> {
    let deadline = Instant::now() + wait;
    loop {
        match leader(endpoints).await {
            Ok(endpoint) => return Ok(endpoint),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("no leader after {wait:?}: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn client(
    args: &Args,
    endpoint: &str,
    index: usize,
    until: Instant,
) -> Result<Outcome, String> {
    let mut connection = Connection::open(endpoint).await?;
    let mut latencies =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let mut failures = 0;
    let value = vec![b'o'; args.value_bytes];
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let key = format!("orders/client-{index}/{n}");
        let request = put_request(key.as_bytes(), &value);
        let started = Instant::now();
        match connection.call("/etcdserverpb.KV/Put", &request).await {
            Ok(_) => {
                let micros = started.elapsed().as_micros() as u64;
                latencies.saturating_record(micros.max(1));
            }
            Err(e) if e.starts_with("grpc-status") => failures += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(Outcome {
        latencies,
        failures,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let leader = match wait_for_leader(&args.endpoints, args.wait).await {
        Ok(leader) => leader,
        Err(e) => {
            eprintln!("etcd_put: {e}");
            std::process::exit(2);
        }
    };
    let targets = if args.all_members {
        args.endpoints.clone()
    } else {
        vec![leader]
    };
    let start = Instant::now();
    let until = start + args.duration;
    let runs = (0..args.clients).map(|i| client(&args, &targets[i % targets.len()], i, until));
    let outcomes = futures_util::future::join_all(runs).await;
    let elapsed = start.elapsed().as_secs_f64();
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut failures = 0;
    for outcome in outcomes {
        match outcome {
            Ok(outcome) => {
                let _ = latencies.add(&outcome.latencies);
                failures += outcome.failures;
            }
            Err(e) => {
                eprintln!("etcd_put: {e}");
                std::process::exit(2);
            }
        }
    }
    let acknowledged = latencies.len();
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    let throughput = acknowledged as f64 / elapsed;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "clients": args.clients,
                "endpoints": targets,
                "acknowledged": acknowledged,
                "failures": failures,
                "elapsed_s": elapsed,
                "throughput": throughput,
                "mean_ms": latencies.mean() / 1000.0,
                "p50_ms": ms(0.5),
                "p99_ms": ms(0.99),
                "p999_ms": ms(0.999),
            })
        );
    } else {
        println!(
            "etcd Put: {} clients to {}, {throughput:.0} acknowledged/s ({acknowledged} in {elapsed:.2} s, {failures} refused), p50 {:.3} ms p99 {:.3} ms p99.9 {:.3} ms",
            args.clients,
            targets.join(","),
            ms(0.5),
            ms(0.99),
            ms(0.999)
        );
    }
}
