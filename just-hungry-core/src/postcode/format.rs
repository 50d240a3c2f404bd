//! The offline format check of POSTCODES.md section 1.
//!
//! Works on bytes: after the character check every byte is an ASCII letter, digit, space or tab,
//! so no `&str` is ever sliced, and nothing here can panic whatever the input.

use super::{LetterPlace, MAX_POSTCODE_INPUT_LEN, NotUkKind, Postcode, PostcodeError};

/// Letters never used first (rule 6).
const FIRST_FORBIDDEN: &[u8] = b"QVX";
/// Letters never used second in a two-letter area (rule 6).
const SECOND_FORBIDDEN: &[u8] = b"IJZ";
/// The only letters allowed as the third character of `A9A` (rule 6).
const THIRD_OF_A9A_ALLOWED: &[u8] = b"ABCDEFGHJKPSTUW";
/// The only letters allowed as the fourth character of `AA9A` (rule 6).
const FOURTH_OF_AA9A_ALLOWED: &[u8] = b"ABEHMNPRVWXY";
/// Letters never used in the inward code (rule 6).
const INWARD_FORBIDDEN: &[u8] = b"CIKMOV";

/// British overseas territory codes (rule 7): each is `<code> 1ZZ`.
const OVERSEAS_TERRITORIES: [(&[u8], &str); 9] = [
    (b"ASCN", "Ascension Island"),
    (b"STHL", "Saint Helena"),
    (b"TDCU", "Tristan da Cunha"),
    (b"BBND", "the British Indian Ocean Territory"),
    (b"BIQQ", "the British Antarctic Territory"),
    (b"FIQQ", "the Falkland Islands"),
    (b"SIQQ", "South Georgia and the South Sandwich Islands"),
    (b"PCRN", "the Pitcairn Islands"),
    (b"TKCA", "the Turks and Caicos Islands"),
];

/// The offline format check: the canonical postcode for `input`, or the first rule it breaks.
///
/// Implements POSTCODES.md section 1 exactly, in its order (see the [module docs](super)).
/// Guarantees:
/// - never panics, whatever the input (any Unicode, any length);
/// - an input longer than [`MAX_POSTCODE_INPUT_LEN`] characters is refused before any other
///   rule is looked at;
/// - only ASCII is upper-cased, with ASCII-only functions: no Unicode case mapping or folding;
/// - `Ok` holds `OUTWARD INWARD`, upper case, one space, and `normalise` of it returns it
///   unchanged (idempotent).
pub fn normalise(input: &str) -> Result<Postcode, PostcodeError> {
    // Rule 1, on the input as given. Only count characters when the bytes could be too many.
    if input.len() > MAX_POSTCODE_INPUT_LEN {
        let len = input.chars().count();
        if len > MAX_POSTCODE_INPUT_LEN {
            return Err(PostcodeError::TooLong {
                len,
                max: MAX_POSTCODE_INPUT_LEN,
            });
        }
    }

    // Rule 2: `trim_ascii` trims exactly space, tab, LF, FF and CR.
    let trimmed = input.trim_ascii();
    if trimmed.is_empty() {
        return Err(PostcodeError::Empty);
    }
    let bytes = trimmed.as_bytes();

    // Rule 7, refusals: each of these codes fails rule 3 or 5 anyway; naming it is kinder.
    if let Some(kind) = not_uk(bytes) {
        return Err(PostcodeError::NotUkPostcode {
            postcode: trimmed.to_owned(),
            kind,
        });
    }

    // Rules 3 and 4, characters: ASCII letters, digits, spaces and tabs only. The leading
    // whitespace that was trimmed is ASCII, so its byte length is its length in characters.
    let leading = input.len() - input.trim_ascii_start().len();
    if let Some((index, character)) = trimmed
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == ' ' || *c == '\t'))
    {
        return Err(PostcodeError::CharacterNotAllowed {
            character,
            position: leading + index + 1,
        });
    }

    // Rule 3, structure: OUTWARD, spaces or tabs, INWARD (always 3 characters).
    let wrong_shape = || PostcodeError::WrongShape {
        input: trimmed.to_owned(),
    };
    let (outward, inward) = split_halves(bytes).ok_or_else(wrong_shape)?;
    // Rule 4: ASCII-only upper-casing (the bytes are all ASCII by now).
    let outward = outward.to_ascii_uppercase();
    let inward = inward.to_ascii_uppercase();
    let mut canonical = String::with_capacity(outward.len() + 1 + inward.len());
    canonical.extend(outward.iter().map(|b| char::from(*b)));
    canonical.push(' ');
    canonical.extend(inward.iter().map(|b| char::from(*b)));

    // Rule 7, the one historic exception to rules 5 and 6.
    if outward == b"GIR" && inward == b"0AA" {
        return Ok(Postcode(canonical));
    }

    // Rule 5, shapes.
    let shape = outward_shape(&outward).ok_or_else(wrong_shape)?;
    let (inward_first, inward_second) = match inward.as_slice() {
        [d, x, y] if d.is_ascii_digit() && is_letter(*x) && is_letter(*y) => (*x, *y),
        _ => return Err(wrong_shape()),
    };

    // Rule 6, letters, in the order they appear.
    let refuse = |position: usize, letter: u8, place: LetterPlace| {
        Err(PostcodeError::LetterNotAllowed {
            postcode: canonical.clone(),
            position,
            letter: char::from(letter),
            place,
        })
    };
    if let Some(&first) = outward.first()
        && FIRST_FORBIDDEN.contains(&first)
    {
        return refuse(1, first, LetterPlace::First);
    }
    if let (Shape::AA9 | Shape::AA99 | Shape::AA9A, Some(&second)) = (shape, outward.get(1))
        && SECOND_FORBIDDEN.contains(&second)
    {
        return refuse(2, second, LetterPlace::Second);
    }
    if let (Shape::A9A, Some(&third)) = (shape, outward.get(2))
        && !THIRD_OF_A9A_ALLOWED.contains(&third)
    {
        return refuse(3, third, LetterPlace::ThirdOfA9A);
    }
    if let (Shape::AA9A, Some(&fourth)) = (shape, outward.get(3))
        && !FOURTH_OF_AA9A_ALLOWED.contains(&fourth)
    {
        return refuse(4, fourth, LetterPlace::FourthOfAA9A);
    }
    // In `OUTWARD INWARD` the inward letters are the last two characters.
    if INWARD_FORBIDDEN.contains(&inward_first) {
        return refuse(outward.len() + 3, inward_first, LetterPlace::Inward);
    }
    if INWARD_FORBIDDEN.contains(&inward_second) {
        return refuse(outward.len() + 4, inward_second, LetterPlace::Inward);
    }

    // Rule 8.
    Ok(Postcode(canonical))
}

/// The six outward shapes of rule 5 (A = letter, 9 = digit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    A9,
    A99,
    AA9,
    AA99,
    A9A,
    AA9A,
}

fn is_letter(b: u8) -> bool {
    b.is_ascii_uppercase()
}

fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

/// The shape of an upper-cased outward code, if it is one of the six.
fn outward_shape(outward: &[u8]) -> Option<Shape> {
    let (l, d) = (is_letter, is_digit);
    match *outward {
        [a, b] if l(a) && d(b) => Some(Shape::A9),
        [a, b, c] if l(a) && d(b) && d(c) => Some(Shape::A99),
        [a, b, c] if l(a) && l(b) && d(c) => Some(Shape::AA9),
        [a, b, c] if l(a) && d(b) && l(c) => Some(Shape::A9A),
        [a, b, c, e] if l(a) && l(b) && d(c) && d(e) => Some(Shape::AA99),
        [a, b, c, e] if l(a) && l(b) && d(c) && l(e) => Some(Shape::AA9A),
        _ => None,
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Splits a trimmed input into `(OUTWARD, INWARD)`: INWARD is the last 3 bytes, OUTWARD what
/// precedes them minus the spaces and tabs in between. `None` if either half is empty or holds
/// a space or tab. Works on any bytes; the halves are not checked further.
fn split_halves(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let split = bytes.len().checked_sub(3)?;
    let (head, inward) = bytes.split_at_checked(split)?;
    let end = head
        .iter()
        .rposition(|b| !is_blank(*b))
        .map_or(0, |i| i + 1);
    let outward = head.get(..end)?;
    let blank_inside = outward.iter().chain(inward).any(|b| is_blank(*b));
    (!outward.is_empty() && !blank_inside).then_some((outward, inward))
}

/// Recognises the codes of rule 7 that look like postcodes but are not UK ones, on the trimmed
/// input, case-insensitively (ASCII only).
fn not_uk(bytes: &[u8]) -> Option<NotUkKind> {
    if let Some((outward, inward)) = split_halves(bytes) {
        if inward.eq_ignore_ascii_case(b"1ZZ") {
            let territory = OVERSEAS_TERRITORIES
                .iter()
                .find(|(code, _)| outward.eq_ignore_ascii_case(code));
            if let Some((_, name)) = territory {
                return Some(NotUkKind::OverseasTerritory {
                    territory: (*name).to_owned(),
                });
            }
        }
        if outward.eq_ignore_ascii_case(b"SAN") && inward.eq_ignore_ascii_case(b"TA1") {
            return Some(NotUkKind::FatherChristmas);
        }
    }
    // `BFPO`, optional spaces or tabs, 1 to 4 digits.
    if let Some((bfpo, rest)) = bytes.split_at_checked(4) {
        let blanks = rest.iter().take_while(|b| is_blank(**b)).count();
        let number = rest.get(blanks..).unwrap_or_default();
        if bfpo.eq_ignore_ascii_case(b"BFPO")
            && (1..=4).contains(&number.len())
            && number.iter().all(u8::is_ascii_digit)
        {
            return Some(NotUkKind::ForcesPostOffice);
        }
    }
    // The Cayman Islands: `KY9-9999`.
    if let [k, y, d, b'-', rest @ ..] = bytes
        && k.eq_ignore_ascii_case(&b'K')
        && y.eq_ignore_ascii_case(&b'Y')
        && d.is_ascii_digit()
        && rest.len() == 4
        && rest.iter().all(u8::is_ascii_digit)
    {
        return Some(NotUkKind::Foreign {
            country: "the Cayman Islands".to_owned(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn accepts(input: &str, canonical: &str) {
        match normalise(input) {
            Ok(p) => assert_eq!(p.as_str(), canonical, "input {input:?}"),
            Err(e) => panic!("{input:?} refused: {e}"),
        }
    }

    #[track_caller]
    fn refuses(input: &str) -> PostcodeError {
        match normalise(input) {
            Ok(p) => panic!("{input:?} accepted as {p}"),
            Err(e) => e,
        }
    }

    #[track_caller]
    fn refuses_shape(input: &str) {
        assert!(
            matches!(refuses(input), PostcodeError::WrongShape { .. }),
            "{input:?}: {:?}",
            normalise(input)
        );
    }

    #[track_caller]
    fn refuses_char(input: &str, character: char, position: usize) {
        assert_eq!(
            refuses(input),
            PostcodeError::CharacterNotAllowed {
                character,
                position
            },
            "input {input:?}"
        );
    }

    #[track_caller]
    fn refuses_letter(input: &str, position: usize, letter: char, place: LetterPlace) {
        match refuses(input) {
            PostcodeError::LetterNotAllowed {
                position: p,
                letter: l,
                place: pl,
                ..
            } => assert_eq!((p, l, pl), (position, letter, place), "input {input:?}"),
            other => panic!("{input:?}: expected a letter error, got {other:?}"),
        }
    }

    #[track_caller]
    fn refuses_not_uk(input: &str) -> NotUkKind {
        match refuses(input) {
            PostcodeError::NotUkPostcode { kind, .. } => kind,
            other => panic!("{input:?}: expected not-UK, got {other:?}"),
        }
    }

    #[test]
    fn accepts_each_outward_shape() {
        accepts("M1 1AE", "M1 1AE"); // A9
        accepts("B33 8TH", "B33 8TH"); // A99
        accepts("CR2 6XH", "CR2 6XH"); // AA9
        accepts("DN55 1PT", "DN55 1PT"); // AA99
        accepts("W1A 0AX", "W1A 0AX"); // A9A
        accepts("EC1A 1BB", "EC1A 1BB"); // AA9A
        accepts("SW1A 1AA", "SW1A 1AA"); // AA9A
    }

    #[test]
    fn rule_1_too_long_is_refused_first() {
        let long = format!("SW1A{}1AA", " ".repeat(58)); // 65 characters
        assert_eq!(refuses(&long), PostcodeError::TooLong { len: 65, max: 64 });
        // Length counts characters of the raw input, before trimming, and wins over any other rule.
        assert_eq!(
            refuses(&"é".repeat(65)),
            PostcodeError::TooLong { len: 65, max: 64 }
        );
        assert_eq!(
            refuses(&" ".repeat(100)),
            PostcodeError::TooLong { len: 100, max: 64 }
        );
        // 64 characters (of 128 bytes) is not too long.
        assert!(matches!(
            refuses(&"é".repeat(64)),
            PostcodeError::CharacterNotAllowed { .. }
        ));
        // Exactly 64 characters with padding is accepted.
        accepts(&format!("SW1A{}1AA", " ".repeat(57)), "SW1A 1AA");
    }

    #[test]
    fn rule_2_trims_ascii_whitespace_only() {
        accepts("  EC1A 1BB\t", "EC1A 1BB");
        accepts("\r\n\x0cSW1A 1AA\r\n", "SW1A 1AA");
        assert_eq!(refuses(""), PostcodeError::Empty);
        assert_eq!(refuses(" \t\r\n\x0c"), PostcodeError::Empty);
        // Not ASCII whitespace, so not trimmed: NBSP, vertical tab, ideographic space.
        refuses_char("\u{a0}SW1A 1AA", '\u{a0}', 1);
        refuses_char("SW1A 1AA\u{b}", '\u{b}', 9);
        refuses_char("SW1A 1AA\u{3000}", '\u{3000}', 9);
    }

    #[test]
    fn rule_3_outward_spaces_or_tabs_inward_and_nothing_else() {
        accepts("sw1a1aa", "SW1A 1AA");
        accepts("SW1A    1AA", "SW1A 1AA");
        accepts("SW1A\t \t1AA", "SW1A 1AA");
        refuses_char("SW1A-1AA", '-', 5);
        refuses_char("SW1A.1AA", '.', 5);
        refuses_char("SW1A\u{a0}1AA", '\u{a0}', 5);
        refuses_char("SW1A\u{2009}1AA", '\u{2009}', 5); // thin space
        refuses_char("SW1A\n1AA", '\n', 5);
        refuses_char("SW1A\r\n1AA", '\r', 5);
        // Positions count the raw input, including trimmed leading whitespace.
        refuses_char("  SW1A-1AA", '-', 7);
        refuses_shape("S W1A 1AA");
        refuses_shape("SW1A 1 AA");
        refuses_shape("SW1A 1A A");
        refuses_shape("SW1A 1A");
        refuses_shape("SW1A1AAA");
        refuses_shape("1AA");
        refuses_shape("AA");
        refuses_shape("SW1A");
    }

    #[test]
    fn rule_4_ascii_only_no_unicode_case_mapping_or_look_alikes() {
        // ſ (long s) upper-cases to S with Unicode rules; ı (dotless i) to I; K (Kelvin sign)
        // lower-cases to k.
        refuses_char("ſW1A 1AA", 'ſ', 1);
        refuses_char("M1 1AE\u{131}", '\u{131}', 7);
        refuses_char("\u{212a}A1 1AA", '\u{212a}', 1);
        // Fullwidth letters and digits.
        refuses_char("ＳＷ１Ａ １ＡＡ", 'Ｓ', 1);
        refuses_char("SW1A １AA", '１', 6);
        // Cyrillic С and В, Greek Α look like Latin letters.
        refuses_char("\u{421}R2 6XH", '\u{421}', 1);
        refuses_char("E\u{421}1A 1BB", '\u{421}', 2);
        refuses_char("W1\u{391} 0AX", '\u{391}', 3);
        // Combining marks.
        refuses_char("SW1A 1AA\u{301}", '\u{301}', 9);
        // No O/0 or I/1 "fixes".
        refuses_shape("SW1A IAA");
        refuses_shape("SWIA 1AA");
        refuses_shape("B33 BTH");
    }

    #[test]
    fn rule_5_shapes() {
        refuses_shape("SW1AA 1AA");
        refuses_shape("S 1AA");
        refuses_shape("12 1AA");
        refuses_shape("1A 1AA");
        refuses_shape("ABC 1AA");
        refuses_shape("A1B2 1AA");
        refuses_shape("A123 1AA");
        refuses_shape("SW1A AAA");
        refuses_shape("SW1A 11A");
        refuses_shape("SW1A 1A1");
        refuses_shape("SW1A 123");
    }

    #[test]
    fn rule_6_first_letter() {
        refuses_letter("Q1 1AA", 1, 'Q', LetterPlace::First);
        refuses_letter("v1 1aa", 1, 'V', LetterPlace::First);
        refuses_letter("XA1 1AA", 1, 'X', LetterPlace::First);
        accepts("Z1 1AA", "Z1 1AA");
    }

    #[test]
    fn rule_6_second_letter() {
        refuses_letter("AI1 1AA", 2, 'I', LetterPlace::Second);
        refuses_letter("AJ11 1AA", 2, 'J', LetterPlace::Second);
        refuses_letter("AZ1A 1AA", 2, 'Z', LetterPlace::Second);
        accepts("AB1 1AA", "AB1 1AA");
        // I in second place of A9A is the third-character rule, not this one.
        refuses_letter("W1I 1AA", 3, 'I', LetterPlace::ThirdOfA9A);
    }

    #[test]
    fn rule_6_third_character_of_a9a() {
        for letter in "ABCDEFGHJKPSTUW".chars() {
            accepts(&format!("W1{letter} 1AA"), &format!("W1{letter} 1AA"));
        }
        for letter in "ILMNOQRVXYZ".chars() {
            refuses_letter(
                &format!("W1{letter} 1AA"),
                3,
                letter,
                LetterPlace::ThirdOfA9A,
            );
        }
    }

    #[test]
    fn rule_6_fourth_character_of_aa9a() {
        for letter in "ABEHMNPRVWXY".chars() {
            accepts(&format!("EC1{letter} 1BB"), &format!("EC1{letter} 1BB"));
        }
        for letter in "CDFGIJKLOQSTUZ".chars() {
            refuses_letter(
                &format!("EC1{letter} 1BB"),
                4,
                letter,
                LetterPlace::FourthOfAA9A,
            );
        }
    }

    #[test]
    fn rule_6_inward_letters() {
        for letter in "CIKMOV".chars() {
            refuses_letter(&format!("SW1A 1{letter}A"), 7, letter, LetterPlace::Inward);
            refuses_letter(&format!("SW1A 1A{letter}"), 8, letter, LetterPlace::Inward);
            refuses_letter(&format!("M1 1A{letter}"), 6, letter, LetterPlace::Inward);
        }
        for letter in "ABDEFGHJLNPQRSTUWXYZ".chars() {
            accepts(
                &format!("M1 1{letter}{letter}"),
                &format!("M1 1{letter}{letter}"),
            );
        }
    }

    #[test]
    fn rule_6_letters_are_reported_in_order() {
        // Both the first letter and an inward letter are wrong: the first one is reported.
        refuses_letter("QI1 1CC", 1, 'Q', LetterPlace::First);
    }

    #[test]
    fn rule_7_gir_0aa_and_crown_dependencies_are_accepted() {
        accepts("GIR 0AA", "GIR 0AA");
        accepts("gir0aa", "GIR 0AA");
        refuses_shape("GIR 1AA");
        accepts("JE2 3AB", "JE2 3AB");
        accepts("GY1 1AA", "GY1 1AA");
        accepts("IM1 1AA", "IM1 1AA");
        accepts("BT1 1AA", "BT1 1AA");
        // The format check says "could exist", not "exists".
        accepts("MA1 1AA", "MA1 1AA");
    }

    #[test]
    fn rule_7_overseas_territories_bfpo_santa_and_foreign_formats_are_refused() {
        for code in [
            "ASCN", "STHL", "TDCU", "BBND", "BIQQ", "FIQQ", "SIQQ", "PCRN", "TKCA",
        ] {
            assert!(
                matches!(
                    refuses_not_uk(&format!("{code} 1ZZ")),
                    NotUkKind::OverseasTerritory { .. }
                ),
                "{code}"
            );
            let lower = format!("{}1zz", code.to_ascii_lowercase());
            assert!(matches!(
                refuses_not_uk(&lower),
                NotUkKind::OverseasTerritory { .. }
            ));
        }
        assert_eq!(refuses_not_uk("BFPO 1234"), NotUkKind::ForcesPostOffice);
        assert_eq!(refuses_not_uk("bfpo1"), NotUkKind::ForcesPostOffice);
        assert_eq!(refuses_not_uk(" BFPO\t801 "), NotUkKind::ForcesPostOffice);
        refuses_shape("BFPO 12345");
        assert_eq!(refuses_not_uk("SAN TA1"), NotUkKind::FatherChristmas);
        assert_eq!(refuses_not_uk("santa1"), NotUkKind::FatherChristmas);
        assert!(matches!(
            refuses_not_uk("KY1-1001"),
            NotUkKind::Foreign { .. }
        ));
        assert!(matches!(
            refuses_not_uk("ky2-2001"),
            NotUkKind::Foreign { .. }
        ));
        // Other overseas-looking codes still fail by shape.
        refuses_shape("ASCN 2ZZ");
        refuses_shape("ABCD 1ZZ");
    }

    #[test]
    fn rule_8_output_is_canonical_and_idempotent() {
        for input in [
            "sw1a1aa",
            "  EC1A 1BB\t",
            "m1   1ae",
            "b338th",
            "Cr2\t6xh",
            "dn551pt",
            "w1a0ax",
            "gir 0aa",
            "je23ab",
            "BT1 1AA",
        ] {
            let once = normalise(input).unwrap();
            let twice = normalise(once.as_str()).unwrap();
            assert_eq!(once, twice, "input {input:?}");
            let s = once.as_str();
            assert_eq!(s.matches(' ').count(), 1);
            assert!(
                s.bytes()
                    .all(|b| b == b' ' || b.is_ascii_uppercase() || b.is_ascii_digit())
            );
        }
    }

    #[test]
    fn never_panics_on_awkward_input() {
        for input in [
            "\u{0}",
            "\u{10ffff}",
            "é",
            "éé",
            "ééé",
            "éééé",
            " é ",
            "\u{a0}",
            "a\u{301}b",
            "ÿÿÿ",
            "1",
            "12",
            "123",
            "   1AA",
            "\t\t\t",
            "-",
            "KY1-",
            "KY-1001",
            "BFPO",
            "BFPOé",
            "é1ZZ",
            "SW1A 1Aé",
            "SW1Aé1AA",
        ] {
            let _ = normalise(input);
        }
    }
}
