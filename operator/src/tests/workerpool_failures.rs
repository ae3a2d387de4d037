//! Every failed step of a WorkerPool reconcile shows up on the pool: a `Reconciled=False`
//! condition naming the step, and a Warning Event — through the mocked API.

use std::sync::Arc;

use serde_json::Value;

use crate::failure::{APPLIED, RECONCILED};
use crate::fixtures::*;
use crate::workerpool::reconcile;

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

#[tokio::test]
async fn each_failed_step_becomes_a_condition_and_an_event() {
    // (failing call index, condition/Event reason)
    let steps = [
        (0, "DeploymentApplyFailed"),
        (1, "ServiceApplyFailed"),
        (2, "EndpointSliceListFailed"),
        (3, "StatusUpdateFailed"),
    ];
    for (failing, reason) in steps {
        let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
        let handle = api.run(Scenario::pool_fails(deploy_status(2, 2), failing, 422));
        let err = reconcile(Arc::new(pool("llama")), ctx).await.unwrap_err();
        let calls = finish(handle).await;
        let event = calls.last().unwrap();
        assert_eq!(event.body["type"], "Warning", "{reason}");
        assert_eq!(event.body["reason"], reason);
        assert_eq!(event.body["regarding"]["kind"], "WorkerPool");
        assert_eq!(event.body["regarding"]["name"], "llama");
        assert_eq!(event.body["reportingController"], "switchyard-operator");
        let note = event.body["note"].as_str().unwrap();
        assert!(
            note.contains("422"),
            "the note carries the API error: {note}"
        );
        assert!(err.to_string().contains("422"), "{err}");
        if failing == 3 {
            continue; // writing status is what failed: only the Event
        }
        let status = &calls[calls.len() - 2].body["status"];
        let c = condition(status, RECONCILED);
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str()),
            (Some("False"), Some(reason))
        );
    }
}

#[tokio::test]
async fn a_successful_reconcile_reports_reconciled_true() {
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), vec![]));
    reconcile(Arc::new(pool("llama")), ctx).await.unwrap();
    let calls = finish(handle).await;
    let c = condition(&calls[3].body["status"], RECONCILED);
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("True"), Some(APPLIED))
    );
}
