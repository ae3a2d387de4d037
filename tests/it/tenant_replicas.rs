//! Tenant limits shared by two frontend replicas through a real nats-server (#12, item 3):
//! each replica publishes what each tenant asked of it and takes a fair share of the limit,
//! instead of the static `limit / replicas`.

use std::time::{Duration, Instant};

use switchyard_tests::http::metric;
use switchyard_tests::services::Nats;
use switchyard_tests::{frontend, mocker, worker_flags, Proc};

use crate::distributed::eventually;
use crate::tenants::{chat_as, sha256_hex};
use crate::{chat, MODEL};

const KEY: &str = "sk-shared";

struct Pair {
    a: Proc,
    b: Proc,
    _mocker: Proc,
    _nats: Nats,
    _dir: tempfile::TempDir,
}

/// NATS, a mocker and two frontends sharing one tenant with `limits`, once each folds the
/// other's usage reports into its limits.
async fn pair(limits: &str) -> Pair {
    let nats = Nats::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenants.yaml");
    let yaml = format!(
        "- id: shared\n  key_sha256: {}\n  limits: {limits}\n",
        sha256_hex(KEY)
    );
    std::fs::write(&path, yaml).unwrap();
    let m = mocker(&[]).await.unwrap();
    let mut flags = worker_flags(MODEL, &[&m]);
    flags.extend([
        "--tenants".to_owned(),
        path.display().to_string(),
        "--nats".to_owned(),
        nats.url(),
    ]);
    let a = frontend(&flags).await.unwrap();
    let b = frontend(&flags).await.unwrap();
    for fe in [&a, &b] {
        eventually(
            Duration::from_secs(20),
            "replicas fold each other's usage reports",
            || async {
                let n = metric(&fe.url(), "switchyard_tenant_usage_replicas").await;
                (n == 2.0).then_some(())
            },
        )
        .await;
    }
    Pair {
        a,
        b,
        _mocker: m,
        _nats: nats,
        _dir: dir,
    }
}

/// `(limit, remaining)` of the request bucket this replica enforces, read from a
/// `GET /v1/models` (which carries the headers and takes nothing from the bucket).
async fn request_window(fe: &Proc) -> (u64, u64) {
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/models", fe.url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let header = |name: &str| -> u64 {
        resp.headers()[name]
            .to_str()
            .unwrap()
            .parse()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    (
        header("x-ratelimit-limit-requests"),
        header("x-ratelimit-remaining-requests"),
    )
}

#[tokio::test]
async fn a_replica_with_all_the_traffic_gets_the_whole_limit_once_its_peer_reports_idle() {
    // The static split would cap each replica at a bucket of 20 refilled at 10/s.
    let p = pair("{requests_per_second: 20, burst: 40}").await;
    assert_eq!(request_window(&p.a).await.0, 20, "an even split while idle");
    let body = chat("hi", 2, false);
    // A trickle through `a` only (demand there, none on `b`): `a` takes the whole limit
    // and its bucket fills beyond the half the static split allows.
    let (limit, remaining) = eventually(
        Duration::from_secs(30),
        "replica a's bucket fills beyond half the burst",
        || async {
            let (status, _, _) = chat_as(&p.a, KEY, &body).await;
            assert_eq!(status, 200, "{}", p.a.log_text());
            let (limit, remaining) = request_window(&p.a).await;
            (limit == 40 && remaining > 30).then_some((limit, remaining))
        },
    )
    .await;
    // That burst is really served.
    let mut ok = 0;
    for _ in 0..remaining {
        let (status, _, _) = chat_as(&p.a, KEY, &body).await;
        ok += u64::from(status == 200);
    }
    eprintln!("replica a alone: {ok} of {remaining} served (limit {limit})");
    assert!(
        ok > 20,
        "{ok} of {remaining} (limit {limit}) served on replica a alone; the static split allows 20"
    );
    // The idle replica keeps only a small share meanwhile.
    assert!(
        request_window(&p.b).await.0 < 20,
        "{:?}",
        request_window(&p.b).await
    );
}

#[tokio::test]
async fn two_busy_replicas_together_stay_within_the_limit() {
    // A slow rate and a large burst: the count is dominated by the burst, which
    // unshared replicas would each hand out whole (80 together).
    let (rate, burst) = (2.0, 40.0);
    let p = pair("{requests_per_second: 2, burst: 40}").await;
    let body = chat("hi", 2, false);
    let start = Instant::now();
    let mut load = tokio::task::JoinSet::new();
    for fe in [&p.a, &p.b] {
        for _ in 0..4 {
            let (url, body) = (fe.url(), body.clone());
            load.spawn(async move {
                let client = reqwest::Client::new();
                let mut ok = 0u32;
                // Enough refusals that the flood spans several usage windows.
                for _ in 0..250 {
                    let resp = client
                        .post(format!("{url}/v1/chat/completions"))
                        .bearer_auth(KEY)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    ok += u32::from(resp.status() == 200);
                }
                ok
            });
        }
    }
    let mut ok = 0;
    while let Some(n) = load.join_next().await {
        ok += n.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    eprintln!("two busy replicas: {ok} of 2000 admitted in {elapsed:.2} s");
    // docs/tenants.md: shares add up to at most 1.1 × the limit, and while shares move a
    // replica may hold up to one window's refill (0.25 s) beyond it.
    let bound = 1.1 * (burst + rate * elapsed) + rate * 0.5;
    assert!(
        f64::from(ok) <= bound,
        "{ok} of 2000 requests admitted in {elapsed:.1} s; bound {bound:.1}"
    );
    assert!(f64::from(ok) >= burst / 2.0, "{ok}: not even one share");
}
