//! The exports of one instance, for either WIT version: export indices resolved once per
//! component, the loaded functions per instance, and one call per plugin operation that
//! hides which version answers (0.1 takes `list<candidate>`, 0.2 a frame of columns).

use wasmtime::component::{Instance, InstancePre};
use wasmtime::Store;

use crate::bindings_v02::types::Frame;
use crate::host_state::HostState;
use crate::{frame, Candidate, Error, Observation, PluginKind, Request, Result, Topology};
use crate::{Verdict, WitVersion};

/// Index and function structs for one generated bindings module (they have the same shape).
macro_rules! version_exports {
    ($indices:ident, $guests:ident, $bindings:ident) => {
        pub(crate) struct $indices {
            lifecycle: crate::$bindings::lifecycle::GuestIndices,
            filtering: Option<crate::$bindings::filtering::GuestIndices>,
            scoring: Option<crate::$bindings::scoring::GuestIndices>,
            picking: Option<crate::$bindings::picking::GuestIndices>,
            health: Option<crate::$bindings::health_assessment::GuestIndices>,
        }

        pub(crate) struct $guests {
            lifecycle: crate::$bindings::lifecycle::Guest,
            filtering: Option<crate::$bindings::filtering::Guest>,
            scoring: Option<crate::$bindings::scoring::Guest>,
            picking: Option<crate::$bindings::picking::Guest>,
            health: Option<crate::$bindings::health_assessment::Guest>,
        }

        impl $indices {
            fn new(pre: &InstancePre<HostState>, kinds: &[PluginKind]) -> Result<Self> {
                use crate::$bindings::{filtering, health_assessment, lifecycle, picking, scoring};
                let lookup = |e: wasmtime::Error| Error::NotAPlugin(format!("{e:#}"));
                let has = |k| kinds.contains(&k);
                Ok(Self {
                    lifecycle: lifecycle::GuestIndices::new(pre).map_err(lookup)?,
                    filtering: has(PluginKind::Filter)
                        .then(|| filtering::GuestIndices::new(pre))
                        .transpose()
                        .map_err(lookup)?,
                    scoring: has(PluginKind::Scorer)
                        .then(|| scoring::GuestIndices::new(pre))
                        .transpose()
                        .map_err(lookup)?,
                    picking: has(PluginKind::Picker)
                        .then(|| picking::GuestIndices::new(pre))
                        .transpose()
                        .map_err(lookup)?,
                    health: has(PluginKind::HealthPolicy)
                        .then(|| health_assessment::GuestIndices::new(pre))
                        .transpose()
                        .map_err(lookup)?,
                })
            }

            fn load(
                &self,
                store: &mut Store<HostState>,
                instance: &Instance,
            ) -> wasmtime::Result<$guests> {
                Ok($guests {
                    lifecycle: self.lifecycle.load(&mut *store, instance)?,
                    filtering: self
                        .filtering
                        .as_ref()
                        .map(|i| i.load(&mut *store, instance))
                        .transpose()?,
                    scoring: self
                        .scoring
                        .as_ref()
                        .map(|i| i.load(&mut *store, instance))
                        .transpose()?,
                    picking: self
                        .picking
                        .as_ref()
                        .map(|i| i.load(&mut *store, instance))
                        .transpose()?,
                    health: self
                        .health
                        .as_ref()
                        .map(|i| i.load(&mut *store, instance))
                        .transpose()?,
                })
            }
        }
    };
}

version_exports!(IndicesV01, GuestsV01, bindings);
version_exports!(IndicesV02, GuestsV02, bindings_v02);

/// Export indices resolved once per component, so instantiation only looks them up.
pub(crate) enum ExportIndices {
    V01(IndicesV01),
    V02(IndicesV02),
}

impl ExportIndices {
    pub(crate) fn new(
        pre: &InstancePre<HostState>,
        version: WitVersion,
        kinds: &[PluginKind],
    ) -> Result<Self> {
        Ok(match version {
            WitVersion::V0_1 => Self::V01(IndicesV01::new(pre, kinds)?),
            WitVersion::V0_2 => Self::V02(IndicesV02::new(pre, kinds)?),
        })
    }

    pub(crate) fn load(
        &self,
        store: &mut Store<HostState>,
        instance: &Instance,
    ) -> wasmtime::Result<Exports> {
        Ok(match self {
            Self::V01(ix) => Exports::V01(ix.load(store, instance)?),
            Self::V02(ix) => Exports::V02(Box::new((ix.load(store, instance)?, frame::empty()))),
        })
    }
}

/// Exported functions of one instance. A 0.2 instance also owns the frame it refills on
/// every call, so building one allocates nothing once its columns have grown.
pub(crate) enum Exports {
    V01(GuestsV01),
    V02(Box<(GuestsV02, Frame)>),
}

/// The outcome of a decision call: `Err` when the component lacks the kind, else wasmtime's.
type Call<T> = Result<wasmtime::Result<T>>;

impl Exports {
    pub(crate) fn configure(
        &self,
        store: &mut Store<HostState>,
        config: &str,
    ) -> wasmtime::Result<std::result::Result<(), String>> {
        match self {
            Self::V01(g) => g.lifecycle.call_configure(store, config),
            Self::V02(g) => g.0.lifecycle.call_configure(store, config),
        }
    }

    pub(crate) fn on_topology(
        &self,
        store: &mut Store<HostState>,
        topology: &Topology,
    ) -> wasmtime::Result<()> {
        match self {
            Self::V01(g) => g.lifecycle.call_on_topology(store, topology),
            Self::V02(g) => {
                g.0.lifecycle
                    .call_on_topology(store, &frame::topology(topology))
            }
        }
    }

    pub(crate) fn filter(
        &mut self,
        store: &mut Store<HostState>,
        request: &Request,
        candidates: &[Candidate],
    ) -> Call<Vec<u32>> {
        let missing = || Error::KindNotImplemented(PluginKind::Filter);
        match self {
            Self::V01(g) => {
                let f = g.filtering.as_ref().ok_or_else(missing)?;
                Ok(f.call_filter(store, request.into(), candidates))
            }
            Self::V02(g) => {
                let (g, columns) = &mut **g;
                let f = g.filtering.as_ref().ok_or_else(missing)?;
                frame::fill(columns, candidates);
                Ok(f.call_filter(store, frame::request(request), columns))
            }
        }
    }

    pub(crate) fn score(
        &mut self,
        store: &mut Store<HostState>,
        request: &Request,
        candidates: &[Candidate],
    ) -> Call<Vec<f64>> {
        let missing = || Error::KindNotImplemented(PluginKind::Scorer);
        match self {
            Self::V01(g) => {
                let f = g.scoring.as_ref().ok_or_else(missing)?;
                Ok(f.call_score(store, request.into(), candidates))
            }
            Self::V02(g) => {
                let (g, columns) = &mut **g;
                let f = g.scoring.as_ref().ok_or_else(missing)?;
                frame::fill(columns, candidates);
                Ok(f.call_score(store, frame::request(request), columns))
            }
        }
    }

    pub(crate) fn pick(
        &mut self,
        store: &mut Store<HostState>,
        request: &Request,
        candidates: &[Candidate],
    ) -> Call<Vec<u32>> {
        let missing = || Error::KindNotImplemented(PluginKind::Picker);
        match self {
            Self::V01(g) => {
                let f = g.picking.as_ref().ok_or_else(missing)?;
                Ok(f.call_pick(store, request.into(), candidates))
            }
            Self::V02(g) => {
                let (g, columns) = &mut **g;
                let f = g.picking.as_ref().ok_or_else(missing)?;
                frame::fill(columns, candidates);
                Ok(f.call_pick(store, frame::request(request), columns))
            }
        }
    }

    pub(crate) fn assess(
        &self,
        store: &mut Store<HostState>,
        observations: &[Observation],
    ) -> Call<Vec<Verdict>> {
        let missing = || Error::KindNotImplemented(PluginKind::HealthPolicy);
        match self {
            Self::V01(g) => {
                let f = g.health.as_ref().ok_or_else(missing)?;
                Ok(f.call_assess(store, observations))
            }
            Self::V02(g) => {
                let f = g.0.health.as_ref().ok_or_else(missing)?;
                Ok(f.call_assess(store, &frame::observations(observations))
                    .map(frame::verdicts))
            }
        }
    }
}
