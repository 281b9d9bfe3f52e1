//! Text that came from a guest or a repo, made safe to put in front of a person. A guest
//! writes file names, commit messages and error text; printed raw, ESC sequences repaint or
//! clear the screen, forge Berth's own lines, set the window title or (OSC 52) write the
//! user's clipboard, and bidi controls make code read differently from what it is.

use std::borrow::Cow;

/// `text` with every control character other than newline and tab (C0, DEL, C1) and every
/// bidi override shown as a visible escape (`\x1b`, `\u{202e}`), so it prints as inert text.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// `text` on one line of a table: controls escaped, a newline or tab shown as `\n` / `\t`,
/// and at most `max` characters (then `…`), so a title cannot break or repaint a listing.
pub fn table_cell(text: &str, max: usize) -> String {
    let one_line = escape_controls(text)
        .replace('\n', "\\n")
        .replace('\t', "\\t");
    let mut out: String = one_line.chars().take(max).collect();
    if one_line.chars().count() > max {
        out.push('…');
    }
    out
}

/// What an approval question is about, from the proxy's `host` and `port`: a network name
/// (`evil.test:443`) or, for `secret:<name>` (which no network question can be: those are
/// plain host names), the use of that secret. For "allow {subject}?".
pub fn approval_subject(host: &str, port: u16) -> String {
    match host.strip_prefix("secret:") {
        Some(name) => format!("the use of secret {}", escape_controls(name)),
        None => format!("{}:{port}", escape_controls(host)),
    }
}

/// The question in words, after "attempt N ".
pub fn approval_text(host: &str, port: u16) -> String {
    match host.strip_prefix("secret:") {
        Some(name) => format!(
            "wants to use your secret {} (Berth sends it to its upstream; the VM never sees it)",
            escape_controls(name)
        ),
        None => format!(
            "wants to reach {}, which is not on its allowlist",
            approval_subject(host, port)
        ),
    }
}

/// Text for an OS notification: controls escaped as in [`escape_controls`], the characters
/// of markup (which some notification servers render) replaced by look-alikes, and at most
/// `max` characters.
pub fn notification_text(text: &str, max: usize) -> String {
    let escaped = escape_controls(text);
    let mut out: String = escaped
        .chars()
        .map(|c| match c {
            '<' => '‹',
            '>' => '›',
            '&' => '＆',
            c => c,
        })
        .take(max)
        .collect();
    if escaped.chars().count() > max {
        out.push('…');
    }
    out
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_secret_question_reads_as_one_and_no_host_name_can_pass_for_it() {
        use super::{approval_subject, approval_text};
        assert_eq!(approval_subject("evil.test", 443), "evil.test:443");
        assert_eq!(approval_subject("secret:api", 443), "the use of secret api");
        assert!(approval_text("secret:api", 443).starts_with("wants to use your secret api"));
        assert!(approval_text("evil.test", 80).contains("not on its allowlist"));
        // Network questions are only ever asked about plain host names.
        assert!(!berth_egress::askable("secret:api"));
        assert!(approval_subject("a\x1b[2J", 1).contains("\\x1b"));
    }

    use super::*;

    #[test]
    fn terminal_escapes_clipboard_writes_and_bidi_overrides_become_inert_text() {
        let hostile = "a\x1b]52;c;ZWNobyBwd25lZA==\x07b\r\x1b[2Jberth: fake\u{9b}31m\u{202e}cod";
        let safe = escape_controls(hostile);
        assert!(
            !safe.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{safe}"
        );
        assert_eq!(
            safe,
            "a\\x1b]52;c;ZWNobyBwd25lZA==\\x07b\\x0d\\x1b[2Jberth: fake\\x9b31m\\u{202e}cod"
        );
    }

    #[test]
    fn notifications_carry_no_markup_no_escapes_and_no_essays() {
        let body = notification_text("<b>x</b> &amp; <a href='file:///etc'>\x1b[31m", 200);
        assert!(!body.contains(['<', '>', '&', '\x1b']), "{body}");
        assert_eq!(notification_text(&"y".repeat(500), 10).chars().count(), 11);
    }

    #[test]
    fn plain_text_newlines_and_tabs_pass_unchanged() {
        let text = "+fn main() {\n+\tprintln!(\"hé\");\n";
        assert!(matches!(escape_controls(text), Cow::Borrowed(_)));
    }
}
