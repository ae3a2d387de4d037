//! The simulated GPU worker behind `switchyard mocker` (work in progress).
#![forbid(unsafe_code)]
