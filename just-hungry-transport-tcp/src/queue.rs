//! The frames waiting to be written on one connection, bounded in count and in bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

/// The sending side, held by the transport's routing tables. Pushes for one queue are
/// serialised by the lock of the table that holds it, so the byte check cannot race another
/// push.
#[derive(Clone)]
pub(crate) struct FrameQueue {
    id: u64,
    frames: mpsc::Sender<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    /// The bytes queued in every queue of the transport.
    total_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The receiving side, owned by the connection task that writes the frames. Dropping it
/// drops the frames still queued and takes them off the counts.
pub(crate) struct FrameReceiver {
    frames: mpsc::Receiver<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    total_bytes: Arc<AtomicUsize>,
}

/// What became of a pushed frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// Queued.
    Queued,
    /// The queue is full (frames or bytes): the frame is dropped.
    Full,
    /// The connection task is gone: the frame is handed back.
    Closed(Bytes),
}

impl FrameQueue {
    /// A queue of at most `max_frames` frames and `max_bytes` bytes (a single larger frame is
    /// accepted when the queue is empty), identified by `id`; its bytes are also counted in
    /// `total_bytes`, the transport's count over all its queues.
    pub(crate) fn new(
        id: u64,
        max_frames: usize,
        max_bytes: usize,
        total_bytes: Arc<AtomicUsize>,
    ) -> (Self, FrameReceiver) {
        let (frames, receiver) = mpsc::channel(max_frames.max(1));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        (
            FrameQueue {
                id,
                frames,
                queued_bytes: queued_bytes.clone(),
                total_bytes: total_bytes.clone(),
                max_bytes,
            },
            FrameReceiver {
                frames: receiver,
                queued_bytes,
                total_bytes,
            },
        )
    }

    /// Which queue this is (a routing entry is only removed by the task that owns it).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Queues `frame` without waiting.
    pub(crate) fn push(&self, frame: Bytes) -> Push {
        let len = frame.len();
        let queued = self.queued_bytes.load(Ordering::Acquire);
        if queued > 0 && queued.saturating_add(len) > self.max_bytes {
            return Push::Full;
        }
        self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        self.total_bytes.fetch_add(len, Ordering::AcqRel);
        let unqueue = || {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.total_bytes.fetch_sub(len, Ordering::AcqRel);
        };
        match self.frames.try_send(frame) {
            Ok(()) => Push::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                unqueue();
                Push::Full
            }
            Err(mpsc::error::TrySendError::Closed(frame)) => {
                unqueue();
                Push::Closed(frame)
            }
        }
    }
}

impl FrameReceiver {
    /// The next frame, waiting for one; `None` once every [`FrameQueue`] is dropped.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        let frame = self.frames.recv().await?;
        self.taken(frame.len());
        Some(frame)
    }

    /// The next frame if one is queued now.
    pub(crate) fn try_recv(&mut self) -> Option<Bytes> {
        let frame = self.frames.try_recv().ok()?;
        self.taken(frame.len());
        Some(frame)
    }

    fn taken(&self, len: usize) {
        self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
        self.total_bytes.fetch_sub(len, Ordering::AcqRel);
    }

    /// Whether no frame is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

impl Drop for FrameReceiver {
    fn drop(&mut self) {
        // No push succeeds once closed; what is left is dropped here, and uncounted.
        self.frames.close();
        while self.try_recv().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_in_frames_and_bytes_and_accounted_on_both_sides() {
        let total = Arc::new(AtomicUsize::new(0));
        let (queue, mut receiver) = FrameQueue::new(1, 3, 10, total.clone());
        assert_eq!(
            queue.push(Bytes::from_static(&[0; 25])),
            Push::Queued,
            "alone"
        );
        assert_eq!(queue.push(Bytes::from_static(&[1])), Push::Full, "bytes");
        assert_eq!(receiver.recv().await.unwrap().len(), 25);
        for _ in 0..3 {
            assert_eq!(queue.push(Bytes::from_static(&[2; 2])), Push::Queued);
        }
        assert_eq!(queue.push(Bytes::from_static(&[3])), Push::Full, "frames");
        while receiver.try_recv().is_some() {}
        assert!(receiver.is_empty());
        assert_eq!(queue.push(Bytes::from_static(&[4; 10])), Push::Queued);
        let (other, _other_receiver) = FrameQueue::new(2, 3, 10, total.clone());
        assert_eq!(other.push(Bytes::from_static(&[5; 4])), Push::Queued);
        assert_eq!(
            total.load(Ordering::Acquire),
            14,
            "counted over both queues"
        );
        drop(receiver);
        assert_eq!(
            total.load(Ordering::Acquire),
            4,
            "a dropped receiver's frames are uncounted"
        );
        assert!(matches!(
            queue.push(Bytes::from_static(&[6])),
            Push::Closed(_)
        ));
        assert_eq!(total.load(Ordering::Acquire), 4);
    }
}
