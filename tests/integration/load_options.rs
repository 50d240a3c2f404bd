//! The load generator's options (`just_hungry::loadgen::validate`): options that make no sense
//! are refused before anything starts, and the defaults are accepted.

use std::time::Duration;

use just_hungry::loadgen::{LoadOptions, validate};

#[test]
fn options_that_make_no_sense_are_refused() {
    let kill_one = LoadOptions {
        replicas: 1,
        kill_primary_every: Some(Duration::from_secs(1)),
        ..LoadOptions::default()
    };
    assert!(validate(&kill_one).is_err());
    let no_clients = LoadOptions {
        clients: 0,
        ..LoadOptions::default()
    };
    assert!(validate(&no_clients).is_err());
    assert!(validate(&LoadOptions::default()).is_ok());
}
