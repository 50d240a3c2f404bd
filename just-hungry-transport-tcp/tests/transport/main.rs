//! Every integration test of the TCP transport in one test binary (one build and one link of
//! the code they share); `cargo test -p just-hungry-transport-tcp --test transport flood::`
//! runs one module's tests. `common` holds the helpers.

mod bad_input;
mod common;
mod delivery;
mod flood;
mod priority;
mod tls;
mod tls_transport;
