//! Subject names. Instance and frontend ids become one subject token each, escaped so that
//! ids such as `10.0.0.7:8000` (dots are token separators) stay one token.

/// Prefix of KV event subjects: `switchyard.kv.<instance>`.
pub const KV: &str = "switchyard.kv";
/// Prefix of dump request subjects: `switchyard.kv.dump.<instance>`. One token longer than
/// the event subjects, so `switchyard.kv.*` does not match it.
pub const KV_DUMP: &str = "switchyard.kv.dump";
/// Prefix of load snapshot subjects: `switchyard.load.<instance>`.
pub const LOAD: &str = "switchyard.load";
/// Prefix of replica sync subjects: `switchyard.replica.<frontend>`.
pub const REPLICA: &str = "switchyard.replica";
/// Prefix of tenant usage subjects: `switchyard.usage.<frontend>` (see `usage`).
pub const USAGE: &str = "switchyard.usage";
/// Prefix of shared routing decision subjects: `switchyard.decisions.<frontend>`.
pub const DECISIONS: &str = "switchyard.decisions";

pub fn kv(instance: &str) -> String {
    format!("{KV}.{}", token(instance))
}

pub fn kv_dump(instance: &str) -> String {
    format!("{KV_DUMP}.{}", token(instance))
}

pub fn load(instance: &str) -> String {
    format!("{LOAD}.{}", token(instance))
}

pub fn replica(frontend: &str) -> String {
    format!("{REPLICA}.{}", token(frontend))
}

pub fn usage(frontend: &str) -> String {
    format!("{USAGE}.{}", token(frontend))
}

pub fn decisions(frontend: &str) -> String {
    format!("{DECISIONS}.{}", token(frontend))
}

/// `prefix.*`: every id's subject.
pub fn all(prefix: &str) -> String {
    format!("{prefix}.*")
}

/// Escapes `%`, `.`, `*`, `>` and whitespace as `%XX`; an empty id becomes `%00`.
/// Payloads carry the real id, so subscribers never need to decode a token.
pub fn token(id: &str) -> String {
    if id.is_empty() {
        return "%00".into();
    }
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        match c {
            '%' | '.' | '*' | '>' => out.push_str(&format!("%{:02X}", c as u32)),
            c if c.is_whitespace() || c.is_control() => {
                for b in c.to_string().bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_single_tokens() {
        assert_eq!(kv("10.0.0.7:8000"), "switchyard.kv.10%2E0%2E0%2E7:8000");
        assert_eq!(token("a b*>%"), "a%20b%2A%3E%25");
        assert_eq!(load(""), "switchyard.load.%00");
        assert_eq!(kv_dump("w1"), "switchyard.kv.dump.w1");
        assert_eq!(all(KV), "switchyard.kv.*");
    }
}
