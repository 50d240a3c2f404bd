//! The online postcode validators against local fakes of postcodes.io and getthedata
//! (`support/`): every kind of answer, the fallback chain, the operator's policy, timeouts, the
//! cache and the limits. Rules from POSTCODES.md sections 2 and 3 and the `postcode::online`
//! docs. No test reaches the internet: every URL is on 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{FakeServer, Gate, Postcodes, Reply, unreachable_url};
use just_hungry::postcode::{
    CacheConfig, Directory, OnlineValidator, Postcode, PostcodeCheck, PostcodeConfig,
    PostcodeError, PostcodeValidator, Validated, ValidatorMode, WhenUnreachable, normalise,
};

/// Live in both fakes (getthedata drops the `BT` one, as the real one has no Northern Ireland
/// data), plus one terminated postcode.
fn postcodes() -> Postcodes {
    Postcodes::new()
        .live(&[
            "SW1A 1AA", "M1 1AE", "EH1 2NG", "CF10 3RB", "BT1 5GS", "TW5 9RL", "JE2 3AB",
            "B33 8TH", "DN55 1PT", "W1A 0AX", "EC1A 1BB",
        ])
        .terminated("SW1A 0PW", 2011, 3)
}

async fn fakes() -> (FakeServer, FakeServer) {
    (
        FakeServer::postcodes_io(postcodes()).await,
        FakeServer::getthedata(postcodes()).await,
    )
}

fn config(mode: ValidatorMode, postcodes_io: &str, getthedata: &str) -> PostcodeConfig {
    PostcodeConfig {
        mode,
        postcodes_io_url: postcodes_io.to_owned(),
        getthedata_url: getthedata.to_owned(),
        validation_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        ..PostcodeConfig::default()
    }
}

fn chain(postcodes_io: &str, getthedata: &str) -> OnlineValidator {
    OnlineValidator::from_config(&config(ValidatorMode::Online, postcodes_io, getthedata))
        .expect("valid configuration")
}

fn pc(s: &str) -> Postcode {
    Postcode::parse(s).unwrap()
}

fn confirmed(postcode: &str, directory: Directory) -> Result<Validated, PostcodeError> {
    Ok(Validated {
        postcode: pc(postcode),
        check: PostcodeCheck::Confirmed(directory),
    })
}

fn found_body(postcode: &str) -> String {
    serde_json::json!({"status": 200, "result": crate::support::postcodes_io_result(postcode)})
        .to_string()
}

// --- each kind of answer -------------------------------------------------------------------

#[tokio::test]
async fn a_live_postcode_is_confirmed_by_postcodes_io_and_getthedata_is_not_asked() {
    let (pio, gtd) = fakes().await;
    let validator = chain(&pio.url(), &gtd.url());
    assert_eq!(
        validator.validate(" sw1a1aa ").await,
        confirmed("SW1A 1AA", Directory::PostcodesIo)
    );
    // The compact upper-case form, in the path, no query (POSTCODES.md section 2).
    assert_eq!(pio.targets(), ["/postcodes/SW1A1AA"]);
    assert_eq!(gtd.requests(), 0);
    let head = pio.heads()[0].to_ascii_lowercase();
    assert!(head.contains("\r\naccept: application/json\r\n"), "{head}");
    assert!(head.contains("\r\nuser-agent: just-hungry/"), "{head}");
}

#[tokio::test]
async fn a_crown_dependency_postcode_with_null_coordinates_is_confirmed() {
    let (pio, gtd) = fakes().await;
    let validator = chain(&pio.url(), &gtd.url());
    assert_eq!(
        validator.validate("je2 3ab").await,
        confirmed("JE2 3AB", Directory::PostcodesIo)
    );
}

#[tokio::test]
async fn a_postcode_postcodes_io_calls_invalid_is_refused_with_its_reason_and_never_retried() {
    let (pio, gtd) = fakes().await;
    let validator = chain(&pio.url(), &gtd.url());
    // Our format check accepts GIR 0AA; postcodes.io's shape check does not.
    let error = validator.validate("GIR 0AA").await.unwrap_err();
    assert_eq!(
        error,
        PostcodeError::Refused {
            postcode: pc("GIR 0AA"),
            directory: Directory::PostcodesIo,
            reason: "Invalid postcode".into(),
        }
    );
    assert_eq!(
        error.to_string(),
        "postcode GIR 0AA was refused by postcodes.io: Invalid postcode"
    );
    assert!(!error.is_retryable());
    assert_eq!((pio.requests(), gtd.requests()), (1, 0));
}

#[tokio::test]
async fn a_postcode_not_found_is_refused_and_getthedata_is_not_asked() {
    let (pio, gtd) = fakes().await;
    let validator = chain(&pio.url(), &gtd.url());
    assert_eq!(
        validator.validate("SW1A 9ZZ").await,
        Err(PostcodeError::NotFound {
            postcode: pc("SW1A 9ZZ")
        })
    );
    assert_eq!((pio.requests(), gtd.requests()), (1, 0));
}

#[tokio::test]
async fn a_terminated_postcode_is_refused_with_the_date_it_ended() {
    let (pio, gtd) = fakes().await;
    let validator = chain(&pio.url(), &gtd.url());
    let error = validator.validate("sw1a 0pw").await.unwrap_err();
    assert_eq!(
        error,
        PostcodeError::Terminated {
            postcode: pc("SW1A 0PW"),
            year: Some(2011),
            month: Some(3)
        }
    );
    assert_eq!(
        error.to_string(),
        "postcode SW1A 0PW is no longer in use (terminated in March 2011)"
    );
    assert_eq!(gtd.requests(), 0);
}

#[tokio::test]
async fn malformed_input_is_refused_by_the_format_check_and_costs_no_request() {
    let (pio, gtd) = fakes().await;
    let validator = chain(&pio.url(), &gtd.url());
    let long = "x".repeat(100);
    for input in [
        "SW1A-1AA",
        "",
        "   ",
        "Q1 1AA",
        "ASCN 1ZZ",
        "BFPO 801",
        "ＳＷ１Ａ １ＡＡ",
        "SW1A 1A",
        "ſW1A 1AA",
        long.as_str(),
    ] {
        assert_eq!(
            validator.validate(input).await.map(|v| v.postcode),
            normalise(input),
            "{input:?}"
        );
    }
    assert_eq!((pio.requests(), gtd.requests()), (0, 0));
}

// --- the fallback chain --------------------------------------------------------------------

#[tokio::test]
async fn every_kind_of_postcodes_io_failure_falls_back_to_getthedata() {
    let found = found_body("SW1A 1AA");
    let huge = serde_json::json!({"status": 200, "result": {"postcode": "SW1A 1AA",
        "padding": "x".repeat(70 * 1024)}})
    .to_string();
    let cases: Vec<(&str, Reply)> = vec![
        (
            "rate limited",
            Reply::json(429, r#"{"status":429,"error":"Too many requests"}"#),
        ),
        (
            "unavailable",
            Reply::raw(503, Some("text/html"), "<h1>Service Unavailable</h1>"),
        ),
        (
            "server error",
            Reply::json(500, r#"{"status":500,"error":"Internal Server Error"}"#),
        ),
        ("bad gateway", Reply::raw(502, None, "")),
        (
            "malformed JSON",
            Reply::json(200, r#"{"status":200,"result":{"postcode":"SW1A 1A"#),
        ),
        (
            "wrong content type",
            Reply::raw(200, Some("text/html; charset=utf-8"), found.clone()),
        ),
        (
            "JSONP",
            Reply::raw(200, Some("text/javascript"), format!("cb({found});")),
        ),
        ("another postcode", Reply::json(200, found_body("SW1A 2AA"))),
        (
            "unrecognised 404",
            Reply::json(404, r#"{"status":404,"error":"Resource not found"}"#),
        ),
        ("too large", Reply::json(200, huge)),
        ("connection closed", Reply::Close),
    ];
    for (what, reply) in cases {
        let pio = FakeServer::start(move |_| reply.clone()).await;
        let gtd = FakeServer::getthedata(postcodes()).await;
        let validator = chain(&pio.url(), &gtd.url());
        assert_eq!(
            validator.validate("SW1A 1AA").await,
            confirmed("SW1A 1AA", Directory::GetTheData),
            "{what}"
        );
        assert!(pio.requests() >= 1, "{what}");
        assert_eq!(gtd.targets(), ["/postcode/SW1A1AA"], "{what}");
    }
}

#[tokio::test]
async fn postcodes_io_unreachable_means_getthedata_is_asked() {
    let gtd = FakeServer::getthedata(postcodes()).await;
    let validator = chain(&unreachable_url().await, &gtd.url());
    assert_eq!(
        validator.validate("M1 1AE").await,
        confirmed("M1 1AE", Directory::GetTheData)
    );
    // getthedata's refusals are refusals too.
    assert_eq!(
        validator.validate("M1 9ZZ").await,
        Err(PostcodeError::NotFound {
            postcode: pc("M1 9ZZ")
        })
    );
    assert_eq!(gtd.requests(), 2);
}

#[tokio::test]
async fn when_neither_directory_answers_the_default_policy_refuses_and_says_retry_later() {
    let gtd = FakeServer::start(|_| Reply::raw(503, Some("text/html"), "down")).await;
    let validator = chain(&unreachable_url().await, &gtd.url());
    assert_eq!(validator.when_unreachable(), WhenUnreachable::Refuse);
    let error = validator.validate("M1 1AE").await.unwrap_err();
    let PostcodeError::Unreachable { reason } = &error else {
        panic!("expected Unreachable, got {error:?}");
    };
    assert_eq!(
        reason,
        "postcodes.io: cannot connect; getthedata: unavailable (HTTP 503)"
    );
    assert!(error.is_retryable());
    assert!(
        error
            .to_string()
            .starts_with("cannot validate the postcode now")
    );
}

#[tokio::test]
async fn when_neither_directory_answers_accept_unverified_accepts_on_the_format_check() {
    let down = unreachable_url().await;
    let validator = OnlineValidator::from_config(&PostcodeConfig {
        when_unreachable: WhenUnreachable::AcceptUnverified,
        ..config(ValidatorMode::Online, &down, &down)
    })
    .unwrap();
    let validated = validator.validate("m1 1ae").await.unwrap();
    assert_eq!(validated.postcode, pc("M1 1AE"));
    assert!(validated.is_unverified());
    assert_eq!(
        validated.check,
        PostcodeCheck::Unverified {
            reason: "postcodes.io: cannot connect; getthedata: cannot connect".into()
        }
    );
    // The format check still refuses what it refuses.
    assert!(matches!(
        validator.validate("M1-1AE").await,
        Err(PostcodeError::CharacterNotAllowed { .. })
    ));
}

#[tokio::test]
async fn a_northern_ireland_postcode_is_never_sent_to_getthedata() {
    let gtd = FakeServer::getthedata(postcodes()).await;
    let down = unreachable_url().await;
    let refuse = chain(&down, &gtd.url());
    let error = refuse.validate("BT1 5GS").await.unwrap_err();
    assert_eq!(
        error,
        PostcodeError::Unreachable {
            reason: "postcodes.io: cannot connect; getthedata: has no Northern Ireland (BT) \
                     postcodes"
                .into()
        }
    );
    let accept = OnlineValidator::from_config(&PostcodeConfig {
        when_unreachable: WhenUnreachable::AcceptUnverified,
        ..config(ValidatorMode::Online, &down, &gtd.url())
    })
    .unwrap();
    assert!(accept.validate("bt1 5gs").await.unwrap().is_unverified());
    assert_eq!(gtd.requests(), 0);
    // With postcodes.io up, BT postcodes are confirmed like any other.
    let pio = FakeServer::postcodes_io(postcodes()).await;
    assert_eq!(
        chain(&pio.url(), &gtd.url()).validate("BT1 5GS").await,
        confirmed("BT1 5GS", Directory::PostcodesIo)
    );
}

// --- the modes -----------------------------------------------------------------------------

#[tokio::test]
async fn getthedata_mode_asks_only_getthedata() {
    let (pio, gtd) = fakes().await;
    let validator =
        OnlineValidator::from_config(&config(ValidatorMode::GetTheData, &pio.url(), &gtd.url()))
            .unwrap();
    assert_eq!(
        validator.validate("tw5 9rl").await,
        confirmed("TW5 9RL", Directory::GetTheData)
    );
    assert_eq!(
        validator.validate("TW5 9ZZ").await,
        Err(PostcodeError::NotFound {
            postcode: pc("TW5 9ZZ")
        })
    );
    assert_eq!(
        validator.validate("SW1A 0PW").await,
        Err(PostcodeError::Terminated {
            postcode: pc("SW1A 0PW"),
            year: None,
            month: None
        })
    );
    assert_eq!(pio.requests(), 0);
    assert_eq!(
        gtd.targets(),
        ["/postcode/TW59RL", "/postcode/TW59ZZ", "/postcode/SW1A0PW"]
    );
}

#[tokio::test]
async fn postcodes_io_mode_never_falls_back() {
    let pio = FakeServer::start(|_| Reply::json(503, r#"{"status":503}"#)).await;
    let gtd = FakeServer::getthedata(postcodes()).await;
    let validator =
        OnlineValidator::from_config(&config(ValidatorMode::PostcodesIo, &pio.url(), &gtd.url()))
            .unwrap();
    assert_eq!(
        validator.validate("M1 1AE").await,
        Err(PostcodeError::Unreachable {
            reason: "postcodes.io: unavailable (HTTP 503)".into()
        })
    );
    assert_eq!(gtd.requests(), 0);
}

#[tokio::test]
async fn the_builder_gives_each_mode_its_validator_and_offline_sends_nothing() {
    let (pio, gtd) = fakes().await;
    let expected = [
        (ValidatorMode::Offline, PostcodeCheck::Format),
        (
            ValidatorMode::PostcodesIo,
            PostcodeCheck::Confirmed(Directory::PostcodesIo),
        ),
        (
            ValidatorMode::GetTheData,
            PostcodeCheck::Confirmed(Directory::GetTheData),
        ),
        (
            ValidatorMode::Online,
            PostcodeCheck::Confirmed(Directory::PostcodesIo),
        ),
    ];
    for (mode, check) in expected {
        let before = (pio.requests(), gtd.requests());
        let validator: Arc<dyn PostcodeValidator> =
            config(mode, &pio.url(), &gtd.url()).build().unwrap();
        let validated = validator.validate("EC1A 1BB").await.unwrap();
        assert_eq!(validated.check, check, "{mode}");
        if mode == ValidatorMode::Offline {
            assert_eq!((pio.requests(), gtd.requests()), before);
        }
    }
    assert!(
        config(ValidatorMode::Online, "ftp://127.0.0.1", &gtd.url())
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn the_postcode_goes_under_the_configured_path_prefix() {
    let pio = FakeServer::start(|target| {
        if target == "/proxy/pio/postcodes/W1A0AX" {
            Reply::json(200, found_body("W1A 0AX"))
        } else {
            Reply::json(404, r#"{"status":404,"error":"Resource not found"}"#)
        }
    })
    .await;
    let down = unreachable_url().await;
    let validator = chain(&format!("{}/proxy/pio/", pio.url()), &down);
    assert_eq!(
        validator.validate("w1a 0ax").await,
        confirmed("W1A 0AX", Directory::PostcodesIo)
    );
}

// --- timeouts ------------------------------------------------------------------------------

#[tokio::test]
async fn a_hanging_postcodes_io_times_out_and_getthedata_answers_in_the_time_left() {
    let pio = FakeServer::start(|_| Reply::Hang).await;
    let gtd = FakeServer::getthedata(postcodes()).await;
    let timeout = Duration::from_millis(600);
    let validator = OnlineValidator::from_config(&PostcodeConfig {
        validation_timeout: timeout,
        ..config(ValidatorMode::Online, &pio.url(), &gtd.url())
    })
    .unwrap();
    let start = Instant::now();
    assert_eq!(
        validator.validate("CF10 3RB").await,
        confirmed("CF10 3RB", Directory::GetTheData)
    );
    let took = start.elapsed();
    // postcodes.io gets half of the timeout, getthedata what is left.
    assert!(took >= timeout / 2 - Duration::from_millis(20), "{took:?}");
    assert!(took < timeout + Duration::from_millis(400), "{took:?}");
}

#[tokio::test]
async fn when_both_hang_the_validation_ends_within_its_timeout() {
    let pio = FakeServer::start(|_| Reply::Hang).await;
    let gtd = FakeServer::start(|_| Reply::Hang).await;
    let timeout = Duration::from_millis(400);
    let validator = OnlineValidator::from_config(&PostcodeConfig {
        validation_timeout: timeout,
        ..config(ValidatorMode::Online, &pio.url(), &gtd.url())
    })
    .unwrap();
    let start = Instant::now();
    assert_eq!(
        validator.validate("CF10 3RB").await,
        Err(PostcodeError::Unreachable {
            reason: "postcodes.io: timed out; getthedata: timed out".into()
        })
    );
    let took = start.elapsed();
    assert!(took >= timeout - Duration::from_millis(20), "{took:?}");
    assert!(took < timeout + Duration::from_millis(400), "{took:?}");
}

#[tokio::test]
async fn a_body_that_stops_half_way_times_out_and_falls_back() {
    let body = found_body("EH1 2NG").into_bytes();
    let pio = FakeServer::start(move |_| Reply::HangMidBody {
        status: 200,
        body: body.clone(),
    })
    .await;
    let gtd = FakeServer::getthedata(postcodes()).await;
    let validator = OnlineValidator::from_config(&PostcodeConfig {
        validation_timeout: Duration::from_millis(400),
        ..config(ValidatorMode::Online, &pio.url(), &gtd.url())
    })
    .unwrap();
    assert_eq!(
        validator.validate("EH1 2NG").await,
        confirmed("EH1 2NG", Directory::GetTheData)
    );
}

// --- the cache -----------------------------------------------------------------------------

#[tokio::test]
async fn a_second_lookup_is_answered_from_the_cache() {
    let (pio, gtd) = fakes().await;
    let validator = chain(&pio.url(), &gtd.url());
    for spelling in ["SW1A 1AA", "sw1a1aa", " Sw1A  1aA "] {
        assert_eq!(
            validator.validate(spelling).await,
            confirmed("SW1A 1AA", Directory::PostcodesIo)
        );
    }
    assert_eq!(pio.requests(), 1);
    // Refusals are kept too, apart from the found ones.
    for _ in 0..3 {
        assert_eq!(
            validator.validate("SW1A 9ZZ").await,
            Err(PostcodeError::NotFound {
                postcode: pc("SW1A 9ZZ")
            })
        );
    }
    assert_eq!(pio.requests(), 2);
    assert_eq!(gtd.requests(), 0);
}

#[tokio::test]
async fn could_not_answer_is_never_cached() {
    let pio = FakeServer::start(|_| Reply::json(503, r#"{"status":503}"#)).await;
    let down = unreachable_url().await;
    let validator = chain(&pio.url(), &down);
    assert!(matches!(
        validator.validate("B33 8TH").await,
        Err(PostcodeError::Unreachable { .. })
    ));
    // postcodes.io recovers: the next lookup asks again.
    let data = Arc::new(postcodes());
    pio.set(move |target| crate::support::postcodes_io_reply(&data, target));
    assert_eq!(
        validator.validate("B33 8TH").await,
        confirmed("B33 8TH", Directory::PostcodesIo)
    );
    assert_eq!(pio.requests(), 2);
}

/// Starts 20 validations of `input` at once while the fakes hold their answers, opens the gate
/// once the first request arrived, and returns the 20 results.
async fn twenty_at_once(
    validator: Arc<OnlineValidator>,
    first: &FakeServer,
    gate: &Gate,
    input: &'static str,
) -> Vec<Result<Validated, PostcodeError>> {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let validator = validator.clone();
            tokio::spawn(async move { validator.validate(input).await })
        })
        .collect();
    first.wait_for_requests(1).await;
    gate.open();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test]
async fn twenty_concurrent_lookups_of_one_postcode_make_one_request() {
    let gate = Gate::new();
    let (data, held) = (Arc::new(postcodes()), gate.clone());
    let pio =
        FakeServer::start(move |t| crate::support::postcodes_io_reply(&data, t).gated(&held)).await;
    let gtd = FakeServer::getthedata(postcodes()).await;
    let validator = Arc::new(chain(&pio.url(), &gtd.url()));
    let results = twenty_at_once(validator.clone(), &pio, &gate, "DN55 1PT").await;
    assert!(
        results
            .iter()
            .all(|r| *r == confirmed("DN55 1PT", Directory::PostcodesIo))
    );
    assert_eq!(pio.requests(), 1);

    // The same for a refusal.
    let gate = Gate::new();
    let (data, held) = (Arc::new(postcodes()), gate.clone());
    pio.set(move |t| crate::support::postcodes_io_reply(&data, t).gated(&held));
    let results = twenty_at_once(validator, &pio, &gate, "DN55 9ZZ").await;
    let not_found = Err(PostcodeError::NotFound {
        postcode: pc("DN55 9ZZ"),
    });
    assert!(results.iter().all(|r| *r == not_found));
    assert_eq!(pio.requests(), 2);
    assert_eq!(gtd.requests(), 0);
}

#[tokio::test]
async fn twenty_concurrent_lookups_during_an_outage_make_one_request_per_directory() {
    let gate = Gate::new();
    let held = gate.clone();
    let pio = FakeServer::start(move |_| Reply::json(503, r#"{"status":503}"#).gated(&held)).await;
    let gtd = FakeServer::start(|_| Reply::json(500, "{}")).await;
    let validator = Arc::new(chain(&pio.url(), &gtd.url()));
    let results = twenty_at_once(validator, &pio, &gate, "EH1 2NG").await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(PostcodeError::Unreachable { .. })))
    );
    assert_eq!((pio.requests(), gtd.requests()), (1, 1));
}

/// Validates `input` until the fake has seen `requests` requests (the cached answer expired),
/// polling for at most 5 s.
async fn until_asked_again(
    validator: &OnlineValidator,
    fake: &FakeServer,
    input: &str,
    requests: usize,
) {
    let start = Instant::now();
    while fake.requests() < requests {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the cached answer for {input} never expired"
        );
        let _ = validator.validate(input).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn found_and_refused_answers_expire_each_after_its_own_ttl() {
    let (pio, gtd) = fakes().await;
    let short = Duration::from_millis(100);
    let long = Duration::from_secs(3600);
    let with_ttls = |found_ttl, refused_ttl| {
        OnlineValidator::from_config(&PostcodeConfig {
            cache: CacheConfig {
                found_ttl,
                refused_ttl,
                ..CacheConfig::default()
            },
            ..config(ValidatorMode::Online, &pio.url(), &gtd.url())
        })
        .unwrap()
    };

    // Found answers expire first: the refused one is still remembered.
    let validator = with_ttls(short, long);
    validator.validate("M1 1AE").await.unwrap();
    validator.validate("M1 9ZZ").await.unwrap_err();
    assert_eq!(pio.requests(), 2);
    until_asked_again(&validator, &pio, "M1 1AE", 3).await;
    validator.validate("M1 9ZZ").await.unwrap_err();
    assert_eq!(pio.requests(), 3);

    // And the other way round.
    let validator = with_ttls(long, short);
    validator.validate("M1 1AE").await.unwrap();
    validator.validate("M1 9ZZ").await.unwrap_err();
    assert_eq!(pio.requests(), 5);
    until_asked_again(&validator, &pio, "M1 9ZZ", 6).await;
    validator.validate("M1 1AE").await.unwrap();
    assert_eq!(pio.requests(), 6);
}

#[tokio::test]
async fn a_disabled_cache_keeps_nothing() {
    let (pio, gtd) = fakes().await;
    let validator = OnlineValidator::from_config(&PostcodeConfig {
        cache: CacheConfig::disabled(),
        ..config(ValidatorMode::Online, &pio.url(), &gtd.url())
    })
    .unwrap();
    for _ in 0..3 {
        validator.validate("M1 1AE").await.unwrap();
        validator.validate("M1 9ZZ").await.unwrap_err();
    }
    assert_eq!(pio.requests(), 6);
}

// --- limits --------------------------------------------------------------------------------

#[tokio::test]
async fn consecutive_lookups_reuse_one_connection() {
    let (pio, gtd) = fakes().await;
    let validator = chain(&pio.url(), &gtd.url());
    for postcode in ["SW1A 1AA", "M1 1AE", "EH1 2NG", "CF10 3RB", "B33 8TH"] {
        validator.validate(postcode).await.unwrap();
    }
    assert_eq!((pio.requests(), pio.connections()), (5, 1));
}

#[tokio::test]
async fn requests_in_flight_to_a_directory_are_bounded() {
    let gate = Gate::new();
    let (data, held) = (Arc::new(postcodes()), gate.clone());
    let pio =
        FakeServer::start(move |t| crate::support::postcodes_io_reply(&data, t).gated(&held)).await;
    let down = unreachable_url().await;
    let validator = Arc::new(
        OnlineValidator::from_config(&PostcodeConfig {
            max_in_flight: 2,
            ..config(ValidatorMode::Online, &pio.url(), &down)
        })
        .unwrap(),
    );
    let inputs = [
        "SW1A 1AA", "M1 1AE", "EH1 2NG", "CF10 3RB", "B33 8TH", "W1A 0AX",
    ];
    let tasks: Vec<_> = inputs
        .into_iter()
        .map(|input| {
            let validator = validator.clone();
            tokio::spawn(async move { validator.validate(input).await })
        })
        .collect();
    pio.wait_for_requests(2).await;
    gate.open();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(pio.requests(), inputs.len());
    assert_eq!(pio.max_in_flight(), 2);
}

#[tokio::test]
async fn waiting_for_a_request_slot_counts_against_the_validation_timeout() {
    let gate = Gate::new();
    let held = gate.clone();
    let pio = FakeServer::start(move |_| Reply::Hang.gated(&held)).await;
    let down = unreachable_url().await;
    let validator = Arc::new(
        OnlineValidator::from_config(&PostcodeConfig {
            max_in_flight: 1,
            validation_timeout: Duration::from_millis(300),
            ..config(ValidatorMode::Online, &pio.url(), &down)
        })
        .unwrap(),
    );
    let first = {
        let validator = validator.clone();
        tokio::spawn(async move { validator.validate("SW1A 1AA").await })
    };
    pio.wait_for_requests(1).await;
    // The one slot is taken by a request that never answers: another postcode waits for it
    // (it may get it just before its own deadline, when the first gives up) but never beyond
    // its own timeout.
    let start = Instant::now();
    let second = validator.validate("M1 1AE").await;
    assert!(
        start.elapsed() < Duration::from_millis(700),
        "{:?}",
        start.elapsed()
    );
    match second {
        Err(PostcodeError::Unreachable { reason }) => assert!(
            reason == "postcodes.io: too many lookups in flight; getthedata: cannot connect"
                || reason == "postcodes.io: timed out; getthedata: cannot connect",
            "{reason}"
        ),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(matches!(
        first.await.unwrap(),
        Err(PostcodeError::Unreachable { .. })
    ));
    assert!(pio.requests() <= 2);
}

// --- measurement ---------------------------------------------------------------------------

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let n = samples.len();
    let mean = samples.iter().sum::<Duration>() / u32::try_from(n).unwrap();
    println!(
        "{name:<44} n={n:<6} mean={mean:>9.1?} p50={:>9.1?} p99={:>9.1?} max={:>9.1?}",
        samples[n / 2],
        samples[n * 99 / 100],
        samples[n - 1]
    );
}

/// Validation latency: offline, with a warm cache, and through the fake server on loopback
/// (HTTP/1.1, kept-alive connection, cache disabled so each validation is a request).
///
/// `cargo test --release --test integration postcode_online:: -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --ignored --nocapture"]
async fn measure_validation_latency() {
    let (pio, gtd) = fakes().await;
    let warm = chain(&pio.url(), &gtd.url());
    warm.validate("SW1A 1AA").await.unwrap();
    let cold = OnlineValidator::from_config(&PostcodeConfig {
        cache: CacheConfig::disabled(),
        ..config(ValidatorMode::Online, &pio.url(), &gtd.url())
    })
    .unwrap();
    cold.validate("SW1A 1AA").await.unwrap(); // opens the connection
    let offline = PostcodeConfig::offline().build().unwrap();

    let mut samples = Vec::new();
    for _ in 0..20_000 {
        let start = Instant::now();
        offline.validate("sw1a1aa").await.unwrap();
        samples.push(start.elapsed());
    }
    summary("offline format check", samples);
    let mut samples = Vec::new();
    for _ in 0..20_000 {
        let start = Instant::now();
        warm.validate("sw1a1aa").await.unwrap();
        samples.push(start.elapsed());
    }
    summary("online, warm cache", samples);
    let mut samples = Vec::new();
    for _ in 0..2_000 {
        let start = Instant::now();
        cold.validate("sw1a1aa").await.unwrap();
        samples.push(start.elapsed());
    }
    summary("online, through the fake postcodes.io", samples);
    let before = pio.requests();
    let fallback = OnlineValidator::from_config(&PostcodeConfig {
        cache: CacheConfig::disabled(),
        ..config(ValidatorMode::Online, &unreachable_url().await, &gtd.url())
    })
    .unwrap();
    let mut samples = Vec::new();
    for _ in 0..2_000 {
        let start = Instant::now();
        fallback.validate("sw1a1aa").await.unwrap();
        samples.push(start.elapsed());
    }
    summary("online, postcodes.io refused, getthedata", samples);
    assert_eq!(pio.requests(), before);
    println!(
        "connections to the fake postcodes.io: {} for {} requests",
        pio.connections(),
        pio.requests()
    );
}
