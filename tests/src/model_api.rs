//! A stand-in for a vendor's model API on loopback TLS, speaking enough of Anthropic's
//! Messages API (`POST /v1/messages`, streamed as server-sent events) or OpenAI's Responses
//! API (`POST /v1/responses`, streamed; a WebSocket upgrade on `GET /v1/responses` gets 426,
//! as a server without WebSockets answers) for the real Claude Code and Codex CLIs to do a
//! scripted job: a tool call that writes `hello.txt`, one that runs a command, then a final
//! answer. The step is read from the conversation the CLI sends back (how many tool results
//! it holds), so retries and side requests get a consistent answer.
//!
//! It records every request: method, path, headers, body.

use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// What the scripted job writes, and the command it runs.
pub const WRITTEN: &str = "hello from the stand-in model\n";
/// No `$(...)`: Gemini CLI refuses command substitution.
pub const COMMAND: &str = "echo ran-in-guest > ran.txt && uname -m >> ran.txt && cat hello.txt";
pub const FINAL: &str = "Done: wrote hello.txt and ran the command.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Anthropic,
    OpenAi,
    Google,
}

#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// The scripted step this request got (0 write, 1 command, 2 final; None: not a model
    /// turn).
    pub step: Option<usize>,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl ApiRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct ModelApi {
    pub port: u16,
    pub ca_pem: String,
    pub vendor: Vendor,
    seen: Arc<Mutex<Vec<ApiRequest>>>,
    _rt: tokio::runtime::Runtime,
}

impl ModelApi {
    pub fn start(vendor: Vendor) -> ModelApi {
        let (acceptor, ca_pem) = crate::tls_upstream::tls_acceptor(&["localhost"]);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<ApiRequest>>> = Default::default();
        let s = seen.clone();
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, s) = (acceptor.clone(), s.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(vendor, req, &s).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        ModelApi {
            port,
            ca_pem,
            vendor,
            seen,
            _rt: rt,
        }
    }

    pub fn requests(&self) -> Vec<ApiRequest> {
        self.seen.lock().unwrap().clone()
    }

    /// The shared record, for a process that reports requests as they come.
    pub fn requests_handle(&self) -> Arc<Mutex<Vec<ApiRequest>>> {
        self.seen.clone()
    }

    /// The model turns it answered, by step.
    pub fn steps(&self) -> Vec<usize> {
        self.requests().iter().filter_map(|r| r.step).collect()
    }
}

type Body = BoxBody<Bytes, std::convert::Infallible>;

async fn answer(
    vendor: Vendor,
    req: Request<Incoming>,
    seen: &Mutex<Vec<ApiRequest>>,
) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut record = ApiRequest {
        method: method.clone(),
        path: path.clone(),
        headers,
        body: body.clone(),
        step: None,
        at: std::time::Instant::now(),
    };
    let response = match (vendor, method.as_str(), path.as_str()) {
        (Vendor::Anthropic, "POST", "/v1/messages") => {
            let step = anthropic_step(&body);
            let has_tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
            let step = if has_tools { step } else { 2 };
            record.step = Some(step);
            let events = anthropic_events(step, &body);
            if body["stream"].as_bool() == Some(true) {
                sse(events)
            } else {
                json_response(anthropic_message(step, &body))
            }
        }
        (Vendor::OpenAi, "GET", "/v1/responses") => Response::builder()
            .status(426)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{\"error\":\"no websockets here\"}")).boxed())
            .unwrap(),
        (Vendor::OpenAi, "POST", "/v1/chat/completions") => {
            let step = chat_step(&body);
            record.step = Some(step);
            let text = chat_text(step);
            if body["stream"].as_bool() == Some(true) {
                let chunk = |delta: Value, finish: Value| {
                    (
                        String::new(),
                        json!({"id": "chatcmpl-berth", "object": "chat.completion.chunk",
                        "created": 0, "model": "gpt-stand-in",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
                    )
                };
                let mut events = vec![
                    chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                    chunk(json!({"content": text}), Value::Null),
                    chunk(json!({}), json!("stop")),
                ];
                events.push((String::new(), json!("[DONE]")));
                sse_raw(events)
            } else {
                json_response(json!({"id": "chatcmpl-berth", "object": "chat.completion",
                    "created": 0, "model": "gpt-stand-in",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}))
            }
        }
        (Vendor::OpenAi, "POST", "/v1/responses") => {
            let step = openai_step(&body);
            record.step = Some(step);
            sse(openai_events(step, &body))
        }
        (Vendor::Google, "POST", p) if p.starts_with("/v1beta/models/") => {
            if p.ends_with(":countTokens") {
                json_response(json!({"totalTokens": 10}))
            } else if body["generationConfig"]["responseMimeType"] == "application/json" {
                // The CLI's own side questions (who speaks next, loop checks): "the user".
                json_response(gemini_chunk(
                    json!([{"text": json!({"reasoning": "the job is done", "next_speaker": "user",
                           "complexity_reasoning": "a small job", "complexity_score": 1})
                    .to_string()}]),
                ))
            } else {
                let step = gemini_step(&body);
                record.step = Some(step);
                let chunk = gemini_chunk(gemini_parts(step, &body));
                if p.ends_with(":streamGenerateContent") {
                    sse(vec![(String::new(), chunk)])
                } else {
                    json_response(chunk)
                }
            }
        }
        _ => Response::builder()
            .status(404)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{\"error\":\"not here\"}")).boxed())
            .unwrap(),
    };
    seen.lock().unwrap().push(record);
    response
}

fn json_response(v: Value) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed())
        .unwrap()
}

fn sse(events: Vec<(String, Value)>) -> Response<Body> {
    let text: String = events
        .iter()
        .map(|(name, data)| match name.as_str() {
            "" => format!("data: {data}\n\n"),
            _ => format!("event: {name}\ndata: {data}\n\n"),
        })
        .collect();
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Full::new(Bytes::from(text)).boxed())
        .unwrap()
}

/// Server-sent events whose data is printed as is (a JSON string prints unquoted, for
/// the Chat Completions API's closing `[DONE]`).
fn sse_raw(events: Vec<(String, Value)>) -> Response<Body> {
    let text: String = events
        .iter()
        .map(|(_, data)| match data {
            Value::String(s) => format!("data: {s}\n\n"),
            other => format!("data: {other}\n\n"),
        })
        .collect();
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Full::new(Bytes::from(text)).boxed())
        .unwrap()
}

/// Chat Completions (aider): no tool calls; the edit is a SEARCH/REPLACE block and the
/// command a shell block in the text. The step is how many answers came before.
fn chat_step(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["role"] == "assistant"
                && m["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("hello.txt"))
        })
        .count()
        .min(1)
        * 2
}

fn chat_text(step: usize) -> String {
    match step {
        0 => format!(
            "I will create the file.\n\nhello.txt\n```\n<<<<<<< SEARCH\n=======\n{}>>>>>>> REPLACE\n```\n\nThen run the check:\n\n```bash\n{COMMAND}\n```\n",
            WRITTEN
        ),
        _ => FINAL.to_string(),
    }
}

/// How many tool results the conversation holds.
fn anthropic_step(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "user")
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["type"] == "tool_result")
        .count()
        .min(2)
}

/// The offered tool called `name` (any case), and its property whose name contains `key`:
/// Claude Code offers `Write {file_path}`, opencode `write {filePath}`.
fn offered_tool(body: &Value, name: &str, key: &str) -> (String, String) {
    let tool = body["tools"].as_array().into_iter().flatten().find(|t| {
        t["name"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    });
    let tool_name = tool
        .and_then(|t| t["name"].as_str())
        .unwrap_or(name)
        .to_string();
    let prop = tool
        .and_then(|t| t["input_schema"]["properties"].as_object())
        .and_then(|p| {
            p.keys()
                .find(|k| k.to_ascii_lowercase().replace('_', "").contains(key))
                .cloned()
        })
        .unwrap_or_else(|| key.to_string());
    (tool_name, prop)
}

fn anthropic_content(step: usize, body: &Value) -> Value {
    match step {
        0 => {
            let (name, path) = offered_tool(body, "write", "filepath");
            json!({"type": "tool_use", "id": "toolu_berth_1", "name": name,
                   "input": {path: "/work/hello.txt", "content": WRITTEN}})
        }
        1 => {
            let (name, command) = offered_tool(body, "bash", "command");
            json!({"type": "tool_use", "id": "toolu_berth_2", "name": name,
                   "input": {command: COMMAND, "description": "Run the check"}})
        }
        _ => json!({"type": "text", "text": FINAL}),
    }
}

fn anthropic_message(step: usize, body: &Value) -> Value {
    json!({
        "id": format!("msg_berth_{step}"), "type": "message", "role": "assistant",
        "model": "claude-stand-in", "content": [anthropic_content(step, body)],
        "stop_reason": if step < 2 { "tool_use" } else { "end_turn" },
        "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5}
    })
}

fn anthropic_events(step: usize, body: &Value) -> Vec<(String, Value)> {
    let content = anthropic_content(step, body);
    let mut message = anthropic_message(step, body);
    message["content"] = json!([]);
    message["stop_reason"] = Value::Null;
    let (start, delta) = if content["type"] == "tool_use" {
        let mut start = content.clone();
        start["input"] = json!({});
        (
            start,
            json!({"type": "input_json_delta", "partial_json": content["input"].to_string()}),
        )
    } else {
        (
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": FINAL}),
        )
    };
    vec![
        (
            "message_start".into(),
            json!({"type": "message_start", "message": message}),
        ),
        (
            "content_block_start".into(),
            json!({"type": "content_block_start", "index": 0, "content_block": start}),
        ),
        ("ping".into(), json!({"type": "ping"})),
        (
            "content_block_delta".into(),
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ),
        (
            "content_block_stop".into(),
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta".into(),
            json!({"type": "message_delta",
                   "delta": {"stop_reason": if step < 2 { "tool_use" } else { "end_turn" },
                             "stop_sequence": null},
                   "usage": {"output_tokens": 5}}),
        ),
        ("message_stop".into(), json!({"type": "message_stop"})),
    ]
}

/// How many tool outputs the conversation holds.
fn openai_step(body: &Value) -> usize {
    body["input"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "function_call_output" || i["type"] == "custom_tool_call_output")
        .count()
        .min(2)
}

/// Whether the request offers Codex's code-mode `exec` tool (JavaScript that calls the
/// other tools), rather than `exec_command` as a function.
fn code_mode(body: &Value) -> bool {
    fn has_exec(tools: &Value) -> bool {
        tools
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| (t["type"] == "custom" && t["name"] == "exec") || has_exec(&t["tools"]))
    }
    has_exec(&body["tools"])
        || body["input"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["type"] == "additional_tools" && has_exec(&i["tools"]))
}

fn openai_events(step: usize, body: &Value) -> Vec<(String, Value)> {
    let id = format!("resp_berth_{step}");
    let cmd = match step {
        0 => Some(format!(
            "printf '%s\\n' '{}' > hello.txt",
            WRITTEN.trim_end()
        )),
        1 => Some(COMMAND.to_string()),
        _ => None,
    };
    let item = match cmd {
        Some(cmd) if code_mode(body) => json!({
            "type": "custom_tool_call", "id": format!("ctc_berth_{step}"),
            "call_id": format!("call_berth_{step}"), "name": "exec", "status": "completed",
            "input": format!("const r = await tools.exec_command({{cmd: {}}});\ntext(r);",
                             Value::String(cmd)),
        }),
        Some(cmd) => json!({
            "type": "function_call", "id": format!("fc_berth_{step}"),
            "call_id": format!("call_berth_{step}"), "name": "exec_command",
            "status": "completed",
            "arguments": json!({"cmd": cmd}).to_string(),
        }),
        None => json!({
            "type": "message", "id": "msg_berth_final", "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": FINAL, "annotations": []}],
        }),
    };
    let usage = json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
                       "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                       "total_tokens": 15});
    vec![
        (
            "response.created".into(),
            json!({"type": "response.created",
                   "response": {"id": id, "object": "response", "status": "in_progress", "output": []}}),
        ),
        (
            "response.output_item.added".into(),
            json!({"type": "response.output_item.added", "output_index": 0, "item": item}),
        ),
        (
            "response.output_item.done".into(),
            json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
        ),
        (
            "response.completed".into(),
            json!({"type": "response.completed",
                   "response": {"id": id, "object": "response", "status": "completed",
                                "output": [item], "usage": usage}}),
        ),
    ]
}

/// How many function responses the conversation holds.
fn gemini_step(body: &Value) -> usize {
    body["contents"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["parts"].as_array().cloned().unwrap_or_default())
        .filter(|p| p.get("functionResponse").is_some())
        .count()
        .min(2)
}

/// The declared function called like `name`, and its property containing `key`.
fn gemini_tool(body: &Value, name: &str, key: &str) -> (String, String) {
    let decl = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| {
            t["functionDeclarations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|d| d["name"].as_str().is_some_and(|n| n.contains(name)));
    let tool = decl
        .as_ref()
        .and_then(|d| d["name"].as_str())
        .unwrap_or(name)
        .to_string();
    let props = decl.as_ref().and_then(|d| {
        d["parametersJsonSchema"]["properties"]
            .as_object()
            .or(d["parameters"]["properties"].as_object())
            .cloned()
    });
    let prop = props
        .and_then(|p| {
            p.keys()
                .find(|k| k.to_ascii_lowercase().replace('_', "").contains(key))
                .cloned()
        })
        .unwrap_or_else(|| key.to_string());
    (tool, prop)
}

fn gemini_parts(step: usize, body: &Value) -> Value {
    match step {
        0 => {
            let (name, path) = gemini_tool(body, "write_file", "filepath");
            json!([{"functionCall": {"name": name, "args": {path: "/work/hello.txt", "content": WRITTEN}}}])
        }
        1 => {
            let (name, command) = gemini_tool(body, "shell", "command");
            json!([{"functionCall": {"name": name, "args": {command: COMMAND, "description": "Run the check"}}}])
        }
        _ => json!([{"text": FINAL}]),
    }
}

fn gemini_chunk(parts: Value) -> Value {
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        "modelVersion": "gemini-stand-in"
    })
}
