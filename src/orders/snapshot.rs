//! The order book's snapshot: written in pieces while orders go on being placed, read in
//! pieces as they arrive.
//!
//! # Layout
//!
//! A sequence of pieces, each its length (4 bytes, little-endian, at most [`MAX_PIECE_BYTES`])
//! followed by the encoding of one piece:
//!
//! 1. `Limit { max_bytes }`, once, first;
//! 2. `Orders { postcode, orders }`, postcode by postcode in order; a long history takes several
//!    consecutive pieces of the same postcode, oldest orders first;
//! 3. `End`, once, last.
//!
//! Each piece decodes on its own within the codec's bound, so the book has no size limit but
//! its own ([`OrderBook::max_bytes`]), and a reader holds at most one piece of undecoded bytes.
//!
//! # Writing while orders are placed (op-tracked)
//!
//! Histories are only ever appended to. The state a snapshot began at is therefore, for each
//! postcode, a prefix of its history: the writer walks the postcodes in order and writes each
//! history up to its length at the start. It learns that length lazily: before an order is
//! applied ([`SnapshotWriter::before_apply`]), if its postcode is at or after the writer's
//! position, the writer records the history's current length (0 for a postcode that had no
//! order), unless it recorded one already. A postcode behind the position is written already,
//! and what is appended to it is not part of this snapshot anyway. The writer holds one number
//! per postcode changed since it began and not yet written, nothing else.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::{Order, OrderBook, check_order, order_cost};
use crate::postcode::Postcode;
use just_hungry_core::codec::{self, CodecError};
use just_hungry_core::state_machine::{SnapshotReader, SnapshotWriter};

/// The most bytes one piece of an order book's snapshot may take; a reader refuses a longer
/// one. Writers cut pieces at a quarter of it.
pub const MAX_PIECE_BYTES: usize = 4 * 1024 * 1024;

/// How many bytes of orders (counted as [`order_cost`]) a writer puts in one piece.
const PIECE_BUDGET: usize = MAX_PIECE_BYTES / 4;

#[derive(Serialize)]
enum PieceOut<'a> {
    Limit {
        max_bytes: u64,
    },
    Orders {
        postcode: &'a Postcode,
        orders: &'a [Order],
    },
    End,
}

/// The decoded form of [`PieceOut`]: the same variants in the same order.
#[derive(Deserialize)]
enum PieceIn {
    Limit {
        max_bytes: u64,
    },
    Orders {
        postcode: Postcode,
        orders: Vec<Order>,
    },
    End,
}

/// Where a writer is.
enum Position {
    /// No order written yet.
    Start,
    /// Writing this postcode's history, from this order on.
    At(Postcode, usize),
    /// Done with this postcode: the next one after it.
    After(Postcode),
    /// Everything written, `End` included.
    Done,
}

/// The order book's [`SnapshotWriter`]; see the module documentation.
pub(super) struct BookWriter {
    /// The book's limit, until it is written.
    limit: Option<u64>,
    position: Position,
    /// The length when the snapshot began of each history changed since and not yet written.
    frozen: BTreeMap<Postcode, usize>,
}

impl BookWriter {
    pub(super) fn new(book: &OrderBook) -> BookWriter {
        BookWriter {
            limit: Some(book.max_bytes),
            position: Position::Start,
            frozen: BTreeMap::new(),
        }
    }

    /// Whether `postcode`'s history is written already, as far as this snapshot goes.
    fn passed(&self, postcode: &Postcode) -> bool {
        match &self.position {
            Position::Start => false,
            Position::At(at, _) => postcode < at,
            Position::After(after) => postcode <= after,
            Position::Done => true,
        }
    }

    /// Writes the next piece of orders, or `End`; `false` once done.
    fn next_piece(&mut self, book: &OrderBook, out: &mut Vec<u8>) -> Result<bool, CodecError> {
        let range = match &self.position {
            Position::Start => book.histories.range::<Postcode, _>(..),
            Position::At(at, _) => book
                .histories
                .range::<Postcode, _>((Bound::Included(at), Bound::Unbounded)),
            Position::After(after) => book
                .histories
                .range::<Postcode, _>((Bound::Excluded(after), Bound::Unbounded)),
            Position::Done => return Ok(false),
        };
        for (postcode, orders) in range {
            let first = match &self.position {
                Position::At(at, index) if at == postcode => *index,
                _ => 0,
            };
            let end = self
                .frozen
                .get(postcode)
                .copied()
                .unwrap_or(orders.len())
                .min(orders.len());
            if first >= end {
                // Written, or created since the snapshot began.
                self.frozen.remove(postcode);
                self.position = Position::After(postcode.clone());
                continue;
            }
            let mut taken = 0;
            let mut cost = 0usize;
            while first + taken < end && (taken == 0 || cost < PIECE_BUDGET) {
                cost = cost.saturating_add(order_cost(&orders[first + taken].items));
                taken += 1;
            }
            put(
                out,
                &PieceOut::Orders {
                    postcode,
                    orders: &orders[first..first + taken],
                },
            )?;
            self.position = if first + taken == end {
                self.frozen.remove(postcode);
                Position::After(postcode.clone())
            } else {
                Position::At(postcode.clone(), first + taken)
            };
            return Ok(true);
        }
        put(out, &PieceOut::End)?;
        self.position = Position::Done;
        self.frozen.clear();
        Ok(false)
    }
}

impl SnapshotWriter<OrderBook> for BookWriter {
    fn before_apply(&mut self, book: &OrderBook, command: &super::OrderCommand) {
        let (postcode, items) = command.order();
        // A command that does not pass the checks changes nothing.
        let Ok(postcode) = check_order(postcode, items) else {
            return;
        };
        if self.passed(&postcode) || self.frozen.contains_key(&postcode) {
            return;
        }
        let len = book.history(&postcode).len();
        self.frozen.insert(postcode, len);
    }

    fn write(
        &mut self,
        book: &OrderBook,
        out: &mut Vec<u8>,
        budget: usize,
    ) -> Result<bool, CodecError> {
        let start = out.len();
        if let Some(max_bytes) = self.limit.take() {
            put(out, &PieceOut::Limit { max_bytes })?;
        }
        while out.len() - start < budget.max(1) {
            if !self.next_piece(book, out)? {
                break;
            }
        }
        Ok(matches!(self.position, Position::Done))
    }
}

/// Appends one piece, its length first.
fn put(out: &mut Vec<u8>, piece: &PieceOut<'_>) -> Result<(), CodecError> {
    let mark = out.len();
    out.extend_from_slice(&[0; 4]);
    codec::encode_into(piece, out)?;
    let len = out.len() - mark - 4;
    if len > MAX_PIECE_BYTES {
        out.truncate(mark);
        return Err(CodecError::Encode(format!(
            "a snapshot piece of {len} bytes (at most {MAX_PIECE_BYTES})"
        )));
    }
    out[mark..mark + 4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// The whole snapshot of `book`, in one step.
pub(super) fn whole(book: &OrderBook) -> Result<Vec<u8>, CodecError> {
    let mut writer = BookWriter::new(book);
    let mut out = Vec::new();
    while !writer.write(book, &mut out, usize::MAX)? {}
    Ok(out)
}

/// The order book's [`SnapshotReader`]; see the module documentation.
#[derive(Default)]
pub(super) struct BookReader {
    /// Bytes not decoded yet: less than one piece.
    pending: Vec<u8>,
    max_bytes: Option<u64>,
    histories: BTreeMap<Postcode, Vec<Order>>,
    /// The postcode of the last piece of orders.
    last: Option<Postcode>,
    ended: bool,
}

fn refused(why: impl Into<String>) -> CodecError {
    CodecError::Decode(why.into())
}

impl BookReader {
    fn take(&mut self, piece: PieceIn) -> Result<(), CodecError> {
        if self.ended {
            return Err(refused("a snapshot piece after its end"));
        }
        match piece {
            PieceIn::Limit { max_bytes } => {
                if self.max_bytes.is_some() {
                    return Err(refused("a snapshot with two limits"));
                }
                self.max_bytes = Some(max_bytes);
            }
            PieceIn::Orders { postcode, orders } => {
                if self.max_bytes.is_none() {
                    return Err(refused("a snapshot whose orders come before its limit"));
                }
                if orders.is_empty() {
                    return Err(refused(format!(
                        "a snapshot piece of no orders for {postcode}"
                    )));
                }
                match &self.last {
                    Some(last) if *last == postcode => {}
                    Some(last) if *last > postcode => {
                        return Err(refused(format!(
                            "a snapshot's postcodes out of order ({postcode} after {last})"
                        )));
                    }
                    _ => {
                        if let Some(done) = self.last.take()
                            && let Some(history) = self.histories.get_mut(&done)
                        {
                            history.shrink_to_fit();
                        }
                        self.last = Some(postcode.clone());
                    }
                }
                self.histories.entry(postcode).or_default().extend(orders);
            }
            PieceIn::End => {
                if self.max_bytes.is_none() {
                    return Err(refused("a snapshot that ends before its limit"));
                }
                if let Some(done) = self.last.take()
                    && let Some(history) = self.histories.get_mut(&done)
                {
                    history.shrink_to_fit();
                }
                self.ended = true;
            }
        }
        Ok(())
    }
}

impl SnapshotReader<OrderBook> for BookReader {
    fn read(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        while let Some(prefix) = self.pending.get(at..at + 4) {
            let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
            if len > MAX_PIECE_BYTES {
                return Err(refused(format!(
                    "a snapshot piece of {len} bytes (at most {MAX_PIECE_BYTES})"
                )));
            }
            let Some(body) = self.pending.get(at + 4..at + 4 + len) else {
                break;
            };
            let piece: PieceIn = codec::decode(body)?;
            at += 4 + len;
            self.take(piece)?;
        }
        self.pending.drain(..at);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<OrderBook, CodecError> {
        if !self.ended {
            return Err(refused("the snapshot stops before its end"));
        }
        if !self.pending.is_empty() {
            return Err(CodecError::TrailingBytes {
                trailing: self.pending.len(),
            });
        }
        let max_bytes = self
            .max_bytes
            .unwrap_or(super::DEFAULT_MAX_ORDER_BOOK_BYTES);
        Ok(OrderBook::from_histories(self.histories).with_max_bytes(max_bytes))
    }
}
