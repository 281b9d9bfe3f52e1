//! What `berth attach` does with the user's keys. Everything typed goes to the guest, except
//! the detach key (Ctrl-]). An approval question is never answered by ordinary typing: the
//! guest controls the screen and could ask while the user types ("please" must not answer
//! "always"). The user presses Ctrl-], Berth shows the question itself (holding the guest's
//! output so it cannot draw over the prompt), and a whole word and Enter answers it.

use std::collections::VecDeque;

/// Ctrl-] detaches (as in telnet and virsh console), or opens the answer prompt.
pub const DETACH_KEY: u8 = 0x1d;
const CTRL_C: u8 = 0x03;
const ESC: u8 = 0x1b;
const MAX_WORD: usize = 16;

/// The user's answer to an approval question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Once,
    Always,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Once => "once",
            Decision::Always => "always",
            Decision::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Bytes for the guest's terminal.
    Guest(Vec<u8>),
    /// Text for the user, from Berth (not the guest).
    Show(String),
    Answer(u32, Decision),
    Detach,
    /// Hold (true) or release (false) the guest's output while the prompt is open.
    Hold(bool),
}

/// The key handling of one attached terminal.
#[derive(Debug, Default)]
pub struct Keys {
    /// Open questions, oldest first: id and "host:port".
    questions: VecDeque<(u32, String)>,
    /// The word being typed at the answer prompt, when it is open.
    word: Option<Vec<u8>>,
}

impl Keys {
    /// A question arrived: tell the user how to answer it (typing alone never does).
    pub fn asked(&mut self, attempt: &str, id: u32, host: &str, port: u16) -> Vec<Action> {
        let notice = format!(
            "\r\nberth: attempt {attempt} {}. Press Ctrl-] to answer (no answer in 60 s denies \
             it).\r\n",
            berth_core::approval_text(host, port)
        );
        self.questions
            .push_back((id, berth_core::approval_subject(host, port)));
        vec![Action::Show(notice)]
    }

    /// A question was answered elsewhere or expired.
    pub fn closed(&mut self, id: u32) -> Vec<Action> {
        let was_current = self.questions.front().is_some_and(|(q, _)| *q == id);
        self.questions.retain(|(q, _)| *q != id);
        if was_current && self.word.is_some() {
            self.word = None;
            return vec![
                Action::Show("(answered elsewhere)\r\n".into()),
                Action::Hold(false),
            ];
        }
        Vec::new()
    }

    pub fn input(&mut self, data: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        let mut guest = Vec::new();
        for &b in data {
            if self.word.is_some() {
                self.prompt_key(b, &mut out);
                continue;
            }
            if b != DETACH_KEY {
                guest.push(b);
                continue;
            }
            if !guest.is_empty() {
                out.push(Action::Guest(std::mem::take(&mut guest)));
            }
            match self.questions.front() {
                None => {
                    out.push(Action::Detach);
                    return out;
                }
                Some((_, target)) => {
                    out.push(Action::Hold(true));
                    out.push(Action::Show(format!(
                        "\r\nberth: allow {target}? Type once, always (for this task), deny, or \
                         detach, then Enter: "
                    )));
                    self.word = Some(Vec::new());
                }
            }
        }
        if !guest.is_empty() {
            out.push(Action::Guest(guest));
        }
        out
    }

    fn prompt_key(&mut self, b: u8, out: &mut Vec<Action>) {
        let Some(word) = self.word.as_mut() else {
            return;
        };
        match b {
            b'\r' | b'\n' => {
                let typed = String::from_utf8_lossy(word).trim().to_ascii_lowercase();
                let decision = match typed.as_str() {
                    "once" => Some(Decision::Once),
                    "always" => Some(Decision::Always),
                    "deny" => Some(Decision::Deny),
                    "detach" => {
                        out.push(Action::Show("\r\n".into()));
                        out.push(Action::Detach);
                        self.word = None;
                        return;
                    }
                    "" => None,
                    _ => {
                        word.clear();
                        out.push(Action::Show(
                            "\r\nberth: type once, always, deny or detach, then Enter: ".into(),
                        ));
                        return;
                    }
                };
                self.word = None;
                match (decision, self.questions.pop_front()) {
                    (Some(d), Some((id, _))) => {
                        out.push(Action::Show(format!("\r\nberth: {}\r\n", d.as_str())));
                        out.push(Action::Answer(id, d));
                    }
                    _ => out.push(Action::Show("\r\nberth: not answered\r\n".into())),
                }
                out.push(Action::Hold(false));
            }
            CTRL_C | ESC | DETACH_KEY => {
                self.word = None;
                out.push(Action::Show("\r\nberth: not answered\r\n".into()));
                out.push(Action::Hold(false));
            }
            0x7f | 0x08 if !word.is_empty() => {
                word.pop();
                out.push(Action::Show("\x08 \x08".into()));
            }
            b'a'..=b'z' | b'A'..=b'Z' if word.len() < MAX_WORD => {
                word.push(b);
                out.push(Action::Show((b as char).to_string()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked() -> Keys {
        let mut k = Keys::default();
        k.asked("1.1", 7, "evil.test", 443);
        k
    }

    fn answers(actions: &[Action]) -> Vec<(u32, Decision)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Answer(id, d) => Some((*id, *d)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn typing_while_a_question_is_open_goes_to_the_guest_and_answers_nothing() {
        let mut k = asked();
        // "please" used to answer with its first byte, p... and "always" with 'a'.
        let out = k.input(b"please always\r");
        assert_eq!(out, vec![Action::Guest(b"please always\r".to_vec())]);
    }

    #[test]
    fn ctrl_bracket_then_a_whole_word_and_enter_answers() {
        let mut k = asked();
        let mut out = k.input(b"ls\x1d");
        assert_eq!(out[0], Action::Guest(b"ls".to_vec()));
        assert!(out.contains(&Action::Hold(true)));
        out = k.input(b"alw");
        assert!(answers(&out).is_empty());
        out = k.input(b"ays\r");
        assert_eq!(answers(&out), vec![(7, Decision::Always)]);
        assert!(out.contains(&Action::Hold(false)));
        // Back to the guest afterwards.
        assert_eq!(k.input(b"x"), vec![Action::Guest(b"x".to_vec())]);
    }

    #[test]
    fn a_stray_letter_or_unknown_word_is_no_answer() {
        let mut k = asked();
        k.input(b"\x1d");
        let out = k.input(b"a\r");
        assert!(answers(&out).is_empty());
        let out = k.input(b"deny\r");
        assert_eq!(answers(&out), vec![(7, Decision::Deny)]);
    }

    #[test]
    fn escape_cancels_and_detach_key_detaches_when_nothing_is_asked() {
        let mut k = asked();
        k.input(b"\x1d");
        let out = k.input(b"\x1b");
        assert!(answers(&out).is_empty() && out.contains(&Action::Hold(false)));
        k.closed(7);
        assert_eq!(k.input(b"\x1d"), vec![Action::Detach]);
    }

    #[test]
    fn a_question_closed_elsewhere_closes_the_prompt() {
        let mut k = asked();
        k.input(b"\x1d");
        let out = k.closed(7);
        assert!(out.contains(&Action::Hold(false)));
        assert_eq!(k.input(b"once\r"), vec![Action::Guest(b"once\r".to_vec())]);
    }
}
