//! Properties of the offline postcode format check (POSTCODES.md section 1).
//!
//! The generators build valid postcodes from the spec's shape and letter tables, written out
//! again here rather than taken from the implementation.

use just_hungry_core::postcode::{MAX_POSTCODE_INPUT_LEN, PostcodeError, normalise};
use proptest::prelude::*;

const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// One letter of `LETTERS` except those in `except`.
fn letter_except(except: &'static str) -> impl Strategy<Value = char> {
    let allowed: Vec<char> = LETTERS.chars().filter(|c| !except.contains(*c)).collect();
    proptest::sample::select(allowed)
}

/// One letter of `only`.
fn letter_of(only: &'static str) -> impl Strategy<Value = char> {
    proptest::sample::select(only.chars().collect::<Vec<_>>())
}

fn digit() -> impl Strategy<Value = char> {
    proptest::sample::select("0123456789".chars().collect::<Vec<_>>())
}

/// A valid outward code of one of the six shapes, with the letter rules of rule 6.
fn outward() -> impl Strategy<Value = String> {
    let first = || letter_except("QVX");
    let second = || letter_except("IJZ");
    prop_oneof![
        (first(), digit()).prop_map(|(a, b)| format!("{a}{b}")),
        (first(), digit(), digit()).prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        (first(), second(), digit()).prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        (first(), second(), digit(), digit()).prop_map(|(a, b, c, d)| format!("{a}{b}{c}{d}")),
        (first(), digit(), letter_of("ABCDEFGHJKPSTUW")).prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        (first(), second(), digit(), letter_of("ABEHMNPRVWXY"))
            .prop_map(|(a, b, c, d)| format!("{a}{b}{c}{d}")),
    ]
}

fn inward() -> impl Strategy<Value = String> {
    (digit(), letter_except("CIKMOV"), letter_except("CIKMOV"))
        .prop_map(|(d, x, y)| format!("{d}{x}{y}"))
}

/// A valid postcode in canonical form, `GIR 0AA` included.
fn canonical() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => (outward(), inward()).prop_map(|(o, i)| format!("{o} {i}")),
        1 => Just("GIR 0AA".to_owned()),
    ]
}

/// Zero or more spaces and tabs.
fn blanks(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![Just(' '), Just('\t')], 0..=max)
        .prop_map(|v| v.into_iter().collect())
}

/// Leading or trailing ASCII whitespace, as rule 2 trims it.
fn ascii_whitespace(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(vec![' ', '\t', '\n', '\r', '\x0c']),
        0..=max,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// Strings near the valid ones: postcode characters, look-alikes, punctuation, whitespace.
fn postcode_like() -> impl Strategy<Value = String> {
    let alphabet: Vec<char> =
        "ABCGIKMOQSVWXYZabsz019 \t\n-.\u{a0}\u{17f}\u{131}\u{212a}\u{ff33}\u{421}\u{301}é"
            .chars()
            .collect();
    proptest::collection::vec(proptest::sample::select(alphabet), 0..12)
        .prop_map(|v| v.into_iter().collect())
}

/// Whether the letter table of rule 6 allows `outward INWARD`, both already of a valid shape
/// (written out from POSTCODES.md, not taken from the implementation).
fn letters_allowed(outward: &str, inward: &str) -> bool {
    let o: Vec<char> = outward.chars().collect();
    let letter = |c: &char| c.is_ascii_uppercase();
    let first_ok = !"QVX".contains(o[0]);
    let second_ok = !(o.len() >= 3 && letter(&o[1]) && "IJZ".contains(o[1]));
    let third_ok = !(o.len() == 3 && !o[1].is_ascii_uppercase() && letter(&o[2]))
        || "ABCDEFGHJKPSTUW".contains(o[2]);
    let fourth_ok = !(o.len() == 4 && letter(&o[3])) || "ABEHMNPRVWXY".contains(o[3]);
    let inward_ok = inward.chars().skip(1).all(|c| !"CIKMOV".contains(c));
    first_ok && second_ok && third_ok && fourth_ok && inward_ok
}

/// An outward code of one of the six shapes with any letters, and any `9AA` inward code.
fn any_letters() -> impl Strategy<Value = (String, String)> {
    let l = || letter_except("");
    let outward = prop_oneof![
        (l(), digit()).prop_map(|(a, b)| format!("{a}{b}")),
        (l(), digit(), digit()).prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        (l(), l(), digit()).prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        (l(), l(), digit(), digit()).prop_map(|(a, b, c, d)| format!("{a}{b}{c}{d}")),
        (l(), digit(), l()).prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        (l(), l(), digit(), l()).prop_map(|(a, b, c, d)| format!("{a}{b}{c}{d}")),
    ];
    let inward = (digit(), l(), l()).prop_map(|(d, x, y)| format!("{d}{x}{y}"));
    (outward, inward)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_well_shaped_postcode_is_accepted_exactly_when_the_letter_table_allows_it(
        (outward, inward) in any_letters(),
    ) {
        let typed = format!("{outward} {inward}");
        let result = normalise(&typed);
        prop_assert_eq!(result.is_ok(), letters_allowed(&outward, &inward), "{:?}: {:?}", typed, result);
        if let Err(error) = result {
            let is_letter_error = matches!(error, PostcodeError::LetterNotAllowed { .. });
            prop_assert!(is_letter_error, "{:?}", error);
        }
    }

    #[test]
    fn never_panics_and_output_is_a_fixed_point(input in any::<String>()) {
        if let Ok(postcode) = normalise(&input) {
            prop_assert_eq!(normalise(postcode.as_str()), Ok(postcode));
        }
    }

    #[test]
    fn near_misses_never_panic_and_output_is_canonical(input in postcode_like()) {
        if let Ok(postcode) = normalise(&input) {
            let s = postcode.as_str();
            prop_assert!(s.len() >= 6 && s.len() <= 8, "{s:?}");
            prop_assert_eq!(s.matches(' ').count(), 1);
            prop_assert!(s.bytes().all(|b| b == b' ' || b.is_ascii_uppercase() || b.is_ascii_digit()));
            prop_assert_eq!(normalise(s), Ok(postcode.clone()));
            // Every accepted input is, case and blanks aside, the canonical form.
            let compact_in: String = input
                .trim_ascii()
                .chars()
                .filter(|c| *c != ' ' && *c != '\t')
                .collect();
            prop_assert_eq!(compact_in.to_ascii_uppercase(), postcode.compact());
        }
    }

    #[test]
    fn every_valid_postcode_is_accepted_however_it_is_spaced_or_cased(
        canonical in canonical(),
        gap in blanks(5),
        before in ascii_whitespace(3),
        after in ascii_whitespace(3),
        lower in any::<bool>(),
    ) {
        let (out, inw) = canonical.split_once(' ').unwrap();
        prop_assert_eq!(normalise(&canonical).map(|p| p.into_string()), Ok(canonical.clone()));
        let typed = format!("{before}{out}{gap}{inw}{after}");
        let typed = if lower { typed.to_ascii_lowercase() } else { typed };
        prop_assert_eq!(normalise(&typed).map(|p| p.into_string()), Ok(canonical.clone()));
        let compact = format!("{out}{inw}").to_ascii_lowercase();
        prop_assert_eq!(normalise(&compact).map(|p| p.into_string()), Ok(canonical.clone()));
        let postcode = normalise(&canonical).unwrap();
        prop_assert_eq!((postcode.outward(), postcode.inward()), (out, inw));
    }

    #[test]
    fn a_valid_postcode_with_a_foreign_character_inserted_is_refused(
        canonical in canonical(),
        position in 0usize..9,
        intruder in proptest::sample::select(vec!['-', '.', '\u{a0}', '\u{17f}', '\u{ff33}', '\u{421}', '\n', '/', '\u{301}']),
    ) {
        let mut chars: Vec<char> = canonical.chars().collect();
        // Strictly inside: at either end a line break would be trimmed, as rule 2 says.
        let at = 1 + position % (chars.len() - 1);
        chars.insert(at, intruder);
        let typed: String = chars.into_iter().collect();
        prop_assert!(normalise(&typed).is_err(), "{typed:?} accepted");
    }

    #[test]
    fn a_space_inside_either_half_is_refused(canonical in canonical(), at in 1usize..7) {
        let compact: String = canonical.chars().filter(|c| *c != ' ').collect();
        let inward_start = compact.len() - 3;
        prop_assume!(at < compact.len() && at != inward_start);
        let typed = format!("{} {}", &compact[..at], &compact[at..]);
        prop_assert!(matches!(normalise(&typed), Err(PostcodeError::WrongShape { .. })), "{typed:?}");
    }

    #[test]
    fn anything_longer_than_the_limit_is_refused_as_too_long(
        canonical in canonical(),
        padding in (MAX_POSTCODE_INPUT_LEN - 5)..200usize,
    ) {
        let typed = format!("{canonical}{}", " ".repeat(padding));
        let len = typed.chars().count();
        let result = normalise(&typed);
        if len > MAX_POSTCODE_INPUT_LEN {
            prop_assert_eq!(result, Err(PostcodeError::TooLong { len, max: MAX_POSTCODE_INPUT_LEN }));
        } else {
            prop_assert!(result.is_ok());
        }
    }
}
