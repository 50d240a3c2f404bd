//! What postcodes.io's responses mean (`just_hungry::postcode::online::postcodes_io::interpret`):
//! found, refused (invalid, not found, terminated and since when), or no answer.

use just_hungry::postcode::online::postcodes_io::interpret;
use just_hungry::postcode::online::{Lookup, Response};
use just_hungry::postcode::{Directory, Postcode, PostcodeError};

const JSON: &str = "application/json; charset=utf-8";

fn pc(s: &str) -> Postcode {
    Postcode::parse(s).unwrap()
}

fn response(status: u16, content_type: Option<&str>, body: &str) -> Response {
    Response {
        status,
        content_type: content_type.map(str::to_owned),
        body: body.as_bytes().to_vec(),
    }
}

fn answer(status: u16, body: &str) -> Lookup {
    interpret(&pc("SW1A 1AA"), &response(status, Some(JSON), body))
}

fn is_no_answer(answer: &Lookup) -> bool {
    matches!(answer, Lookup::NoAnswer(_))
}

#[test]
fn a_200_about_our_postcode_is_found_whatever_else_it_holds() {
    let body = r#"{"status":200,"result":{"postcode":"SW1A 1AA","quality":1,
        "longitude":null,"latitude":null,"codes":{"admin_district":"E09000033"},
        "a_field_added_in_2030":[1,2,3]}}"#;
    assert_eq!(answer(200, body), Lookup::Found(Directory::PostcodesIo));
    // Another spelling of the same postcode is still ours.
    assert_eq!(
        answer(200, r#"{"result":{"postcode":"sw1a1aa"}}"#),
        Lookup::Found(Directory::PostcodesIo)
    );
}

#[test]
fn a_200_about_another_postcode_or_without_one_is_no_answer() {
    for body in [
        r#"{"status":200,"result":{"postcode":"SW1A 2AA"}}"#,
        r#"{"status":200,"result":{"postcode":"garbage"}}"#,
        r#"{"status":200,"result":null}"#,
        r#"{"status":200,"result":{"postcode":12}}"#,
        r#"{"status":200}"#,
        r#"[]"#,
        r#"{"status":200,"result":{"postcode":"SW1A 1AA"}"#,
        "",
    ] {
        assert!(is_no_answer(&answer(200, body)), "{body}");
    }
}

#[test]
fn invalid_postcode_is_a_refusal_with_the_apis_reason() {
    assert_eq!(
        answer(404, r#"{"status":404,"error":"Invalid postcode"}"#),
        Lookup::Refused(PostcodeError::Refused {
            postcode: pc("SW1A 1AA"),
            directory: Directory::PostcodesIo,
            reason: "Invalid postcode".into(),
        })
    );
}

#[test]
fn not_found_is_a_refusal_and_terminated_says_since_when() {
    assert_eq!(
        answer(404, r#"{"status":404,"error":"Postcode not found"}"#),
        Lookup::Refused(PostcodeError::NotFound {
            postcode: pc("SW1A 1AA")
        })
    );
    let terminated = r#"{"status":404,"error":"Postcode not found","terminated":
        {"postcode":"SW1A 1AA","year_terminated":2011,"month_terminated":3,
         "longitude":-0.14,"latitude":51.5}}"#;
    let expected = PostcodeError::Terminated {
        postcode: pc("SW1A 1AA"),
        year: Some(2011),
        month: Some(3),
    };
    assert_eq!(answer(404, terminated), Lookup::Refused(expected.clone()));
    assert!(expected.to_string().contains("terminated in March 2011"));
    // Odd dates are dropped, not trusted.
    let odd = r#"{"error":"Postcode not found","terminated":{"year_terminated":-1,"month_terminated":13}}"#;
    assert_eq!(
        answer(404, odd),
        Lookup::Refused(PostcodeError::Terminated {
            postcode: pc("SW1A 1AA"),
            year: None,
            month: None
        })
    );
    assert_eq!(
        answer(404, r#"{"error":"Postcode not found","terminated":null}"#),
        Lookup::Refused(PostcodeError::NotFound {
            postcode: pc("SW1A 1AA")
        })
    );
}

#[test]
fn any_other_404_is_no_answer() {
    for body in [
        r#"{"status":404,"error":"Resource not found"}"#,
        r#"{"status":404}"#,
        "<html>Not Found</html>",
    ] {
        assert!(is_no_answer(&answer(404, body)), "{body}");
    }
}

#[test]
fn rate_limits_server_errors_and_other_statuses_are_no_answer() {
    let error = r#"{"status":500,"error":"Internal Server Error"}"#;
    for status in [429, 500, 502, 503, 504, 400, 301, 204, 418] {
        assert!(is_no_answer(&answer(status, error)), "{status}");
    }
    assert_eq!(
        answer(429, ""),
        Lookup::NoAnswer("rate limited (HTTP 429)".into())
    );
}

#[test]
fn a_body_that_is_not_labelled_json_is_no_answer() {
    let found = r#"{"status":200,"result":{"postcode":"SW1A 1AA"}}"#;
    for content_type in [
        None,
        Some("text/html; charset=utf-8"),
        Some("text/javascript"),
        Some("application/javascript"),
    ] {
        let response = response(200, content_type, found);
        assert!(
            is_no_answer(&interpret(&pc("SW1A 1AA"), &response)),
            "{content_type:?}"
        );
    }
    let jsonp = response(200, Some("text/javascript"), &format!("cb({found})"));
    assert!(is_no_answer(&interpret(&pc("SW1A 1AA"), &jsonp)));
}
