//! The one place that knows the wire encoding.
//!
//! Every message, snapshot and digest input is encoded here with bincode 2.0.1 through its serde
//! support. bincode's development stopped in 2025, so no other module calls it: swapping the
//! encoding means changing this file only.
//!
//! Decoding is bounded: bincode is told the most bytes it may allocate
//! ([`MAX_DECODE_BYTES`]), so a hostile length field inside a frame cannot make it reserve
//! gigabytes, and input with trailing bytes is refused.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The most bytes one decode may allocate, whatever the input claims. Frames are limited
/// separately by the transport; this bounds what a small frame can ask for.
pub const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

/// Why bytes could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be encoded (a serde error in a hand-written `Serialize`).
    #[error("cannot encode: {0}")]
    Encode(String),
    /// The bytes are not a valid encoding of the expected type, or ask for more memory than
    /// [`MAX_DECODE_BYTES`].
    #[error("cannot decode: {0}")]
    Decode(String),
    /// The bytes hold a valid value followed by unexpected bytes.
    #[error("cannot decode: {trailing} trailing bytes after the value")]
    TrailingBytes {
        /// How many bytes were left over.
        trailing: usize,
    },
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODE_BYTES>()
}

/// Encodes `value` into a new buffer.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Encodes `value` at the end of `buffer`, reusing its allocation.
pub fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buffer: &mut Vec<u8>,
) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, buffer, config())
        .map(|_| ())
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes exactly one `T` from `bytes`; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes {
            trailing: bytes.len() - read,
        });
    }
    Ok(value)
}

/// Decodes one `T` from the front of `reader`, reading no further than its encoding (bincode
/// reads exactly what it needs). Bounded like [`decode`]; whether bytes follow is the caller's
/// business.
pub fn decode_from_reader<T: DeserializeOwned, R: std::io::Read + ?Sized>(
    reader: &mut R,
) -> Result<T, CodecError> {
    bincode::serde::decode_from_std_read(&mut ReadRef(reader), config())
        .map_err(|e| CodecError::Decode(e.to_string()))
}

/// Fails with [`CodecError::TrailingBytes`] unless `reader` is at its end.
pub fn expect_end<R: std::io::Read + ?Sized>(reader: &mut R) -> Result<(), CodecError> {
    let mut rest = [0u8; 64];
    let trailing = reader
        .read(&mut rest)
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if trailing == 0 {
        Ok(())
    } else {
        Err(CodecError::TrailingBytes { trailing })
    }
}

/// A sized `Read` over an unsized one, for bincode's generic reader.
struct ReadRef<'a, R: ?Sized>(&'a mut R);

impl<R: std::io::Read + ?Sized> std::io::Read for ReadRef<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

/// The length of the encoding of `value`, without writing it anywhere.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, CodecError> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    bincode::serde::encode_into_std_write(value, &mut count, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(count.0)
}

/// A 64-bit FNV-1a hash of the encoding of `value`: equal values give equal digests on every
/// machine, as long as the type serializes deterministically (ordered maps, no floats NaN).
pub fn digest<T: Serialize + ?Sized>(value: &T) -> Result<u64, CodecError> {
    Ok(fnv1a(&encode(value)?))
}

/// 64-bit FNV-1a.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes_refused() {
        let v = (42u64, String::from("pizza"), vec![1u8, 2, 3]);
        let mut bytes = encode(&v).unwrap();
        assert_eq!(encoded_len(&v).unwrap(), bytes.len());
        let back: (u64, String, Vec<u8>) = decode(&bytes).unwrap();
        assert_eq!(back, v);
        bytes.push(0);
        assert!(matches!(
            decode::<(u64, String, Vec<u8>)>(&bytes),
            Err(CodecError::TrailingBytes { trailing: 1 })
        ));
    }

    #[test]
    fn decode_from_reader_reads_exactly_one_value() {
        let mut bytes = encode(&(7u64, String::from("naan"))).unwrap();
        bytes.extend_from_slice(&encode(&3u32).unwrap());
        let mut reader = bytes.as_slice();
        let first: (u64, String) = decode_from_reader(&mut reader).unwrap();
        assert_eq!(first, (7, "naan".to_owned()));
        let mut peek = reader;
        assert!(expect_end(&mut peek).is_err());
        let second: u32 = decode_from_reader(&mut reader).unwrap();
        assert_eq!(second, 3);
        assert!(expect_end(&mut reader).is_ok());
    }

    #[test]
    fn hostile_length_is_refused_without_allocating() {
        // A Vec<u8> whose varint length claims u64::MAX bytes.
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode::<Vec<u8>>(&bytes),
            Err(CodecError::Decode(_))
        ));
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..64u8 {
            let bytes: Vec<u8> = (0..len)
                .map(|i| i.wrapping_mul(37).wrapping_add(len))
                .collect();
            let _ = decode::<(String, Vec<u64>, Option<bool>)>(&bytes);
        }
    }
}
