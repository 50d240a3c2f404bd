//! What the checker finds: each [`Anomaly`], and the [`Report`] on a whole history.

use std::fmt;

/// One kind of anomaly.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Anomaly {
    /// An acknowledged order is missing from reads that began after it was acknowledged, the
    /// last read of its postcode included.
    Lost {
        /// The postcode.
        key: String,
        /// The order.
        id: String,
    },
    /// A read returned the same order twice.
    Doubled {
        /// The postcode.
        key: String,
        /// The order.
        id: String,
    },
    /// A read missed an order acknowledged before the read began (later reads have it), or
    /// returned less than a read that finished before it began.
    StaleRead {
        /// The postcode.
        key: String,
        /// What is missing, and from which read.
        detail: String,
    },
    /// Reads disagree on the order of a postcode's orders, or orders are stored in an order
    /// that contradicts the real-time order in which they were placed.
    OutOfOrder {
        /// The postcode.
        key: String,
        /// Which orders.
        detail: String,
    },
    /// A read returned an order that was placed only after the read had finished.
    ReadBeforeAppended {
        /// The postcode.
        key: String,
        /// The order.
        id: String,
    },
    /// A read returned an order that was never placed, or whose placement failed.
    Phantom {
        /// The postcode.
        key: String,
        /// The order.
        id: String,
    },
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::Lost { key, id } => {
                write!(
                    f,
                    "lost order: {id} at {key} was acknowledged, then missing from every later read"
                )
            }
            Anomaly::Doubled { key, id } => {
                write!(f, "doubled order: {id} appears twice in a read of {key}")
            }
            Anomaly::StaleRead { key, detail } => write!(f, "stale read of {key}: {detail}"),
            Anomaly::OutOfOrder { key, detail } => write!(f, "out of order at {key}: {detail}"),
            Anomaly::ReadBeforeAppended { key, id } => {
                write!(
                    f,
                    "read before placed: a read of {key} returned {id} before it was placed"
                )
            }
            Anomaly::Phantom { key, id } => write!(
                f,
                "phantom order: a read of {key} returned {id}, which was never placed or whose placement failed"
            ),
        }
    }
}

/// The verdict on a history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Operations checked (completed or not).
    pub operations: usize,
    /// Postcodes seen.
    pub keys: usize,
    /// Acknowledged appends.
    pub acknowledged: usize,
    /// Everything wrong; empty when the history is linearizable with nothing lost or doubled.
    pub anomalies: Vec<Anomaly>,
}

impl Report {
    /// Whether the history passed.
    pub fn is_valid(&self) -> bool {
        self.anomalies.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_valid() {
            writeln!(
                f,
                "OK: {} operations on {} postcodes are linearizable; {} acknowledged orders, none lost, none doubled",
                self.operations, self.keys, self.acknowledged
            )
        } else {
            writeln!(
                f,
                "VIOLATION: {} anomalies in {} operations on {} postcodes",
                self.anomalies.len(),
                self.operations,
                self.keys
            )?;
            for a in &self.anomalies {
                writeln!(f, "  - {a}")?;
            }
            Ok(())
        }
    }
}
