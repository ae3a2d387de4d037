//! Tool calls: when a chat request's `tool_choice` is `"required"` or names a function, the
//! mocker answers with one deterministic call instead of text, as an engine with a tool
//! parser would. The arguments are a JSON object valid against simple schemas: every
//! `required` property gets a value of its declared type (string, number, integer, boolean,
//! object, array; the first `enum` value when there is one). `"auto"` and `"none"` leave the
//! answer as text.

use serde::Deserialize;
use serde_json::{Map, Value};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::generate::generate_text;

/// Bytes of the arguments string per streamed delta (one simulated token each).
const PIECE: usize = 8;

/// The call every choice makes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolCall {
    pub name: String,
    /// A JSON object, serialized.
    pub arguments: String,
}

#[derive(Deserialize)]
struct ToolDef {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    function: Option<FunctionDef>,
}

#[derive(Deserialize)]
struct FunctionDef {
    name: String,
    #[serde(default)]
    parameters: Option<Value>,
}

impl ToolCall {
    /// The call `tool_choice` asks for among `tools` (both raw request JSON), `Ok(None)` when
    /// the answer is text. A named function that is not among the tools is an error.
    pub fn plan(
        tools: Option<&str>,
        tool_choice: Option<&str>,
        seed: u64,
    ) -> Result<Option<Self>, String> {
        let choice: Value = match tool_choice {
            Some(raw) => serde_json::from_str(raw).map_err(|e| format!("tool_choice: {e}"))?,
            None => Value::Null,
        };
        let wanted =
            match &choice {
                Value::String(s) if s == "required" => None,
                Value::Object(o) => match o.get("function").and_then(|f| f.get("name")) {
                    Some(Value::String(name)) => Some(name.as_str()),
                    _ => return Err(
                        "tool_choice: expected {\"type\":\"function\",\"function\":{\"name\":…}}"
                            .into(),
                    ),
                },
                // "auto", "none", absent: text.
                _ => return Ok(None),
            };
        let tools: Vec<ToolDef> = match tools {
            Some(raw) => serde_json::from_str(raw).map_err(|e| format!("tools: {e}"))?,
            None => Vec::new(),
        };
        let mut functions = tools
            .into_iter()
            .filter(|t| t.kind.as_deref().unwrap_or("function") == "function")
            .filter_map(|t| t.function);
        let function = match wanted {
            None => functions.next(),
            Some(name) => functions.find(|f| f.name == name),
        };
        let Some(function) = function else {
            return Err(match wanted {
                Some(name) => format!("tool_choice names `{name}`, which is not among the tools"),
                None => "tool_choice `required` needs at least one function tool".into(),
            });
        };
        let schema = function.parameters.unwrap_or(Value::Null);
        let arguments = Value::Object(arguments_for(&function.name, &schema, seed)).to_string();
        Ok(Some(Self {
            name: function.name,
            arguments,
        }))
    }

    /// The call's id for choice `index`: deterministic, so every instance answers alike.
    pub fn id(&self, index: u32) -> String {
        let h = xxh3_64_with_seed(self.arguments.as_bytes(), u64::from(index));
        format!("call_{h:016x}")
    }
}

/// `text` in streamed pieces of about [`PIECE`] bytes (each one simulated output token).
pub(crate) fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = PIECE.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, tail) = rest.split_at(end);
        out.push(piece);
        rest = tail;
    }
    out
}

/// The answer to `response_format` (raw request JSON): for `json_schema`, an object with
/// the schema's required properties (the same rule as tool arguments); for `json_object`,
/// `{}`; `Ok(None)` for `text` or absent.
pub(crate) fn json_output(
    response_format: Option<&str>,
    seed: u64,
) -> Result<Option<String>, String> {
    let Some(raw) = response_format else {
        return Ok(None);
    };
    let format: Value = serde_json::from_str(raw).map_err(|e| format!("response_format: {e}"))?;
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let schema = format
                .get("json_schema")
                .and_then(|j| j.get("schema"))
                .unwrap_or(&Value::Null);
            Ok(Some(
                Value::Object(arguments_for("response", schema, seed)).to_string(),
            ))
        }
        Some("json_object") => Ok(Some("{}".to_owned())),
        Some("text") => Ok(None),
        None if format.is_null() => Ok(None),
        _ => Err("response_format.type must be `text`, `json_object` or `json_schema`".into()),
    }
}

/// Values for the schema's required properties.
fn arguments_for(tool: &str, schema: &Value, seed: u64) -> Map<String, Value> {
    let mut out = Map::new();
    let (Some(properties), Some(required)) = (
        schema.get("properties").and_then(Value::as_object),
        schema.get("required").and_then(Value::as_array),
    ) else {
        return out;
    };
    for name in required.iter().filter_map(Value::as_str) {
        let property = properties.get(name).unwrap_or(&Value::Null);
        out.insert(
            name.to_owned(),
            value_for(&format!("{tool} {name}"), property, seed),
        );
    }
    out
}

fn value_for(key: &str, schema: &Value, seed: u64) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        // `["string", "null"]`: the first type named.
        Some(Value::Array(kinds)) => kinds.iter().find_map(Value::as_str).unwrap_or("string"),
        _ => "string",
    };
    match kind {
        "integer" => Value::from(1 + (seed % 9) as i64),
        "number" => Value::from(1.5),
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        "object" => Value::Object(arguments_for(key, schema, seed)),
        "array" => Value::Array(Vec::new()),
        _ => Value::String(generate_text(key, seed, 1).trim().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tools() -> String {
        json!([
            {"type": "function", "function": {"name": "noop"}},
            {"type": "function", "function": {"name": "get_weather", "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"}, "days": {"type": "integer"},
                    "celsius": {"type": "boolean"}, "lat": {"type": "number"},
                    "unit": {"type": "string", "enum": ["C", "F"]}, "note": {"type": "string"}
                },
                "required": ["city", "days", "celsius", "lat", "unit"]
            }}}
        ])
        .to_string()
    }

    #[test]
    fn a_named_function_gets_arguments_of_its_required_types() {
        let call = ToolCall::plan(
            Some(&tools()),
            Some(r#"{"type":"function","function":{"name":"get_weather"}}"#),
            7,
        )
        .unwrap()
        .unwrap();
        assert_eq!(call.name, "get_weather");
        let args: Value = serde_json::from_str(&call.arguments).unwrap();
        assert!(
            args["city"].as_str().is_some_and(|s| !s.is_empty()),
            "{args}"
        );
        assert!(args["days"].is_i64() && args["lat"].is_f64(), "{args}");
        assert_eq!(args["celsius"], true);
        assert_eq!(args["unit"], "C");
        assert!(
            args.get("note").is_none(),
            "only required properties: {args}"
        );
        // Deterministic: the same request, the same call.
        let again = ToolCall::plan(
            Some(&tools()),
            Some(r#"{"type":"function","function":{"name":"get_weather"}}"#),
            7,
        );
        assert_eq!(again.unwrap().as_ref(), Some(&call));
        assert_eq!(pieces(&call.arguments).concat(), call.arguments);
        assert_ne!(call.id(0), call.id(1));
    }

    #[test]
    fn required_calls_the_first_tool_and_auto_answers_text() {
        let call = ToolCall::plan(Some(&tools()), Some(r#""required""#), 0)
            .unwrap()
            .unwrap();
        assert_eq!(
            (call.name.as_str(), call.arguments.as_str()),
            ("noop", "{}")
        );
        assert_eq!(
            ToolCall::plan(Some(&tools()), Some(r#""auto""#), 0),
            Ok(None)
        );
        assert_eq!(ToolCall::plan(Some(&tools()), None, 0), Ok(None));
    }

    #[test]
    fn response_formats_answer_json_of_the_schema() {
        let format = json!({"type": "json_schema", "json_schema": {"name": "r", "schema": {
            "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}});
        let out = json_output(Some(&format.to_string()), 3).unwrap().unwrap();
        assert!(
            serde_json::from_str::<Value>(&out).unwrap()["n"].is_i64(),
            "{out}"
        );
        let object = json_output(Some(r#"{"type":"json_object"}"#), 0);
        assert_eq!(object, Ok(Some("{}".to_owned())));
        assert_eq!(json_output(Some(r#"{"type":"text"}"#), 0), Ok(None));
        assert_eq!(json_output(None, 0), Ok(None));
        assert!(json_output(Some(r#"{"type":"xml"}"#), 0).is_err());
        assert_eq!(pieces("0123456789").concat(), "0123456789");
    }

    #[test]
    fn unknown_names_and_missing_tools_are_errors() {
        let named = r#"{"type":"function","function":{"name":"nope"}}"#;
        assert!(ToolCall::plan(Some(&tools()), Some(named), 0)
            .unwrap_err()
            .contains("nope"));
        assert!(ToolCall::plan(None, Some(r#""required""#), 0).is_err());
        assert!(ToolCall::plan(Some("7"), Some(r#""required""#), 0).is_err());
    }
}
