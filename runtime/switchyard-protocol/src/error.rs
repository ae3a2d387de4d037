//! OpenAI's error shape: `{"error":{"message","type","param","code"}}`.

use serde::{Deserialize, Serialize};

/// The body of every error response and of an in-band stream error event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    /// OpenAI sends a string; vLLM and SGLang send the HTTP status as a number, read as its
    /// decimal text.
    #[serde(default, deserialize_with = "code_text")]
    pub code: Option<String>,
}

fn code_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

impl ErrorBody {
    pub fn new(
        message: impl Into<String>,
        kind: impl Into<String>,
        param: Option<String>,
        code: Option<String>,
    ) -> Self {
        Self {
            error: ErrorDetail {
                message: message.into(),
                kind: kind.into(),
                param,
                code,
            },
        }
    }

    /// Serialized JSON; serializing this type cannot fail (strings and options only).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"error":{"message":"internal error","type":"internal_error","param":null,"code":null}}"#
                .to_owned()
        })
    }
}

#[cfg(test)]
mod code_tests {
    use super::*;

    #[test]
    fn a_numeric_code_as_vllm_sends_it_reads_as_text() {
        let vllm = r#"{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","param":"model","code":404}}"#;
        let body: ErrorBody = serde_json::from_str(vllm).unwrap();
        assert_eq!(body.error.code.as_deref(), Some("404"));
        let openai =
            r#"{"error":{"message":"m","type":"t","param":null,"code":"model_not_found"}}"#;
        let body: ErrorBody = serde_json::from_str(openai).unwrap();
        assert_eq!(body.error.code.as_deref(), Some("model_not_found"));
        let absent = r#"{"error":{"message":"m","type":"t","param":null}}"#;
        assert_eq!(
            serde_json::from_str::<ErrorBody>(absent)
                .unwrap()
                .error
                .code,
            None
        );
    }
}
