//! WASI that never blocks the thread making a decision.
//!
//! Plugins run synchronously on whatever thread asks for a decision: in the frontend, the tokio
//! worker serving the request. wasmtime-wasi's synchronous bindings implement every WASI call
//! that may wait (`wasi:io/poll`, the `blocking-*` stream methods, the stream destructors, a few
//! socket calls) by blocking on a tokio runtime. On a tokio worker thread that panics — a
//! `print()` in a Python plugin would take the request down with it — and anywhere else it
//! parks the thread where the epoch deadline cannot interrupt it.
//!
//! This module shadows exactly those calls (the ones wasmtime-wasi's own bindings mark
//! `async`) with versions that complete only what is ready now. A write to stdout/stderr (which
//! discard their bytes) succeeds; a zero-length wait succeeds; anything that would really wait —
//! a sleep, a read from stdin — traps with a message saying decisions must not block, which
//! the host reports as a plugin fault. Sockets are refused outright: no network is granted, and
//! their setup calls are among the blocking ones.

use std::future::Future;
use std::pin::pin;

use wasmtime::component::{Linker, LinkerInstance, Resource, ResourceTable, ResourceType};
use wasmtime::StoreContextMut;
use wasmtime_wasi::p2::bindings::io::{poll as async_poll, streams as async_streams};
use wasmtime_wasi::p2::bindings::sync::io::streams as wit_streams;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamResult};
use wasmtime_wasi::runtime::{poll_noop, with_ambient_tokio_runtime};

use async_poll::HostPollable as _;
use async_streams::{HostInputStream, HostOutputStream};

use crate::host_state::HostState;

/// The WASI 0.2 version wasmtime-wasi 48 defines its interfaces at. Guests importing any 0.2.x
/// resolve to these definitions (semver matching), so shadowing these names covers them all.
/// The wasmtime pin (`=48.0.8`) keeps it in step; the `wasi_sandbox` tests fail if it drifts.
const WASI: &str = "0.2.12";

type WitStreamResult<T> = Result<T, wit_streams::StreamError>;

/// Replaces wasmtime-wasi's blocking implementations in `linker` (which already holds all of
/// WASI) with the non-blocking ones.
pub(crate) fn shadow_blocking_calls(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    poll(&mut linker.instance(&format!("wasi:io/poll@{WASI}"))?)?;
    streams(&mut linker.instance(&format!("wasi:io/streams@{WASI}"))?)?;
    for (interface, calls) in [
        ("tcp-create-socket", &["create-tcp-socket"][..]),
        ("udp-create-socket", &["create-udp-socket"]),
        ("ip-name-lookup", &["resolve-addresses"]),
    ] {
        let mut instance = linker.instance(&format!("wasi:sockets/{interface}@{WASI}"))?;
        for &call in calls {
            instance.func_new(call, move |_, _, _, _| {
                wasmtime::bail!("the plugin called wasi:sockets {call}: plugins have no network")
            })?;
        }
    }
    linker.allow_shadowing(false);
    Ok(())
}

fn poll(instance: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    instance.func_wrap(
        "poll",
        |mut store, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let ready = without_waiting(async_poll::Host::poll(table(&mut store), pollables));
            Ok((ready.ok_or_else(|| would_block("wasi:io/poll.poll"))??,))
        },
    )?;
    instance.func_wrap(
        "[method]pollable.block",
        |mut store, (pollable,): (Resource<DynPollable>,)| {
            let done = without_waiting(table(&mut store).block(pollable));
            done.ok_or_else(|| would_block("wasi:io/poll.pollable.block"))?
        },
    )?;
    // Never blocks by contract, but wasmtime-wasi still runs it through a runtime.
    instance.func_wrap(
        "[method]pollable.ready",
        |mut store, (pollable,): (Resource<DynPollable>,)| {
            let ready = without_waiting(table(&mut store).ready(pollable));
            Ok((ready.ok_or_else(|| would_block("wasi:io/poll.pollable.ready"))??,))
        },
    )
}

fn streams(instance: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    instance.func_wrap(
        "[method]output-stream.blocking-write-and-flush",
        |mut store, (stream, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
            let table = table(&mut store);
            let done = without_waiting(table.blocking_write_and_flush(stream, bytes));
            stream_result(table, done, "output-stream.blocking-write-and-flush")
        },
    )?;
    instance.func_wrap(
        "[method]output-stream.blocking-write-zeroes-and-flush",
        |mut store, (stream, len): (Resource<DynOutputStream>, u64)| {
            let table = table(&mut store);
            let done = without_waiting(table.blocking_write_zeroes_and_flush(stream, len));
            stream_result(table, done, "output-stream.blocking-write-zeroes-and-flush")
        },
    )?;
    instance.func_wrap(
        "[method]output-stream.blocking-flush",
        |mut store, (stream,): (Resource<DynOutputStream>,)| {
            let table = table(&mut store);
            let done = without_waiting(table.blocking_flush(stream));
            stream_result(table, done, "output-stream.blocking-flush")
        },
    )?;
    instance.func_wrap(
        "[method]output-stream.blocking-splice",
        |mut store, (dst, src, len): (Resource<DynOutputStream>, Resource<DynInputStream>, u64)| {
            let table = table(&mut store);
            let done = without_waiting(table.blocking_splice(dst, src, len));
            stream_result(table, done, "output-stream.blocking-splice")
        },
    )?;
    instance.func_wrap(
        "[method]input-stream.blocking-read",
        |mut store, (stream, len): (Resource<DynInputStream>, u64)| {
            let table = table(&mut store);
            let done = without_waiting(table.blocking_read(stream, len));
            stream_result(table, done, "input-stream.blocking-read")
        },
    )?;
    instance.func_wrap(
        "[method]input-stream.blocking-skip",
        |mut store, (stream, len): (Resource<DynInputStream>, u64)| {
            let table = table(&mut store);
            let done = without_waiting(table.blocking_skip(stream, len));
            stream_result(table, done, "input-stream.blocking-skip")
        },
    )?;
    // Destructors: the stream leaves the table before the first await, so a cancellation that
    // is not finished at once is simply dropped with it.
    instance.resource(
        "output-stream",
        ResourceType::host::<DynOutputStream>(),
        |mut store, rep| {
            let stream = Resource::<DynOutputStream>::new_own(rep);
            let dropped = without_waiting(HostOutputStream::drop(table(&mut store), stream));
            dropped.unwrap_or(Ok(()))
        },
    )?;
    instance.resource(
        "input-stream",
        ResourceType::host::<DynInputStream>(),
        |mut store, rep| {
            let stream = Resource::<DynInputStream>::new_own(rep);
            let dropped = without_waiting(HostInputStream::drop(table(&mut store), stream));
            dropped.unwrap_or(Ok(()))
        },
    )
}

fn table<'a>(store: &'a mut StoreContextMut<'_, HostState>) -> &'a mut ResourceTable {
    store.data_mut().table()
}

/// Polls `future` without waiting for it. Twice, because a zero-length wait yields to the
/// runtime once before it reports ready; outside the coop budget, so a busy task's exhausted
/// budget never looks like a wait. `None`: it would have to wait.
fn without_waiting<F: Future>(future: F) -> Option<F::Output> {
    with_ambient_tokio_runtime(|| {
        let mut future = pin!(tokio::task::unconstrained(future));
        poll_noop(future.as_mut()).or_else(|| poll_noop(future.as_mut()))
    })
}

fn would_block(call: &str) -> wasmtime::Error {
    wasmtime::format_err!(
        "the plugin called {call}, which would block: decisions must not wait \
         (no sleeping, polling or blocking I/O)"
    )
}

/// A finished stream call as the WIT result; an unfinished one (or a trapping stream error)
/// as a trap.
fn stream_result<T>(
    table: &mut ResourceTable,
    done: Option<StreamResult<T>>,
    call: &str,
) -> wasmtime::Result<(WitStreamResult<T>,)> {
    match done {
        None => Err(would_block(&format!("wasi:io/streams {call}"))),
        Some(Ok(value)) => Ok((Ok(value),)),
        Some(Err(e)) => {
            let e = <ResourceTable as wit_streams::Host>::convert_stream_error(table, e)?;
            Ok((Err(e),))
        }
    }
}
