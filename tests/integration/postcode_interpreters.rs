//! Both directories' response interpreters (`postcodes_io::interpret`, `getthedata::interpret`
//! in `just_hungry::postcode::online`): no response makes them panic, and only a 200 finds.

use proptest::prelude::*;

use just_hungry::postcode::Postcode;
use just_hungry::postcode::online::{Lookup, Response, getthedata, postcodes_io};

/// Bodies near the real ones: fragments of JSON, the APIs' keys and values, garbage.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let pieces = proptest::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "null",
        "true",
        "12",
        "-1",
        "2011",
        "\"status\"",
        "200",
        "404",
        "\"result\"",
        "\"postcode\"",
        "\"SW1A 1AA\"",
        "\"error\"",
        "\"Invalid postcode\"",
        "\"Postcode not found\"",
        "\"terminated\"",
        "\"year_terminated\"",
        "\"month_terminated\"",
        "\"match\"",
        "\"no_match\"",
        "\"match_type\"",
        "\"unit_postcode\"",
        "\"data\"",
        "\"live\"",
        "\u{fffd}",
        "é",
    ]);
    prop_oneof![
        proptest::collection::vec(pieces, 0..40).prop_map(|v| v.concat().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(
        proptest::sample::select(vec![
            "application/json; charset=utf-8",
            "application/json",
            "text/html",
            "text/javascript",
            "",
            ";;",
            "APPLICATION/JSON",
        ])
        .prop_map(str::to_owned),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_response_makes_an_interpreter_panic_and_only_a_200_finds(
        status in prop_oneof![Just(200u16), Just(404), 100u16..600],
        content_type in content_type(),
        body in body(),
    ) {
        let postcode = Postcode::parse("SW1A 1AA").unwrap();
        let response = Response { status, content_type, body };
        for answer in [
            postcodes_io::interpret(&postcode, &response),
            getthedata::interpret(&postcode, &response),
        ] {
            if let Lookup::Found(_) = answer {
                prop_assert_eq!(status, 200);
            }
        }
    }
}
