//! The console mux (`tessera_vdev::console_mux`): host keystrokes (with Ctrl-] sequences),
//! guest output bytes, `[hv]` lines, guest resets and the moving of queued input into each
//! guest's RX FIFO, in random order, for three VMs.
//!
//! Invariants checked:
//! - input: every host byte's fate matches a reference of the switch sequence (to the focused
//!   VM, consumed, a switch, or dropped only when that VM's queue is full); each VM receives
//!   exactly the bytes the reference queued for it, in order; the focus is always a VM;
//!   queues never exceed [`INPUT_QUEUE_CAPACITY`];
//! - output: the wire is a sequence of `[tag] text\r\n` lines (`\n` appears only in `\r\n`,
//!   and every line, and every redraw after a lone `\r`, starts with a known tag).

use std::collections::VecDeque;

use arbitrary::{Arbitrary, Unstructured};
use tessera_vdev::console_mux::{ConsoleMux, ESCAPE, INPUT_QUEUE_CAPACITY, Input};

const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];
const TAGS: [&str; 5] = ["alpha", "beta", "gamma", "hv", "mux"];

/// The input side, kept the obvious way.
struct Reference {
    focus: usize,
    escape: bool,
    queues: [VecDeque<u8>; 3],
}

impl Reference {
    fn deliver(&mut self, vm: usize, byte: u8) -> Input {
        if self.queues[vm].len() < INPUT_QUEUE_CAPACITY {
            self.queues[vm].push_back(byte);
            Input::ToVm { vm, byte }
        } else {
            Input::Dropped { vm, byte }
        }
    }

    fn host_input(&mut self, byte: u8) -> Input {
        if !self.escape {
            if byte == ESCAPE {
                self.escape = true;
                return Input::Consumed;
            }
            return self.deliver(self.focus, byte);
        }
        self.escape = false;
        match byte {
            ESCAPE => self.deliver(self.focus, ESCAPE),
            b'1'..=b'3' => {
                self.focus = usize::from(byte - b'1');
                Input::Switched { vm: self.focus }
            }
            b'n' => {
                self.focus = (self.focus + 1) % NAMES.len();
                Input::Switched { vm: self.focus }
            }
            _ => Input::Consumed,
        }
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut mux = ConsoleMux::<4>::new(&NAMES).expect("valid names");
    let mut reference = Reference {
        focus: 0,
        escape: false,
        queues: Default::default(),
    };
    let mut wire = Vec::new();
    // Unstructured yields zeros once the data runs out: stop there, not at an error.
    while !u.is_empty() {
        let Ok(op) = u8::arbitrary(&mut u) else { break };
        let Ok(()) = step(&mut u, op, &mut mux, &mut reference, &mut wire) else {
            break;
        };
        assert_eq!(mux.focused(), reference.focus, "focus");
        for vm in 0..NAMES.len() {
            assert_eq!(
                mux.input_space(vm),
                INPUT_QUEUE_CAPACITY - reference.queues[vm].len(),
                "VM {vm}'s queue"
            );
            assert_eq!(
                mux.peek_input(vm),
                reference.queues[vm].front().copied(),
                "VM {vm}'s next byte"
            );
        }
    }
    check_wire(&wire);
}

fn step(
    u: &mut Unstructured<'_>,
    op: u8,
    mux: &mut ConsoleMux<'_, 4>,
    reference: &mut Reference,
    wire: &mut Vec<u8>,
) -> arbitrary::Result<()> {
    let mut out = |bytes: &[u8]| wire.extend_from_slice(bytes);
    let vm = usize::from(u8::arbitrary(u)?) % 4; // 3 is no VM
    match op % 8 {
        0..=2 => {
            // Keystrokes: mostly switch sequences and plain letters.
            let byte = match u8::arbitrary(u)? % 4 {
                0 => ESCAPE,
                1 => *u.choose(b"123459n\x1dx")?,
                _ => u8::arbitrary(u)?,
            };
            let expected = reference.host_input(byte);
            assert_eq!(
                mux.host_input(byte, &mut out),
                expected,
                "host byte {byte:#x}"
            );
        }
        3 | 4 => {
            for &byte in <&[u8]>::arbitrary(u)? {
                let result = mux.guest_output(vm, byte, &mut out);
                assert_eq!(result.is_ok(), vm < NAMES.len(), "guest_output for VM {vm}");
            }
        }
        5 => {
            // The guest's RX FIFO takes up to `room` bytes.
            let mut room = usize::from(u8::arbitrary(u)? % 40);
            let mut taken = Vec::new();
            let moved = mux.refill_input(vm, |byte| {
                if room == 0 {
                    return false;
                }
                room -= 1;
                taken.push(byte);
                true
            });
            assert_eq!(moved, taken.len(), "refill count");
            if vm < NAMES.len() {
                let expected: Vec<u8> = reference.queues[vm].drain(..moved).collect();
                assert_eq!(taken, expected, "bytes moved to VM {vm}");
            } else {
                assert_eq!(moved, 0, "refill of no VM");
            }
        }
        6 => {
            let text = <&[u8]>::arbitrary(u)?;
            mux.hv_line(text, &mut out);
        }
        _ => {
            let result = mux.reset_vm(vm, &mut out);
            assert_eq!(result.is_ok(), vm < NAMES.len(), "reset_vm({vm})");
            if vm < NAMES.len() {
                reference.queues[vm].clear();
            }
        }
    }
    Ok(())
}

/// The wire is `[tag] text\r\n` lines, the last maybe still open.
fn check_wire(wire: &[u8]) {
    for (index, window) in wire.windows(2).enumerate() {
        if window[1] == b'\n' {
            assert_eq!(window[0], b'\r', "a bare \\n at wire offset {}", index + 1);
        }
    }
    if wire.first() == Some(&b'\n') {
        panic!("the wire starts with a bare \\n");
    }
    let lines: Vec<&[u8]> = split_crlf(wire);
    let (last, whole) = lines.split_last().expect("split gives at least one piece");
    for line in whole {
        assert!(
            starts_with_tag(line),
            "an untagged or empty line: {:?}",
            String::from_utf8_lossy(line)
        );
    }
    assert!(
        last.is_empty() || starts_with_tag(last),
        "an untagged open line: {:?}",
        String::from_utf8_lossy(last)
    );
}

fn split_crlf(wire: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < wire.len() {
        if wire[i] == b'\r' && wire[i + 1] == b'\n' {
            lines.push(&wire[start..i]);
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    lines.push(&wire[start..]);
    lines
}

fn starts_with_tag(line: &[u8]) -> bool {
    TAGS.iter().any(|tag| {
        let prefix = format!("[{tag}] ");
        line.starts_with(prefix.as_bytes())
    })
}
