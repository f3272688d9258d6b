//! Booth chat kept for a room's life, in memory only: each booth's own thread and its line to the hosts, the last few lines of each.

use crate::protocol::{ChatLine, ChatThread};
use std::collections::VecDeque;

/// Lines kept per thread: what a partner who joins late, or whose page comes back, sees.
pub const KEPT: usize = 50;

#[derive(Debug, Default)]
pub struct Chat {
    booth: VecDeque<ChatLine>,
    hosts: VecDeque<ChatLine>,
}

impl Chat {
    /// Keeps a line in its thread, forgetting the oldest beyond [`KEPT`].
    pub fn keep(&mut self, line: ChatLine) {
        let q = match line.thread {
            ChatThread::Booth => &mut self.booth,
            ChatThread::Hosts => &mut self.hosts,
        };
        if q.len() == KEPT {
            q.pop_front();
        }
        q.push_back(line);
    }

    /// The booth's own thread.
    pub fn booth(&self) -> impl Iterator<Item = &ChatLine> {
        self.booth.iter()
    }

    /// The booth's line to the hosts.
    pub fn hosts(&self) -> impl Iterator<Item = &ChatLine> {
        self.hosts.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: u64, thread: ChatThread) -> ChatLine {
        ChatLine {
            id,
            thread,
            channel: Some("es".into()),
            from: "Ana".into(),
            from_id: 1,
            host: false,
            text: format!("line {id}"),
            big: false,
            at_ms: 0,
        }
    }

    #[test]
    fn each_thread_keeps_its_last_lines() {
        let mut c = Chat::default();
        for id in 0..(KEPT as u64 + 10) {
            c.keep(line(id, ChatThread::Booth));
        }
        c.keep(line(1000, ChatThread::Hosts));
        let ids: Vec<u64> = c.booth().map(|l| l.id).collect();
        assert_eq!(ids.len(), KEPT);
        assert_eq!(ids[0], 10, "the oldest go first");
        assert_eq!(c.hosts().map(|l| l.id).collect::<Vec<_>>(), vec![1000], "threads are apart");
    }
}
