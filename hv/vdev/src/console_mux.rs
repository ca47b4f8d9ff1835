//! Many VMs' consoles on one physical UART: tagged, interleaved output and switchable input.
//!
//! The mux is pure: it is given bytes and hands back bytes through an `out` callback
//! (`&mut impl FnMut(&[u8])`, called any number of times per event with consecutive pieces
//! of the wire stream). It never touches a UART.
//!
//! # Output format
//!
//! Everything on the wire is a sequence of *lines*. A line is
//!
//! ```text
//! "[" tag "] " text "\r\n"
//! ```
//!
//! where `tag` is a VM's name, `hv` for the hypervisor ([`ConsoleMux::hv_line`]) or `mux`
//! for the mux's own messages, and `text` is the source's bytes with its line ends removed
//! (it may be empty). So `text` never holds `\n`; it holds `\r` only in the one case below.
//!
//! - **Line ends.** A guest's `\n`, `\r\n` or `\r…\r\n` ends a line and becomes one `\r\n`.
//! - **The focused VM streams.** Its bytes go to the wire as they come, so a prompt without a
//!   newline is seen at once. Its line stays *open* on the wire until it ends it.
//!   A lone `\r` (one not followed by `\n`, as line editors send to redraw) is passed on as
//!   `\r` followed by the tag again, so the redrawn text overwrites the old one *after* the
//!   tag.
//! - **Other VMs are line-buffered**, up to [`LINE_CAPACITY`] bytes each, and reach the wire
//!   only as whole lines. For them a lone `\r` also ends the line (a progress bar becomes
//!   successive lines; nothing is overwritten). When a buffer is full and another byte
//!   comes, the buffered part goes out as a line ending in the [`CONTINUATION_MARKER`] `\`
//!   (`[beta] <160 bytes>\` `\r\n`), and the rest follows on the next line with the tag
//!   again. Nothing is dropped.
//! - **Interleaving.** When a whole line (another VM's, `[hv]` or `[mux]`) must go out while
//!   the focused VM's line is open, the mux first ends the open line with `\r\n`, then writes
//!   the whole line. When the focused VM continues, its tag is written again before the
//!   continuation. If what it sends next is its line end, that end is already on the wire
//!   and nothing more is written (no empty line appears).
//! - **A focus switch** writes `[mux] input -> <name>` as a whole line; then, if the newly
//!   focused VM has a partial line buffered (a prompt, say), that is written at once as its
//!   open line. The VM that lost focus is line-buffered from then on; the rest of its open
//!   line comes out on a new line, with its tag.
//! - Other bytes (control characters, escape sequences) pass through unfiltered.
//!
//! Example: `alpha` (focused) writes `$ `, then `beta` writes `up\n`, then `alpha` writes
//! `ls\n`. The wire holds `[alpha] $ \r\n[beta] up\r\n[alpha] ls\r\n`.
//!
//! # Input
//!
//! Host bytes go to the focused VM (initially VM 0). **Ctrl-]** (`0x1d`, [`ESCAPE`]) starts
//! a switch sequence, and the next byte decides:
//!
//! | after Ctrl-] | effect                                                      |
//! |--------------|-------------------------------------------------------------|
//! | `1`–`9`      | focus VM *n*−1, if it exists (else dropped)                  |
//! | `n`          | focus the next VM, wrapping to VM 0                          |
//! | Ctrl-]       | send one literal `0x1d` to the focused VM                    |
//! | anything else| dropped                                                      |
//!
//! and the sequence ends. (Ctrl-A is QEMU's own escape, so it is not used.)
//!
//! A byte for a VM is put in that VM's [`InputQueue`] (of [`INPUT_QUEUE_CAPACITY`] bytes)
//! by [`ConsoleMux::host_input`], which then says which VM to refill. The hypervisor moves
//! queued bytes into the guest's RX FIFO with [`ConsoleMux::refill_input`] then, and again
//! each time the guest reads `UARTDR`, so input the FIFO cannot take yet waits in order.
//! Only when the queue itself is full is a byte lost ([`Input::Dropped`]); a hypervisor
//! that wants none lost reads the physical UART only while
//! [`ConsoleMux::input_space`]`(focused())` is non-zero, leaving the rest to the physical
//! UART's FIFO and flow control.

use heapless::{Deque, Vec};

/// Bytes a non-focused VM's partial line may hold before it is flushed with a
/// [`CONTINUATION_MARKER`]: two 80-column lines.
pub const LINE_CAPACITY: usize = 160;

/// Bytes of host input each VM can hold beyond its UART's RX FIFO.
pub const INPUT_QUEUE_CAPACITY: usize = 256;

/// Ctrl-] (ASCII GS), the first byte of a switch sequence.
pub const ESCAPE: u8 = 0x1d;

/// Ends a line that was flushed because it did not fit in [`LINE_CAPACITY`].
pub const CONTINUATION_MARKER: u8 = b'\\';

/// The tag of [`ConsoleMux::hv_line`]'s lines.
pub const HV_TAG: &str = "hv";

/// The tag of the mux's own lines.
pub const MUX_TAG: &str = "mux";

/// What [`ConsoleMux::host_input`] did with a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Input {
    /// `byte` was queued for `vm`: refill its RX FIFO ([`ConsoleMux::refill_input`]).
    ToVm {
        /// The VM's index.
        vm: usize,
        /// The byte queued.
        byte: u8,
    },
    /// The byte was part of a switch sequence, or dropped by one; nothing to do.
    Consumed,
    /// The focus moved to `vm` (the `[mux]` line has been written).
    Switched {
        /// The newly focused VM's index.
        vm: usize,
    },
    /// `vm`'s input queue was full: `byte` is lost.
    Dropped {
        /// The VM's index.
        vm: usize,
        /// The byte lost.
        byte: u8,
    },
}

/// Why the mux refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MuxError {
    /// A mux needs at least one VM.
    NoVms,
    /// More names than the mux's capacity.
    TooManyVms {
        /// Names given.
        count: usize,
        /// The `VMS` parameter.
        capacity: usize,
    },
    /// A VM name is empty.
    EmptyName {
        /// Its index.
        vm: usize,
    },
    /// A VM name is [`HV_TAG`] or [`MUX_TAG`], which would make its lines ambiguous.
    ReservedName {
        /// Its index.
        vm: usize,
    },
    /// No VM has this index.
    NoSuchVm {
        /// The index asked for.
        vm: usize,
    },
    /// The VM's input queue is full.
    InputQueueFull {
        /// The VM's index.
        vm: usize,
    },
}

/// [`InputQueue::push`] refused a byte: the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QueueFull;

/// Bytes on their way to a guest that its RX FIFO could not take yet, oldest first.
#[derive(Debug, Default)]
pub struct InputQueue<const N: usize> {
    bytes: Deque<u8, N>,
}

impl<const N: usize> InputQueue<N> {
    /// An empty queue.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            bytes: Deque::new(),
        }
    }

    /// Appends a byte.
    ///
    /// # Errors
    /// [`QueueFull`] when the queue holds `N` bytes; the byte is not taken.
    pub fn push(&mut self, byte: u8) -> Result<(), QueueFull> {
        self.bytes.push_back(byte).map_err(|_| QueueFull)
    }

    /// Takes the oldest byte.
    pub fn pop(&mut self) -> Option<u8> {
        self.bytes.pop_front()
    }

    /// The oldest byte, left in place.
    #[must_use]
    pub fn peek(&self) -> Option<u8> {
        self.bytes.front().copied()
    }

    /// Offers bytes to `accept`, oldest first, removing each it takes, until it refuses one
    /// (that one stays at the front) or the queue is empty. Returns how many it took.
    /// For a UART: `queue.refill(|b| uart.push_rx(b).is_ok())`.
    pub fn refill(&mut self, mut accept: impl FnMut(u8) -> bool) -> usize {
        let mut moved = 0;
        while let Some(byte) = self.peek() {
            if !accept(byte) {
                break;
            }
            self.bytes.pop_front();
            moved += 1;
        }
        moved
    }

    /// Bytes queued.
    #[must_use]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing is queued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// How many more bytes [`push`](Self::push) would take.
    #[must_use]
    pub fn space(&self) -> usize {
        N - self.bytes.len()
    }

    /// Drops everything queued (the VM restarts).
    pub fn clear(&mut self) {
        self.bytes.clear();
    }
}

/// Where the physical line stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// The cursor is at the start of a line.
    LineStart,
    /// This VM's line is partly written and not ended. Only ever the focused VM.
    Open(usize),
}

/// One VM's console state.
#[derive(Debug, Default)]
struct VmConsole {
    /// The part of the current line not yet on the wire (non-focused VMs only).
    line: Vec<u8, LINE_CAPACITY>,
    /// Part of the current line is already on the wire (streamed, or flushed on overflow),
    /// so its continuation needs the tag again and a bare line end adds nothing.
    started: bool,
    /// A `\r` came and what follows decides what it was.
    cr_pending: bool,
    /// Host input not yet in the guest's RX FIFO.
    input: InputQueue<INPUT_QUEUE_CAPACITY>,
}

/// The console multiplexer for up to `VMS` VMs; see the module docs for the wire format
/// and the key sequences.
#[derive(Debug)]
pub struct ConsoleMux<'a, const VMS: usize> {
    names: [&'a str; VMS],
    vm_count: usize,
    vms: [VmConsole; VMS],
    focus: usize,
    wire: Wire,
    /// Ctrl-] came; the next byte completes the sequence.
    escape: bool,
}

impl<'a, const VMS: usize> ConsoleMux<'a, VMS> {
    /// A mux for the VMs named `names` (VM *i* is `names[i]`), focused on VM 0.
    ///
    /// # Errors
    /// [`MuxError::NoVms`], [`MuxError::TooManyVms`], [`MuxError::EmptyName`],
    /// [`MuxError::ReservedName`].
    pub fn new(names: &[&'a str]) -> Result<Self, MuxError> {
        if names.is_empty() {
            return Err(MuxError::NoVms);
        }
        if names.len() > VMS {
            return Err(MuxError::TooManyVms {
                count: names.len(),
                capacity: VMS,
            });
        }
        let mut table = [""; VMS];
        for (vm, (slot, name)) in table.iter_mut().zip(names).enumerate() {
            if name.is_empty() {
                return Err(MuxError::EmptyName { vm });
            }
            if *name == HV_TAG || *name == MUX_TAG {
                return Err(MuxError::ReservedName { vm });
            }
            *slot = name;
        }
        Ok(Self {
            names: table,
            vm_count: names.len(),
            vms: core::array::from_fn(|_| VmConsole::default()),
            focus: 0,
            wire: Wire::LineStart,
            escape: false,
        })
    }

    /// How many VMs the mux serves.
    #[must_use]
    pub fn vm_count(&self) -> usize {
        self.vm_count
    }

    /// VM `vm`'s name.
    #[must_use]
    pub fn name(&self, vm: usize) -> Option<&'a str> {
        self.names[..self.vm_count].get(vm).copied()
    }

    /// The VM that host input goes to.
    #[must_use]
    pub fn focused(&self) -> usize {
        self.focus
    }

    /// One byte a guest wrote to its UART.
    ///
    /// # Errors
    /// [`MuxError::NoSuchVm`]; nothing is written.
    pub fn guest_output(
        &mut self,
        vm: usize,
        byte: u8,
        out: &mut impl FnMut(&[u8]),
    ) -> Result<(), MuxError> {
        self.check(vm)?;
        if self.vms[vm].cr_pending {
            match byte {
                b'\r' => return Ok(()),
                b'\n' => {
                    self.vms[vm].cr_pending = false;
                    self.end_line(vm, out);
                    return Ok(());
                }
                _ => {
                    self.vms[vm].cr_pending = false;
                    self.lone_carriage_return(vm, out);
                }
            }
        }
        match byte {
            b'\r' => self.vms[vm].cr_pending = true,
            b'\n' => self.end_line(vm, out),
            _ => self.put(vm, byte, out),
        }
        Ok(())
    }

    /// Writes `text` as `[hv] ` lines, interleaved safely with guest output. `\n` in `text`
    /// separates lines (one at the very end is ignored); `\r` is removed.
    pub fn hv_line(&mut self, text: &[u8], out: &mut impl FnMut(&[u8])) {
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        for line in text.split(|&b| b == b'\n') {
            self.whole_line(HV_TAG, &[line], out);
        }
    }

    /// One byte typed on the host. See the module docs for the switch sequence; a switch
    /// writes its `[mux]` line through `out`.
    pub fn host_input(&mut self, byte: u8, out: &mut impl FnMut(&[u8])) -> Input {
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
            b'1'..=b'9' => {
                let vm = usize::from(byte - b'1');
                if vm < self.vm_count {
                    self.switch_to(vm, out);
                    Input::Switched { vm }
                } else {
                    Input::Consumed
                }
            }
            b'n' => {
                let vm = (self.focus + 1) % self.vm_count;
                self.switch_to(vm, out);
                Input::Switched { vm }
            }
            _ => Input::Consumed,
        }
    }

    /// Queues `byte` for `vm` directly (bypassing focus), e.g. for a scripted input.
    ///
    /// # Errors
    /// [`MuxError::NoSuchVm`], [`MuxError::InputQueueFull`].
    pub fn queue_input(&mut self, vm: usize, byte: u8) -> Result<(), MuxError> {
        self.check(vm)?;
        self.vms[vm]
            .input
            .push(byte)
            .map_err(|QueueFull| MuxError::InputQueueFull { vm })
    }

    /// Takes the oldest byte queued for `vm`.
    pub fn pending_input(&mut self, vm: usize) -> Option<u8> {
        self.vms[..self.vm_count].get_mut(vm)?.input.pop()
    }

    /// The oldest byte queued for `vm`, left in place.
    #[must_use]
    pub fn peek_input(&self, vm: usize) -> Option<u8> {
        self.vms[..self.vm_count].get(vm)?.input.peek()
    }

    /// Moves `vm`'s queued input into `accept` (its RX FIFO) in order, while it accepts;
    /// see [`InputQueue::refill`]. Returns how many bytes moved (0 for a bad index).
    pub fn refill_input(&mut self, vm: usize, accept: impl FnMut(u8) -> bool) -> usize {
        self.vms[..self.vm_count]
            .get_mut(vm)
            .map_or(0, |v| v.input.refill(accept))
    }

    /// How many more bytes `vm`'s input queue can take (0 for a bad index).
    #[must_use]
    pub fn input_space(&self, vm: usize) -> usize {
        self.vms[..self.vm_count]
            .get(vm)
            .map_or(0, |v| v.input.space())
    }

    /// Forgets `vm`'s console state for a restart: its queued input is dropped; a partial
    /// output line is ended as if the guest had sent `\n`, so no output is lost.
    ///
    /// # Errors
    /// [`MuxError::NoSuchVm`].
    pub fn reset_vm(&mut self, vm: usize, out: &mut impl FnMut(&[u8])) -> Result<(), MuxError> {
        self.check(vm)?;
        let console = &mut self.vms[vm];
        console.cr_pending = false;
        console.input.clear();
        if !console.line.is_empty() || self.wire == Wire::Open(vm) {
            self.end_line(vm, out);
        }
        self.vms[vm].started = false;
        Ok(())
    }

    fn check(&self, vm: usize) -> Result<(), MuxError> {
        if vm < self.vm_count {
            Ok(())
        } else {
            Err(MuxError::NoSuchVm { vm })
        }
    }

    fn deliver(&mut self, vm: usize, byte: u8) -> Input {
        match self.vms[vm].input.push(byte) {
            Ok(()) => Input::ToVm { vm, byte },
            Err(QueueFull) => Input::Dropped { vm, byte },
        }
    }

    /// An ordinary byte (not a line end).
    fn put(&mut self, vm: usize, byte: u8, out: &mut impl FnMut(&[u8])) {
        if vm == self.focus {
            if self.wire != Wire::Open(vm) {
                self.break_open_line(out);
                write_tag(self.names[vm], out);
                self.wire = Wire::Open(vm);
            }
            out(&[byte]);
            self.vms[vm].started = true;
        } else {
            if self.vms[vm].line.is_full() {
                self.flush_partial(vm, out);
            }
            // Cannot fail: the line was just flushed if it was full.
            let _ = self.vms[vm].line.push(byte);
        }
    }

    /// A `\r` followed by something other than `\n`.
    fn lone_carriage_return(&mut self, vm: usize, out: &mut impl FnMut(&[u8])) {
        if vm == self.focus {
            // On a fresh line the tag comes anyway; only an open line is rewound.
            if self.wire == Wire::Open(vm) {
                out(b"\r");
                write_tag(self.names[vm], out);
            }
        } else if !self.vms[vm].line.is_empty() || self.vms[vm].started {
            self.end_line(vm, out);
        }
    }

    /// The guest ended its line.
    fn end_line(&mut self, vm: usize, out: &mut impl FnMut(&[u8])) {
        let console = &mut self.vms[vm];
        if self.wire == Wire::Open(vm) {
            out(&console.line);
            out(b"\r\n");
            self.wire = Wire::LineStart;
        } else if !(console.line.is_empty() && console.started) {
            // (An empty, started line was already ended on the wire by a break.)
            if let Wire::Open(_) = self.wire {
                out(b"\r\n");
                self.wire = Wire::LineStart;
            }
            write_tag(self.names[vm], out);
            out(&console.line);
            out(b"\r\n");
        }
        console.line.clear();
        console.started = false;
    }

    /// A non-focused VM's line buffer is full: write it with the continuation marker.
    fn flush_partial(&mut self, vm: usize, out: &mut impl FnMut(&[u8])) {
        if self.wire != Wire::Open(vm) {
            self.break_open_line(out);
            write_tag(self.names[vm], out);
        }
        let console = &mut self.vms[vm];
        out(&console.line);
        out(&[CONTINUATION_MARKER]);
        out(b"\r\n");
        self.wire = Wire::LineStart;
        console.line.clear();
        console.started = true;
    }

    fn switch_to(&mut self, vm: usize, out: &mut impl FnMut(&[u8])) {
        self.whole_line(MUX_TAG, &[b"input -> ", self.names[vm].as_bytes()], out);
        self.focus = vm;
        let console = &mut self.vms[vm];
        if !console.line.is_empty() {
            // The wire is at a line start: the [mux] line was just written.
            write_tag(self.names[vm], out);
            out(&console.line);
            console.line.clear();
            console.started = true;
            self.wire = Wire::Open(vm);
        }
    }

    /// Writes one whole line of `parts` (with `\r` and `\n` removed) under `tag`.
    fn whole_line(&mut self, tag: &str, parts: &[&[u8]], out: &mut impl FnMut(&[u8])) {
        self.break_open_line(out);
        write_tag(tag, out);
        for part in parts {
            for piece in part.split(|&b| b == b'\r' || b == b'\n') {
                out(piece);
            }
        }
        out(b"\r\n");
    }

    /// If a line is open, ends it on the wire (its owner stays `started`).
    fn break_open_line(&mut self, out: &mut impl FnMut(&[u8])) {
        if let Wire::Open(_) = self.wire {
            out(b"\r\n");
            self.wire = Wire::LineStart;
        }
    }
}

/// Writes `[name] `.
fn write_tag(name: &str, out: &mut impl FnMut(&[u8])) {
    out(b"[");
    out(name.as_bytes());
    out(b"] ");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::mmio::Width;
    use crate::sbsa_uart::{SbsaUart, offset};

    const ALPHA: usize = 0;
    const BETA: usize = 1;
    const GAMMA: usize = 2;

    /// A mux of three VMs and the wire it writes to.
    struct Rig {
        mux: ConsoleMux<'static, 4>,
        wire: std::vec::Vec<u8>,
    }

    impl Rig {
        fn new() -> Self {
            Self {
                mux: ConsoleMux::new(&["alpha", "beta", "gamma"]).unwrap(),
                wire: vec![],
            }
        }
        fn guest(&mut self, vm: usize, text: &[u8]) {
            for &b in text {
                self.mux
                    .guest_output(vm, b, &mut |s: &[u8]| self.wire.extend_from_slice(s))
                    .unwrap();
            }
        }
        fn hv(&mut self, text: &[u8]) {
            self.mux
                .hv_line(text, &mut |s: &[u8]| self.wire.extend_from_slice(s));
        }
        fn key(&mut self, byte: u8) -> Input {
            self.mux
                .host_input(byte, &mut |s: &[u8]| self.wire.extend_from_slice(s))
        }
        /// The wire so far, as text, and empties it.
        fn take(&mut self) -> String {
            String::from_utf8(core::mem::take(&mut self.wire)).unwrap()
        }
    }

    #[test]
    fn lines_are_tagged_and_end_in_crlf() {
        let mut rig = Rig::new();
        rig.guest(ALPHA, b"hello\n");
        assert_eq!(rig.take(), "[alpha] hello\r\n");
        rig.guest(ALPHA, b"crlf\r\n");
        assert_eq!(
            rig.take(),
            "[alpha] crlf\r\n",
            "a guest CRLF is not doubled"
        );
        rig.guest(ALPHA, b"crcrlf\r\r\n\n");
        assert_eq!(rig.take(), "[alpha] crcrlf\r\n[alpha] \r\n");
        rig.guest(BETA, b"bee\r\n");
        assert_eq!(rig.take(), "[beta] bee\r\n");
    }

    #[test]
    fn a_guest_cannot_forge_a_tag() {
        let mut rig = Rig::new();
        rig.guest(BETA, b"[hv] all is well\n");
        assert_eq!(rig.take(), "[beta] [hv] all is well\r\n");
    }

    #[test]
    fn focused_vm_streams_others_wait_for_whole_lines() {
        let mut rig = Rig::new();
        rig.guest(ALPHA, b"$ ");
        assert_eq!(rig.take(), "[alpha] $ ", "a prompt shows at once");
        rig.guest(BETA, b"still ");
        rig.guest(BETA, b"booting");
        assert_eq!(rig.take(), "", "non-focused output is held");
        rig.guest(ALPHA, b"ls");
        assert_eq!(rig.take(), "ls");
    }

    #[test]
    fn another_line_breaks_the_focused_line_and_the_tag_is_reprinted() {
        let mut rig = Rig::new();
        rig.guest(ALPHA, b"$ ");
        rig.guest(BETA, b"up\n");
        rig.guest(ALPHA, b"ls\n");
        assert_eq!(rig.take(), "[alpha] $ \r\n[beta] up\r\n[alpha] ls\r\n");
    }

    #[test]
    fn a_line_end_right_after_a_break_adds_nothing() {
        let mut rig = Rig::new();
        rig.guest(ALPHA, b"abc");
        rig.guest(GAMMA, b"x\n");
        rig.guest(ALPHA, b"\r\n");
        assert_eq!(rig.take(), "[alpha] abc\r\n[gamma] x\r\n");
        // But a second one is a real empty line.
        rig.guest(ALPHA, b"\n");
        assert_eq!(rig.take(), "[alpha] \r\n");
    }

    #[test]
    fn hv_lines_interleave_like_guest_lines() {
        let mut rig = Rig::new();
        rig.guest(ALPHA, b"abc");
        rig.hv(b"vm beta stopped");
        rig.guest(ALPHA, b"d\n");
        assert_eq!(
            rig.take(),
            "[alpha] abc\r\n[hv] vm beta stopped\r\n[alpha] d\r\n"
        );
    }

    #[test]
    fn hv_line_splits_on_newlines_and_drops_carriage_returns() {
        let mut rig = Rig::new();
        rig.hv(b"one\ntwo\r\n");
        assert_eq!(rig.take(), "[hv] one\r\n[hv] two\r\n");
        rig.hv(b"");
        assert_eq!(rig.take(), "[hv] \r\n");
        rig.hv(b"a\r\rb");
        assert_eq!(rig.take(), "[hv] ab\r\n");
    }

    #[test]
    fn lone_carriage_return_on_the_focused_vm_rewinds_after_the_tag() {
        let mut rig = Rig::new();
        rig.guest(ALPHA, b"50%\r100%\n");
        assert_eq!(rig.take(), "[alpha] 50%\r[alpha] 100%\r\n");
        // At a line start a lone CR is nothing.
        rig.guest(ALPHA, b"\rx\n");
        assert_eq!(rig.take(), "[alpha] x\r\n");
        // On a broken line it is nothing either: the continuation is on a new line.
        rig.guest(ALPHA, b"ab");
        rig.hv(b"!");
        rig.guest(ALPHA, b"\rcd\n");
        assert_eq!(rig.take(), "[alpha] ab\r\n[hv] !\r\n[alpha] cd\r\n");
    }

    #[test]
    fn lone_carriage_return_ends_a_buffered_line() {
        let mut rig = Rig::new();
        rig.guest(BETA, b"\rp1\rp2\r\n");
        assert_eq!(rig.take(), "[beta] p1\r\n[beta] p2\r\n");
    }

    #[test]
    fn a_trailing_cr_waits_for_the_next_byte() {
        let mut rig = Rig::new();
        rig.guest(ALPHA, b"abc\r");
        assert_eq!(rig.take(), "[alpha] abc");
        rig.guest(ALPHA, b"\n");
        assert_eq!(rig.take(), "\r\n");
    }

    #[test]
    fn overflow_flushes_with_a_continuation_marker() {
        let mut rig = Rig::new();
        let full = [b'x'; LINE_CAPACITY];
        rig.guest(BETA, &full);
        assert_eq!(rig.take(), "", "exactly full still waits");
        rig.guest(BETA, b"\n");
        assert_eq!(
            rig.take(),
            format!("[beta] {}\r\n", "x".repeat(LINE_CAPACITY))
        );

        rig.guest(BETA, &full);
        rig.guest(BETA, &full);
        rig.guest(BETA, b"yz\n");
        let x = "x".repeat(LINE_CAPACITY);
        assert_eq!(
            rig.take(),
            format!("[beta] {x}\\\r\n[beta] {x}\\\r\n[beta] yz\r\n")
        );

        // A line end straight after a flush adds nothing: the buffer is empty and started.
        rig.guest(BETA, &full);
        rig.guest(BETA, b"w");
        rig.guest(BETA, b"\n");
        assert_eq!(rig.take(), format!("[beta] {x}\\\r\n[beta] w\r\n"));
    }

    #[test]
    fn overflow_breaks_an_open_focused_line() {
        let mut rig = Rig::new();
        rig.guest(ALPHA, b"$ ");
        rig.guest(GAMMA, &[b'g'; LINE_CAPACITY + 1]);
        let g = "g".repeat(LINE_CAPACITY);
        assert_eq!(rig.take(), format!("[alpha] $ \r\n[gamma] {g}\\\r\n"));
        rig.guest(ALPHA, b"x");
        assert_eq!(rig.take(), "[alpha] x");
    }

    #[test]
    fn switch_sequence_by_digit() {
        let mut rig = Rig::new();
        assert_eq!(rig.mux.focused(), ALPHA);
        assert_eq!(rig.key(ESCAPE), Input::Consumed);
        assert_eq!(rig.take(), "");
        assert_eq!(rig.key(b'2'), Input::Switched { vm: BETA });
        assert_eq!(rig.take(), "[mux] input -> beta\r\n");
        assert_eq!(rig.mux.focused(), BETA);
        assert_eq!(
            rig.key(b'k'),
            Input::ToVm {
                vm: BETA,
                byte: b'k'
            }
        );
        // Switching to the focused VM is allowed and says so.
        rig.key(ESCAPE);
        assert_eq!(rig.key(b'2'), Input::Switched { vm: BETA });
        assert_eq!(rig.take(), "[mux] input -> beta\r\n");
        rig.key(ESCAPE);
        assert_eq!(rig.key(b'1'), Input::Switched { vm: ALPHA });
        assert_eq!(rig.take(), "[mux] input -> alpha\r\n");
    }

    #[test]
    fn switch_sequence_next_wraps() {
        let mut rig = Rig::new();
        for expected in [BETA, GAMMA, ALPHA] {
            rig.key(ESCAPE);
            assert_eq!(rig.key(b'n'), Input::Switched { vm: expected });
        }
        assert_eq!(
            rig.take(),
            "[mux] input -> beta\r\n[mux] input -> gamma\r\n[mux] input -> alpha\r\n"
        );
    }

    #[test]
    fn escape_then_anything_else_is_dropped_and_ends_the_sequence() {
        let mut rig = Rig::new();
        for other in [b'4', b'9', b'0', b'x', b'N', b'\r', 0x01] {
            assert_eq!(rig.key(ESCAPE), Input::Consumed);
            assert_eq!(rig.key(other), Input::Consumed, "{other:#x}");
            assert_eq!(rig.mux.focused(), ALPHA);
            // The sequence is over: the same byte now goes to the VM.
            assert_eq!(
                rig.key(other),
                Input::ToVm {
                    vm: ALPHA,
                    byte: other
                }
            );
        }
        assert_eq!(rig.take(), "", "nothing written for a dropped sequence");
        let queued: std::vec::Vec<u8> =
            core::iter::from_fn(|| rig.mux.pending_input(ALPHA)).collect();
        assert_eq!(queued, b"490xN\r\x01");
    }

    #[test]
    fn escape_twice_sends_a_literal_escape() {
        let mut rig = Rig::new();
        rig.key(ESCAPE);
        rig.key(b'3');
        assert_eq!(rig.key(ESCAPE), Input::Consumed);
        assert_eq!(
            rig.key(ESCAPE),
            Input::ToVm {
                vm: GAMMA,
                byte: ESCAPE
            }
        );
        assert_eq!(rig.mux.pending_input(GAMMA), Some(ESCAPE));
        // And the sequence is over.
        assert_eq!(
            rig.key(b'1'),
            Input::ToVm {
                vm: GAMMA,
                byte: b'1'
            }
        );
    }

    #[test]
    fn a_switch_shows_the_new_vms_partial_line_and_buffers_the_old_one() {
        let mut rig = Rig::new();
        rig.guest(ALPHA, b"$ ");
        rig.guest(BETA, b"login: ");
        assert_eq!(rig.take(), "[alpha] $ ");
        rig.key(ESCAPE);
        rig.key(b'2');
        assert_eq!(rig.take(), "\r\n[mux] input -> beta\r\n[beta] login: ");
        // beta now streams; alpha is buffered.
        rig.guest(BETA, b"r");
        rig.guest(ALPHA, b"ls");
        assert_eq!(rig.take(), "r");
        rig.guest(ALPHA, b"\n");
        assert_eq!(rig.take(), "\r\n[alpha] ls\r\n");
        rig.guest(BETA, b"oot\n");
        assert_eq!(rig.take(), "[beta] oot\r\n");
    }

    #[test]
    fn the_old_focus_line_end_after_a_switch_adds_nothing() {
        let mut rig = Rig::new();
        rig.guest(ALPHA, b"done");
        rig.key(ESCAPE);
        rig.key(b'n');
        rig.guest(ALPHA, b"\n");
        assert_eq!(rig.take(), "[alpha] done\r\n[mux] input -> beta\r\n");
    }

    #[test]
    fn input_waits_in_order_for_the_rx_fifo() {
        let mut rig = Rig::new();
        let mut uart = SbsaUart::new();
        let typed: std::vec::Vec<u8> = (b'0'..b'0' + 40).collect();
        for &b in &typed {
            let Input::ToVm { vm, byte } = rig.key(b) else {
                panic!("not routed")
            };
            assert_eq!((vm, byte), (ALPHA, b));
            rig.mux.refill_input(vm, |b| uart.push_rx(b).is_ok());
        }
        assert_eq!(uart.rx_space(), 0);
        assert_eq!(rig.mux.peek_input(ALPHA), Some(b'0' + 32));
        assert_eq!(rig.mux.input_space(ALPHA), INPUT_QUEUE_CAPACITY - 8);
        // The guest reads; the hypervisor refills after each read.
        let mut received = vec![];
        while received.len() < typed.len() {
            received.push(uart.mmio_read(offset::UARTDR, Width::Word).unwrap() as u8);
            rig.mux.refill_input(ALPHA, |b| uart.push_rx(b).is_ok());
        }
        assert_eq!(received, typed);
        assert_eq!(rig.mux.peek_input(ALPHA), None);
        assert_eq!(rig.mux.input_space(ALPHA), INPUT_QUEUE_CAPACITY);
    }

    #[test]
    fn a_full_input_queue_drops_and_says_so() {
        let mut rig = Rig::new();
        for _ in 0..INPUT_QUEUE_CAPACITY {
            assert!(matches!(rig.key(b'a'), Input::ToVm { .. }));
        }
        assert_eq!(rig.mux.input_space(ALPHA), 0);
        assert_eq!(
            rig.key(b'b'),
            Input::Dropped {
                vm: ALPHA,
                byte: b'b'
            }
        );
        rig.key(ESCAPE);
        assert_eq!(
            rig.key(ESCAPE),
            Input::Dropped {
                vm: ALPHA,
                byte: ESCAPE
            }
        );
        assert_eq!(
            rig.mux.queue_input(ALPHA, b'c'),
            Err(MuxError::InputQueueFull { vm: ALPHA })
        );
        assert_eq!(rig.mux.queue_input(BETA, b'c'), Ok(()));
        assert_eq!(rig.mux.pending_input(BETA), Some(b'c'));
    }

    #[test]
    fn input_queue_on_its_own() {
        let mut queue = InputQueue::<3>::new();
        assert!(queue.is_empty());
        for b in 1..=3 {
            queue.push(b).unwrap();
        }
        assert_eq!(queue.push(4), Err(QueueFull));
        assert_eq!((queue.len(), queue.space()), (3, 0));
        let mut taken = vec![];
        let moved = queue.refill(|b| {
            if taken.len() < 2 {
                taken.push(b);
                true
            } else {
                false
            }
        });
        assert_eq!((moved, taken.as_slice()), (2, &[1, 2][..]));
        assert_eq!(queue.peek(), Some(3));
        assert_eq!(queue.pop(), Some(3));
        assert_eq!(queue.pop(), None);
        queue.push(9).unwrap();
        queue.clear();
        assert!(queue.is_empty());
    }

    #[test]
    fn construction_errors() {
        assert_eq!(ConsoleMux::<2>::new(&[]).unwrap_err(), MuxError::NoVms);
        assert_eq!(
            ConsoleMux::<2>::new(&["a", "b", "c"]).unwrap_err(),
            MuxError::TooManyVms {
                count: 3,
                capacity: 2
            }
        );
        assert_eq!(
            ConsoleMux::<2>::new(&["a", ""]).unwrap_err(),
            MuxError::EmptyName { vm: 1 }
        );
        assert_eq!(
            ConsoleMux::<2>::new(&["hv"]).unwrap_err(),
            MuxError::ReservedName { vm: 0 }
        );
        assert_eq!(
            ConsoleMux::<2>::new(&["a", "mux"]).unwrap_err(),
            MuxError::ReservedName { vm: 1 }
        );
        let mux = ConsoleMux::<2>::new(&["solo"]).unwrap();
        assert_eq!(
            (mux.vm_count(), mux.name(0), mux.name(1)),
            (1, Some("solo"), None)
        );
    }

    #[test]
    fn single_vm_next_stays_put() {
        let mut mux = ConsoleMux::<1>::new(&["solo"]).unwrap();
        let mut wire = vec![];
        mux.host_input(ESCAPE, &mut |s: &[u8]| wire.extend_from_slice(s));
        let input = mux.host_input(b'n', &mut |s: &[u8]| wire.extend_from_slice(s));
        assert_eq!(input, Input::Switched { vm: 0 });
        assert_eq!(wire, b"[mux] input -> solo\r\n");
    }

    #[test]
    fn bad_vm_indices_are_refused() {
        let mut rig = Rig::new();
        let mut sink = |_: &[u8]| panic!("nothing may be written");
        assert_eq!(
            rig.mux.guest_output(3, b'x', &mut sink),
            Err(MuxError::NoSuchVm { vm: 3 })
        );
        assert_eq!(
            rig.mux.queue_input(3, b'x'),
            Err(MuxError::NoSuchVm { vm: 3 })
        );
        assert_eq!(
            rig.mux.reset_vm(7, &mut sink),
            Err(MuxError::NoSuchVm { vm: 7 })
        );
        assert_eq!(rig.mux.pending_input(3), None);
        assert_eq!(rig.mux.peek_input(3), None);
        assert_eq!(rig.mux.input_space(3), 0);
        assert_eq!(rig.mux.refill_input(3, |_| true), 0);
    }

    #[test]
    fn reset_vm_ends_partial_output_and_drops_input() {
        let mut rig = Rig::new();
        rig.guest(BETA, b"half a li");
        rig.mux.queue_input(BETA, b'q').unwrap();
        rig.mux
            .reset_vm(BETA, &mut |s: &[u8]| rig.wire.extend_from_slice(s))
            .unwrap();
        assert_eq!(rig.take(), "[beta] half a li\r\n");
        assert_eq!(rig.mux.pending_input(BETA), None);
        // The focused VM's open line is closed too.
        rig.guest(ALPHA, b"$ ");
        rig.mux
            .reset_vm(ALPHA, &mut |s: &[u8]| rig.wire.extend_from_slice(s))
            .unwrap();
        rig.guest(ALPHA, b"\n");
        assert_eq!(rig.take(), "[alpha] $ \r\n[alpha] \r\n");
        // Nothing pending: nothing written.
        rig.mux
            .reset_vm(GAMMA, &mut |s: &[u8]| rig.wire.extend_from_slice(s))
            .unwrap();
        assert_eq!(rig.take(), "");
    }

    mod properties {
        //! Random keystrokes, guest output, `[hv]` lines, refills and resets: every host byte
        //! goes where the switch sequence says (checked against a reference), each VM gets
        //! its bytes in order, and the wire stays a sequence of tagged `\r\n` lines
        //! (fuzz/src/console_mux.rs checks the same under libFuzzer).
        use std::collections::VecDeque;
        use std::vec::Vec;

        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Op {
            Key(u8),
            Guest(usize, Vec<u8>),
            Hv(Vec<u8>),
            Refill(usize, usize),
            Reset(usize),
        }

        fn op() -> impl Strategy<Value = Op> {
            let byte = prop_oneof![Just(ESCAPE), proptest::sample::select(b"123459n\rx\n".to_vec()), any::<u8>()];
            prop_oneof![
                4 => byte.clone().prop_map(Op::Key),
                3 => (0usize..4, proptest::collection::vec(byte.clone(), 0..200)).prop_map(|(v, b)| Op::Guest(v, b)),
                1 => proptest::collection::vec(byte, 0..20).prop_map(Op::Hv),
                2 => (0usize..4, 0usize..300).prop_map(|(v, n)| Op::Refill(v, n)),
                1 => (0usize..4).prop_map(Op::Reset),
            ]
        }

        /// The switch sequence of the module docs, for three VMs.
        fn expected(focus: &mut usize, escape: &mut bool, queues: &mut [VecDeque<u8>; 3], byte: u8) -> Input {
            let mut deliver = |vm: usize, byte: u8| {
                if queues[vm].len() < INPUT_QUEUE_CAPACITY {
                    queues[vm].push_back(byte);
                    Input::ToVm { vm, byte }
                } else {
                    Input::Dropped { vm, byte }
                }
            };
            if !*escape {
                if byte == ESCAPE {
                    *escape = true;
                    return Input::Consumed;
                }
                return deliver(*focus, byte);
            }
            *escape = false;
            match byte {
                ESCAPE => deliver(*focus, ESCAPE),
                b'1'..=b'3' => {
                    *focus = usize::from(byte - b'1');
                    Input::Switched { vm: *focus }
                }
                b'n' => {
                    *focus = (*focus + 1) % 3;
                    Input::Switched { vm: *focus }
                }
                _ => Input::Consumed,
            }
        }

        fn tagged(line: &[u8]) -> bool {
            ["alpha", "beta", "gamma", HV_TAG, MUX_TAG].iter().any(|tag| line.starts_with(format!("[{tag}] ").as_bytes()))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn input_goes_where_the_sequence_says_and_output_stays_tagged(ops in proptest::collection::vec(op(), 1..120)) {
                let mut rig = Rig::new();
                let (mut focus, mut escape, mut queues) = (0, false, <[VecDeque<u8>; 3]>::default());
                for op in ops {
                    let mut out = |s: &[u8]| rig.wire.extend_from_slice(s);
                    match op {
                        Op::Key(byte) => {
                            let want = expected(&mut focus, &mut escape, &mut queues, byte);
                            prop_assert_eq!(rig.mux.host_input(byte, &mut out), want);
                        }
                        Op::Guest(vm, bytes) => {
                            for byte in bytes {
                                prop_assert_eq!(rig.mux.guest_output(vm, byte, &mut out).is_ok(), vm < 3);
                            }
                        }
                        Op::Hv(text) => rig.mux.hv_line(&text, &mut out),
                        Op::Refill(vm, mut room) => {
                            let mut taken = Vec::new();
                            let moved = rig.mux.refill_input(vm, |b| {
                                if room == 0 { return false; }
                                room -= 1;
                                taken.push(b);
                                true
                            });
                            prop_assert_eq!(moved, taken.len());
                            let want: Vec<u8> = if vm < 3 { queues[vm].drain(..moved).collect() } else { Vec::new() };
                            prop_assert_eq!(taken, want);
                        }
                        Op::Reset(vm) => {
                            prop_assert_eq!(rig.mux.reset_vm(vm, &mut out).is_ok(), vm < 3);
                            if vm < 3 { queues[vm].clear(); }
                        }
                    }
                    prop_assert_eq!(rig.mux.focused(), focus);
                    for (vm, queue) in queues.iter().enumerate() {
                        prop_assert_eq!(rig.mux.input_space(vm), INPUT_QUEUE_CAPACITY - queue.len());
                    }
                }
                // The wire: `\n` only in `\r\n`; every whole line and the open one tagged.
                let wire = &rig.wire;
                for (i, pair) in wire.windows(2).enumerate() {
                    prop_assert!(pair[1] != b'\n' || pair[0] == b'\r', "bare \\n at {}", i + 1);
                }
                prop_assert!(wire.first() != Some(&b'\n'));
                let text = wire.clone();
                let mut pieces: Vec<&[u8]> = Vec::new();
                let mut start = 0;
                let mut i = 0;
                while i + 1 < text.len() {
                    if text[i] == b'\r' && text[i + 1] == b'\n' {
                        pieces.push(&text[start..i]);
                        start = i + 2;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                let open = &text[start..];
                for line in pieces {
                    prop_assert!(tagged(line), "untagged line {:?}", String::from_utf8_lossy(line));
                }
                prop_assert!(open.is_empty() || tagged(open), "untagged open line {:?}", String::from_utf8_lossy(open));
            }
        }
    }
}
