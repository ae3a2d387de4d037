//! Every metric family the frontend exposes: name, help and type, in one place. The names
//! are a public contract (docs/metrics.md, the chart's dashboard, users' alerts): change one
//! only with a deprecation.
//!
//! To add a family, add a const here, then either register a `prometheus` metric for it in
//! its module's constructor (values moved on the request path) or add it to [`SCRAPED`] and
//! build it in `metrics::scrape` (values read from elsewhere at scrape time).

pub use switchyard_runtime::exposition::Family;

// Requests (registered: moved on the request path).
pub const REQUESTS: Family = Family::counter(
    "switchyard_requests_total",
    "Requests by model, route and status.",
);
pub const IN_FLIGHT: Family =
    Family::gauge("switchyard_requests_in_flight", "Requests being served.");
pub const TTFT: Family = Family::histogram(
    "switchyard_time_to_first_token_seconds",
    "Time to first token.",
);
pub const ITL: Family = Family::histogram(
    "switchyard_inter_token_latency_seconds",
    "Time between streamed tokens.",
);
pub const DURATION: Family =
    Family::histogram("switchyard_request_duration_seconds", "Request duration.");
pub const INPUT_TOKENS: Family = Family::counter("switchyard_input_tokens_total", "Prompt tokens.");
pub const OUTPUT_TOKENS: Family =
    Family::counter("switchyard_output_tokens_total", "Generated tokens.");
pub const RETRIES: Family = Family::counter(
    "switchyard_retries_total",
    "Upstream attempts retried on another instance.",
);
pub const CANCELLED: Family = Family::counter(
    "switchyard_requests_cancelled_total",
    "Requests whose client went away first.",
);
pub const STREAM_ERRORS: Family = Family::counter(
    "switchyard_stream_errors_total",
    "Streams ended by an in-band error event.",
);
pub const RETRY_BUDGET_EXHAUSTED: Family = Family::counter(
    "switchyard_retry_budget_exhausted_total",
    "Retries not attempted because the retry budget was spent.",
);
pub const MIGRATIONS: Family = Family::counter(
    "switchyard_stream_migrations_total",
    "Streams re-issued to another instance after failing mid-way.",
);
pub const ACCESS_LOG_DROPPED: Family = Family::counter(
    "switchyard_access_log_dropped_total",
    "Access-log lines dropped because stdout did not keep up (16 MiB gathered).",
);
pub const USAGE_ESTIMATED: Family = Family::counter(
    "switchyard_usage_estimated_total",
    "Streams whose engine reported no usage: their output tokens are the frontend's count of content events, their prompt tokens 0.",
);
pub const STALLS: Family = Family::counter(
    "switchyard_stream_stalls_total",
    "Streams that sent nothing for the stall timeout.",
);
pub const SHED: Family = Family::counter(
    "switchyard_requests_shed_total",
    "Requests shed by admission control or because every instance was full.",
);
pub const PANIC_ROUTED: Family = Family::counter(
    "switchyard_panic_routed_total",
    "Requests routed to unhealthy instances because none was healthy (route-all).",
);

// Disaggregated prefill/decode (registered).
pub const PD_DECISIONS: Family = Family::counter(
    "switchyard_pd_decisions_total",
    "Disaggregation decisions on long-enough routes, by outcome: disaggregated, or why the request stayed aggregated.",
);
pub const PD_PREFILL_FAILURES: Family = Family::counter(
    "switchyard_pd_prefill_failures_total",
    "Prefill stages that failed (error, timeout, or no usable KV handle).",
);
pub const PD_FALLBACKS: Family = Family::counter(
    "switchyard_pd_fallbacks_total",
    "Disaggregated requests served aggregated on their decode instance after the prefill failed.",
);
pub const PD_STAGE_SECONDS: Family = Family::histogram(
    "switchyard_pd_stage_seconds",
    "Time of each stage of disaggregated requests.",
);

// Predicted-TTFT routing (registered in `predict::metrics`).
pub const PREDICTED_TTFT: Family = Family::histogram(
    "switchyard_predicted_ttft_seconds",
    "TTFT the kv policy predicted for the instance that served, per model.",
);
pub const TTFT_PREDICTION_ERROR: Family = Family::histogram(
    "switchyard_ttft_prediction_error_ratio",
    "|predicted - observed| / observed TTFT, per model; learned=\"true\" once the instance's rates replaced the priors.",
);
pub const TTFT_SLO_MISSES: Family = Family::counter(
    "switchyard_ttft_slo_misses_total",
    "TTFT target misses: kind=\"predicted\" when no instance was predicted to meet it, \"observed\" when the first token came later.",
);

// Read at scrape time (see `SCRAPED`).
pub const INSTANCE_TTFT_RATE: Family = Family::gauge(
    "switchyard_instance_ttft_rate",
    "Each instance's TTFT rates the kv policy predicts with (learned, or the priors before min_samples).",
);
pub const INSTANCE_TTFT_SAMPLES: Family = Family::gauge(
    "switchyard_instance_ttft_samples",
    "TTFT observations each instance's rates learned from.",
);
pub const QUEUED: Family = Family::gauge(
    "switchyard_requests_queued",
    "Requests waiting for an admission slot.",
);
pub const LOAD_SCRAPES: Family = Family::counter(
    "switchyard_load_scrapes_total",
    "Scrapes of engines' own metrics endpoints, by result.",
);
pub const LOAD_SCRAPE_MALFORMED: Family = Family::counter(
    "switchyard_load_scrape_malformed_lines_total",
    "Malformed lines skipped in engines' metrics (the rest of the scrape is used).",
);
pub const INSTANCE_IN_FLIGHT: Family = Family::gauge(
    "switchyard_instance_in_flight",
    "In-flight requests per instance.",
);
pub const INSTANCE_PEER_IN_FLIGHT: Family = Family::gauge(
    "switchyard_instance_peer_in_flight",
    "In-flight requests per instance that the other frontend replicas report (replica sync; 0 without it).",
);
pub const INSTANCE_QUEUED: Family = Family::gauge(
    "switchyard_instance_queued",
    "Requests waiting at the engine, as it last reported (0 when unknown).",
);
pub const INSTANCE_RUNNING: Family = Family::gauge(
    "switchyard_instance_running",
    "Requests the engine last reported generating (0 when unknown).",
);
pub const INSTANCE_KV_USAGE: Family = Family::gauge(
    "switchyard_instance_kv_usage",
    "KV-cache usage the engine last reported, 0..1 (0 when unknown).",
);
pub const INSTANCE_HEALTHY: Family = Family::gauge(
    "switchyard_instance_healthy",
    "1 when the instance is routable.",
);
pub const INSTANCE_EJECTIONS: Family = Family::gauge(
    "switchyard_instance_ejections",
    "Consecutive passive ejections.",
);
pub const INSTANCE_INFO: Family = Family::gauge(
    "switchyard_instance_info",
    "1 per instance, labelled with its disaggregation role.",
);
pub const DISCOVERY_CONNECTED: Family = Family::gauge(
    "switchyard_discovery_connected",
    "1 while the discovery source is reachable.",
);
pub const DISCOVERY_REJECTED: Family = Family::counter(
    "switchyard_discovery_rejected_total",
    "Instance specs skipped as invalid, by source and reason.",
);
pub const BODY_BYTES_IN_FLIGHT: Family = Family::gauge(
    "switchyard_request_body_bytes_in_flight",
    "Request-body bytes reserved by requests being read, parsed or dispatched.",
);
pub const BODY_BUDGET_BYTES: Family = Family::gauge(
    "switchyard_request_body_budget_bytes",
    "The in-flight request-body budget (limits.max_inflight_body_bytes).",
);
pub const BODY_BUDGET_REJECTED: Family = Family::counter(
    "switchyard_request_body_budget_rejected_total",
    "Requests refused (503 body_budget_exhausted) because the body budget stayed full.",
);
pub const CONNECTIONS_OPEN: Family =
    Family::gauge("switchyard_connections_open", "Open client connections.");
pub const CONNECTIONS_MAX: Family = Family::gauge(
    "switchyard_connections_max",
    "The cap on open client connections (limits.max_connections).",
);
pub const CONNECTIONS_REFUSED: Family = Family::counter(
    "switchyard_connections_refused_total",
    "Client connections refused at accept because a connection cap was reached.",
);
pub const WRITE_TIMEOUTS: Family = Family::counter(
    "switchyard_connection_write_timeouts_total",
    "Client connections closed because the client read nothing for limits.write_timeout_ms.",
);

// Plugins, per plugin name (read at scrape time; the durations are histograms each plugin
// version owns).
pub const PLUGIN_CALL_DURATION: Family = Family::histogram(
    "switchyard_plugin_call_duration_seconds",
    "Time per plugin decision call, per component version (sha256 prefix).",
);
pub const PLUGIN_FAULTS: Family =
    Family::counter("switchyard_plugin_faults_total", "Plugin faults by kind.");
pub const PLUGIN_FALLBACKS: Family = Family::counter(
    "switchyard_plugin_fallbacks_total",
    "Decisions replaced by the native policy (FailOpen).",
);
pub const PLUGIN_REJECTIONS: Family = Family::counter(
    "switchyard_plugin_rejections_total",
    "Requests failed on purpose by a plugin fault (FailClosed).",
);
pub const PLUGIN_SHADOW_AGREEMENTS: Family = Family::counter(
    "switchyard_plugin_shadow_agreements_total",
    "Shadow-mode decisions that agreed with the active one.",
);
pub const PLUGIN_SHADOW_DISAGREEMENTS: Family = Family::counter(
    "switchyard_plugin_shadow_disagreements_total",
    "Shadow-mode decisions that disagreed with the active one.",
);
pub const PLUGIN_SWAPS: Family = Family::counter(
    "switchyard_plugin_swaps_total",
    "Times the plugin's component was replaced.",
);
pub const PLUGIN_QUARANTINED: Family = Family::gauge(
    "switchyard_plugin_quarantined",
    "1 while the plugin is quarantined after repeated faults.",
);

// NATS events (read at scrape time; only with --nats).
pub const EVENT_BUS_CONNECTED: Family = Family::gauge(
    "switchyard_event_bus_connected",
    "1 while the NATS connection is up.",
);
pub const EVENT_BUS_PEERS: Family = Family::gauge(
    "switchyard_event_bus_peers",
    "Live peer frontends (replica sync).",
);
pub const KV_INDEX_BLOCKS: Family = Family::gauge(
    "switchyard_kv_index_blocks",
    "Distinct blocks in the event-driven KV index.",
);
pub const KV_EVENT_MESSAGES: Family = Family::counter(
    "switchyard_kv_event_messages_total",
    "KV event messages applied.",
);
pub const KV_EVENT_GAPS: Family = Family::counter(
    "switchyard_kv_event_gaps_total",
    "Sequence gaps and epoch changes detected.",
);
pub const KV_EVENT_IGNORED: Family = Family::counter(
    "switchyard_kv_event_ignored_total",
    "KV event and load messages ignored (id not in discovery after its grace period, over the cap, or an unusable seq).",
);
pub const KV_DUMPS_REQUESTED: Family = Family::counter(
    "switchyard_kv_dumps_requested_total",
    "Full dumps requested (resyncs started).",
);
pub const KV_DUMPS_APPLIED: Family = Family::counter(
    "switchyard_kv_dumps_applied_total",
    "Full dumps applied (resyncs).",
);
pub const KV_DUMPS_FAILED: Family = Family::counter(
    "switchyard_kv_dumps_failed_total",
    "Dump requests that failed.",
);
pub const KV_INDEX_EVICTED: Family = Family::counter(
    "switchyard_kv_index_evicted_total",
    "Blocks evicted because an instance went over kv.max_blocks_per_instance.",
);
pub const KV_SHARED_DECISIONS: Family = Family::counter(
    "switchyard_kv_shared_decisions_total",
    "Routing decisions shared between frontends over NATS, by outcome (published, dropped, applied, unknown_instance, rejected_<reason>).",
);
pub const EVENT_MESSAGES_REJECTED: Family = Family::counter(
    "switchyard_event_messages_rejected_total",
    "KV event and load messages dropped as malformed or hostile, by reason.",
);

// Tenants (read at scrape time; only with tenants configured).
pub const TENANTS_CONFIGURED: Family = Family::gauge(
    "switchyard_tenants_configured",
    "Tenants in the running list.",
);
pub const TENANTS_RELOADS: Family = Family::counter(
    "switchyard_tenants_reloads_total",
    "Reloads of the tenants file by result (a failed one keeps the running list).",
);
pub const TENANT_AUTH_FAILURES: Family = Family::counter(
    "switchyard_tenant_auth_failures_total",
    "Requests refused 401 invalid_api_key (missing or unknown key).",
);
pub const TENANT_REQUESTS: Family = Family::counter(
    "switchyard_tenant_requests_total",
    "Admitted requests by tenant and final status.",
);
pub const TENANT_RATE_LIMITED: Family = Family::counter(
    "switchyard_tenant_rate_limited_total",
    "Requests refused 429 rate_limit_exceeded by tenant and limit.",
);
pub const TENANT_TOKENS: Family = Family::counter(
    "switchyard_tenant_tokens_total",
    "Tokens the engines reported (prompt = input, completion = output) by tenant.",
);
pub const TENANT_QUEUE_WAIT: Family = Family::summary(
    "switchyard_tenant_queue_wait_seconds",
    "Time the tenant's requests waited for room under flow control (_sum seconds, _count requests that waited).",
);
pub const TENANT_IN_FLIGHT: Family = Family::gauge(
    "switchyard_tenant_in_flight",
    "Requests of the tenant in flight (streams until their last byte).",
);
pub const TENANT_USAGE_REPLICAS: Family = Family::gauge(
    "switchyard_tenant_usage_replicas",
    "Frontend replicas whose tenant usage reports set this one's share of each limit (itself included); 0 while limits are split evenly (limit / replicas).",
);

// Flow control (read at scrape time; only with flow_control.enabled).
pub const FLOW_QUEUE_DEPTH: Family = Family::gauge(
    "switchyard_flow_queue_depth",
    "Requests waiting for an instance with room, by priority band (a KEDA/HPA signal).",
);
pub const FLOW_QUEUE_TIMEOUTS: Family = Family::counter(
    "switchyard_flow_queue_timeouts_total",
    "Waiting requests answered 429/503 at their deadline, by band.",
);
pub const FLOW_QUEUE_REJECTED: Family = Family::counter(
    "switchyard_flow_queue_rejected_total",
    "Requests refused because their band's queue was full, by band.",
);

// LoRA adapters (read at scrape time; only with adapters configured).
pub const LORA_LOADS: Family = Family::counter(
    "switchyard_lora_loads_total",
    "On-demand adapter loads through the engines' APIs, by result.",
);
pub const LORA_EVICTIONS: Family = Family::counter(
    "switchyard_lora_evictions_total",
    "Idle adapters unloaded to free a slot.",
);

/// The families built at scrape time by `metrics::scrape`.
pub const SCRAPED: &[Family] = &[
    QUEUED,
    LOAD_SCRAPES,
    LOAD_SCRAPE_MALFORMED,
    INSTANCE_IN_FLIGHT,
    INSTANCE_QUEUED,
    INSTANCE_RUNNING,
    INSTANCE_KV_USAGE,
    INSTANCE_HEALTHY,
    INSTANCE_EJECTIONS,
    INSTANCE_INFO,
    DISCOVERY_CONNECTED,
    DISCOVERY_REJECTED,
    BODY_BYTES_IN_FLIGHT,
    BODY_BUDGET_BYTES,
    BODY_BUDGET_REJECTED,
    CONNECTIONS_OPEN,
    CONNECTIONS_MAX,
    CONNECTIONS_REFUSED,
    WRITE_TIMEOUTS,
    PLUGIN_CALL_DURATION,
    PLUGIN_FAULTS,
    PLUGIN_FALLBACKS,
    PLUGIN_REJECTIONS,
    PLUGIN_SHADOW_AGREEMENTS,
    PLUGIN_SHADOW_DISAGREEMENTS,
    PLUGIN_SWAPS,
    PLUGIN_QUARANTINED,
    EVENT_BUS_CONNECTED,
    EVENT_BUS_PEERS,
    KV_INDEX_BLOCKS,
    KV_EVENT_MESSAGES,
    KV_EVENT_GAPS,
    KV_EVENT_IGNORED,
    KV_DUMPS_REQUESTED,
    KV_DUMPS_APPLIED,
    KV_DUMPS_FAILED,
    KV_INDEX_EVICTED,
    KV_SHARED_DECISIONS,
    EVENT_MESSAGES_REJECTED,
    TENANTS_CONFIGURED,
    TENANTS_RELOADS,
    TENANT_AUTH_FAILURES,
    TENANT_REQUESTS,
    TENANT_RATE_LIMITED,
    TENANT_TOKENS,
    TENANT_QUEUE_WAIT,
    TENANT_IN_FLIGHT,
    TENANT_USAGE_REPLICAS,
    FLOW_QUEUE_DEPTH,
    FLOW_QUEUE_TIMEOUTS,
    FLOW_QUEUE_REJECTED,
    LORA_LOADS,
    LORA_EVICTIONS,
    INSTANCE_TTFT_RATE,
    INSTANCE_TTFT_SAMPLES,
];
