//! A fixed-size byte queue between the UART interrupt handler (which drains the receive FIFO
//! so the level-triggered interrupt drops) and the console loop (which edits and runs lines).

/// Bytes the queue holds; more than a pasted command line, and a byte is 87 µs at 115200 baud,
/// so the console loop empties it long before it fills.
pub const RX_CAPACITY: usize = 128;

#[derive(Debug, Clone)]
pub struct RxQueue {
    bytes: [u8; RX_CAPACITY],
    head: usize,
    length: usize,
    /// Bytes dropped because the queue was full.
    dropped: u64,
}

impl Default for RxQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl RxQueue {
    pub const fn new() -> Self {
        Self {
            bytes: [0; RX_CAPACITY],
            head: 0,
            length: 0,
            dropped: 0,
        }
    }

    /// Appends `byte`, or counts it as dropped if the queue is full.
    pub fn push(&mut self, byte: u8) {
        if self.length == RX_CAPACITY {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.bytes[(self.head + self.length) % RX_CAPACITY] = byte;
        self.length += 1;
    }

    pub fn pop(&mut self) -> Option<u8> {
        if self.length == 0 {
            return None;
        }
        let byte = self.bytes[self.head];
        self.head = (self.head + 1) % RX_CAPACITY;
        self.length -= 1;
        Some(byte)
    }

    pub const fn is_empty(&self) -> bool {
        self.length == 0
    }

    pub const fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_across_the_wrap() {
        let mut queue = RxQueue::new();
        assert_eq!(queue.pop(), None);
        for round in 0..3u8 {
            for i in 0..100u8 {
                queue.push(i.wrapping_add(round));
            }
            for i in 0..100u8 {
                assert_eq!(queue.pop(), Some(i.wrapping_add(round)));
            }
            assert!(queue.is_empty());
        }
    }

    #[test]
    fn overflow_drops_and_counts() {
        let mut queue = RxQueue::new();
        for i in 0..RX_CAPACITY + 5 {
            queue.push(i as u8);
        }
        assert_eq!(queue.dropped(), 5);
        assert_eq!(queue.pop(), Some(0));
        queue.push(0xaa);
        let mut last = None;
        while let Some(byte) = queue.pop() {
            last = Some(byte);
        }
        assert_eq!(last, Some(0xaa));
    }
}
