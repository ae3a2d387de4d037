//! The adapters `/v1/models` lists.

use switchyard_runtime::lora::Catalog;

use crate::tenants::Tenant;

/// `(adapter, base model)` for every adapter whose base model is in `routable` (sorted) and
/// that is not itself a served model, sorted by name; a tenant sees only adapters it may use.
pub fn listed(
    catalog: &Catalog,
    routable: &[String],
    tenant: Option<&Tenant>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = catalog
        .iter()
        .filter(|a| routable.binary_search(&a.base_model).is_ok())
        .filter(|a| routable.binary_search(&a.name).is_err())
        .filter(|a| tenant.is_none_or(|t| t.allows_model(&a.name)))
        .map(|a| (a.name.clone(), a.base_model.clone()))
        .collect();
    out.sort();
    out
}
