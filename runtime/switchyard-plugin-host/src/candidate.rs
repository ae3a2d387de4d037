//! The `candidate` record of WIT 0.1.0, with a fast path for lowering a whole list of them.
//! (0.2.0 plugins get the same data as columns, built in `frame.rs` without any of this.)
//!
//! Every filter, scorer and picker call passes `list<candidate>` into the guest. wasmtime's
//! derived lowering stores a record field by field, and each store re-resolves the guest's
//! linear memory (`options_memory_mut`): at 512 candidates that was ~22 µs per call, about
//! two thirds of the whole decision. This type is what `bindgen!` uses for `candidate`
//! (its `with` option): single values lower through a derived twin ([`Wire`]), while
//! [`Lower::linear_store_list_to_memory`] resolves the memory once and writes every record
//! with plain little-endian stores at the canonical-ABI offsets.
//!
//! Type checking against the component is the derived twin's, so a WIT change that moves a
//! field fails at load time rather than writing garbage; the tests lower both ways and
//! compare bytes through a real component.
#![allow(unsafe_code)] // `ComponentType` and `Lower` are unsafe traits; see the SAFETY notes.

use serde::{Deserialize, Serialize};
use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentType, Lower};

use crate::bindings::Health;

/// One instance that could serve the current request (see `wit/v0.2/plugin.wit` for each
/// field). The fields added in 0.2.0 (`running`, `adapter_resident`) reach only 0.2.0
/// plugins, and default when a recorded 0.1 trace is read back.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: u32,
    pub in_flight: u32,
    pub queued: u32,
    pub kv_usage: f32,
    pub cached_prefix_blocks: u32,
    pub ttft_ewma_ms: f32,
    pub itl_ewma_ms: f32,
    pub health: Health,
    pub weight: f32,
    #[serde(default)]
    pub running: u32,
    #[serde(default)]
    pub adapter_resident: bool,
}

/// The derived canonical-ABI shape of `candidate`, field for field. (`pub` only because it
/// names `Candidate`'s flat lowering type; the module is private.)
#[derive(Clone, Copy, ComponentType, Lower)]
#[component(record)]
#[doc(hidden)]
pub struct Wire {
    #[component(name = "id")]
    id: u32,
    #[component(name = "in-flight")]
    in_flight: u32,
    #[component(name = "queued")]
    queued: u32,
    #[component(name = "kv-usage")]
    kv_usage: f32,
    #[component(name = "cached-prefix-blocks")]
    cached_prefix_blocks: u32,
    #[component(name = "ttft-ewma-ms")]
    ttft_ewma_ms: f32,
    #[component(name = "itl-ewma-ms")]
    itl_ewma_ms: f32,
    #[component(name = "health")]
    health: Health,
    #[component(name = "weight")]
    weight: f32,
}

impl From<&Candidate> for Wire {
    fn from(c: &Candidate) -> Self {
        Self {
            id: c.id,
            in_flight: c.in_flight,
            queued: c.queued,
            kv_usage: c.kv_usage,
            cached_prefix_blocks: c.cached_prefix_blocks,
            ttft_ewma_ms: c.ttft_ewma_ms,
            itl_ewma_ms: c.itl_ewma_ms,
            health: c.health,
            weight: c.weight,
        }
    }
}

/// Canonical-ABI layout of the record: eight 4-byte fields and a one-byte enum, aligned to 4.
const SIZE: usize = 36;
const HEALTH_OFFSET: usize = 28;
const WEIGHT_OFFSET: usize = 32;
const _: () = assert!(<Wire as ComponentType>::ABI.size32 as usize == SIZE);
const _: () = assert!(<Wire as ComponentType>::ABI.align32 == 4);

fn health_discriminant(health: Health) -> u8 {
    // The WIT order of `enum health`.
    match health {
        Health::Healthy => 0,
        Health::Degraded => 1,
        Health::Unhealthy => 2,
    }
}

// SAFETY: every item is the derived twin's, whose fields have the same types and names.
unsafe impl ComponentType for Candidate {
    type Lower = <Wire as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <Wire as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Wire as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: single values are lowered by the derived twin; the list path writes only inside the
// bounds-checked slice the list was allocated at, with the layout asserted above.
unsafe impl Lower for Candidate {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut std::mem::MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        Wire::from(self).linear_lower_to_flat(cx, ty, dst)
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        Wire::from(self).linear_lower_to_memory(cx, ty, offset)
    }

    fn linear_store_list_to_memory<T>(
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        offset: usize,
        items: &[Self],
    ) -> wasmtime::Result<()> {
        let len = items.len() * SIZE;
        let Some(memory) = cx.as_slice_mut().get_mut(offset..offset + len) else {
            wasmtime::bail!("candidate list out of the guest's memory bounds");
        };
        for (dst, c) in memory.chunks_exact_mut(SIZE).zip(items) {
            let words = [
                c.id.to_le_bytes(),
                c.in_flight.to_le_bytes(),
                c.queued.to_le_bytes(),
                c.kv_usage.to_le_bytes(),
                c.cached_prefix_blocks.to_le_bytes(),
                c.ttft_ewma_ms.to_le_bytes(),
                c.itl_ewma_ms.to_le_bytes(),
            ];
            dst[..HEALTH_OFFSET].copy_from_slice(words.as_flattened());
            // The three padding bytes after the discriminant are written too (as zero) so
            // the guest never sees stale bytes from an earlier call.
            dst[HEALTH_OFFSET..WEIGHT_OFFSET].copy_from_slice(&[
                health_discriminant(c.health),
                0,
                0,
                0,
            ]);
            dst[WEIGHT_OFFSET..].copy_from_slice(&c.weight.to_le_bytes());
        }
        Ok(())
    }
}
