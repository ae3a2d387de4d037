//! The chat features beyond one plain text choice: `n > 1` (n deterministic choices),
//! `stop` sequences (the text is cut before the first stop string, `finish_reason: "stop"`)
//! tool calls ([`ToolCall`], `finish_reason: "tool_calls"`) and JSON output for
//! `response_format` (`json_object`, `json_schema`), and `logprobs` on generated text.
//!
//! The [`Sequence`](crate::sequence::Sequence) still paces the request (one decode step per
//! inter-token interval, faults, KV); each step advances every choice by one token. Choice 0
//! is the sequence's own text, so `n: 1` with a stop string answers a prefix of what the
//! plain path answers; choice `i` continues the same context under a seed mixed with `i`.
//! A plain request never comes here (see [`ChatPlan::into_extended`]).

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use switchyard_protocol::{ChatCompletionRequest, CompletionRequest, Usage};

use crate::generate::TextGen;
use crate::logprobs::{self, Logprobs, TokenLogprob};
use crate::respond::ApiError;
use crate::tools::{self, ToolCall};
use crate::wire::{Envelope, Kind};

/// Most choices one request may ask for: bounds the work one request can cause.
pub(crate) const MAX_N: u32 = 128;

/// What a chat request asks for beyond one plain text choice.
#[derive(Debug, Default)]
pub(crate) struct ChatPlan {
    pub n: u32,
    pub stop: Vec<String>,
    pub tool: Option<ToolCall>,
    /// The content every choice answers under `response_format` (a JSON object).
    pub json: Option<String>,
    /// `logprobs: true`: how many `top_logprobs` per token.
    pub logprobs: Option<u8>,
}

impl ChatPlan {
    /// Reads `n`, `stop`, `tools` and `tool_choice`; bad values are 400s.
    pub fn from_request(req: &ChatCompletionRequest, seed: u64) -> Result<Self, ApiError> {
        let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
        let n = req.n.unwrap_or(1);
        if n == 0 || n > MAX_N {
            return Err(bad(format!("n must be between 1 and {MAX_N}, got {n}")));
        }
        let stop = match req.extra.get("stop") {
            Some(raw) => parse_stop(raw.get()).map_err(bad)?,
            None => Vec::new(),
        };
        let raw = |key: &str| req.extra.get(key).map(|r| r.get());
        let tool = ToolCall::plan(raw("tools"), raw("tool_choice"), seed).map_err(bad)?;
        let json = tools::json_output(raw("response_format"), seed).map_err(bad)?;
        let logprobs = parse_logprobs(raw("logprobs"), raw("top_logprobs")).map_err(bad)?;
        Ok(Self {
            n,
            stop,
            tool,
            json,
            logprobs,
        })
    }

    /// A completions request: `n` and `stop` only (a migrated chat stream continues as a
    /// completion, and must stop where the chat request would have).
    pub fn from_completion(req: &CompletionRequest) -> Result<Self, ApiError> {
        let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
        let n = req.n.unwrap_or(1);
        if n == 0 || n > MAX_N {
            return Err(bad(format!("n must be between 1 and {MAX_N}, got {n}")));
        }
        let stop = match req.extra.get("stop") {
            Some(raw) => parse_stop(raw.get()).map_err(bad)?,
            None => Vec::new(),
        };
        Ok(Self {
            n,
            stop,
            ..Self::default()
        })
    }

    /// `None` for one plain text choice, which the ordinary path serves unchanged.
    pub fn into_extended(self) -> Option<Self> {
        let plain = self.n == 1
            && self.stop.is_empty()
            && self.fixed().is_none()
            && self.logprobs.is_none();
        (!plain).then_some(self)
    }

    /// Decode steps the request runs: a tool call takes one per piece of its arguments
    /// (whatever `max_tokens` says: a cut call would not be valid JSON).
    pub fn steps(&self, requested: u32) -> u32 {
        match self.fixed() {
            Some(text) => u32::try_from(tools::pieces(text).len().max(1)).unwrap_or(u32::MAX),
            None => requested,
        }
    }

    /// The text streamed in fixed pieces instead of generated: a tool call's arguments
    /// (which win over `response_format`, as the call is the answer), or the JSON output.
    fn fixed(&self) -> Option<&str> {
        match (&self.tool, &self.json) {
            (Some(call), _) => Some(&call.arguments),
            (None, Some(json)) => Some(json),
            (None, None) => None,
        }
    }
}

/// `logprobs` (a boolean) and `top_logprobs` (0..=20, only with `logprobs: true`).
fn parse_logprobs(logprobs: Option<&str>, top: Option<&str>) -> Result<Option<u8>, String> {
    let on: Option<bool> = match logprobs {
        Some(raw) => serde_json::from_str(raw).map_err(|_| "logprobs must be a boolean")?,
        None => None,
    };
    let top: Option<u8> = match top {
        Some(raw) => serde_json::from_str(raw)
            .ok()
            .filter(|t: &Option<u8>| t.is_none_or(|t| t <= logprobs::MAX_TOP))
            .ok_or(format!(
                "top_logprobs must be an integer between 0 and {}",
                logprobs::MAX_TOP
            ))?,
        None => None,
    };
    match (on.unwrap_or(false), top) {
        (true, top) => Ok(Some(top.unwrap_or(0))),
        (false, Some(t)) if t > 0 => Err("top_logprobs needs logprobs: true".into()),
        (false, _) => Ok(None),
    }
}

/// `stop`: a string, an array of strings, or null; empty strings never match.
fn parse_stop(raw: &str) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stop {
        One(String),
        Many(Vec<String>),
    }
    let stop: Option<Stop> = serde_json::from_str(raw)
        .map_err(|_| "stop must be a string or an array of strings".to_owned())?;
    let all = match stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    Ok(all.into_iter().filter(|s| !s.is_empty()).collect())
}

#[derive(Debug)]
struct Choice {
    /// `None` for choice 0, whose tokens are the sequence's.
    gen: Option<TextGen>,
    text: String,
    /// Bytes of `text` already streamed.
    emitted: usize,
    tokens: u32,
    finish: Option<&'static str>,
    /// `finish` was streamed.
    finish_sent: bool,
    /// With `logprobs`: each token's entry and the byte of `text` where the token ends.
    logprobs: Vec<(usize, TokenLogprob)>,
    /// Entries of `logprobs` already streamed.
    logprobs_sent: usize,
}

/// The choices of one request as they are generated.
#[derive(Debug)]
pub(crate) struct Choices {
    plan: ChatPlan,
    choices: Vec<Choice>,
    /// A stream holds back this many bytes: they may be the start of a stop string.
    hold: usize,
    steps: u32,
    /// Steps whose tool-call piece was streamed.
    streamed_steps: u32,
}

impl Choices {
    pub fn new(plan: ChatPlan, context: &str, seed: u64) -> Self {
        let choices = (0..plan.n)
            .map(|i| Choice {
                gen: (i > 0).then(|| TextGen::new(context, choice_seed(seed, i))),
                text: String::new(),
                emitted: 0,
                tokens: 0,
                finish: None,
                finish_sent: false,
                logprobs: Vec::new(),
                logprobs_sent: 0,
            })
            .collect();
        let hold = plan.stop.iter().map(|s| s.len() - 1).max().unwrap_or(0);
        Self {
            plan,
            choices,
            hold,
            steps: 0,
            streamed_steps: 0,
        }
    }

    /// One decode step; `token` is the sequence's (choice 0's). True when every choice has
    /// stopped, so the sequence can end early.
    pub fn advance(&mut self, token: &'static str) -> bool {
        self.steps += 1;
        if self.plan.fixed().is_some() {
            return false;
        }
        for choice in self.choices.iter_mut().filter(|c| c.finish.is_none()) {
            let token = match &mut choice.gen {
                Some(gen) => gen.next_token(),
                None => token,
            };
            let from = choice.text.len().saturating_sub(self.hold);
            choice.text.push_str(token);
            if let Some(top) = self.plan.logprobs {
                let entry = logprobs::for_token(token, choice.tokens, top);
                choice.logprobs.push((choice.text.len(), entry));
            }
            choice.tokens += 1;
            if let Some(at) = find_stop(&choice.text, from, &self.plan.stop) {
                choice.text.truncate(at);
                // Tokens cut away with the stop string are not reported.
                choice.logprobs.retain(|(end, _)| *end <= at);
                choice.finish = Some("stop");
            }
        }
        self.choices.iter().all(|c| c.finish.is_some())
    }

    /// The output budget is spent: every choice still going ends.
    pub fn finish_rest(&mut self) {
        let reason = match (&self.plan.tool, &self.plan.json) {
            (Some(_), _) => "tool_calls",
            // The whole JSON object was sent: it ended, it was not cut.
            (None, Some(_)) => "stop",
            (None, None) => "length",
        };
        for choice in &mut self.choices {
            choice.finish.get_or_insert(reason);
        }
    }

    /// Usage over all choices.
    pub fn usage(&self, prompt_tokens: u32) -> Usage {
        let completion = match self.plan.fixed() {
            Some(_) => self.steps.saturating_mul(self.plan.n),
            None => self.choices.iter().map(|c| c.tokens).sum(),
        };
        Usage::new(prompt_tokens, completion)
    }

    /// The whole non-streamed response.
    pub fn response(&self, envelope: &Envelope, usage: Usage) -> Bytes {
        let choices: Vec<WholeChoice<'_>> = (0u32..)
            .zip(&self.choices)
            .map(|(index, c)| WholeChoice {
                index,
                message: WholeMessage {
                    role: "assistant",
                    content: match (&self.plan.tool, &self.plan.json) {
                        (Some(_), _) => None,
                        (None, Some(json)) => Some(json.as_str()),
                        (None, None) => Some(c.text.as_str()),
                    },
                    tool_calls: self.plan.tool.as_ref().map(|call| {
                        [WholeToolCall {
                            id: call.id(index),
                            kind: "function",
                            function: WholeFunction {
                                name: &call.name,
                                arguments: &call.arguments,
                            },
                        }]
                    }),
                },
                logprobs: self.plan.logprobs.map(|_| Logprobs {
                    content: c.logprobs.iter().map(|(_, e)| e).collect(),
                }),
                finish_reason: c.finish.unwrap_or("length"),
            })
            .collect();
        if envelope.kind() == Kind::Completion {
            let choices: Vec<_> = (0u32..)
                .zip(&self.choices)
                .map(|(index, c)| TextChoice {
                    index,
                    text: &c.text,
                    logprobs: None,
                    finish_reason: Some(c.finish.unwrap_or("length")),
                })
                .collect();
            return envelope.response_with(choices, usage);
        }
        envelope.response_with(choices, usage)
    }

    /// The opening chunk of each choice (`role: assistant`).
    pub fn role_chunks(&self, envelope: &Envelope) -> Bytes {
        if envelope.kind() == Kind::Completion {
            return Bytes::new();
        }
        let content = self.plan.tool.is_none().then_some("");
        let mut out = BytesMut::new();
        for index in 0..self.plan.n {
            let delta = Delta {
                role: Some("assistant"),
                content,
                tool_calls: None,
            };
            out.extend_from_slice(&chunk(envelope, index, delta, None, None));
        }
        out.freeze()
    }

    /// What the last step produced, as chunks: new text (less what may start a stop
    /// string) or the next piece of the call's arguments, and the finish of each choice
    /// that ended. Empty when there is nothing to send yet.
    pub fn step_chunks(&mut self, envelope: &Envelope) -> Bytes {
        let mut out = BytesMut::new();
        let pieces = self.plan.fixed().map(tools::pieces);
        let step = self.steps as usize;
        let new_step = self.steps > self.streamed_steps;
        self.streamed_steps = self.steps;
        for (index, choice) in (0u32..).zip(self.choices.iter_mut()) {
            let delta = match (&self.plan.tool, &pieces) {
                (Some(call), Some(pieces)) if new_step && step >= 1 && step <= pieces.len() => {
                    let first = step == 1;
                    Some((
                        Delta {
                            role: None,
                            content: None,
                            tool_calls: Some([ToolCallDelta {
                                index: 0,
                                id: first.then(|| call.id(index)),
                                kind: first.then_some("function"),
                                function: FunctionDelta {
                                    name: first.then_some(call.name.as_str()),
                                    arguments: pieces[step - 1],
                                },
                            }]),
                        },
                        None,
                    ))
                }
                (None, Some(pieces)) if new_step && step >= 1 && step <= pieces.len() => Some((
                    Delta {
                        role: None,
                        content: Some(pieces[step - 1]),
                        tool_calls: None,
                    },
                    None,
                )),
                (_, Some(_)) | (Some(_), None) => None,
                (None, None) => {
                    let mut upto = match choice.finish {
                        Some(_) => choice.text.len(),
                        None => choice.text.len().saturating_sub(self.hold),
                    };
                    while !choice.text.is_char_boundary(upto) {
                        upto -= 1;
                    }
                    if upto < choice.text.len() {
                        // Whole tokens only (each starts with a space): a stream cut here
                        // and continued elsewhere (migration) resumes at a token boundary.
                        upto = choice.text[..upto].rfind(' ').unwrap_or(0);
                    }
                    if upto > choice.emitted {
                        let from = choice.emitted;
                        choice.emitted = upto;
                        // The entries of the tokens this delta completes.
                        let pending = &choice.logprobs[choice.logprobs_sent..];
                        let ready = pending.iter().take_while(|(end, _)| *end <= upto).count();
                        let entries = &pending[..ready];
                        choice.logprobs_sent += ready;
                        let delta = Delta {
                            role: None,
                            content: Some(&choice.text[from..upto]),
                            tool_calls: None,
                        };
                        let logprobs = self.plan.logprobs.map(|_| Logprobs {
                            content: entries.iter().map(|(_, e)| e).collect(),
                        });
                        Some((delta, logprobs))
                    } else {
                        None
                    }
                }
            };
            if let Some((delta, logprobs)) = delta {
                out.extend_from_slice(&chunk(envelope, index, delta, logprobs, None));
            }
            if let (Some(reason), false) = (choice.finish, choice.finish_sent) {
                choice.finish_sent = true;
                let finish = Some(reason);
                out.extend_from_slice(&chunk(envelope, index, Delta::default(), None, finish));
            }
        }
        out.freeze()
    }
}

/// Choice `i`'s seed: choice 0 keeps the request's, so it matches the plain answer.
fn choice_seed(seed: u64, index: u32) -> u64 {
    seed ^ u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Where the earliest stop string starts in `text`, searching from byte `from` on.
fn find_stop(text: &str, mut from: usize, stops: &[String]) -> Option<usize> {
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    stops
        .iter()
        .filter_map(|stop| text[from..].find(stop.as_str()).map(|at| from + at))
        .min()
}

fn chunk(
    envelope: &Envelope,
    index: u32,
    delta: Delta<'_>,
    logprobs: Option<Logprobs<'_>>,
    finish_reason: Option<&'static str>,
) -> Bytes {
    if envelope.kind() == Kind::Completion {
        return envelope.chunk_with([TextChoice {
            index,
            text: delta.content.unwrap_or(""),
            logprobs: None,
            finish_reason,
        }]);
    }
    envelope.chunk_with([ChunkChoice {
        index,
        delta,
        logprobs,
        finish_reason,
    }])
}

/// A completions choice (whole or chunk).
#[derive(Serialize)]
struct TextChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct WholeChoice<'a> {
    index: u32,
    message: WholeMessage<'a>,
    logprobs: Option<Logprobs<'a>>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct WholeMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[WholeToolCall<'a>; 1]>,
}

#[derive(Serialize)]
struct WholeToolCall<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WholeFunction<'a>,
}

#[derive(Serialize)]
struct WholeFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<Logprobs<'a>>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[cfg(test)]
#[path = "choices_tests.rs"]
mod tests;
