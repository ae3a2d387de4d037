//! The linker every component is instantiated with: the plugin world's host functions and
//! an empty WASI. Shared by the plugin host and kind detection, which both depend on it
//! (and not on each other).

use wasmtime::component::{HasSelf, Linker};
use wasmtime::Engine;

use crate::bindings::Router;
use crate::host_state::HostState;
use crate::{Error, Result};

pub(crate) fn build_linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    let setup = |e: wasmtime::Error| Error::Host(format!("linker setup: {e:#}"));
    // Both WIT versions' imports: a 0.1.0 and a 0.2.0 component load into the same linker.
    Router::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
        .map_err(setup)?;
    crate::bindings_v02::Router::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |state| state,
    )
    .map_err(setup)?;
    // Python and JS runtimes import WASI; the context they get grants nothing.
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(setup)?;
    crate::wasi_nonblocking::shadow_blocking_calls(&mut linker).map_err(setup)?;
    Ok(linker)
}
