//! Chat templates: render chat messages into a completion prompt (minijinja).
//!
//! Used for completions-only workers, and by the mocker to build the context it generates
//! from. Both use [`ChatTemplate::default`] unless configured otherwise, which is what makes a
//! chat request and its completions continuation (prompt + generated text) line up.

use std::io;

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::Serialize;
use switchyard_protocol::ChatMessage;

use crate::hf_template::{self, HfTemplate};

/// Template instructions one render may execute. A chat template is code, and one from
/// discovery (`chat_template_text`) is written by whoever can write to etcd or Kubernetes: a
/// nested loop over `range(100000)` must fail the render, not spin a core. Real templates use a
/// few hundred instructions per message, so this allows conversations of thousands of turns.
pub const RENDER_FUEL: u64 = 5_000_000;

/// Rendered bytes allowed per input byte (plus [`RENDER_OUTPUT_SLACK`]): a template adds a
/// header per message, it does not multiply the conversation. Bounds what `"x" * n` in a loop
/// could otherwise allocate.
pub const RENDER_OUTPUT_FACTOR: usize = 4;
/// Rendered bytes always allowed, whatever the input (system prompts a template adds itself).
pub const RENDER_OUTPUT_SLACK: usize = 1 << 20;

/// The default template: a ChatML-like layout that any completions model can continue.
pub const DEFAULT_TEMPLATE: &str = "{%- for message in messages -%}\n\
<|{{ message.role }}|>\n{{ message.content }}\n\
{% endfor -%}\n\
{%- if add_generation_prompt %}<|assistant|>\n{% endif -%}";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("invalid chat template: {0}")]
    Compile(String),
    #[error("chat template failed to render: {0}")]
    Render(String),
    #[error("chat template exceeded its render budget ({0})")]
    Budget(&'static str),
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    /// The source is [`DEFAULT_TEMPLATE`]: rendered by [`render_builtin`] without the
    /// template engine (the same bytes, ~10× cheaper — it runs for every routed chat request
    /// that needs prefix hashes).
    builtin: bool,
    /// The model's special tokens (from its `tokenizer_config.json`; empty otherwise).
    bos_token: String,
    eos_token: String,
}

#[derive(Serialize)]
struct TemplateMessage<'a> {
    role: &'a str,
    content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

impl Default for ChatTemplate {
    fn default() -> Self {
        // The built-in template is a constant that the tests compile.
        Self::from_source(DEFAULT_TEMPLATE.to_owned()).unwrap_or_else(|_| Self {
            env: Environment::new(),
            builtin: true,
            bos_token: String::new(),
            eos_token: String::new(),
        })
    }
}

impl ChatTemplate {
    /// Compiles a template. HF-style templates work: `bos_token`/`eos_token` are defined (empty)
    /// and `raise_exception(msg)` fails the render with `msg`.
    pub fn from_source(source: String) -> Result<Self, TemplateError> {
        let builtin = source == DEFAULT_TEMPLATE;
        let mut template = Self::compile(source, false)?;
        template.builtin = builtin;
        Ok(template)
    }

    /// A model's own template out of its `tokenizer_config.json`, with its special tokens,
    /// compiled the way `transformers` renders it (`trim_blocks`, `lstrip_blocks`).
    pub fn from_hf(hf: HfTemplate) -> Result<Self, TemplateError> {
        let mut template = Self::compile(hf.source, true)?;
        template.bos_token = hf.bos_token;
        template.eos_token = hf.eos_token;
        Ok(template)
    }

    /// The environment every template renders in: bounded (fuel), with the functions Hugging
    /// Face templates call (`raise_exception`, `strftime_now`, the `tojson` filter, Python
    /// string and dict methods, `break`/`continue`), and the template's trailing newline kept —
    /// minijinja drops one by default, and a ChatML template that ends its turn with a newline
    /// would then prompt the model one token short of what it was trained on.
    fn compile(source: String, hf_blocks: bool) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_fuel(Some(RENDER_FUEL));
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(hf_blocks);
        env.set_lstrip_blocks(hf_blocks);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", |format: String| -> String {
            // chrono panics on a malformed format only when *displayed*; `StrftimeItems`
            // parsing first turns a bad one into an empty string instead.
            let items: Vec<_> = chrono::format::StrftimeItems::new(&format).collect();
            if items
                .iter()
                .any(|i| matches!(i, chrono::format::Item::Error))
            {
                return String::new();
            }
            chrono::Local::now()
                .format_with_items(items.into_iter())
                .to_string()
        });
        env.add_template_owned("chat", source)
            .map_err(|e| TemplateError::Compile(e.to_string()))?;
        Ok(Self {
            env,
            builtin: false,
            bos_token: String::new(),
            eos_token: String::new(),
        })
    }

    /// Reads and compiles a template file: a Jinja file, or a Hugging Face
    /// `tokenizer_config.json` (optionally `…json#NAME` for one of its named templates).
    pub fn from_file(path: &str) -> Result<Self, TemplateError> {
        if hf_template::is_tokenizer_config(path) {
            return Self::from_hf(hf_template::load(path)?);
        }
        let source = std::fs::read_to_string(path)
            .map_err(|e| TemplateError::Compile(format!("{path}: {e}")))?;
        Self::from_source(source)
    }

    /// Renders `messages` into a prompt, ending with the assistant turn's opening.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, TemplateError> {
        if self.builtin {
            return Ok(render_builtin(messages));
        }
        self.render_with_engine(messages)
    }

    fn render_with_engine(&self, messages: &[ChatMessage]) -> Result<String, TemplateError> {
        let messages: Vec<TemplateMessage<'_>> = messages
            .iter()
            .map(|m| TemplateMessage {
                role: &m.role,
                content: m.text(),
                name: m.name.as_deref(),
            })
            .collect();
        let input: usize = messages
            .iter()
            .map(|m| m.role.len() + m.content.len() + m.name.map_or(0, str::len))
            .fold(0, usize::saturating_add);
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| TemplateError::Render(e.to_string()))?;
        let mut out = Bounded {
            buf: Vec::with_capacity(input + 64),
            max: input
                .saturating_mul(RENDER_OUTPUT_FACTOR)
                .saturating_add(RENDER_OUTPUT_SLACK),
            overflowed: false,
        };
        let ctx = context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        match template.render_captured_to(ctx, &mut out) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::OutOfFuel => {
                return Err(TemplateError::Budget("too many template instructions"))
            }
            Err(_) if out.overflowed => {
                return Err(TemplateError::Budget("rendered prompt too large"))
            }
            Err(e) => return Err(TemplateError::Render(e.to_string())),
        }
        String::from_utf8(out.buf).map_err(|e| TemplateError::Render(e.to_string()))
    }
}

/// A render target that refuses to grow past `max` bytes, so a template cannot allocate more
/// than its budget however it loops.
struct Bounded {
    buf: Vec<u8>,
    max: usize,
    overflowed: bool,
}

impl io::Write for Bounded {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(bytes.len()) > self.max {
            self.overflowed = true;
            return Err(io::Error::other("rendered prompt too large"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// [`DEFAULT_TEMPLATE`], written out: `<|role|>\ncontent\n` per message, then the
/// assistant turn's opening.
fn render_builtin(messages: &[ChatMessage]) -> String {
    let mut out = String::with_capacity(64);
    for message in messages {
        out.push_str("<|");
        out.push_str(&message.role);
        out.push_str("|>\n");
        out.push_str(&message.text());
        out.push('\n');
    }
    out.push_str("<|assistant|>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(json: &str) -> Vec<ChatMessage> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn default_template_renders_roles_in_order_and_opens_the_assistant_turn() {
        let t = ChatTemplate::from_source(DEFAULT_TEMPLATE.to_owned()).unwrap();
        let out = t
            .render(&msgs(
                r#"[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}]"#,
            ))
            .unwrap();
        assert_eq!(out, "<|system|>\nbe brief\n<|user|>\nhi\n<|assistant|>\n");
    }

    #[test]
    fn custom_template_and_raise_exception() {
        let t = ChatTemplate::from_source(
            "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools') }}{% endif %}[{{ m.role }}]{{ m.content }}{% endfor %}".into(),
        )
        .unwrap();
        assert_eq!(
            t.render(&msgs(r#"[{"role":"user","content":"x"}]"#))
                .unwrap(),
            "[user]x"
        );
        let err = t
            .render(&msgs(r#"[{"role":"tool","content":"x"}]"#))
            .unwrap_err();
        assert!(err.to_string().contains("no tools"), "{err}");
    }

    #[test]
    fn a_template_that_loops_without_end_runs_out_of_fuel() {
        let t = ChatTemplate::from_source(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
                .into(),
        )
        .unwrap();
        let err = t
            .render(&msgs(r#"[{"role":"user","content":"x"}]"#))
            .unwrap_err();
        assert!(matches!(err, TemplateError::Budget(_)), "{err}");
    }

    #[test]
    fn a_template_cannot_render_more_than_its_output_budget() {
        // 100000 × 100 kB = 10 GB without the bound; few instructions, so fuel alone would
        // not stop it.
        let t = ChatTemplate::from_source(
            "{% for a in range(100000) %}{{ 'x' * 100000 }}{% endfor %}".into(),
        )
        .unwrap();
        let err = t
            .render(&msgs(r#"[{"role":"user","content":"x"}]"#))
            .unwrap_err();
        assert!(
            matches!(err, TemplateError::Budget("rendered prompt too large")),
            "{err}"
        );
    }

    #[test]
    fn broken_template_is_a_compile_error() {
        assert!(matches!(
            ChatTemplate::from_source("{% for %}".into()),
            Err(TemplateError::Compile(_))
        ));
    }

    #[test]
    fn the_builtin_renderer_matches_the_template_engine_byte_for_byte() {
        let t = ChatTemplate::default();
        assert!(t.builtin);
        for json in [
            r#"[]"#,
            r#"[{"role":"user","content":"hello there"}]"#,
            r#"[{"role":"system","content":""},{"role":"user","content":"a\nb {{ x }} {% y %} <|user|> ünïcødé 🚀"}]"#,
            r#"[{"role":"user","content":[{"type":"text","text":"part 1 "},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"part 2"}]}]"#,
            r#"[{"role":"assistant","content":null},{"role":"tool","content":"42","name":"calc"}]"#,
            r#"[{"role":"user","content":"  leading and trailing  \n\n"},{"role":"assistant","content":"<b>&amp;</b>"}]"#,
        ] {
            let messages = msgs(json);
            assert_eq!(
                t.render(&messages).unwrap(),
                t.render_with_engine(&messages).unwrap(),
                "{json}"
            );
        }
    }

    /// A ChatML template as `tokenizer_config.json` files carry it: block tags on their own
    /// lines (rendered with `trim_blocks`/`lstrip_blocks`), Python's `.strip()`, `tojson`, and a
    /// turn that ends with a newline.
    const HF_CHATML: &str = "{% for message in messages %}\n  {% if message['role'] != 'tool' %}\n<|im_start|>{{ message['role'] }}\n{{ message['content'].strip() }}<|im_end|>\n  {% endif %}\n{% endfor %}\n{% if add_generation_prompt %}\n<|im_start|>assistant\n{% endif %}\n";

    #[test]
    fn a_tokenizer_config_template_renders_as_transformers_does() {
        let config = serde_json::json!({
            "chat_template": [
                {"name": "default", "template": HF_CHATML},
                {"name": "dated", "template": "{{ bos_token }}{{ strftime_now('%Y') }}|{{ messages | tojson }}"}
            ],
            "bos_token": {"content": "<s>"},
            "eos_token": "</s>"
        });
        let dir = std::env::temp_dir().join(format!("hf-template-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer_config.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let path = path.to_str().unwrap();

        let chatml = ChatTemplate::from_file(path).unwrap();
        let out = chatml
            .render(&msgs(r#"[{"role":"user","content":"  hi  "}]"#))
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );

        let dated = ChatTemplate::from_file(&format!("{path}#dated")).unwrap();
        let out = dated
            .render(&msgs(r#"[{"role":"user","content":"x"}]"#))
            .unwrap();
        let year = chrono::Local::now().format("%Y").to_string();
        assert!(out.starts_with(&format!("<s>{year}|[")), "{out}");
        assert!(out.contains(r#""content":"x""#), "{out}");

        let missing = ChatTemplate::from_file(&format!("{path}#rag")).unwrap_err();
        assert!(missing.to_string().contains("default, dated"), "{missing}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_templates_trailing_newline_is_kept() {
        let t = ChatTemplate::from_source(
            "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}\n".into(),
        )
        .unwrap();
        let out = t
            .render(&msgs(r#"[{"role":"user","content":"hi"}]"#))
            .unwrap();
        assert_eq!(out, "<|user|>hi\n");
    }

    #[test]
    fn a_malformed_strftime_format_renders_empty_not_a_panic() {
        let t = ChatTemplate::from_source("[{{ strftime_now('%Q%') }}]".into()).unwrap();
        assert_eq!(t.render(&[]).unwrap(), "[]");
    }
}
