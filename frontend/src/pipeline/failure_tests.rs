//! The classification table, row by row: who is blamed, what the client sees, what is retried.

use super::*;

const ALL: [Cause; 17] = [
    Cause::Unreachable,
    Cause::NoFirstEvent,
    Cause::MalformedStream,
    Cause::ContinuationRefused(404),
    Cause::LocalResource,
    Cause::InvalidUrl,
    Cause::FirstByteTimeout(100),
    Cause::ResponseTimeout(100),
    Cause::ServerError(500),
    Cause::ErrorEvent,
    Cause::Reproduced(500),
    Cause::ResponseTooLarge(1024),
    Cause::Truncated,
    Cause::Malformed,
    Cause::Stalled(100),
    Cause::BrokenStream,
    Cause::MidStreamError,
];

#[test]
fn only_worker_caused_failures_count_against_the_instance() {
    for cause in ALL {
        let class = cause.class();
        assert_eq!(
            class.health.is_some(),
            class.origin == Origin::Worker,
            "{cause:?}"
        );
    }
    // The ones a client or the frontend can cause on purpose.
    for cause in [
        Cause::LocalResource,
        Cause::ResponseTimeout(100),
        Cause::Reproduced(500),
        Cause::Reproduced(0),
        Cause::ResponseTooLarge(1),
        Cause::ContinuationRefused(404),
    ] {
        assert_eq!(cause.class().health, None, "{cause:?} blames the instance");
    }
    assert_eq!(
        Cause::FirstByteTimeout(1).class().health,
        Some(Outcome::RequestTimeout)
    );
    assert_eq!(
        Cause::Stalled(1).class().health,
        Some(Outcome::RequestTimeout)
    );
}

#[test]
fn a_5xx_is_confirmed_on_a_second_instance_and_work_already_done_is_not_repeated() {
    assert_eq!(Cause::ServerError(500).class().retry, Retry::Confirm);
    assert_eq!(Cause::ErrorEvent.class().retry, Retry::Confirm);
    assert_eq!(Cause::Unreachable.class().retry, Retry::Yes);
    assert_eq!(Cause::FirstByteTimeout(1).class().retry, Retry::Yes);
    // The worker produced (part of) a response: another instance would redo the work.
    for cause in [
        Cause::Truncated,
        Cause::Malformed,
        Cause::Stalled(1),
        Cause::ResponseTooLarge(1),
        Cause::Reproduced(500),
        Cause::LocalResource,
    ] {
        assert_eq!(cause.class().retry, Retry::No, "{cause:?}");
    }
}

#[test]
fn statuses_and_codes_follow_the_openai_error_shape() {
    let f = |cause| Failure::new(cause, "w1", "engine said: secret internals").to_api_error();
    let e = f(Cause::ServerError(503));
    assert_eq!((e.status, e.code), (503, Some("upstream_error")));
    assert!(e.retry_after.is_some());
    assert_eq!(f(Cause::Reproduced(500)).status, 500);
    assert_eq!(f(Cause::Reproduced(0)).status, 502);
    assert_eq!(f(Cause::Unreachable).status, 502);
    let timeout = f(Cause::FirstByteTimeout(5));
    assert_eq!((timeout.status, timeout.kind), (504, "upstream_timeout"));
    let large = f(Cause::ResponseTooLarge(10));
    assert_eq!(large.code, Some("response_too_large"));
    assert!(
        large.message.contains("max_response_bytes"),
        "{}",
        large.message
    );
    assert_eq!(f(Cause::LocalResource).status, 503);
    assert_eq!(f(Cause::Truncated).code, Some("upstream_truncated"));
    for cause in ALL {
        let e = f(cause);
        assert!((500..600).contains(&e.status), "{cause:?}: {}", e.status);
        assert!(e.message.contains("w1"), "{cause:?}: {}", e.message);
        assert!(
            !e.message.contains("secret internals"),
            "{cause:?} leaks the worker's text: {}",
            e.message
        );
    }
}

#[test]
fn local_resource_exhaustion_anywhere_in_the_chain_is_the_frontends() {
    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("connect failed")
        }
    }
    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
    for errno in [
        libc::EMFILE,
        libc::ENFILE,
        libc::ENOBUFS,
        libc::EADDRNOTAVAIL,
    ] {
        let e = Wrapper(std::io::Error::from_raw_os_error(errno));
        assert_eq!(Cause::of_connect_error(&e), Cause::LocalResource, "{errno}");
    }
    for errno in [libc::ECONNREFUSED, libc::ECONNRESET, libc::EHOSTUNREACH] {
        let e = Wrapper(std::io::Error::from_raw_os_error(errno));
        assert_eq!(Cause::of_connect_error(&e), Cause::Unreachable, "{errno}");
    }
}
