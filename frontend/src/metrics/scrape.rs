//! The families read at scrape time: one collector per [`App`], registered in its metrics
//! registry, that asks each subsystem for its figures. The collector holds the app weakly
//! (the app owns the registry), so a dropped app simply stops reporting.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use switchyard_runtime::clock::now_ns;
use switchyard_runtime::exposition::{Scrape, ScrapeCollector};
use switchyard_runtime::Registry;

use super::names;
use crate::app::App;
use crate::conn_limits::Refusal;

/// Registers the scrape-time collector of `app` in its own registry.
pub fn register(app: &Arc<App>) -> prometheus::Result<()> {
    let weak: Weak<App> = Arc::downgrade(app);
    let collector = ScrapeCollector::new(names::SCRAPED, move |s| {
        if let Some(app) = weak.upgrade() {
            collect(&app, s);
        }
    })?;
    app.metrics.registry.register(Box::new(collector))
}

fn collect(app: &App, s: &mut Scrape) {
    let metrics = &app.metrics;
    s.family(&names::QUEUED)
        .value(&[], metrics.queued.load(Relaxed) as f64);
    let mut scrapes = s.family(&names::LOAD_SCRAPES);
    for (result, n) in metrics.scrapes.by_result() {
        scrapes.value(&[("result", result)], n as f64);
    }
    s.family(&names::LOAD_SCRAPE_MALFORMED)
        .value(&[], metrics.scrapes.malformed_lines.load(Relaxed) as f64);
    instances(&app.registry, s);
    let budget = &app.body_budget;
    s.family(&names::BODY_BYTES_IN_FLIGHT)
        .value(&[], budget.in_use() as f64);
    s.family(&names::BODY_BUDGET_BYTES)
        .value(&[], budget.total() as f64);
    s.family(&names::BODY_BUDGET_REJECTED)
        .value(&[], budget.rejected.load(Relaxed) as f64);
    connections(app, s);
    app.plugins.collect_metrics(s);
    app.bus.collect_metrics(s);
    crate::tenants::metrics::collect(s, &app.tenants);
    app.flow.collect_metrics(s);
    app.lora.collect_metrics(s);
    crate::predict::metrics::collect_rates(s, &app.registry, &app.kv.current().config.predict);
}

fn connections(app: &App, s: &mut Scrape) {
    let c = &app.connections;
    s.family(&names::CONNECTIONS_OPEN)
        .value(&[], c.open() as f64);
    s.family(&names::CONNECTIONS_MAX).value(&[], c.max() as f64);
    let mut refused = s.family(&names::CONNECTIONS_REFUSED);
    for reason in [Refusal::MaxConnections, Refusal::MaxConnectionsPerIp] {
        refused.value(&[("reason", reason.label())], c.refused(reason) as f64);
    }
    s.family(&names::WRITE_TIMEOUTS)
        .value(&[], c.write_timeouts.load(Relaxed) as f64);
}

/// Per-instance gauges (labels `worker`, then `model`), discovery state and rejections.
fn instances(registry: &Registry, s: &mut Scrape) {
    let now = now_ns();
    let instances = registry.all();
    type Figure = fn(&switchyard_runtime::Instance, u64) -> f64;
    let figures: [(&names::Family, Figure); 6] = [
        (&names::INSTANCE_IN_FLIGHT, |i, _| {
            f64::from(i.load.in_flight())
        }),
        (&names::INSTANCE_PEER_IN_FLIGHT, |i, _| {
            f64::from(i.load.peer_in_flight.load(Relaxed))
        }),
        (&names::INSTANCE_QUEUED, |i, _| {
            f64::from(i.load.queued.load(Relaxed))
        }),
        (&names::INSTANCE_RUNNING, |i, _| {
            f64::from(i.load.running.load(Relaxed))
        }),
        (&names::INSTANCE_KV_USAGE, |i, _| {
            f64::from(i.load.kv_usage())
        }),
        (&names::INSTANCE_HEALTHY, |i, now| {
            f64::from(u8::from(i.routable(now)))
        }),
    ];
    for (family, figure) in figures {
        let mut samples = s.family(family);
        for i in &instances {
            samples.value(
                &[("worker", i.id()), ("model", &i.spec.model)],
                figure(i, now),
            );
        }
    }
    let mut ejections = s.family(&names::INSTANCE_EJECTIONS);
    for i in &instances {
        ejections.value(&[("worker", i.id())], f64::from(i.health.ejections()));
    }
    let mut info = s.family(&names::INSTANCE_INFO);
    for i in &instances {
        info.value(
            &[
                ("worker", i.id()),
                ("model", &i.spec.model),
                ("role", i.spec.role.as_str()),
            ],
            1.0,
        );
    }
    s.family(&names::DISCOVERY_CONNECTED)
        .value(&[], f64::from(u8::from(registry.discovery_connected())));
    let mut rejected = s.family(&names::DISCOVERY_REJECTED);
    // Both labels come from fixed sets (the source kinds and `Reason::as_str`).
    for ((source, reason), n) in registry.rejections() {
        rejected.value(&[("source", source), ("reason", reason.as_str())], n as f64);
    }
}

#[cfg(test)]
mod tests {
    use switchyard_runtime::{DiscoveryEvent, InstanceSpec};

    use super::*;
    use crate::metrics::UNKNOWN_MODEL;

    fn app() -> Arc<App> {
        let registry = Arc::new(Registry::default());
        registry.apply(DiscoveryEvent::Upsert(Box::new(InstanceSpec::new(
            "w0",
            "m",
            "http://127.0.0.1:9",
        ))));
        let plugins = crate::plugins::PluginSet::new(Default::default(), Default::default(), None);
        App::new(Default::default(), registry, Arc::new(plugins)).unwrap()
    }

    #[test]
    fn the_whole_exposition_parses_with_help_and_type_for_every_family() {
        let app = app();
        app.metrics
            .model("m")
            .count_request("chat_completions", 200);
        app.metrics.model(UNKNOWN_MODEL).ttft.observe(0.01);
        app.metrics.retries.inc();
        let text = app.metrics.render();
        let families = switchyard_runtime::exposition::check(&text).unwrap();
        for name in [
            names::REQUESTS.name,
            names::TTFT.name,
            names::RETRIES.name,
            names::QUEUED.name,
            names::INSTANCE_HEALTHY.name,
            names::INSTANCE_INFO.name,
            names::CONNECTIONS_REFUSED.name,
            names::PD_DECISIONS.name,
        ] {
            assert!(
                families.iter().any(|f| f == name),
                "{name} missing:\n{text}"
            );
        }
        assert!(
            text.contains("switchyard_instance_healthy{worker=\"w0\",model=\"m\"} 1\n"),
            "instance labels keep their documented order:\n{text}"
        );
    }

    #[test]
    fn two_apps_keep_their_own_series() {
        let (a, b) = (app(), app());
        a.metrics.retries.inc();
        let line = "switchyard_retries_total 1\n";
        assert!(a.metrics.render().contains(line));
        assert!(!b.metrics.render().contains(line));
    }
}
