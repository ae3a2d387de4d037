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
        .all()
        .into_iter()
        .filter(|a| routable.binary_search(&a.base_model).is_ok())
        .filter(|a| routable.binary_search(&a.name).is_err())
        .filter(|a| tenant.is_none_or(|t| t.allows_model(&a.name)))
        .map(|a| (a.name.clone(), a.base_model.clone()))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_runtime::lora::AdapterSpec;

    #[test]
    fn adapters_of_routable_base_models_are_listed_sorted() {
        let spec = |name: &str, base: &str| AdapterSpec {
            name: name.into(),
            base_model: base.into(),
            source: "/a".into(),
            on_demand: false,
        };
        let catalog = Catalog::new(&[
            spec("zeta", "llama"),
            spec("alpha", "llama"),
            spec("orphan", "gone"),
            spec("served", "llama"),
        ]);
        let routable = ["llama".to_owned(), "served".to_owned()];
        assert_eq!(
            listed(&catalog, &routable, None),
            [
                ("alpha".to_owned(), "llama".to_owned()),
                ("zeta".to_owned(), "llama".to_owned())
            ],
            "no adapter without a routable base, none shadowed by a served model"
        );
    }
}
