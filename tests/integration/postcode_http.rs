//! The online validators' HTTP side (`just_hungry::postcode::online`): base URLs are checked
//! when a directory is built, lookup paths are joined and percent-encoded, loopback hosts are
//! recognised, and media types are read without their parameters or case.

use std::time::Duration;

use just_hungry::postcode::online::{
    GetTheData, Lookup, PostcodesIo, Response, build_client, getthedata, is_loopback, join_path,
    postcodes_io,
};
use just_hungry::postcode::{Directory, Postcode, PostcodeConfigError};
use reqwest::Url;

/// A postcodes.io validator on `base_url`, or why not.
fn postcodes_io_at(base_url: &str) -> Result<PostcodesIo, PostcodeConfigError> {
    let client = build_client(Duration::from_secs(1), Duration::from_secs(1), 1, true).unwrap();
    PostcodesIo::new(client, base_url, 1, Duration::from_secs(1))
}

fn pc(s: &str) -> Postcode {
    Postcode::parse(s).unwrap()
}

#[test]
fn base_urls_are_checked() {
    for good in [
        "https://api.postcodes.io",
        "https://api.postcodes.io/",
        "http://127.0.0.1:8080/prefix/",
        "http://localhost:1",
    ] {
        assert!(postcodes_io_at(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "api.postcodes.io",
        "ftp://api.postcodes.io",
        "mailto:someone@example.com",
        "https://api.postcodes.io/?callback=x",
        "https://api.postcodes.io/#top",
    ] {
        assert!(
            matches!(
                postcodes_io_at(bad),
                Err(PostcodeConfigError::BadUrl {
                    which: "postcodes.io",
                    ..
                })
            ),
            "{bad}"
        );
    }
}

#[test]
fn paths_are_joined_and_percent_encoded() {
    let base = postcodes_io_at("https://api.postcodes.io").unwrap();
    assert_eq!(
        base.lookup_url(&pc("SW1A 1AA")).as_str(),
        "https://api.postcodes.io/postcodes/SW1A1AA"
    );
    let prefixed = postcodes_io_at("http://127.0.0.1:9/proxy/pio/").unwrap();
    assert_eq!(
        prefixed.lookup_url(&pc("M1 1AE")).as_str(),
        "http://127.0.0.1:9/proxy/pio/postcodes/M11AE"
    );
    let client = build_client(Duration::from_secs(1), Duration::from_secs(1), 1, true).unwrap();
    let gtd = GetTheData::new(client, "http://127.0.0.1:9/gtd", 1, Duration::from_secs(1));
    assert_eq!(
        gtd.unwrap().lookup_url(&pc("TW5 9RL")).as_str(),
        "http://127.0.0.1:9/gtd/postcode/TW59RL"
    );
    // Whatever the segment holds, it stays one segment.
    let base = Url::parse("https://api.postcodes.io").unwrap();
    assert_eq!(
        join_path(&base, &["postcodes", "a b/c%?#"]).path(),
        "/postcodes/a%20b%2Fc%25%3F%23"
    );
}

#[test]
fn loopback_hosts_are_recognised() {
    let loopback = |s: &str| is_loopback(&Url::parse(s).unwrap());
    assert!(loopback("http://127.0.0.1:1"));
    assert!(loopback("http://127.9.9.9:1"));
    assert!(loopback("http://[::1]:1"));
    assert!(loopback("http://LOCALHOST:1"));
    assert!(!loopback("https://api.postcodes.io"));
    assert!(!loopback("http://10.0.0.1"));
}

#[test]
fn media_types_ignore_parameters_and_case() {
    let found = r#"{"status":200,"result":{"postcode":"SW1A 1AA"}}"#;
    let postcodes_io = |content_type: Option<&str>| {
        let response = Response {
            status: 200,
            content_type: content_type.map(str::to_owned),
            body: found.as_bytes().to_vec(),
        };
        postcodes_io::interpret(&pc("SW1A 1AA"), &response)
    };
    // postcodes.io's answer must be labelled JSON: `application/json`, `text/json` or
    // `*/*+json`, in any case, whatever the parameters.
    for json in [
        "Application/JSON; charset=utf-8",
        "application/json",
        "text/json",
        "application/problem+json",
    ] {
        assert_eq!(
            postcodes_io(Some(json)),
            Lookup::Found(Directory::PostcodesIo),
            "{json}"
        );
    }
    for not_json in [None, Some("text/javascript"), Some("text/html")] {
        assert!(
            matches!(postcodes_io(not_json), Lookup::NoAnswer(_)),
            "{not_json:?}"
        );
    }
    // getthedata's need not be, but HTML is refused in any case and with parameters.
    let unit = r#"{"status":"match","match_type":"unit_postcode","data":{"postcode":"TW5 9RL","status":"live"}}"#;
    let response = Response {
        status: 200,
        content_type: Some("Text/HTML; charset=UTF-8".into()),
        body: unit.as_bytes().to_vec(),
    };
    assert!(matches!(
        getthedata::interpret(&pc("TW5 9RL"), &response),
        Lookup::NoAnswer(_)
    ));
}
