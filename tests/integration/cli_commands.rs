//! The order-book client's commands (`just_hungry::cli`): prompt lines and one-shot
//! arguments read alike, sizes and registry addresses parsed, the status and failures shown
//! to a person and to a script, and an order echoed as the book stores it.

use std::sync::Arc;
use std::time::Duration;

use just_hungry::OrderClient;
use just_hungry::cli::{
    ClientCommand, describe_status, parse_byte_size, parse_registry_address, parse_shell_line,
    run_command, status_json,
};
use just_hungry::core::ids::{Address, Identity, NodeRole};
use just_hungry::core::protocol::Timing;
use just_hungry::core::protocol::client::ClientConfig;
use just_hungry::core::protocol::messages::{ClusterStatus, ReplicaStatus};
use just_hungry::core::state_machine::CommandValidator;
use just_hungry::local::LocalCluster;
use just_hungry::orders::{OrderBook, OrderValidator};
use just_hungry::postcode::{self, PostcodeError, PostcodeValidator, Validated};

const WAIT: Duration = Duration::from_secs(30);

/// A one-replica order book on the in-memory network whose primary validates with
/// `validator`, and a client of it.
async fn cluster(
    validator: impl CommandValidator<OrderBook>,
) -> (LocalCluster<OrderBook>, OrderClient) {
    let mut cluster = LocalCluster::<OrderBook>::new(Timing::default());
    cluster
        .form(1, OrderBook::empty(), Arc::new(validator), WAIT)
        .await
        .expect("the cluster forms");
    let client = cluster
        .order_client(ClientConfig::default())
        .await
        .expect("a client");
    (cluster, client)
}

#[tokio::test(start_paused = true)]
async fn an_order_is_echoed_as_stored_not_as_typed() {
    let (cluster, client) = cluster(OrderValidator::offline()).await;
    let order = ClientCommand::Order {
        postcode: "sw1a1aa".into(),
        items: vec!["  Chips ".into(), "naan".into()],
    };
    let output = run_command(&client, order).await;
    assert!(output.ok, "{}", output.text);
    assert_eq!(output.json["postcode"], "SW1A 1AA", "{}", output.json);
    assert_eq!(
        output.json["items"],
        serde_json::json!(["Chips", "naan"]),
        "{}",
        output.json
    );
    assert!(
        output.text.contains("placed for SW1A 1AA: Chips, naan"),
        "{}",
        output.text
    );
    cluster.shutdown().await;
}

#[test]
fn a_timed_out_read_says_nothing_was_changed_and_a_write_that_it_may_have_been() {
    use just_hungry::core::ids::{ClientId, RequestId};
    use just_hungry::core::protocol::client::ClientError;
    let id = RequestId {
        client: ClientId(1),
        seq: 2,
    };
    let deadline = Duration::from_secs(10);
    let read = ClientError::Timeout {
        id,
        deadline,
        write: false,
    }
    .to_string();
    let write = ClientError::Timeout {
        id,
        deadline,
        write: true,
    }
    .to_string();
    assert!(
        read.contains("it was a read, so nothing was changed"),
        "{read}"
    );
    assert!(
        write.contains("may or may not have been applied"),
        "{write}"
    );
}

#[test]
fn sizes_parse_with_binary_units_and_bad_ones_are_named() {
    assert_eq!(parse_byte_size("4GiB"), Ok(4 << 30));
    assert_eq!(parse_byte_size("512 MiB"), Ok(512 << 20));
    assert_eq!(parse_byte_size("1048576"), Ok(1 << 20));
    assert_eq!(parse_byte_size("7B"), Ok(7));
    assert!(parse_byte_size("4GB").unwrap_err().contains("unknown unit"));
    assert!(parse_byte_size("GiB").unwrap_err().contains("not a size"));
    assert!(
        parse_byte_size("99999999TiB")
            .unwrap_err()
            .contains("too large")
    );
}

#[test]
fn order_lines_accept_the_postcode_with_or_without_its_space() {
    let with = parse_shell_line("order SW1A 1AA pizza, cola").unwrap();
    let without = parse_shell_line("order sw1a1aa pizza, cola").unwrap();
    let expected_items = vec!["pizza".to_string(), "cola".to_string()];
    assert_eq!(
        with,
        Some(ClientCommand::Order {
            postcode: "SW1A 1AA".into(),
            items: expected_items.clone()
        })
    );
    assert_eq!(
        without,
        Some(ClientCommand::Order {
            postcode: "sw1a1aa".into(),
            items: expected_items
        })
    );
}

#[test]
fn an_item_that_looks_like_an_inward_code_is_not_swallowed() {
    // "M1" alone is not a postcode, "M1 1AE" is; "SW1A1AA" alone is, so "tea" stays an item.
    let parsed = parse_shell_line("order SW1A1AA tea").unwrap();
    assert_eq!(
        parsed,
        Some(ClientCommand::Order {
            postcode: "SW1A1AA".into(),
            items: vec!["tea".into()]
        })
    );
}

#[test]
fn a_postcode_typed_with_its_space_is_one_word_in_both_modes_even_when_invalid() {
    let order = |postcode: &str, items: &[&str]| ClientCommand::Order {
        postcode: postcode.into(),
        items: items.iter().map(|i| i.to_string()).collect(),
    };
    // Invalid, but shaped as one postcode: taken whole, so the refusal names the reason
    // (the letter Z at position 2), not `"ZZ99" is not a UK postcode`.
    assert_eq!(
        parse_shell_line("order ZZ99 9ZZ pizza").unwrap(),
        Some(order("ZZ99 9ZZ", &["pizza"]))
    );
    let args = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    assert_eq!(
        ClientCommand::order_from_args("ZZ99", &args(&["9ZZ", "pizza"])),
        order("ZZ99 9ZZ", &["pizza"])
    );
    // Unquoted one-shot: `order SW1A 1AA pizza` is the order the prompt reads.
    assert_eq!(
        ClientCommand::order_from_args("SW1A", &args(&["1AA", "pizza"])),
        order("SW1A 1AA", &["pizza"])
    );
    assert_eq!(
        ClientCommand::order_from_args("SW1A 1AA", &args(&["pizza"])),
        order("SW1A 1AA", &["pizza"])
    );
    // An item after a whole postcode stays an item.
    assert_eq!(
        ClientCommand::order_from_args("SW1A1AA", &args(&["1AB"])),
        order("SW1A1AA", &["1AB"])
    );
    // Commas separate items in both modes.
    assert_eq!(
        ClientCommand::order_from_args("SW1A 1AA", &args(&["fish, chips", "cola"])),
        order("SW1A 1AA", &["fish", "chips", "cola"])
    );
    assert_eq!(
        parse_shell_line("order SW1A 1AA fish, chips, cola").unwrap(),
        Some(order("SW1A 1AA", &["fish", "chips", "cola"]))
    );
}

#[test]
fn status_shows_live_replicas_in_their_roles_of_the_view_and_ids_as_strings() {
    use just_hungry::core::ids::{Member, OpNumber, ReplicaId, View, ViewNumber};
    use just_hungry::core::protocol::messages::ReplicaRole;
    let member = |name: &str, incarnation: u64| Member {
        id: ReplicaId::new(name, incarnation),
        address: Address::new(format!("127.0.0.1:{}", 9000 + incarnation % 100)),
    };
    let replica = |m: &Member, role, alive| ReplicaStatus {
        id: m.id.clone(),
        address: m.address.clone(),
        role,
        applied: OpNumber(7),
        alive,
    };
    let (old, primary, backup) = (
        member("replica-1", 1),
        member("replica-2", u64::MAX - 1),
        member("replica-3", 3),
    );
    let status = ClusterStatus {
        view: Some(View {
            number: ViewNumber(4),
            primary: primary.clone(),
            backups: vec![backup.clone()],
        }),
        active: true,
        serving: true,
        why_not_serving: None,
        replicas: vec![
            // The dead old primary, and the new one that reported Backup before it was
            // promoted.
            replica(&old, ReplicaRole::Primary, false),
            replica(&primary, ReplicaRole::Backup, true),
            replica(&backup, ReplicaRole::Backup, true),
        ],
    };
    let text = describe_status(&status);
    assert!(!text.contains("replica-1#"), "{text}");
    assert!(
        text.contains("1 replica(s) that stopped answering not shown"),
        "{text}"
    );
    assert_eq!(
        text.matches("primary").count(),
        2,
        "the header and one row: {text}"
    );
    let json = status_json(&status);
    let rows = json["replicas"].as_array().expect("replicas");
    assert_eq!(rows.len(), 2, "{json}");
    assert_eq!(rows[0]["role"], "primary");
    assert_eq!(rows[1]["role"], "backup");
    assert_eq!(
        rows[0]["incarnation"],
        (u64::MAX - 1).to_string(),
        "exact, as a string"
    );
    assert!(rows[0]["id"].is_string());
}

#[test]
fn registry_addresses_are_host_and_port() {
    for good in [
        "127.0.0.1:9090",
        "registry.internal:9090",
        "[::1]:9090",
        " 10.0.0.2:1 ",
    ] {
        assert!(parse_registry_address(good).is_ok(), "{good}");
    }
    for bad in [
        "nonsense",
        "127.0.0.1",
        "127.0.0.1:",
        ":9090",
        "host:0",
        "host:99999",
        "http://h:1",
    ] {
        let error = parse_registry_address(bad).unwrap_err();
        assert!(error.contains("HOST:PORT"), "{bad}: {error}");
    }
}

/// A postcode validator for which every directory is down: what an online validator answers
/// in an outage under the `refuse` policy, after the format check.
struct Outage;

#[async_trait::async_trait]
impl PostcodeValidator for Outage {
    async fn validate(&self, input: &str) -> Result<Validated, PostcodeError> {
        postcode::normalise(input)?;
        Err(PostcodeError::Unreachable {
            reason: "postcodes.io: connection refused".into(),
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_retryable_outage_is_not_a_refusal_and_names_the_flags() {
    let (cluster, client) = cluster(OrderValidator::new(Outage)).await;
    let order = |items: &[&str]| ClientCommand::Order {
        postcode: "SW1A 1AA".into(),
        items: items.iter().map(|i| i.to_string()).collect(),
    };
    let output = run_command(&client, order(&["Chips"])).await;
    assert!(!output.ok);
    assert_eq!(output.json["error"], "unavailable", "{}", output.json);
    assert_eq!(output.json["retryable"], true);
    assert!(
        output.text.contains("--validator offline"),
        "{}",
        output.text
    );
    assert!(
        output.text.contains("--when-unreachable"),
        "{}",
        output.text
    );
    // An empty order is refused before the postcode is looked at.
    let refusal = run_command(&client, order(&[])).await;
    assert_eq!(refusal.json["error"], "refused", "{}", refusal.json);
    assert_eq!(refusal.json["retryable"], false);
    // A client whose registry is nowhere on the network.
    let endpoint = cluster.network().endpoint(
        "lost-client",
        Identity::new(NodeRole::Client, "lost-client"),
    );
    let lost = OrderClient::spawn(
        endpoint,
        Address::new("no-registry"),
        ClientConfig::default(),
    );
    let output = run_command(&lost, ClientCommand::Status).await;
    assert_eq!(
        output.json["error"], "registry_unreachable",
        "{}",
        output.json
    );
    assert!(output.text.contains("--registry"), "{}", output.text);
    cluster.shutdown().await;
}

#[test]
fn bad_lines_get_a_usage_message() {
    assert!(parse_shell_line("order").is_err());
    assert!(parse_shell_line("history").is_err());
    assert!(parse_shell_line("frobnicate").is_err());
    assert_eq!(parse_shell_line("   "), Ok(None));
}
