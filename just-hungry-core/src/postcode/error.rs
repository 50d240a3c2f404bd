//! Why a postcode was refused: one variant per cause, each with a message a customer can act on.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Directory, Postcode};

/// Why a postcode was refused, or could not be checked.
///
/// The first six variants come from the offline format check ([`super::normalise`], the rules of
/// POSTCODES.md section 1) and are definitive: the same input is always refused the same way.
/// [`PostcodeError::NotFound`], [`PostcodeError::Terminated`] and [`PostcodeError::Refused`]
/// come from the online validators and are definitive too. Only
/// [`PostcodeError::Unreachable`] is worth retrying (see [`PostcodeError::is_retryable`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PostcodeError {
    /// Nothing but whitespace was given.
    #[error("no postcode given: please enter a UK postcode like \"SW1A 1AA\"")]
    Empty,

    /// The input is longer than [`super::MAX_POSTCODE_INPUT_LEN`] characters (checked before
    /// anything else, on the input as given).
    #[error(
        "the postcode is too long ({len} characters, at most {max}): a UK postcode looks like \"SW1A 1AA\""
    )]
    TooLong {
        /// The length of the input, in characters.
        len: usize,
        /// The most characters accepted.
        max: usize,
    },

    /// A character other than an ASCII letter, an ASCII digit, a space or a tab: a hyphen, a
    /// dot, a line break, a no-break space or any other non-ASCII character (fullwidth letters,
    /// Cyrillic or Greek look-alikes, `ſ`...).
    #[error(
        "the character {character:?} (U+{:04X}) at position {position} is not allowed in a postcode: use only the letters A to Z, the digits 0 to 9 and one space",
        u32::from(*.character)
    )]
    CharacterNotAllowed {
        /// The refused character.
        character: char,
        /// Where it is, counting characters of the input as given from 1.
        position: usize,
    },

    /// The characters are allowed but do not split into a valid `OUTWARD INWARD` pair: wrong
    /// length, a space inside a half, or a half of the wrong shape.
    #[error(
        "{input:?} is not a UK postcode: expected OUTWARD INWARD like \"SW1A 1AA\" (outward A9, A99, AA9, AA99, A9A or AA9A, inward 9AA, where A is a letter and 9 a digit)"
    )]
    WrongShape {
        /// The input, trimmed of surrounding whitespace.
        input: String,
    },

    /// The shape is right but a letter is one Royal Mail never uses at that place.
    #[error(
        "{postcode:?} is not a UK postcode: the letter {letter} at position {position} is not allowed {place}"
    )]
    LetterNotAllowed {
        /// The input in upper case with one space (`OUTWARD INWARD`).
        postcode: String,
        /// Where the letter is in `postcode`, counting from 1.
        position: usize,
        /// The refused letter (upper case).
        letter: char,
        /// Which rule of the letter table refused it.
        place: LetterPlace,
    },

    /// A code that looks like a postcode but is not a UK one: a British overseas territory
    /// (`ASCN 1ZZ`...), a British Forces Post Office number, `SAN TA1`, or a foreign format
    /// such as the Cayman Islands' `KY1-1001`.
    #[error("{postcode:?} is not a UK postcode: {kind}")]
    NotUkPostcode {
        /// The input, trimmed of surrounding whitespace.
        postcode: String,
        /// What it is instead.
        kind: NotUkKind,
    },

    /// The postcode is well formed but no address uses it (an online validator said so).
    #[error("postcode {postcode} not found: please check it and try again")]
    NotFound {
        /// The postcode, in canonical form.
        postcode: Postcode,
    },

    /// The postcode existed but has been withdrawn by Royal Mail (an online validator said so).
    #[error("postcode {postcode} is no longer in use{}", TerminatedSince(*.year, *.month))]
    Terminated {
        /// The postcode, in canonical form.
        postcode: Postcode,
        /// The year it was terminated, if known.
        year: Option<u16>,
        /// The month it was terminated (1 = January), if known.
        month: Option<u8>,
    },

    /// An online directory refused the postcode by its own shape rules, which are not ours
    /// (postcodes.io answers "Invalid postcode" for `GIR 0AA`, which our format check accepts).
    /// `reason` is the directory's own words, one of a fixed set we recognise: no text from the
    /// network is ever copied here unchecked.
    #[error("postcode {postcode} was refused by {directory}: {reason}")]
    Refused {
        /// The postcode, in canonical form.
        postcode: Postcode,
        /// Which directory refused it.
        directory: Directory,
        /// The directory's reason (`Invalid postcode`).
        reason: String,
    },

    /// No validator could give an answer now (network error, timeout, server error, rate
    /// limit). Nothing is known about the postcode: the request may be retried later.
    #[error("cannot validate the postcode now ({reason}): please try again later")]
    Unreachable {
        /// What went wrong, for logs and for the customer.
        reason: String,
    },
}

impl PostcodeError {
    /// Whether the same request might succeed later: true only for
    /// [`PostcodeError::Unreachable`]. Every other error is a definitive answer about the input.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PostcodeError::Unreachable { .. })
    }
}

/// Which rule of the letter table (POSTCODES.md section 1, rule 6) refused a letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LetterPlace {
    /// The first letter of the outward code: never Q, V or X.
    First,
    /// The second letter of a two-letter area: never I, J or Z.
    Second,
    /// The third character of an `A9A` outward code: only A B C D E F G H J K P S T U W.
    ThirdOfA9A,
    /// The fourth character of an `AA9A` outward code: only A B E H M N P R V W X Y.
    FourthOfAA9A,
    /// Either letter of the inward code: never C, I, K, M, O or V.
    Inward,
}

impl fmt::Display for LetterPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LetterPlace::First => "as the first letter (Q, V and X are never used there)",
            LetterPlace::Second => {
                "as the second letter of the area (I, J and Z are never used there)"
            }
            LetterPlace::ThirdOfA9A => {
                "as the third character of an A9A outward code (only A B C D E F G H J K P S T U W are)"
            }
            LetterPlace::FourthOfAA9A => {
                "as the fourth character of an AA9A outward code (only A B E H M N P R V W X Y are)"
            }
            LetterPlace::Inward => "in the inward code (C, I, K, M, O and V are never used there)",
        })
    }
}

/// What a refused, postcode-like code is instead of a UK postcode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotUkKind {
    /// A British overseas territory code (`ASCN 1ZZ`, `FIQQ 1ZZ`...): UK style, but the
    /// territory is outside the UK postal system we deliver to.
    OverseasTerritory {
        /// The territory's name.
        territory: String,
    },
    /// A British Forces Post Office number (`BFPO 1234`).
    ForcesPostOffice,
    /// `SAN TA1`, Royal Mail's address for letters to Father Christmas.
    FatherChristmas,
    /// A postcode in another country's format (`KY1-1001`, the Cayman Islands).
    Foreign {
        /// The country or territory whose format it is.
        country: String,
    },
}

impl fmt::Display for NotUkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotUkKind::OverseasTerritory { territory } => write!(
                f,
                "it is the postcode of {territory}, a British overseas territory we do not deliver to"
            ),
            NotUkKind::ForcesPostOffice => f.write_str(
                "it is a British Forces Post Office number, not an address we can deliver to",
            ),
            NotUkKind::FatherChristmas => {
                f.write_str("it is Royal Mail's address for letters to Father Christmas")
            }
            NotUkKind::Foreign { country } => {
                write!(f, "it looks like a postcode of {country}")
            }
        }
    }
}

/// Formats " (terminated in March 2011)", " (terminated in 2011)" or nothing.
struct TerminatedSince(Option<u16>, Option<u8>);

impl fmt::Display for TerminatedSince {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let month = self
            .1
            .and_then(|m| usize::from(m).checked_sub(1))
            .and_then(|i| MONTHS.get(i));
        match (self.0, month) {
            (Some(year), Some(month)) => write!(f, " (terminated in {month} {year})"),
            (Some(year), None) => write!(f, " (terminated in {year})"),
            (None, _) => Ok(()),
        }
    }
}
