//! etcd discovery end to end: leases, SIGTERM/SIGKILL, fail-static during an outage and the
//! resync afterwards, key prefixes.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;
use switchyard_tests::http::metric;
use switchyard_tests::services::Etcd;

use super::{
    ask, etcd_frontend, eventually, health, ids, instance_count, instance_ids, registered_mocker,
    TOKEN,
};

#[tokio::test]
async fn mocker_registers_in_etcd_and_sigterm_removes_it_at_once() {
    let etcd = Etcd::start().await.unwrap();
    // A long TTL: if the instance disappears well before it, deregistration did it.
    let m1 = registered_mocker(&etcd, "m1", "30", &[]).await;
    let m2 = registered_mocker(&etcd, "m2", "30", &[]).await;
    let fe = etcd_frontend(&etcd, &[]).await;

    let seen = eventually(
        Duration::from_secs(15),
        "both mockers routed to",
        || async {
            let mut ids = std::collections::HashSet::new();
            for i in 0..6 {
                if let (200, Some(id)) = ask(&fe, &format!("hello {i}")).await {
                    ids.insert(id);
                }
            }
            (ids.len() == 2).then_some(ids)
        },
    )
    .await;
    assert!(seen.contains("m1") && seen.contains("m2"), "{seen:?}");

    let t0 = Instant::now();
    m1.signal(Signal::SIGTERM).unwrap();
    eventually(
        Duration::from_secs(5),
        "m1 removed after SIGTERM",
        || async { (instance_count(&fe).await == 1).then_some(()) },
    )
    .await;
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "removal took {:?}: the lease expired instead of being revoked",
        t0.elapsed()
    );
    for i in 0..5 {
        let (status, id) = ask(&fe, &format!("after {i}")).await;
        assert_eq!((status, id.as_deref()), (200, Some("m2")));
    }
    drop(m2);
}

#[tokio::test]
async fn sigkilled_mocker_disappears_after_its_lease_ttl() {
    let etcd = Etcd::start().await.unwrap();
    let m1 = registered_mocker(&etcd, "k1", "3", &[]).await;
    let _m2 = registered_mocker(&etcd, "k2", "3", &[]).await;
    let fe = etcd_frontend(&etcd, &[]).await;
    eventually(Duration::from_secs(15), "two instances", || async {
        (instance_count(&fe).await == 2).then_some(())
    })
    .await;
    let t0 = Instant::now();
    m1.signal(Signal::SIGKILL).unwrap();
    // Nobody revokes the lease: the key goes when the 3 s TTL runs out (etcd checks expiry
    // about every 500 ms), not at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(instance_count(&fe).await, 2, "removed before the TTL");
    eventually(Duration::from_secs(15), "k1 expired", || async {
        (instance_count(&fe).await == 1).then_some(())
    })
    .await;
    assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
    let (status, id) = ask(&fe, "still here").await;
    assert_eq!((status, id.as_deref()), (200, Some("k2")));
}

/// While etcd is away one worker dies and another starts; etcd comes back as a replacement
/// that lost its data (so the dead worker's key is gone without any delete the frontend could
/// watch). The frontend keeps its last set meanwhile, and the resync after the outage must
/// drop the dead worker and add the new one.
#[tokio::test]
async fn etcd_loss_keeps_serving_and_resyncs_after_restart() {
    let mut etcd = Etcd::start().await.unwrap();
    let _e1 = registered_mocker(&etcd, "e1", "5", &[]).await;
    let e3 = registered_mocker(&etcd, "e3", "5", &[]).await;
    // Round-robin, named: the default `kv` policy keeps these prompts' shared prefix on one
    // instance, and the end of this test shows both resynced instances serving.
    let fe = etcd_frontend(&etcd, &["--admin-token", TOKEN, "--policy", "round-robin"]).await;
    eventually(Duration::from_secs(15), "e1 and e3 listed", || async {
        (instance_ids(&fe).await == ids(&["e1", "e3"])).then_some(())
    })
    .await;

    etcd.kill();
    eventually(
        Duration::from_secs(20),
        "discovery reported disconnected",
        || async { (health(&fe).await["discovery"]["connected"] == json!(false)).then_some(()) },
    )
    .await;
    drop(e3); // SIGKILL: it disappears during the outage
    let _e2 = registered_mocker(&etcd, "e2", "5", &[]).await; // registers once etcd is back

    // Fail-static: the last known set stays (e3 too), and requests keep succeeding (the ones
    // ranked onto the dead e3 are retried on e1).
    assert_eq!(instance_ids(&fe).await, ids(&["e1", "e3"]));
    for i in 0..6 {
        let (status, id) = ask(&fe, &format!("during outage {i}")).await;
        assert_eq!((status, id.as_deref()), (200, Some("e1")), "request {i}");
    }
    assert_eq!(
        metric(&fe.url(), "switchyard_discovery_connected").await,
        0.0
    );

    etcd.restart_wiped().await.unwrap();
    eventually(
        Duration::from_secs(30),
        "resync after etcd restart: e3 gone, e2 added, e1 re-registered",
        || async {
            let connected = health(&fe).await["discovery"]["connected"] == json!(true);
            (connected && instance_ids(&fe).await == ids(&["e1", "e2"])).then_some(())
        },
    )
    .await;
    assert_eq!(
        metric(&fe.url(), "switchyard_discovery_connected").await,
        1.0
    );
    let mut served = std::collections::BTreeSet::new();
    for i in 0..6 {
        let (status, id) = ask(&fe, &format!("after restart {i}")).await;
        assert_eq!(status, 200);
        served.extend(id);
    }
    assert_eq!(served, ids(&["e1", "e2"]), "round-robin reaches both");
}

/// `--etcd-prefix` on both sides: a frontend sees only the instances under its prefix.
#[tokio::test]
async fn an_etcd_prefix_separates_deployments_on_one_etcd() {
    let etcd = Etcd::start().await.unwrap();
    let _blue = registered_mocker(&etcd, "blue-1", "10", &["--etcd-prefix", "/blue/"]).await;
    let _default = registered_mocker(&etcd, "default-1", "10", &[]).await;
    let fe = etcd_frontend(&etcd, &["--etcd-prefix", "/blue/", "--admin-token", TOKEN]).await;
    eventually(Duration::from_secs(15), "blue-1 listed", || async {
        (instance_ids(&fe).await == ids(&["blue-1"])).then_some(())
    })
    .await;
    for i in 0..4 {
        let (status, id) = ask(&fe, &format!("blue {i}")).await;
        assert_eq!((status, id.as_deref()), (200, Some("blue-1")));
    }
    // The default prefix still works for everyone else.
    let plain = etcd_frontend(&etcd, &["--admin-token", TOKEN]).await;
    eventually(Duration::from_secs(15), "default-1 listed", || async {
        (instance_ids(&plain).await == ids(&["default-1"])).then_some(())
    })
    .await;
}
