//! The postcode validators' settings (`just_hungry::postcode::PostcodeConfig`): modes and
//! policies by name, the builder's checks, and what builds without the online feature.

use std::time::Duration;

use just_hungry::postcode::{PostcodeConfig, PostcodeConfigError, ValidatorMode, WhenUnreachable};

#[test]
fn modes_and_policies_parse_from_their_names_and_print_them_back() {
    for mode in ValidatorMode::ALL {
        assert_eq!(mode.as_str().parse::<ValidatorMode>(), Ok(mode));
        assert_eq!(mode.to_string(), mode.as_str());
    }
    for policy in WhenUnreachable::ALL {
        assert_eq!(policy.as_str().parse::<WhenUnreachable>(), Ok(policy));
        assert_eq!(policy.to_string(), policy.as_str());
    }
    assert_eq!("Postcodes-IO".parse(), Ok(ValidatorMode::PostcodesIo));
    let error = "postcodesio".parse::<ValidatorMode>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown validator mode \"postcodesio\": expected offline, postcodes-io, getthedata or online"
    );
    assert!("accept".parse::<WhenUnreachable>().is_err());
    assert_eq!(ValidatorMode::default(), ValidatorMode::Online);
    assert_eq!(WhenUnreachable::default(), WhenUnreachable::Refuse);
}

#[test]
fn limits_are_checked_before_anything_is_built() {
    let zero = PostcodeConfig {
        validation_timeout: Duration::ZERO,
        ..PostcodeConfig::offline()
    };
    assert!(matches!(
        zero.build(),
        Err(PostcodeConfigError::ZeroTimeout { .. })
    ));
    let none_in_flight = PostcodeConfig {
        max_in_flight: 0,
        ..PostcodeConfig::offline()
    };
    assert!(matches!(
        none_in_flight.build(),
        Err(PostcodeConfigError::InFlightOutOfRange { .. })
    ));
    assert!(PostcodeConfig::offline().build().is_ok());
}

#[cfg(not(feature = "online-postcodes"))]
#[test]
fn without_the_feature_only_offline_builds() {
    for mode in ValidatorMode::ALL {
        let built = PostcodeConfig::new(mode).build();
        match mode {
            ValidatorMode::Offline => assert!(built.is_ok()),
            _ => assert!(matches!(
                built,
                Err(PostcodeConfigError::OnlineNotBuilt { mode: m }) if m == mode
            )),
        }
    }
}
