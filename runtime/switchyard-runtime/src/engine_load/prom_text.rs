//! A parser for the Prometheus text exposition format (0.0.4, and the OpenMetrics text that
//! engines sometimes serve instead), just deep enough to read gauges and counters.
//!
//! The text comes from a worker, so it is untrusted: a malformed line is skipped and counted,
//! never a failure of the whole scrape (one engine version adding an odd series must not
//! blind routing to the rest). Parsing borrows from the text; label values are unescaped only
//! when someone asks for them.

/// One sample line: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    /// The raw text between `{` and `}` (empty without labels), already checked well-formed.
    raw_labels: &'a str,
    pub value: f64,
}

impl<'a> Sample<'a> {
    /// The value of label `key`, unescaped (`\\`, `\"`, `\n`).
    pub fn label(&self, key: &str) -> Option<String> {
        let mut rest = self.raw_labels;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                return None;
            }
            let (name, after) = rest.split_once('=')?;
            let (value, after) = quoted(after.trim_start())?;
            if name.trim() == key {
                return Some(unescape(value));
            }
            rest = after;
        }
    }
}

/// What a parse saw besides the samples.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ParseStats {
    pub samples: usize,
    pub malformed: usize,
}

/// Calls `visit` for every well-formed sample in `text`; comments (`# HELP`, `# TYPE`,
/// `# EOF`) and blank lines are skipped, malformed lines counted.
pub fn parse<'a>(text: &'a str, mut visit: impl FnMut(Sample<'a>)) -> ParseStats {
    let mut stats = ParseStats::default();
    for line in text.lines() {
        let line = line.trim_matches([' ', '\t', '\r']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match sample(line) {
            Some(s) => {
                stats.samples += 1;
                visit(s);
            }
            None => stats.malformed += 1,
        }
    }
    stats
}

fn sample(line: &str) -> Option<Sample<'_>> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut raw_labels = "";
    if let Some(inner) = rest.strip_prefix('{') {
        let close = label_block_end(inner)?;
        raw_labels = &inner[..close];
        rest = &inner[close + 1..];
    }
    // At least one blank separates the name (or labels) from the value.
    let trimmed = rest.trim_start_matches([' ', '\t']);
    if trimmed.len() == rest.len() {
        return None;
    }
    let mut fields = trimmed.split([' ', '\t']).filter(|f| !f.is_empty());
    let value = number(fields.next()?)?;
    // An optional timestamp, then nothing (OpenMetrics exemplars start with `#`).
    match fields.next() {
        None => {}
        Some(ts) if ts.parse::<f64>().is_ok() => match fields.next() {
            None => {}
            Some(f) if f.starts_with('#') => {}
            Some(_) => return None,
        },
        Some(f) if f.starts_with('#') => {}
        Some(_) => return None,
    }
    Some(Sample {
        name,
        raw_labels,
        value,
    })
}

/// Index of the `}` closing a label block, checking `name="value"` pairs on the way.
fn label_block_end(inner: &str) -> Option<usize> {
    let bytes = inner.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if *bytes.get(i)? == b'}' {
            return Some(i);
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if i == start {
            return None;
        }
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        if *bytes.get(i)? != b'=' {
            return None;
        }
        i += 1;
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        if *bytes.get(i)? != b'"' {
            return None;
        }
        i += 1;
        loop {
            match *bytes.get(i)? {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        i += 1;
    }
}

/// Splits `"value"rest` into the raw (still escaped) value and the rest.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut i = 0;
    loop {
        match *bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some((&body[..i], &body[i + 1..])),
            _ => i += 1,
        }
    }
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Go's `strconv.ParseFloat` spellings Prometheus uses, including `NaN` and `±Inf`.
fn number(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> (Vec<(String, f64)>, ParseStats) {
        let mut out = Vec::new();
        let stats = parse(text, |s| out.push((s.name.to_owned(), s.value)));
        (out, stats)
    }

    #[test]
    fn reads_samples_with_and_without_labels_and_skips_comments() {
        let text = "# HELP vllm:num_requests_waiting Number of requests waiting.\n\
                    # TYPE vllm:num_requests_waiting gauge\n\
                    vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3.0\n\
                    \n\
                    llamacpp:requests_deferred 2\n\
                    up 1 1712345678000\n";
        let (samples, stats) = all(text);
        assert_eq!(
            samples,
            vec![
                ("vllm:num_requests_waiting".to_owned(), 3.0),
                ("llamacpp:requests_deferred".to_owned(), 2.0),
                ("up".to_owned(), 1.0)
            ]
        );
        assert_eq!(stats.malformed, 0);
    }

    #[test]
    fn label_values_may_hold_braces_quotes_and_escapes() {
        let text = "x{a=\"}{\",b=\"say \\\"hi\\\"\\n\",} 7\n";
        let mut seen = None;
        parse(text, |s| seen = Some((s.value, s.label("a"), s.label("b"))));
        assert_eq!(
            seen,
            Some((7.0, Some("}{".to_owned()), Some("say \"hi\"\n".to_owned())))
        );
    }

    #[test]
    fn special_values_parse_and_malformed_lines_are_counted_not_fatal() {
        let text = "a NaN\nb +Inf\nc -Inf\n\
                    {no_name} 1\n\
                    d{unterminated=\"x} 1\n\
                    e{k=v} 1\n\
                    f notanumber\n\
                    g1\n\
                    h 1 2 3\n\
                    i 4\n";
        let (samples, stats) = all(text);
        let names: Vec<&str> = samples.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["a", "b", "c", "i"]);
        assert!(samples[0].1.is_nan());
        assert_eq!(samples[1].1, f64::INFINITY);
        assert_eq!(stats.malformed, 6);
    }

    #[test]
    fn openmetrics_exemplars_and_eof_are_tolerated() {
        let text = "trtllm_num_requests_running{model_name=\"m\"} 5 # {trace_id=\"1\"} 1\n# EOF\n";
        let (samples, stats) = all(text);
        assert_eq!(
            samples,
            vec![("trtllm_num_requests_running".to_owned(), 5.0)]
        );
        assert_eq!(stats.malformed, 0);
    }
}
