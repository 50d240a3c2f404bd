//! # just-hungry-transport-tcp
//!
//! The length-prefixed TCP transport for just-hungry: a 4-byte big-endian length then one
//! encoded message per frame, a hello with the protocol version first, reconnects with
//! backoff, size limits.
//!
//! Not written yet: it is the next issue of the project (the multi-process binaries). Until
//! then this crate only fixes its place in the workspace; use `just-hungry-transport-mem`.

#![deny(missing_docs)]

/// The size of the length prefix of every frame, in bytes (big-endian `u32`).
pub const LENGTH_PREFIX_BYTES: usize = 4;
