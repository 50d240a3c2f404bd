//! Redis's nearest equivalent of an acknowledged order, for `benches/peers/redis-wait.sh`
//! (issue 17): closed-loop clients, each sending `RPUSH <key> <order>` then `WAIT <replicas>
//! <timeout>` and waiting for both answers before the next, so that an answer means the
//! push reached that many replicas, as our acknowledgement means every backup holds the
//! order. Prints throughput and latency percentiles, as one JSON line with `--json`.
//!
//! ```sh
//! target/release/redis_wait --address 127.0.0.1:6390 --clients 16 --duration 10s
//! ```
//!
//! It speaks RESP itself over tokio (two commands, two kinds of reply): no Redis client crate.
//! A reply of `WAIT` below `--replicas` is counted as a failure, not an acknowledgement.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Closed-loop RPUSH + WAIT clients against a Redis primary.
#[derive(Parser, Debug)]
struct Args {
    /// The Redis primary.
    #[arg(long, default_value = "127.0.0.1:6390")]
    address: SocketAddr,
    /// Concurrent clients, each on its own connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// How long clients push.
    #[arg(long, default_value = "10s", value_parser = just_hungry::cli::parse_duration)]
    duration: Duration,
    /// Replicas `WAIT` waits for.
    #[arg(long, default_value_t = 2)]
    replicas: u32,
    /// `WAIT`'s timeout, milliseconds (0 would wait for ever).
    #[arg(long, default_value_t = 5000)]
    wait_timeout_ms: u64,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What one client did.
struct Outcome {
    latencies: Histogram<u64>,
    failures: u64,
}

/// One RESP command of bulk strings.
fn command(parts: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        out.extend_from_slice(format!("${}\r\n{part}\r\n", part.len()).as_bytes());
    }
    out
}

/// Reads one reply line (`:3`, `+OK`, `-ERR ...`): the integer of an integer reply.
async fn integer_reply(
    reader: &mut BufReader<TcpStream>,
    line: &mut String,
) -> Result<i64, String> {
    line.clear();
    let n = reader
        .read_line(line)
        .await
        .map_err(|e| format!("reading a reply: {e}"))?;
    if n == 0 {
        return Err("Redis closed the connection".into());
    }
    let text = line.trim_end();
    match text.strip_prefix(':') {
        Some(number) => number
            .parse()
            .map_err(|_| format!("not an integer reply: {text}")),
        None => Err(format!("unexpected reply: {text}")),
    }
}

async fn client(args: &Args, index: usize, until: Instant) -> Result<Outcome, String> {
    let stream = TcpStream::connect(args.address)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.address))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut latencies =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let mut failures = 0;
    let mut line = String::new();
    let key = format!("orders:client-{index}");
    let wait = [
        "WAIT".to_owned(),
        args.replicas.to_string(),
        args.wait_timeout_ms.to_string(),
    ];
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let order = format!("order-{index}-{n}:pizza");
        let mut request = command(&["RPUSH", &key, &order]);
        request.extend(command(&[&wait[0], &wait[1], &wait[2]]));
        let started = Instant::now();
        reader
            .get_mut()
            .write_all(&request)
            .await
            .map_err(|e| format!("writing: {e}"))?;
        integer_reply(&mut reader, &mut line).await?;
        let acknowledged = integer_reply(&mut reader, &mut line).await?;
        if acknowledged >= i64::from(args.replicas) {
            let micros = started.elapsed().as_micros() as u64;
            latencies.saturating_record(micros.max(1));
        } else {
            failures += 1;
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
    let start = Instant::now();
    let until = start + args.duration;
    let runs = (0..args.clients).map(|i| client(&args, i, until));
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
                eprintln!("redis_wait: {e}");
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
            "redis RPUSH + WAIT {}: {} clients, {throughput:.0} acknowledged/s ({acknowledged} in {elapsed:.2} s, {failures} short of {} replicas), p50 {:.3} ms p99 {:.3} ms p99.9 {:.3} ms",
            args.replicas,
            args.clients,
            args.replicas,
            ms(0.5),
            ms(0.99),
            ms(0.999)
        );
    }
}
