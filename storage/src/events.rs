//! A run's events, stored as they arrive in small chunks, and read back a
//! page at a time.
//!
//! A run's record (`Table::Runs`) holds its request and outcome; its
//! events live in `Table::RunEvents`, one entry per chunk of at most
//! [`EVENT_CHUNK_BYTES`] bytes of newline-terminated JSON lines, keyed
//! `ws | run | first event seq (u64) | part (u32)`. A chunk starts at an
//! event boundary (part 0) and holds whole events; an event longer than a
//! chunk is split over parts 0, 1, 2, … of its own. The entry at exactly
//! `ws | run` holds the run's totals ([`EventTotals`]).
//!
//! Why chunks: a long run's output is written while it runs (memory stays
//! bounded, and a crash loses at most the last unwritten batch), a reader
//! pages through it without loading it whole, and every value stays far
//! below sled 0.34's blob threshold (a quarter of its 512 KiB segment):
//! sled writes a larger value, or a tree node holding more than that, to
//! a file of its own, and such files of removed values were seen never to
//! be deleted, so disk grew without bound under retention. A leaf of at
//! most 17 entries of 4 KiB stays under it.

use serde_json::Value;

use crate::backend::{Table, Tx};
use crate::error::{corrupt, invalid, Result};
use crate::keys::{check_name, Key};
use crate::model::WorkspaceId;
use crate::store::Store;

/// Largest chunk of a run's events, in bytes.
pub const EVENT_CHUNK_BYTES: usize = 4096;

/// A run's event count and the bytes its chunks take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventTotals {
    /// Events stored.
    pub events: u64,
    /// Bytes of their chunks.
    pub bytes: u64,
}

impl EventTotals {
    fn encode(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.events.to_be_bytes());
        b[8..].copy_from_slice(&self.bytes.to_be_bytes());
        b
    }

    fn decode(v: &[u8]) -> Self {
        let n = |r: std::ops::Range<usize>| {
            v.get(r)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes)
        };
        Self {
            events: n(0..8),
            bytes: n(8..16),
        }
    }
}

/// One page of a run's events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPage {
    /// Serialized events (one JSON object each), in order.
    pub lines: Vec<String>,
    /// The seq of the event after the last one here, when there are more.
    pub next: Option<u64>,
}

impl EventPage {
    /// The events parsed (a line that does not parse is skipped: only
    /// this store wrote them).
    pub fn values(&self) -> Vec<Value> {
        self.lines
            .iter()
            .filter_map(|l| crate::error::decode::<Value>("run event", l.as_bytes()).ok())
            .collect()
    }
}

/// The key prefix of run `run`'s events (also its totals' key).
pub(crate) fn run_prefix(ws: &WorkspaceId, run: &str) -> Vec<u8> {
    Key::ws(ws).seg(run.as_bytes()).prefix()
}

fn chunk_key(prefix: &[u8], seq: u64, part: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 12);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&seq.to_be_bytes());
    k.extend_from_slice(&part.to_be_bytes());
    k
}

/// `(seq, part)` of a chunk key, or `None` for the totals entry.
fn parse_key(prefix: &[u8], key: &[u8]) -> Option<(u64, u32)> {
    let rest = key.get(prefix.len()..)?;
    let seq = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let part = u32::from_be_bytes(rest.get(8..12)?.try_into().ok()?);
    Some((seq, part))
}

/// Pack `lines` (events `first`, `first + 1`, …) into chunks as the
/// module docs describe: `(seq, part, bytes)`.
pub(crate) fn pack<S: AsRef<str>>(first: u64, lines: &[S]) -> Vec<(u64, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cur: Option<(u64, Vec<u8>)> = None;
    for (i, line) in lines.iter().enumerate() {
        let seq = first + i as u64;
        let line = line.as_ref().as_bytes();
        let len = line.len() + 1;
        if let Some((s, buf)) = cur.take() {
            if buf.len() + len <= EVENT_CHUNK_BYTES {
                let mut buf = buf;
                buf.extend_from_slice(line);
                buf.push(b'\n');
                cur = Some((s, buf));
                continue;
            }
            out.push((s, 0, buf));
        }
        if len <= EVENT_CHUNK_BYTES {
            let mut buf = Vec::with_capacity(EVENT_CHUNK_BYTES);
            buf.extend_from_slice(line);
            buf.push(b'\n');
            cur = Some((seq, buf));
            continue;
        }
        let mut whole = line.to_vec();
        whole.push(b'\n');
        for (part, piece) in whole.chunks(EVENT_CHUNK_BYTES).enumerate() {
            out.push((seq, part as u32, piece.to_vec()));
        }
    }
    out.extend(cur.map(|(s, buf)| (s, 0, buf)));
    out
}

/// Write events `first…` of run `run` inside `tx`; the bytes added.
pub(crate) fn append_in<S: AsRef<str>>(
    tx: &mut dyn Tx,
    ws: &WorkspaceId,
    run: &str,
    first: u64,
    lines: &[S],
) -> Result<u64> {
    let prefix = run_prefix(ws, run);
    let mut totals = tx
        .get(Table::RunEvents, &prefix)?
        .map(|v| EventTotals::decode(&v))
        .unwrap_or_default();
    if first != totals.events {
        return Err(invalid(
            "run events",
            format!(
                "run '{run}' has {} events stored; the next one is seq {}, not {first}",
                totals.events, totals.events
            ),
        ));
    }
    let mut added = 0u64;
    for (seq, part, bytes) in pack(first, lines) {
        tx.put(Table::RunEvents, &chunk_key(&prefix, seq, part), &bytes)?;
        added += bytes.len() as u64;
    }
    totals.events += lines.len() as u64;
    totals.bytes += added;
    tx.put(Table::RunEvents, &prefix, &totals.encode())?;
    Ok(added)
}

/// Remove run `run`'s event keys `keys` (from [`Store::event_keys`])
/// inside `tx`; the chunk bytes freed, from the run's totals.
pub(crate) fn remove_in(
    tx: &mut dyn Tx,
    ws: &WorkspaceId,
    run: &str,
    keys: &[Vec<u8>],
) -> Result<u64> {
    let freed = tx
        .get(Table::RunEvents, &run_prefix(ws, run))?
        .map_or(0, |v| EventTotals::decode(&v).bytes);
    for k in keys {
        tx.remove(Table::RunEvents, k)?;
    }
    Ok(freed)
}

fn check_lines<S: AsRef<str>>(lines: &[S]) -> Result<()> {
    for l in lines {
        if l.as_ref().contains('\n') {
            return Err(invalid("run event", "it holds a raw newline"));
        }
    }
    Ok(())
}

impl Store {
    /// Append serialized events (one JSON object each, no raw newline) to
    /// run `run`'s stored events, the first being seq `first` (the count
    /// already stored), counted in the workspace's history size. Returns
    /// the bytes written.
    ///
    /// # Errors
    /// [`crate::StorageError::Invalid`] when `first` is not the next seq
    /// or a line holds a newline; store failures.
    pub fn append_run_events<S: AsRef<str>>(
        &self,
        ws: &WorkspaceId,
        run: &str,
        first: u64,
        lines: &[S],
    ) -> Result<u64> {
        check_name("run id", run)?;
        check_lines(lines)?;
        let mut added = 0;
        self.b.write(&mut |tx| {
            added = append_in(tx, ws, run, first, lines)?;
            crate::retention::add_history_in(tx, ws, added as i64)
        })?;
        Ok(added)
    }

    /// How many events run `run` has stored, and their bytes.
    pub fn run_event_totals(&self, ws: &WorkspaceId, run: &str) -> Result<EventTotals> {
        check_name("run id", run)?;
        Ok(self
            .b
            .get(Table::RunEvents, &run_prefix(ws, run))?
            .map(|v| EventTotals::decode(&v))
            .unwrap_or_default())
    }

    /// Run `run`'s stored events from seq `from`, until about `max_bytes`
    /// of them (always at least one, when there is one).
    pub fn run_events(
        &self,
        ws: &WorkspaceId,
        run: &str,
        from: u64,
        max_bytes: usize,
    ) -> Result<EventPage> {
        check_name("run id", run)?;
        let prefix = run_prefix(ws, run);
        let start = self.chunk_holding(&prefix, from)?;
        let mut reader = PageReader::new(from, max_bytes);
        let after = match start {
            Some(0) | None => prefix.clone(),
            Some(s) => chunk_key(&prefix, s - 1, u32::MAX),
        };
        let mut seq = start.unwrap_or(0);
        self.b
            .scan(Table::RunEvents, &prefix, Some(&after), &mut |k, v| {
                let Some((s, part)) = parse_key(&prefix, k) else {
                    return Ok(true);
                };
                if part == 0 && reader.pending.is_empty() {
                    seq = s;
                } else if part == 0 || s != seq {
                    return Err(corrupt("run events", "a split event's parts are missing"));
                }
                Ok(reader.feed(&mut seq, v))
            })?;
        Ok(reader.page)
    }

    /// The first seq of the chunk holding event `seq` (None: from the
    /// start).
    fn chunk_holding(&self, prefix: &[u8], seq: u64) -> Result<Option<u64>> {
        let before = chunk_key(prefix, seq.saturating_add(1), 0);
        let mut found = None;
        self.b.scan_rev(
            Table::RunEvents,
            prefix,
            Some(&before),
            &mut |k, _| match parse_key(prefix, k) {
                Some((s, 0)) => {
                    found = Some(s);
                    Ok(false)
                }
                Some(_) => Ok(true),
                None => Ok(false),
            },
        )?;
        Ok(found)
    }

    /// Every stored event of run `run` (a whole run in memory: for tools
    /// and small runs; servers page with [`Store::run_events`]).
    pub fn all_run_events(&self, ws: &WorkspaceId, run: &str) -> Result<Vec<Value>> {
        Ok(self.run_events(ws, run, 0, usize::MAX)?.values())
    }

    /// The last stored event of run `run`.
    pub fn last_run_event(&self, ws: &WorkspaceId, run: &str) -> Result<Option<Value>> {
        let totals = self.run_event_totals(ws, run)?;
        let Some(last) = totals.events.checked_sub(1) else {
            return Ok(None);
        };
        Ok(self.run_events(ws, run, last, 1)?.values().pop())
    }
}

/// Splits chunks back into lines and keeps those of the page.
struct PageReader {
    from: u64,
    max_bytes: usize,
    bytes: usize,
    pending: Vec<u8>,
    full: bool,
    page: EventPage,
}

impl PageReader {
    fn new(from: u64, max_bytes: usize) -> Self {
        Self {
            from,
            max_bytes,
            bytes: 0,
            pending: Vec::new(),
            full: false,
            page: EventPage::default(),
        }
    }

    /// Take one chunk whose first line is event `*seq`; whether to go on.
    fn feed(&mut self, seq: &mut u64, chunk: &[u8]) -> bool {
        let mut rest = chunk;
        while !rest.is_empty() {
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                self.pending.extend_from_slice(rest);
                return true;
            };
            if self.full {
                self.page.next = Some(*seq);
                return false;
            }
            self.pending.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            let line = std::mem::take(&mut self.pending);
            if *seq >= self.from {
                self.bytes += line.len();
                self.page
                    .lines
                    .push(String::from_utf8_lossy(&line).into_owned());
                self.full = self.bytes >= self.max_bytes;
            }
            *seq += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64, len: usize) -> String {
        let pad = "x".repeat(len.saturating_sub(30));
        format!(r#"{{"seq":{seq},"type":"log","p":"{pad}"}}"#)
    }

    fn lines(n: u64, len: usize) -> Vec<String> {
        (0..n).map(|i| line(i, len)).collect()
    }

    #[test]
    fn chunks_hold_whole_events_and_split_only_one_longer_than_a_chunk() {
        let mut ls = lines(3, 100);
        ls.push(line(3, EVENT_CHUNK_BYTES * 2 + 10));
        ls.push(line(4, 100));
        let packed = pack(0, &ls);
        let keys: Vec<_> = packed.iter().map(|(s, p, _)| (*s, *p)).collect();
        assert_eq!(keys, [(0, 0), (3, 0), (3, 1), (3, 2), (4, 0)]);
        assert!(packed.iter().all(|(_, _, b)| b.len() <= EVENT_CHUNK_BYTES));
        let joined: Vec<u8> = packed.iter().flat_map(|(_, _, b)| b.clone()).collect();
        assert_eq!(String::from_utf8(joined).unwrap(), ls.join("\n") + "\n");
    }

    fn store_with(ws: &WorkspaceId, batches: &[Vec<String>]) -> Store {
        let s = crate::testing::store().unwrap();
        let mut n = 0;
        for b in batches {
            s.append_run_events(ws, "r1", n, b).unwrap();
            n += b.len() as u64;
        }
        s
    }

    #[test]
    fn pages_start_at_any_seq_and_end_near_the_byte_budget() {
        let ws = WorkspaceId::from_bytes([7; 16]);
        let mut big = lines(50, 300);
        big[20] = line(20, EVENT_CHUNK_BYTES * 3);
        let s = store_with(&ws, &[big[..10].to_vec(), big[10..].to_vec()]);
        assert_eq!(s.run_event_totals(&ws, "r1").unwrap().events, 50);
        for from in [0u64, 1, 9, 10, 19, 20, 21, 49] {
            let p = s.run_events(&ws, "r1", from, 1000).unwrap();
            assert_eq!(p.lines[0], big[from as usize], "from {from}");
            let end = from as usize + p.lines.len();
            assert_eq!(p.lines, big[from as usize..end]);
            assert_eq!(p.next, (end < 50).then_some(end as u64));
        }
        let all = s.run_events(&ws, "r1", 0, usize::MAX).unwrap();
        assert_eq!(all.lines, big);
        assert_eq!(all.next, None);
        assert!(s.run_events(&ws, "r1", 50, 10).unwrap().lines.is_empty());
        assert_eq!(s.last_run_event(&ws, "r1").unwrap().unwrap()["seq"], 49);
        // Another workspace and another run see nothing.
        let other = WorkspaceId::from_bytes([8; 16]);
        assert!(s.run_events(&other, "r1", 0, 10).unwrap().lines.is_empty());
        assert!(s.run_events(&ws, "r", 0, 10).unwrap().lines.is_empty());
    }

    #[test]
    fn appends_out_of_order_or_with_newlines_are_refused_and_change_nothing() {
        let ws = WorkspaceId::from_bytes([7; 16]);
        let s = store_with(&ws, &[lines(3, 50)]);
        let before = s.history_bytes(&ws).unwrap();
        assert!(s.append_run_events(&ws, "r1", 2, &lines(1, 50)).is_err());
        assert!(s.append_run_events(&ws, "r1", 4, &lines(1, 50)).is_err());
        assert!(s.append_run_events(&ws, "r1", 3, &["{\n}"]).is_err());
        assert_eq!(s.run_event_totals(&ws, "r1").unwrap().events, 3);
        assert_eq!(s.history_bytes(&ws).unwrap(), before);
        let t = s.run_event_totals(&ws, "r1").unwrap();
        assert_eq!(t.bytes, before);
    }
}
