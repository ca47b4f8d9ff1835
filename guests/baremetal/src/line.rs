//! A tiny line editor for the console: echo, backspace, and `\r`, `\n` or `\r\n` as enter.

/// The longest line kept; further characters are dropped (and not echoed).
pub const LINE_CAPACITY: usize = 80;

/// What the console should do after one received byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to show.
    None,
    /// Echo this byte.
    Echo(u8),
    /// Erase the last character on screen (`"\x08 \x08"`).
    Erase,
    /// Enter was pressed: move to a new line, then run [`LineEditor::line`].
    Enter,
}

#[derive(Debug)]
pub struct LineEditor {
    buffer: [u8; LINE_CAPACITY],
    length: usize,
    /// The previous byte was `\r`, so a following `\n` is part of the same enter.
    after_cr: bool,
    /// `Enter` was returned; the next byte starts a fresh line.
    complete: bool,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    pub const fn new() -> Self {
        Self {
            buffer: [0; LINE_CAPACITY],
            length: 0,
            after_cr: false,
            complete: false,
        }
    }

    pub fn feed(&mut self, byte: u8) -> Action {
        if self.complete {
            self.complete = false;
            self.length = 0;
        }
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match byte {
            b'\n' if after_cr => Action::None,
            b'\r' | b'\n' => {
                self.complete = true;
                Action::Enter
            }
            // Backspace and DEL (what most terminals send).
            0x08 | 0x7f => {
                if self.length > 0 {
                    self.length -= 1;
                    Action::Erase
                } else {
                    Action::None
                }
            }
            0x20..=0x7e if self.length < LINE_CAPACITY => {
                self.buffer[self.length] = byte;
                self.length += 1;
                Action::Echo(byte)
            }
            _ => Action::None,
        }
    }

    /// The text typed so far (after `Enter`: the completed line).
    pub fn line(&self) -> &str {
        // Only printable ASCII is ever stored.
        core::str::from_utf8(&self.buffer[..self.length]).unwrap_or("")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn feed_all(editor: &mut LineEditor, bytes: &[u8]) -> Vec<Action> {
        bytes.iter().map(|&b| editor.feed(b)).collect()
    }

    #[test]
    fn typing_and_enter() {
        let mut editor = LineEditor::new();
        let actions = feed_all(&mut editor, b"ping\r");
        assert_eq!(
            actions,
            vec![
                Action::Echo(b'p'),
                Action::Echo(b'i'),
                Action::Echo(b'n'),
                Action::Echo(b'g'),
                Action::Enter
            ]
        );
        assert_eq!(editor.line(), "ping");
        // The next byte starts a new line.
        editor.feed(b'o');
        assert_eq!(editor.line(), "o");
    }

    #[test]
    fn crlf_is_one_enter_but_two_lf_are_two() {
        let mut editor = LineEditor::new();
        let enters = |actions: Vec<Action>| actions.iter().filter(|a| **a == Action::Enter).count();
        assert_eq!(enters(feed_all(&mut editor, b"a\r\nb\n\n")), 3);
        assert_eq!(enters(feed_all(&mut editor, b"\r\r")), 2);
    }

    #[test]
    fn backspace() {
        let mut editor = LineEditor::new();
        let actions = feed_all(&mut editor, b"\x7fpx\x08\x7fing\x7f");
        assert_eq!(actions[0], Action::None);
        assert_eq!(actions.iter().filter(|a| **a == Action::Erase).count(), 3);
        assert_eq!(editor.line(), "in");
    }

    #[test]
    fn control_bytes_are_ignored_and_overflow_is_dropped() {
        let mut editor = LineEditor::new();
        assert_eq!(editor.feed(0x1b), Action::None);
        assert_eq!(editor.feed(0xc3), Action::None);
        for _ in 0..LINE_CAPACITY {
            assert_eq!(editor.feed(b'x'), Action::Echo(b'x'));
        }
        assert_eq!(editor.feed(b'y'), Action::None);
        assert_eq!(editor.line().len(), LINE_CAPACITY);
    }
}
