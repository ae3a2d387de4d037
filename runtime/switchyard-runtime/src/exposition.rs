//! Prometheus exposition on the `prometheus` crate, shared by the frontend and the mocker.
//!
//! Metrics that the request path moves are the crate's own types (counters, gauges,
//! histograms), registered in one [`prometheus::Registry`] per frontend. Figures whose source
//! of truth lives elsewhere (atomics owned by the subsystem that moves them, per-instance
//! numbers read from the discovery registry) are built at scrape time by a [`ScrapeCollector`]
//! registered in that same registry. Either way the crate's text encoder writes the text, with
//! `# HELP`, `# TYPE` and label escaping: nothing in the workspace formats exposition by hand.
//! [`check`] is the test-side half: it parses an exposition and insists every sample has a
//! family with HELP and TYPE.

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder as _, Histogram, HistogramOpts, Opts, TextEncoder};

use crate::engine_load::prom_text;

/// The content type of what [`encode`] returns (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// A metric family's public contract: its name, help text and type. Every name a user or a
/// dashboard can see is one of these consts, in one names module per binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

/// The Prometheus types this workspace exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    /// `_sum` and `_count` only (no quantiles).
    Summary,
}

impl Family {
    pub const fn counter(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: Kind::Counter,
        }
    }

    pub const fn gauge(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: Kind::Gauge,
        }
    }

    pub const fn histogram(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: Kind::Histogram,
        }
    }

    pub const fn summary(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: Kind::Summary,
        }
    }

    /// Options for the `prometheus` crate's counters and gauges.
    pub fn opts(&self) -> Opts {
        Opts::new(self.name, self.help)
    }

    /// Options for a histogram with these bucket bounds (seconds).
    pub fn histogram_opts(&self, buckets: &[f64]) -> HistogramOpts {
        HistogramOpts::new(self.name, self.help).buckets(buckets.to_vec())
    }

    fn metric_type(&self) -> MetricType {
        match self.kind {
            Kind::Counter => MetricType::COUNTER,
            Kind::Gauge => MetricType::GAUGE,
            Kind::Histogram => MetricType::HISTOGRAM,
            Kind::Summary => MetricType::SUMMARY,
        }
    }
}

/// Families built at scrape time, in the order they are started.
#[derive(Debug, Default)]
pub struct Scrape {
    families: Vec<MetricFamily>,
}

impl Scrape {
    /// Starts the samples of `family`.
    pub fn family(&mut self, family: &Family) -> Samples<'_> {
        let mut mf = MetricFamily::default();
        mf.set_name(family.name.to_owned());
        mf.set_help(family.help.to_owned());
        mf.set_field_type(family.metric_type());
        self.families.push(mf);
        let index = self.families.len() - 1;
        Samples {
            family: &mut self.families[index],
            kind: family.kind,
        }
    }

    /// Adds families a `prometheus` metric collected (e.g. a standalone histogram whose
    /// labels are its const labels).
    pub fn collected(&mut self, collector: &dyn Collector) {
        self.families.extend(collector.collect());
    }

    pub fn into_families(self) -> Vec<MetricFamily> {
        self.families
    }
}

/// The samples of one family being built.
#[derive(Debug)]
pub struct Samples<'a> {
    family: &'a mut MetricFamily,
    kind: Kind,
}

impl Samples<'_> {
    /// One counter or gauge sample (labels in the order given).
    pub fn value(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let mut metric = Metric::from_label(label_pairs(labels));
        match self.kind {
            Kind::Counter => {
                let mut c = proto::Counter::default();
                c.set_value(value);
                metric.set_counter(c);
            }
            _ => {
                let mut g = proto::Gauge::default();
                g.set_value(value);
                metric.set_gauge(g);
            }
        }
        self.family.mut_metric().push(metric);
        self
    }

    /// One summary sample: a sum and a count, no quantiles.
    pub fn summary(&mut self, labels: &[(&str, &str)], sum: f64, count: u64) -> &mut Self {
        let mut metric = Metric::from_label(label_pairs(labels));
        let mut s = proto::Summary::default();
        s.set_sample_sum(sum);
        s.set_sample_count(count);
        metric.set_summary(s);
        self.family.mut_metric().push(metric);
        self
    }
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name((*name).to_owned());
            pair.set_value((*value).to_owned());
            pair
        })
        .collect()
}

/// A collector whose families are built at scrape time by a function.
pub struct ScrapeCollector<F> {
    descs: Vec<Desc>,
    collect: F,
}

impl<F> std::fmt::Debug for ScrapeCollector<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeCollector")
            .field("families", &self.descs.len())
            .finish()
    }
}

impl<F: Fn(&mut Scrape) + Send + Sync> ScrapeCollector<F> {
    /// `families` declares what `collect` may produce (the registry checks names against
    /// every other collector's at registration).
    pub fn new(families: &[Family], collect: F) -> prometheus::Result<Self> {
        let descs = families
            .iter()
            .map(|f| {
                Desc::new(
                    f.name.to_owned(),
                    f.help.to_owned(),
                    Vec::new(),
                    Default::default(),
                )
            })
            .collect::<prometheus::Result<_>>()?;
        Ok(Self { descs, collect })
    }
}

impl<F: Fn(&mut Scrape) + Send + Sync> Collector for ScrapeCollector<F> {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut scrape = Scrape::default();
        (self.collect)(&mut scrape);
        scrape.into_families()
    }
}

/// A standalone histogram with fixed labels (e.g. one plugin version), collected by whoever
/// owns it through [`Scrape::collected`].
pub fn labelled_histogram(
    family: &Family,
    buckets: &[f64],
    labels: &[(&str, &str)],
) -> prometheus::Result<Histogram> {
    let mut opts = family.histogram_opts(buckets);
    for (name, value) in labels {
        opts = opts.const_label(*name, *value);
    }
    Histogram::with_opts(opts)
}

/// The text exposition of `registry`. Families without samples are left out; an encoder
/// error (not reachable with well-formed families) is logged and yields what was written.
pub fn encode(registry: &prometheus::Registry) -> String {
    encode_families(&registry.gather())
}

/// The text exposition of these families (empty ones skipped).
pub fn encode_families(families: &[MetricFamily]) -> String {
    let families: Vec<_> = families
        .iter()
        .filter(|f| !f.get_metric().is_empty())
        .cloned()
        .collect();
    let mut out = Vec::with_capacity(16 * 1024);
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        tracing::error!(error = %e, "encoding metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Checks an exposition the way a scraper would read it: every line parses, every sample
/// belongs to a family announced by `# HELP` and `# TYPE` (a histogram's `_bucket`, `_sum`,
/// `_count`, a summary's `_sum` and `_count`), and no family is announced twice. Returns the
/// family names in order. For tests of every binary's `/metrics`.
pub fn check(text: &str) -> Result<Vec<String>, String> {
    use std::collections::HashMap;
    let mut help: HashMap<&str, usize> = HashMap::new();
    let mut types: HashMap<&str, &str> = HashMap::new();
    let mut order = Vec::new();
    for line in text.lines() {
        let mut words = line.splitn(4, ' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("#"), Some("HELP"), Some(name), _) => {
                *help.entry(name).or_default() += 1;
            }
            (Some("#"), Some("TYPE"), Some(name), Some(kind)) => {
                if types.insert(name, kind).is_some() {
                    return Err(format!("family {name} announced twice"));
                }
                order.push(name.to_owned());
            }
            _ => {}
        }
    }
    if let Some((name, _)) = help.iter().find(|(_, n)| **n > 1) {
        return Err(format!("family {name} has two HELP lines"));
    }
    let mut orphan = None;
    let stats = prom_text::parse(text, |sample| {
        let name = sample.name;
        let family_of = |suffix: &str, kinds: &[&str]| {
            name.strip_suffix(suffix)
                .filter(|f| types.get(f).is_some_and(|k| kinds.contains(k)))
        };
        let family = if types.contains_key(name) {
            Some(name)
        } else {
            family_of("_bucket", &["histogram"])
                .or_else(|| family_of("_sum", &["histogram", "summary"]))
                .or_else(|| family_of("_count", &["histogram", "summary"]))
        };
        match family {
            Some(f) if help.contains_key(f) => {}
            _ => orphan = orphan.take().or(Some(name.to_owned())),
        }
    });
    if stats.malformed > 0 {
        return Err(format!("{} malformed lines", stats.malformed));
    }
    if let Some(name) = orphan {
        return Err(format!("sample {name} has no family with HELP and TYPE"));
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUESTS: Family = Family::counter("t_requests_total", "Requests.");
    const DEPTH: Family = Family::gauge("t_depth", "Depth.");
    const WAIT: Family = Family::summary("t_wait_seconds", "Wait.");
    const TOOK: Family = Family::histogram("t_took_seconds", "Took.");

    #[test]
    fn scraped_and_library_families_encode_with_help_type_and_escaping() {
        let registry = prometheus::Registry::new();
        let took = labelled_histogram(&TOOK, &[0.1, 1.0], &[("plugin", "p")]).unwrap();
        took.observe(0.5);
        let collector = ScrapeCollector::new(&[REQUESTS, DEPTH, WAIT, TOOK], move |s| {
            s.family(&REQUESTS)
                .value(&[("worker", "a\"b\n"), ("model", "m")], 3.0);
            s.family(&DEPTH).value(&[], 2.0);
            s.family(&WAIT).summary(&[("tenant", "t")], 1.5, 2);
            s.collected(&took);
        })
        .unwrap();
        registry.register(Box::new(collector)).unwrap();
        let text = encode(&registry);
        for line in [
            "# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n",
            "t_requests_total{worker=\"a\\\"b\\n\",model=\"m\"} 3\n",
            "t_depth 2\n",
            "t_wait_seconds_sum{tenant=\"t\"} 1.5\nt_wait_seconds_count{tenant=\"t\"} 2\n",
            "t_took_seconds_bucket{plugin=\"p\",le=\"1\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        let families = check(&text).unwrap();
        assert_eq!(families.len(), 4, "{families:?}");
    }

    #[test]
    fn check_refuses_samples_without_help_or_type() {
        assert!(check("# TYPE x counter\nx 1\n").is_err());
        assert!(check("# HELP x X.\nx 1\n").is_err());
        assert!(check("# HELP x X.\n# TYPE x counter\nx 1\ny 2\n").is_err());
        assert!(check("# HELP x X.\n# TYPE x counter\nx{ 1\n").is_err());
        assert!(check(
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"
        )
        .is_ok());
    }

    #[test]
    fn empty_families_are_left_out() {
        let registry = prometheus::Registry::new();
        let collector = ScrapeCollector::new(&[DEPTH], |s| {
            s.family(&DEPTH);
        })
        .unwrap();
        registry.register(Box::new(collector)).unwrap();
        assert_eq!(encode(&registry), "");
    }
}
