//! Embedding just-hungry in another program: replicate your own state machine (a counter)
//! over the in-memory transport, kill the primary, and carry on.
//!
//! `cargo run --example embed_counter`

use std::sync::Arc;

use just_hungry::core::{AcceptAll, ApplyContext, StateMachine};
use just_hungry::local::LocalCluster;
use serde::{Deserialize, Serialize};

/// The replicated service: a counter. Deterministic, so every replica agrees.
#[derive(Default, Serialize, Deserialize)]
struct Counter {
    value: u64,
}

impl StateMachine for Counter {
    const SERVICE: &'static str = "counter";
    type Command = u64; // add this much
    type Reply = u64; // the new value
    type Query = ();
    type QueryReply = u64;

    fn apply(&mut self, _: &ApplyContext, add: &u64) -> u64 {
        self.value = self.value.saturating_add(*add);
        self.value
    }

    fn query(&self, _: &()) -> u64 {
        self.value
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut cluster = LocalCluster::<Counter>::new(Default::default());
    for name in ["a", "b", "c"] {
        cluster
            .start_replica(name, Counter::default(), Arc::new(AcceptAll))
            .await?;
    }
    cluster.start_frontend().await?;
    let client = cluster.client(Default::default()).await?;
    assert_eq!(client.write(5).await?, 5);
    cluster.crash_replica("a").await; // the first replica, the primary, dies...
    assert_eq!(client.write(2).await?, 7); // ...and the client notices nothing
    assert_eq!(client.read(()).await?, 7);
    let reports = cluster
        .wait_for_convergence(std::time::Duration::from_secs(5))
        .await?;
    println!("counter = 7 on {} live replicas", reports.len());
    cluster.shutdown().await;
    Ok(())
}
