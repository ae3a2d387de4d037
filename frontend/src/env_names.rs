//! Every environment variable Switchyard reads, in one place.

pub const CONFIG: &str = "SWITCHYARD_CONFIG";
pub const LISTEN: &str = "SWITCHYARD_LISTEN";
pub const WORKERS: &str = "SWITCHYARD_WORKERS";
pub const DISCOVERY: &str = "SWITCHYARD_DISCOVERY";
pub const ETCD: &str = "SWITCHYARD_ETCD";
pub const ETCD_PREFIX: &str = "SWITCHYARD_ETCD_PREFIX";
pub const KUBERNETES_NAMESPACE: &str = "SWITCHYARD_KUBERNETES_NAMESPACE";
pub const NATS: &str = "SWITCHYARD_NATS";
pub const TOKENIZER: &str = "SWITCHYARD_TOKENIZER";
pub const POLICY: &str = "SWITCHYARD_POLICY";
pub const SESSION_HEADER: &str = "SWITCHYARD_SESSION_HEADER";
pub const PLUGINS: &str = "SWITCHYARD_PLUGINS";
pub const RECORD_DECISIONS: &str = "SWITCHYARD_RECORD_DECISIONS";
pub const MIGRATION_LIMIT: &str = "SWITCHYARD_MIGRATION_LIMIT";
pub const MAX_RETRIES: &str = "SWITCHYARD_MAX_RETRIES";
pub const ADMIN_TOKEN: &str = "SWITCHYARD_ADMIN_TOKEN";
pub const MAX_BODY_BYTES: &str = "SWITCHYARD_MAX_BODY_BYTES";
pub const LOG: &str = "SWITCHYARD_LOG";
