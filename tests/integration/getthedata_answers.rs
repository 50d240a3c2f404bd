//! What getthedata's responses mean (`just_hungry::postcode::online::getthedata::interpret`):
//! found, refused (no match, terminated), or no answer.

use just_hungry::postcode::online::getthedata::interpret;
use just_hungry::postcode::online::{Lookup, Response};
use just_hungry::postcode::{Directory, Postcode, PostcodeError};

const JSON: &str = "application/json; charset=utf-8";

fn pc(s: &str) -> Postcode {
    Postcode::parse(s).unwrap()
}

fn answer_with(content_type: Option<&str>, status: u16, body: &str) -> Lookup {
    let response = Response {
        status,
        content_type: content_type.map(str::to_owned),
        body: body.as_bytes().to_vec(),
    };
    interpret(&pc("TW5 9RL"), &response)
}

fn answer(status: u16, body: &str) -> Lookup {
    answer_with(Some(JSON), status, body)
}

fn unit(postcode: &str, status: &str) -> String {
    format!(
        r#"{{"status":"match","match_type":"unit_postcode","input":"TW59RL","data":{{
        "postcode":"{postcode}","status":"{status}","usertype":"small","easting":510364,
        "northing":176971,"positional_quality_indicator":1,"country":"England",
        "latitude":"51.480938","longitude":"-0.412088","postcode_no_space":"TW59RL",
        "outcode":"TW5","incode":"9RL"}},"copyright":["Contains OS data"]}}"#
    )
}

#[test]
fn a_live_unit_match_about_our_postcode_is_found() {
    assert_eq!(
        answer(200, &unit("TW5 9RL", "live")),
        Lookup::Found(Directory::GetTheData)
    );
    // Content type unverified: a missing or plain one is read; the body decides.
    assert_eq!(
        answer_with(None, 200, &unit("TW5 9RL", "live")),
        Lookup::Found(Directory::GetTheData)
    );
}

#[test]
fn no_match_is_not_found_and_a_terminated_unit_is_terminated() {
    assert_eq!(
        answer(200, r#"{"status":"no_match","input":"TW59RL"}"#),
        Lookup::Refused(PostcodeError::NotFound {
            postcode: pc("TW5 9RL")
        })
    );
    assert_eq!(
        answer(200, &unit("TW5 9RL", "terminated")),
        Lookup::Refused(PostcodeError::Terminated {
            postcode: pc("TW5 9RL"),
            year: None,
            month: None
        })
    );
}

#[test]
fn partial_matches_other_postcodes_and_unknown_values_are_no_answer() {
    let sector = r#"{"status":"match","match_type":"postcode_sector","input":"TW59RL","data":{"postcode_sector":"TW5 9"}}"#;
    for body in [
        sector.to_owned(),
        unit("TW5 9RZ", "live"),
        unit("TW5 9RL", "pending"),
        r#"{"status":"match","match_type":"unit_postcode"}"#.to_owned(),
        r#"{"status":"error","error":"something"}"#.to_owned(),
        r#"{"status":200}"#.to_owned(),
        r#"{"match_type":"unit_postcode"}"#.to_owned(),
        "not json".to_owned(),
    ] {
        assert!(matches!(answer(200, &body), Lookup::NoAnswer(_)), "{body}");
    }
}

#[test]
fn other_statuses_and_html_or_javascript_are_no_answer() {
    for status in [404, 429, 500, 503, 301] {
        assert!(matches!(
            answer(status, &unit("TW5 9RL", "live")),
            Lookup::NoAnswer(_)
        ));
    }
    for content_type in ["text/html; charset=UTF-8", "application/javascript"] {
        assert!(matches!(
            answer_with(Some(content_type), 200, &unit("TW5 9RL", "live")),
            Lookup::NoAnswer(_)
        ));
    }
}
