//! What the front-end keeps of its view across restarts (docs/PROTOCOL.md, rule 5): the record.
//! The stores that write it (a file, memory) are I/O and live in the runtime
//! ([`crate::runtime::view_store`]); the protocol only asks for a record to be persisted
//! ([`crate::protocol::Output::PersistView`]).

use serde::{Deserialize, Serialize};

use crate::ids::View;

/// What the front-end persists before it publishes a view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRecord {
    /// The newest view created.
    pub current: View,
    /// Whether `current` is active (its primary confirmed that every backup holds its state).
    pub current_active: bool,
    /// The last view known to be active (equal to `current` when it is active).
    pub last_active: Option<View>,
}
