//! UK postcodes: the canonical [`Postcode`] type, the offline format check, the
//! [`PostcodeValidator`] trait and its offline implementation ([`OfflineValidator`]). The
//! online validators (postcodes.io, getthedata, the fallback chain of the two with a cache)
//! and the builder that chooses one are the food service's, in the `just-hungry` crate's
//! `postcode` module: this crate makes no HTTP call.
//!
//! # The offline format check
//!
//! [`normalise`] implements POSTCODES.md section 1, in its order; the first failure is the error
//! reported:
//!
//! 1. an input longer than [`MAX_POSTCODE_INPUT_LEN`] characters is refused before anything else;
//! 2. leading and trailing ASCII whitespace is trimmed (space, tab, LF, FF, CR; nothing else);
//! 3. what remains must be `OUTWARD`, zero or more spaces or tabs, then `INWARD`: no hyphen, dot,
//!    no-break space, line break or space inside either half;
//! 4. ASCII letters and digits only, upper-cased with ASCII-only functions (so `ſ`, `ı`, the
//!    Kelvin sign, fullwidth and Cyrillic look-alikes are all refused, never "fixed");
//! 5. `OUTWARD` is `A9`, `A99`, `AA9`, `AA99`, `A9A` or `AA9A` and `INWARD` is `9AA`;
//! 6. the Royal Mail letter rules (see [`LetterPlace`]);
//! 7. `GIR 0AA` is accepted; overseas-territory codes, `BFPO` numbers, `SAN TA1` and foreign
//!    formats such as `KY1-1001` are refused;
//! 8. the result is `OUTWARD INWARD`, upper case, one space; normalising it again changes nothing.
//!
//! Every code named in rule 7 already fails rule 3 or rule 5; when the input is one of them the
//! error is [`PostcodeError::NotUkPostcode`], which says what the code is, instead of the generic
//! error of the rule it fails. The set of accepted inputs is exactly that of the specification.
//!
//! The format check says that a postcode *could* exist, not that it does: `MA1 1AA` passes.
//!
//! ```
//! use just_hungry_core::postcode::{Postcode, PostcodeError};
//!
//! let postcode = Postcode::parse("  sw1a1aa\t").unwrap();
//! assert_eq!(postcode.as_str(), "SW1A 1AA");
//! assert_eq!((postcode.outward(), postcode.inward()), ("SW1A", "1AA"));
//!
//! let error = Postcode::parse("SW1A 1A").unwrap_err();
//! assert!(matches!(error, PostcodeError::WrongShape { .. }));
//! assert!(error.to_string().starts_with("\"SW1A 1A\" is not a UK postcode"));
//! ```

mod error;
mod format;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use error::{LetterPlace, NotUkKind, PostcodeError};
pub use format::normalise;

/// The longest input, in characters, that the format check looks at; longer input is refused
/// with [`PostcodeError::TooLong`] before any other work. The longest valid postcode is 8
/// characters; the margin leaves room for sloppy spacing.
pub const MAX_POSTCODE_INPUT_LEN: usize = 64;

/// A UK postcode in canonical form: `OUTWARD INWARD`, upper case, one space (`SW1A 1AA`).
///
/// Every value passed the offline format check ([`normalise`]): it is built only by
/// [`Postcode::parse`] (or `FromStr`, `TryFrom<String>`), and deserialization runs the same
/// check, so a value read from the wire or a snapshot is canonical too. Ordering is that of the
/// canonical strings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Postcode(String);

impl Postcode {
    /// Runs the offline format check on `input`: the canonical postcode, or why it is refused.
    /// Never panics, whatever the input.
    pub fn parse(input: &str) -> Result<Postcode, PostcodeError> {
        normalise(input)
    }

    /// The canonical form, `OUTWARD INWARD`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The outward code (`SW1A` in `SW1A 1AA`): 2 to 4 characters.
    pub fn outward(&self) -> &str {
        self.0
            .split_once(' ')
            .map_or(self.0.as_str(), |(out, _)| out)
    }

    /// The inward code (`1AA` in `SW1A 1AA`): always 3 characters.
    pub fn inward(&self) -> &str {
        self.0.split_once(' ').map_or("", |(_, inward)| inward)
    }

    /// The postcode area: the leading letters of the outward code (`SW` in `SW1A 1AA`, `M` in
    /// `M1 1AE`, `GIR` in `GIR 0AA`).
    pub fn area(&self) -> &str {
        let outward = self.outward();
        let letters = outward.bytes().take_while(u8::is_ascii_alphabetic).count();
        outward.get(..letters).unwrap_or_default()
    }

    /// Whether it is a Northern Ireland postcode (area `BT`).
    pub fn is_northern_ireland(&self) -> bool {
        self.area() == "BT"
    }

    /// The compact form without the space (`SW1A1AA`): what the online APIs are sent, since it
    /// needs no URL encoding.
    pub fn compact(&self) -> String {
        self.0.chars().filter(|c| *c != ' ').collect()
    }

    /// The canonical form as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Postcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Postcode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Postcode> for String {
    fn from(postcode: Postcode) -> String {
        postcode.0
    }
}

impl FromStr for Postcode {
    type Err = PostcodeError;

    fn from_str(s: &str) -> Result<Postcode, PostcodeError> {
        normalise(s)
    }
}

impl TryFrom<String> for Postcode {
    type Error = PostcodeError;

    fn try_from(s: String) -> Result<Postcode, PostcodeError> {
        normalise(&s)
    }
}

impl TryFrom<&str> for Postcode {
    type Error = PostcodeError;

    fn try_from(s: &str) -> Result<Postcode, PostcodeError> {
        normalise(s)
    }
}

/// Serialized as its canonical string.
impl Serialize for Postcode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Deserialized from a string that must pass the offline format check; a non-canonical but
/// valid spelling (`sw1a1aa`) is canonicalised.
impl<'de> Deserialize<'de> for Postcode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Postcode, D::Error> {
        let s = String::deserialize(deserializer)?;
        normalise(&s).map_err(serde::de::Error::custom)
    }
}

/// An online postcode directory: where a postcode is looked up to know that it exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Directory {
    /// postcodes.io (ONS Postcode Directory, the whole UK including Northern Ireland).
    PostcodesIo,
    /// getthedata (the fallback; older data, no Northern Ireland).
    GetTheData,
}

impl Directory {
    /// The directory as a metric label (`postcodes_io`, `getthedata`).
    pub fn label(self) -> &'static str {
        match self {
            Directory::PostcodesIo => "postcodes_io",
            Directory::GetTheData => "getthedata",
        }
    }
}

impl fmt::Display for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Directory::PostcodesIo => "postcodes.io",
            Directory::GetTheData => "getthedata",
        })
    }
}

/// How far an accepted postcode was checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PostcodeCheck {
    /// The offline format check only, because that is the configured mode (`offline`): the
    /// postcode could exist.
    Format,
    /// Found, live, in this directory.
    Confirmed(Directory),
    /// An online check was configured but no directory could answer (or, for a Northern
    /// Ireland postcode, only one that has no data for it), and the operator's policy is
    /// `accept-unverified` (the food service's `WhenUnreachable::AcceptUnverified`): accepted on the format check alone.
    Unverified {
        /// Why no directory could answer, for logs.
        reason: String,
    },
}

/// A postcode a validator accepted: its canonical form and how far it was checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validated {
    /// The canonical postcode, which is what gets replicated and stored.
    pub postcode: Postcode,
    /// How far it was checked.
    pub check: PostcodeCheck,
}

impl Validated {
    /// Whether it was accepted without the online check that was configured
    /// ([`PostcodeCheck::Unverified`]).
    pub fn is_unverified(&self) -> bool {
        matches!(self.check, PostcodeCheck::Unverified { .. })
    }
}

/// Checks a postcode typed by a customer: the canonical postcode and how far it was checked,
/// or a typed reason why not.
///
/// # To ensure correctness
///
/// - `Ok` holds the canonical postcode, which is what gets replicated and stored.
/// - The offline format check ([`normalise`]) runs first in every implementation, so an input
///   it refuses is refused with its error and never reaches the network.
/// - `validate` never panics, whatever the input or the remote answer.
/// - Implementations may do I/O (an HTTP lookup) and take time: the runtime runs them off the
///   protocol's event loop, once per request, at the primary. They must bound their own time
///   and answer [`PostcodeError::Unreachable`] (or, if the operator chose so, accept with
///   [`PostcodeCheck::Unverified`]) when they cannot decide, so the caller can tell "retry
///   later" from "refused" ([`PostcodeError::is_retryable`]).
#[async_trait::async_trait]
pub trait PostcodeValidator: Send + Sync + 'static {
    /// The canonical postcode for `input` and how far it was checked, or why it is refused or
    /// cannot be checked now.
    async fn validate(&self, input: &str) -> Result<Validated, PostcodeError>;
}

#[async_trait::async_trait]
impl<T: PostcodeValidator + ?Sized> PostcodeValidator for Arc<T> {
    async fn validate(&self, input: &str) -> Result<Validated, PostcodeError> {
        (**self).validate(input).await
    }
}

#[async_trait::async_trait]
impl<T: PostcodeValidator + ?Sized> PostcodeValidator for Box<T> {
    async fn validate(&self, input: &str) -> Result<Validated, PostcodeError> {
        (**self).validate(input).await
    }
}

/// The offline validator: the format check of [`normalise`] and nothing else. No I/O, answers
/// at once, never [`PostcodeError::Unreachable`]; what it accepts is [`PostcodeCheck::Format`].
///
/// It says a postcode *could* exist, not that it does (`MA1 1AA` passes): use an online
/// validator to know that an address uses it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OfflineValidator;

#[async_trait::async_trait]
impl PostcodeValidator for OfflineValidator {
    async fn validate(&self, input: &str) -> Result<Validated, PostcodeError> {
        Ok(Validated {
            postcode: normalise(input)?,
            check: PostcodeCheck::Format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pc(s: &str) -> Postcode {
        match Postcode::parse(s) {
            Ok(p) => p,
            Err(e) => panic!("{s:?} refused: {e}"),
        }
    }

    #[test]
    fn accessors_split_the_canonical_form() {
        let p = pc("sw1a1aa");
        assert_eq!(p.as_str(), "SW1A 1AA");
        assert_eq!(p.to_string(), "SW1A 1AA");
        assert_eq!(p.outward(), "SW1A");
        assert_eq!(p.inward(), "1AA");
        assert_eq!(p.compact(), "SW1A1AA");
        assert_eq!(pc("m11ae").outward(), "M1");
        assert_eq!(p.area(), "SW");
        assert_eq!(pc("M1 1AE").area(), "M");
        assert_eq!(pc("GIR 0AA").area(), "GIR");
        assert!(pc("BT1 5GS").is_northern_ireland());
        assert!(pc("bt94 1aa").is_northern_ireland());
        assert!(!pc("B33 8TH").is_northern_ireland());
        assert_eq!(String::from(p.clone()), "SW1A 1AA");
        assert_eq!("SW1A 1AA".parse::<Postcode>(), Ok(p));
    }

    #[test]
    fn serde_round_trip_keeps_the_canonical_form() {
        let p = pc("EC1A 1BB");
        let bytes = crate::codec::encode(&p).unwrap();
        assert_eq!(crate::codec::decode::<Postcode>(&bytes).unwrap(), p);
        // The wire form is the plain string.
        assert_eq!(bytes, crate::codec::encode("EC1A 1BB").unwrap());
    }

    #[test]
    fn deserializing_an_invalid_postcode_fails_and_a_sloppy_one_is_canonicalised() {
        let bad = crate::codec::encode("SW1A-1AA").unwrap();
        assert!(crate::codec::decode::<Postcode>(&bad).is_err());
        let sloppy = crate::codec::encode(" sw1a   1aa ").unwrap();
        assert_eq!(
            crate::codec::decode::<Postcode>(&sloppy).unwrap(),
            pc("SW1A 1AA")
        );
    }

    #[test]
    fn only_unreachable_is_retryable() {
        assert!(
            PostcodeError::Unreachable {
                reason: "timeout".into()
            }
            .is_retryable()
        );
        assert!(!PostcodeError::Empty.is_retryable());
        assert!(
            !PostcodeError::NotFound {
                postcode: pc("SW1A 9ZZ")
            }
            .is_retryable()
        );
    }

    #[test]
    fn messages_are_friendly() {
        let shape = Postcode::parse("SW1A 1A").unwrap_err();
        assert_eq!(
            shape.to_string(),
            "\"SW1A 1A\" is not a UK postcode: expected OUTWARD INWARD like \"SW1A 1AA\" \
             (outward A9, A99, AA9, AA99, A9A or AA9A, inward 9AA, where A is a letter and 9 a digit)"
        );
        assert_eq!(
            PostcodeError::NotFound {
                postcode: pc("SW1A 9ZZ")
            }
            .to_string(),
            "postcode SW1A 9ZZ not found: please check it and try again"
        );
        let terminated = |year, month| PostcodeError::Terminated {
            postcode: pc("SW1A 0PW"),
            year,
            month,
        };
        assert_eq!(
            terminated(Some(2011), Some(3)).to_string(),
            "postcode SW1A 0PW is no longer in use (terminated in March 2011)"
        );
        assert_eq!(
            terminated(Some(2011), Some(13)).to_string(),
            "postcode SW1A 0PW is no longer in use (terminated in 2011)"
        );
        assert_eq!(
            terminated(None, Some(0)).to_string(),
            "postcode SW1A 0PW is no longer in use"
        );
        let nbsp = Postcode::parse("SW1A\u{a0}1AA").unwrap_err();
        assert!(nbsp.to_string().contains("U+00A0) at position 5"), "{nbsp}");
        let letter = Postcode::parse("QA1 1AA").unwrap_err();
        assert_eq!(
            letter.to_string(),
            "\"QA1 1AA\" is not a UK postcode: the letter Q at position 1 is not allowed \
             as the first letter (Q, V and X are never used there)"
        );
        let overseas = Postcode::parse("ascn 1zz").unwrap_err();
        assert_eq!(
            overseas.to_string(),
            "\"ascn 1zz\" is not a UK postcode: it is the postcode of Ascension Island, \
             a British overseas territory we do not deliver to"
        );
    }

    #[test]
    fn offline_validator_and_its_wrappers_answer_like_normalise() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let boxed: Box<dyn PostcodeValidator> = Box::new(OfflineValidator);
        let shared: Arc<dyn PostcodeValidator> = Arc::new(OfflineValidator);
        for input in ["sw1a1aa", "SW1A-1AA", "", "GIR 0AA"] {
            let expected = normalise(input).map(|postcode| Validated {
                postcode,
                check: PostcodeCheck::Format,
            });
            assert_eq!(runtime.block_on(OfflineValidator.validate(input)), expected);
            assert_eq!(runtime.block_on(boxed.validate(input)), expected);
            assert_eq!(runtime.block_on(shared.validate(input)), expected);
        }
    }
}
