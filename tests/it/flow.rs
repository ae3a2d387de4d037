//! Flow control (#12 item 2): with every instance at its in-flight threshold, requests wait
//! in the frontend and are served as room appears, instead of being shed at once; a
//! request whose deadline passes first is answered 503 with `Retry-After`.

use std::time::{Duration, Instant};

use switchyard_tests::http::{metric, post_json};
use switchyard_tests::{frontend_with_config, mocker, worker_flags};

use crate::{chat, MODEL};

#[tokio::test]
async fn requests_wait_for_room_instead_of_being_shed() {
    // One slow instance that takes one request at a time.
    let m = mocker(&["--itl-ms", "20"]).await.unwrap();
    let yaml = "overload:\n  max_in_flight_per_instance: 1\nflow_control:\n  enabled: true\n  max_wait_ms: 60000\n";
    let (fe, _dir) = frontend_with_config(yaml, &worker_flags(MODEL, &[&m]))
        .await
        .unwrap();
    let url = format!("{}/v1/chat/completions", fe.url());
    let waiting: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                post_json(&url, &chat(&format!("wait {i}"), 20, false), &[])
                    .await
                    .unwrap()
            })
        })
        .collect();
    let depth = "switchyard_flow_queue_depth{band=\"normal\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&fe.url(), depth).await < 1.0 {
        assert!(Instant::now() < deadline, "nothing ever queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Someone is waiting: a request that may wait 1 ms is answered at its deadline.
    let (status, headers, body) = post_json(
        &url,
        &chat("impatient", 2, false),
        &[("x-switchyard-deadline-ms", "1")],
    )
    .await
    .unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));
    for w in waiting {
        let (status, _, body) = w.await.unwrap();
        assert_eq!(status, 200, "a waiting request was not served: {body}");
    }
    assert_eq!(metric(&fe.url(), depth).await, 0.0);
    assert_eq!(
        metric(
            &fe.url(),
            "switchyard_flow_queue_timeouts_total{band=\"normal\"}"
        )
        .await,
        1.0
    );
}
