//! A model's own chat template, as Hugging Face ships it: the `chat_template` of its
//! `tokenizer_config.json` (one template, or a list of named ones such as `default` and
//! `tool_use`) with the special tokens that file declares.
//!
//! Completions-only engines (llama.cpp's `/v1/completions`, a vLLM started without a chat
//! template) continue whatever prompt they get, so the frontend must render exactly what the
//! model was trained on: the ChatML-like built-in only fits models trained on it. The file is
//! the operator's own configuration (read once at startup), never something discovery names.

use serde::Deserialize;
use serde_json::Value;

use crate::template::TemplateError;

/// Largest `tokenizer_config.json` read: real ones are a few KiB to a few hundred KiB (some
/// embed an added-tokens table); a larger file is not a tokenizer config.
pub const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// A template taken out of a `tokenizer_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct HfTemplate {
    pub source: String,
    pub bos_token: String,
    pub eos_token: String,
}

#[derive(Deserialize)]
struct TokenizerConfig {
    chat_template: Option<Value>,
    bos_token: Option<Value>,
    eos_token: Option<Value>,
}

/// Whether `path` (without a `#name` suffix) is read as a Hugging Face tokenizer config.
pub fn is_tokenizer_config(path: &str) -> bool {
    split(path).0.ends_with(".json")
}

/// Reads `path`, optionally suffixed `#name` to pick one of several named templates.
pub fn load(path: &str) -> Result<HfTemplate, TemplateError> {
    let (file, name) = split(path);
    let meta = std::fs::metadata(file).map_err(|e| compile(format!("{file}: {e}")))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(compile(format!(
            "{file}: {} bytes is larger than a tokenizer config ({MAX_CONFIG_BYTES} at most)",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(file).map_err(|e| compile(format!("{file}: {e}")))?;
    parse(&text, name).map_err(|e| compile(format!("{file}: {e}")))
}

/// Takes the template named `name` (or the default one) out of a tokenizer config's text.
pub fn parse(text: &str, name: Option<&str>) -> Result<HfTemplate, String> {
    let config: TokenizerConfig =
        serde_json::from_str(text).map_err(|e| format!("not a tokenizer config: {e}"))?;
    let source = match config.chat_template {
        None | Some(Value::Null) => return Err("it has no `chat_template`".into()),
        Some(Value::String(source)) => match name {
            None | Some("default") => source,
            Some(other) => {
                return Err(format!(
                    "it has one unnamed chat template, not one named `{other}`"
                ))
            }
        },
        Some(Value::Array(entries)) => pick(&entries, name)?,
        Some(_) => return Err("`chat_template` is neither a string nor a list".into()),
    };
    Ok(HfTemplate {
        source,
        bos_token: token(config.bos_token.as_ref()),
        eos_token: token(config.eos_token.as_ref()),
    })
}

/// A named template out of `[{name, template}, …]`: `name`, else `default`, else the only one.
fn pick(entries: &[Value], name: Option<&str>) -> Result<String, String> {
    let named: Vec<(&str, &str)> = entries
        .iter()
        .filter_map(|e| Some((e.get("name")?.as_str()?, e.get("template")?.as_str()?)))
        .collect();
    let wanted = name.unwrap_or("default");
    if let Some((_, source)) = named.iter().find(|(n, _)| *n == wanted) {
        return Ok((*source).to_owned());
    }
    if let ([(_, source)], None) = (named.as_slice(), name) {
        return Ok((*source).to_owned());
    }
    let names: Vec<&str> = named.iter().map(|(n, _)| *n).collect();
    Err(format!(
        "no chat template named `{wanted}` (it has: {}); pick one with `FILE#NAME`",
        names.join(", ")
    ))
}

/// A special token: a plain string, or an added-token object `{"content": …}`.
fn token(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

fn split(path: &str) -> (&str, Option<&str>) {
    match path.rsplit_once('#') {
        Some((file, name)) if !name.is_empty() && !name.contains('/') => (file, Some(name)),
        _ => (path, None),
    }
}

fn compile(message: String) -> TemplateError {
    TemplateError::Compile(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_template_and_its_added_token_objects() {
        let t = parse(
            r#"{"chat_template":"{{ bos_token }}x","bos_token":{"content":"<s>","lstrip":false},"eos_token":"</s>"}"#,
            None,
        )
        .unwrap();
        assert_eq!(t.source, "{{ bos_token }}x");
        assert_eq!(
            (t.bos_token.as_str(), t.eos_token.as_str()),
            ("<s>", "</s>")
        );
    }

    #[test]
    fn named_templates_pick_default_or_the_named_one() {
        let text = r#"{"chat_template":[{"name":"default","template":"D"},{"name":"tool_use","template":"T"}]}"#;
        assert_eq!(parse(text, None).unwrap().source, "D");
        assert_eq!(parse(text, Some("tool_use")).unwrap().source, "T");
        let err = parse(text, Some("rag")).unwrap_err();
        assert!(err.contains("default, tool_use"), "{err}");
    }

    #[test]
    fn a_config_without_a_template_says_so() {
        assert!(parse(r#"{"bos_token":"<s>"}"#, None)
            .unwrap_err()
            .contains("no `chat_template`"));
        assert!(parse("not json", None)
            .unwrap_err()
            .contains("not a tokenizer config"));
    }

    #[test]
    fn the_name_suffix_is_split_off_json_paths_only() {
        assert!(is_tokenizer_config("/m/tokenizer_config.json#tool_use"));
        assert!(!is_tokenizer_config("/m/llama3.jinja"));
        assert_eq!(split("/a#b/c.json"), ("/a#b/c.json", None));
    }
}
