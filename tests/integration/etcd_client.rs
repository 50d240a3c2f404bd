//! etcd's JSON gateway client (`just_hungry::etcd::EtcdClient`) on its own: the key range of a
//! prefix (against a real one-member etcd), how it reads etcd 3.4's answer to a failed
//! transaction (against a fake gateway that answers with it), and bad endpoints.

use just_hungry::etcd::{EtcdClient, EtcdCluster, EtcdError, Expected, KeyValue, Swap};

use crate::support::{FakeServer, Reply};

#[tokio::test]
async fn the_end_of_a_prefix_range() {
    let cluster = match EtcdCluster::start(1).await {
        Ok(cluster) => cluster,
        Err(e) => panic!("{e}"),
    };
    let client = cluster.client().unwrap();
    let keys: [&[u8]; 10] = [
        b"/jh/names/",
        b"/jh/names/a",
        b"/jh/names/\xff",
        b"/jh/names.",
        b"/jh/names0",
        &[b'a', 0xff],
        &[b'a', 0xff, 0xff, 1],
        b"b",
        &[0xff],
        &[0xff, 0xff, 7],
    ];
    for key in keys {
        client.put(key, b"x", None).await.unwrap();
    }
    let under = async |prefix: &[u8]| -> Vec<Vec<u8>> {
        let found = client.get_prefix(prefix).await.unwrap();
        found.into_iter().map(|kv| kv.key).collect()
    };
    // The range ends at `/jh/names0`, which is not in it.
    assert_eq!(
        under(b"/jh/names/").await,
        [&b"/jh/names/"[..], b"/jh/names/a", b"/jh/names/\xff"]
    );
    // A last byte of 0xff carries: the range ends at `b`.
    assert_eq!(
        under(&[b'a', 0xff]).await,
        [&[b'a', 0xff][..], &[b'a', 0xff, 0xff, 1]]
    );
    // Every byte 0xff: the range runs to the end of the key space.
    assert_eq!(under(&[0xff]).await, [&[0xff][..], &[0xff, 0xff, 7]]);
}

#[tokio::test]
async fn a_failed_transaction_has_no_succeeded_field_and_its_range_says_what_is_there() {
    // As etcd 3.4's gateway answers a transaction whose comparison failed.
    let answer = r#"{"header":{"revision":"2"},"responses":[{"response_range":{"header":{"revision":"2"},
        "kvs":[{"key":"aw==","create_revision":"2","mod_revision":"2","version":"1","value":"djE="}],"count":"1"}}]}"#;
    let parsed: serde_json::Value = serde_json::from_str(answer).unwrap();
    assert!(parsed.get("succeeded").is_none());
    let gateway = FakeServer::start(move |_| Reply::json(200, answer)).await;
    let client = EtcdClient::new([gateway.url()]).unwrap();
    let swap = client
        .compare_and_swap(b"k", Expected::Absent, b"v2", None)
        .await
        .unwrap();
    assert_eq!(
        swap,
        Swap::Failed {
            current: Some(KeyValue {
                key: b"k".to_vec(),
                value: b"v1".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                lease: 0,
            })
        }
    );
    assert_eq!(gateway.targets(), ["/v3/kv/txn"]);
}

#[test]
fn bad_endpoints_are_refused_with_the_reason() {
    assert!(matches!(
        EtcdClient::new(Vec::<String>::new()),
        Err(EtcdError::BadEndpoint { .. })
    ));
    let e = EtcdClient::new(["127.0.0.1:2379"]).unwrap_err();
    assert!(e.to_string().contains("127.0.0.1:2379"), "{e}");
}
