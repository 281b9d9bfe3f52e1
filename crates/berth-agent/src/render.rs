//! `berth-agent render AGENT`: an agent's stream of JSON events (Claude Code's
//! `stream-json`, Codex's `exec --json`, Gemini CLI's `stream-json`) turned into lines a
//! person reads in the attempt's terminal: its messages, the tools it calls and the commands
//! it runs, how each ended. A line that is not JSON passes through as it is. Everything
//! shown is text from the model or the guest: control characters are made visible, so it
//! cannot drive the terminal.

use std::io::{BufRead, Write};

use serde_json::Value;

/// Reads stdin to its end, writing each rendered line at once (the output is live).
pub fn run(agent: &str) -> i32 {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match input.read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => return 0,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&raw);
        for shown in render_line(agent, line.trim_end_matches(['\n', '\r'])) {
            if writeln!(out, "{shown}").and_then(|_| out.flush()).is_err() {
                return 0;
            }
        }
    }
}

/// The lines `line` becomes (none for events nobody needs to read).
pub fn render_line(agent: &str, line: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return vec![visible(line)];
    };
    let lines = match agent {
        "claude" => claude(&v),
        "codex" => codex(&v),
        "gemini" => gemini(&v),
        _ => return vec![visible(line)],
    };
    lines.into_iter().map(|l| visible(&l)).collect()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The first line of `text`, at most `max` characters.
fn short(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or("");
    let mut out: String = first.chars().take(max).collect();
    if first.chars().count() > max || text.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

/// What a tool was asked to do, in a few words.
fn tool_summary(input: &Value) -> String {
    for key in [
        "command",
        "file_path",
        "path",
        "pattern",
        "url",
        "query",
        "description",
    ] {
        if let Some(x) = input.get(key).and_then(Value::as_str) {
            return short(x, 200);
        }
    }
    short(&input.to_string(), 200)
}

fn claude(v: &Value) -> Vec<String> {
    match s(v, "type") {
        "system" if s(v, "subtype") == "init" => {
            vec![format!("● Claude Code started (model {})", s(v, "model"))]
        }
        "assistant" | "user" => {
            let content = v
                .pointer("/message/content")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            content
                .iter()
                .flat_map(|c| match s(c, "type") {
                    "text" => s(c, "text").lines().map(str::to_string).collect(),
                    "tool_use" => vec![format!(
                        "→ {}: {}",
                        s(c, "name"),
                        tool_summary(c.get("input").unwrap_or(&Value::Null))
                    )],
                    "tool_result" => {
                        let text = match c.get("content") {
                            Some(Value::String(t)) => t.clone(),
                            Some(Value::Array(parts)) => parts
                                .iter()
                                .map(|p| s(p, "text"))
                                .collect::<Vec<_>>()
                                .join("\n"),
                            _ => String::new(),
                        };
                        let mark = if c.get("is_error") == Some(&Value::Bool(true)) {
                            "✗"
                        } else {
                            "←"
                        };
                        vec![format!("  {mark} {}", short(&text, 160))]
                    }
                    _ => Vec::new(),
                })
                .collect()
        }
        "result" => {
            let turns = v.get("num_turns").and_then(Value::as_u64).unwrap_or(0);
            if v.get("is_error") == Some(&Value::Bool(true)) || s(v, "subtype") != "success" {
                vec![format!(
                    "✗ Claude Code stopped: {} ({turns} turns)",
                    s(v, "subtype")
                )]
            } else {
                vec![format!("✓ Claude Code is done ({turns} turns)")]
            }
        }
        _ => Vec::new(),
    }
}

fn codex(v: &Value) -> Vec<String> {
    let item = v.get("item").unwrap_or(&Value::Null);
    match (s(v, "type"), s(item, "type")) {
        ("thread.started", _) => vec!["● Codex started".into()],
        ("item.started", "command_execution") => {
            vec![format!("→ run: {}", short(s(item, "command"), 200))]
        }
        ("item.completed", "command_execution") => {
            let code = item.get("exit_code").and_then(Value::as_i64);
            let out = short(s(item, "aggregated_output"), 160);
            vec![match code {
                Some(0) => format!("  ← ok {out}"),
                Some(c) => format!("  ✗ exit {c} {out}"),
                None => format!("  ← {out}"),
            }]
        }
        ("item.completed", "agent_message") => {
            s(item, "text").lines().map(str::to_string).collect()
        }
        ("item.completed", "reasoning") => vec![format!("· {}", short(s(item, "text"), 160))],
        ("item.completed", "file_change") => item
            .get("changes")
            .and_then(Value::as_array)
            .map(|changes| {
                changes
                    .iter()
                    .map(|c| format!("→ {} {}", s(c, "kind"), s(c, "path")))
                    .collect()
            })
            .unwrap_or_default(),
        ("item.completed", "mcp_tool_call") => {
            vec![format!("→ {}: {}", s(item, "server"), s(item, "tool"))]
        }
        ("turn.completed", _) => {
            let usage = v.get("usage").unwrap_or(&Value::Null);
            let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
            vec![format!(
                "✓ Codex is done ({} tokens in, {} out)",
                n("input_tokens"),
                n("output_tokens")
            )]
        }
        ("turn.failed", _) => vec![format!(
            "✗ Codex stopped: {}",
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("")
        )],
        ("error", _) => vec![format!("✗ {}", s(v, "message"))],
        _ => Vec::new(),
    }
}

fn gemini(v: &Value) -> Vec<String> {
    match s(v, "type") {
        "init" => vec![format!("● Gemini CLI started (model {})", s(v, "model"))],
        "message" if s(v, "role") == "assistant" => {
            s(v, "content").lines().map(str::to_string).collect()
        }
        "tool_use" => vec![format!(
            "→ {}: {}",
            s(v, "tool_name"),
            tool_summary(v.get("parameters").unwrap_or(&Value::Null))
        )],
        "tool_result" => vec![format!("  ← {}", s(v, "status"))],
        "result" => vec![format!("✓ Gemini CLI is done ({})", s(v, "status"))],
        "error" => vec![format!("✗ {}", s(v, "message"))],
        _ => Vec::new(),
    }
}

/// `text` with control characters (but tab) shown as `^X` / `\u{..}`, so model text cannot
/// move the cursor, clear the screen or set the terminal's title.
fn visible(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' => "\t".to_string(),
            c if (c as u32) < 0x20 => format!("^{}", (c as u8 + 0x40) as char),
            '\u{7f}' => "^?".into(),
            c if ('\u{80}'..='\u{9f}').contains(&c) || ('\u{202a}'..='\u{202e}').contains(&c) => {
                format!("\\u{{{:04x}}}", c as u32)
            }
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::render_line;

    #[test]
    fn claude_events_read_as_messages_tool_calls_and_results() {
        let r = |l: &str| render_line("claude", l);
        assert_eq!(
            r(r#"{"type":"system","subtype":"init","model":"claude-x","cwd":"/work"}"#),
            ["● Claude Code started (model claude-x)"]
        );
        assert_eq!(
            r(
                r#"{"type":"assistant","message":{"content":[{"type":"text","text":"I will fix it.\nFirst the test."},{"type":"tool_use","name":"Bash","input":{"command":"python3 -m unittest"}}]}}"#
            ),
            [
                "I will fix it.",
                "First the test.",
                "→ Bash: python3 -m unittest"
            ]
        );
        assert_eq!(
            r(
                r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"FAILED (failures=1)\nmore","is_error":true}]}}"#
            ),
            ["  ✗ FAILED (failures=1)…"]
        );
        assert_eq!(
            r(r#"{"type":"result","subtype":"success","is_error":false,"num_turns":4}"#),
            ["✓ Claude Code is done (4 turns)"]
        );
        assert!(r(r#"{"type":"stream_event"}"#).is_empty());
        assert_eq!(r("not json at all"), ["not json at all"]);
    }

    #[test]
    fn codex_events_read_as_commands_changes_and_messages() {
        let r = |l: &str| render_line("codex", l);
        assert_eq!(
            r(
                r#"{"type":"item.started","item":{"id":"1","type":"command_execution","command":"bash -lc ls"}}"#
            ),
            ["→ run: bash -lc ls"]
        );
        assert_eq!(
            r(
                r#"{"type":"item.completed","item":{"id":"1","type":"command_execution","command":"ls","aggregated_output":"calc.py\n","exit_code":0}}"#
            ),
            ["  ← ok calc.py"]
        );
        assert_eq!(
            r(
                r#"{"type":"item.completed","item":{"type":"file_change","changes":[{"path":"calc.py","kind":"update"}]}}"#
            ),
            ["→ update calc.py"]
        );
        assert_eq!(
            r(r#"{"type":"item.completed","item":{"type":"agent_message","text":"Fixed add()."}}"#),
            ["Fixed add()."]
        );
        assert_eq!(
            r(r#"{"type":"turn.completed","usage":{"input_tokens":10,"output_tokens":5}}"#),
            ["✓ Codex is done (10 tokens in, 5 out)"]
        );
    }

    #[test]
    fn model_text_cannot_drive_the_terminal() {
        let shown = render_line(
            "claude",
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"hi\u001b]0;pwned\u0007\u001b[2J\u202e"}]}}"#,
        );
        assert_eq!(shown, ["hi^[]0;pwned^G^[[2J\\u{202e}"]);
        assert_eq!(
            render_line("aider", "plain \u{1b}[31mred"),
            ["plain ^[[31mred"]
        );
    }
}
