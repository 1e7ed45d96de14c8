//! Row work on every core, with results in source order.
//!
//! Checking and curating a row needs nothing from the rows around it, so
//! the caller's thread reads an extract's rows in chunks and hands them to
//! worker threads, and the results come back to the caller in the order
//! the rows were read. What the caller writes (curated lines, reports,
//! merge batches, ids) is byte for byte what one thread writes. With one
//! thread the rows are worked on the caller's thread, with no copy.
//!
//! The reader stays on the caller's thread because readers borrow their
//! input, which need not be `Send` (standard input, a Lambda's body
//! stream), and because a CSV row can span lines: only reading the file
//! in order finds where each row starts. A CSV reader hands out each
//! record's raw cells ([`SplitRows`]), and the workers shape them into
//! rows, so the caller's thread does little more than find where records
//! end; another reader's rows are copied to the workers whole.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, mpsc};

use crate::read::{FileError, RawRecords, Row, RowSource, SplitRows};
use crate::validate::RowError;

/// Rows per chunk handed to a worker: enough that channel traffic is
/// noise next to the work, few enough that the rows in flight stay small.
const CHUNK: usize = 256;

/// Bytes of cells past which a chunk takes no more rows, so rows in flight
/// stay few when they are long: with 256 rows of nearly [`MAX_ROW_BYTES`]
/// a chunk, `validate` of such a file peaked at 847 MB on two cores where
/// one thread peaks at 20 MB (33 MB with the cap). Usual rows (100 to 500
/// bytes) fill a chunk by count first.
///
/// [`MAX_ROW_BYTES`]: crate::read::MAX_ROW_BYTES
const CHUNK_BYTES: usize = 128 << 10;

/// Chunks in flight per worker. The reader waits beyond this, so memory
/// stays flat however fast it reads; more than one keeps every worker fed
/// while the caller writes results.
const IN_FLIGHT_PER_WORKER: usize = 2;

/// The threads this process may run on: the CPUs its affinity mask and
/// cgroup quota allow (so `taskset -c 0` gives 1), at least 1.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// How a pass over the rows ended.
#[derive(Debug)]
pub enum End {
    /// Every row was read and handed to the caller.
    Read,
    /// The file broke off: every row before the error was handed to the
    /// caller, none after it.
    FileError(FileError),
    /// The caller asked to stop.
    Stopped,
}

/// What a worker does to one row: its result, with the row's errors
/// pushed; `S` is the worker's own scratch.
pub type Work<'w, T, S> = dyn Fn(&Row, &mut S, &mut Vec<RowError>) -> Option<T> + Sync + 'w;

/// What the caller does with each row's result (taking it to keep it) and
/// errors, in source order: `false` to stop.
pub type Each<'e, T, E> = dyn FnMut(&mut Option<T>, &[RowError]) -> Result<bool, E> + 'e;

/// A row's result and the errors found in it, or the file error its
/// record turned out to be.
type Worked<T> = Result<(Option<T>, Vec<RowError>), FileError>;

/// Rows for a worker: raw records to shape, or rows already shaped.
enum Chunk {
    Raw(RawRecords),
    Rows(Vec<Row>),
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Raw(v) => v.len(),
            Chunk::Rows(v) => v.len(),
        }
    }
}

/// A chunk's results (or the panic that ended its work), and its rows back
/// for reuse.
type Done<T> = (u64, usize, std::thread::Result<Vec<Worked<T>>>, Chunk);

/// Where the caller's thread reads from.
enum Feed<'r> {
    Split(&'r mut dyn SplitRows),
    Rows(&'r mut dyn RowSource),
}

impl Feed<'_> {
    /// Fill `chunk` (emptied) up to [`CHUNK`] rows or [`CHUNK_BYTES`],
    /// reusing its buffers: false once the stream has ended (a file error
    /// goes to `end`).
    fn fill(&mut self, chunk: &mut Chunk, end: &mut Option<FileError>) -> bool {
        match (self, chunk) {
            (Feed::Split(split), Chunk::Raw(raws)) => {
                raws.clear();
                while raws.len() < CHUNK && raws.byte_len() < CHUNK_BYTES {
                    match split.next_raw(raws) {
                        Some(Ok(())) => {}
                        Some(Err(e)) => {
                            *end = Some(e);
                            return false;
                        }
                        None => return false,
                    }
                }
                true
            }
            (Feed::Rows(source), Chunk::Rows(rows)) => {
                rows.clear();
                let mut bytes = 0;
                while rows.len() < CHUNK && bytes < CHUNK_BYTES {
                    match source.next_row() {
                        Some(Ok(row)) => {
                            bytes += approx_bytes(&row.value);
                            rows.push(row.clone());
                        }
                        Some(Err(e)) => {
                            *end = Some(e);
                            return false;
                        }
                        None => return false,
                    }
                }
                true
            }
            _ => unreachable!("a feed fills its own kind of chunk"),
        }
    }

    fn empty(&self) -> Chunk {
        match self {
            Feed::Split(_) => Chunk::Raw(RawRecords::default()),
            Feed::Rows(_) => Chunk::Rows(Vec::with_capacity(CHUNK)),
        }
    }
}

/// Run `work` on every row of `rows` on `threads` threads, and hand each
/// row's result and errors to `each` in source order. `each` takes the
/// result if it keeps it, and returns `false` to stop there. Each worker
/// has its own `S` (a scratch buffer, a cache), made by `Default`.
///
/// What `each` leaves is dropped by the worker that made it: a block
/// freed by another thread costs the allocator far more (measured: a
/// third of the CPU time of pseudonymising a file on two cores).
///
/// A panic in `work` is raised again on the caller's thread.
pub fn each_row_in_order<T, S, E>(
    rows: &mut dyn RowSource,
    threads: usize,
    work: &Work<'_, T, S>,
    each: &mut Each<'_, T, E>,
) -> Result<End, E>
where
    T: Send,
    S: Default,
{
    if threads <= 1 {
        return in_this_thread(rows, work, each);
    }
    let mut first = Chunk::Raw(RawRecords::default());
    let mut read_end = None;
    let (mut feed, mut more) = match rows.split() {
        Some(split) => {
            let mut feed = Feed::Split(split);
            // The first chunk is read before the workers start: reading it
            // reads the header, which their shapers need.
            let more = feed.fill(&mut first, &mut read_end);
            (feed, more)
        }
        None => {
            let mut feed = Feed::Rows(rows);
            first = feed.empty();
            let more = feed.fill(&mut first, &mut read_end);
            (feed, more)
        }
    };
    let shaper = |feed: &Feed<'_>| match feed {
        Feed::Split(split) => split.shaper(),
        Feed::Rows(_) => None,
    };
    if first.len() == 0 {
        // Nothing to share out: an empty file, or one that broke at once.
        return Ok(read_end.map_or(End::Read, End::FileError));
    }
    let (work_tx, work_rx) = mpsc::channel::<(u64, Chunk)>();
    let work_rx = &Mutex::new(work_rx);
    std::thread::scope(move |scope| {
        let (done_tx, done_rx) = mpsc::channel::<Done<T>>();
        let mut trash = Vec::with_capacity(threads);
        for worker in 0..threads {
            let done_tx = done_tx.clone();
            let mut shaper = shaper(&feed);
            let (trash_tx, spent) = mpsc::channel::<Vec<Worked<T>>>();
            trash.push(trash_tx);
            scope.spawn(move || {
                let mut scratch = S::default();
                let mut errors = Vec::new();
                loop {
                    while let Ok(results) = spent.try_recv() {
                        drop(results);
                    }
                    // The lock is held only while waiting for a chunk.
                    let job = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, chunk)) = job else { return };
                    let results = catch_unwind(AssertUnwindSafe(|| {
                        let mut one = |row: &Row| {
                            errors.clear();
                            let out = work(row, &mut scratch, &mut errors);
                            // An empty vector does not allocate: only a
                            // rejected row pays for its errors.
                            Ok((out, std::mem::take(&mut errors)))
                        };
                        match (&chunk, shaper.as_mut()) {
                            (Chunk::Raw(raws), Some(shaper)) => (0..raws.len())
                                .map(|i| shaper.shape(raws, i).and_then(&mut one))
                                .collect(),
                            (Chunk::Rows(rows), _) => rows.iter().map(one).collect(),
                            (Chunk::Raw(_), None) => {
                                unreachable!("raw records come with a shaper")
                            }
                        }
                    }));
                    // The caller has gone (it stopped): nothing to do.
                    if done_tx.send((seq, worker, results, chunk)).is_err() {
                        return;
                    }
                }
            });
        }
        // The workers hold the only senders, so a receive never waits on a
        // chunk that no worker has.
        drop(done_tx);
        let mut order = InOrder {
            next: 0,
            waiting: BTreeMap::new(),
            spare: Vec::new(),
            trash,
        };
        let limit = (threads * IN_FLIGHT_PER_WORKER) as u64;
        let mut sent = 0u64;
        let mut chunk = first;
        loop {
            // Sending fails only when no worker is left, which a panic
            // cannot cause (it is caught): then the results say why.
            if chunk.len() > 0 {
                if work_tx.send((sent, chunk)).is_err() {
                    break;
                }
                sent += 1;
            }
            // Hand over what is ready; wait when too much is in flight.
            while order.next < sent {
                let done = if sent - order.next >= limit {
                    done_rx.recv().ok()
                } else {
                    done_rx.try_recv().ok()
                };
                let Some(done) = done else { break };
                if let Some(end) = order.arrive(done, each)? {
                    return Ok(end);
                }
            }
            if !more {
                break;
            }
            chunk = order.spare.pop().unwrap_or_else(|| feed.empty());
            more = feed.fill(&mut chunk, &mut read_end);
        }
        drop(work_tx);
        while order.next < sent {
            let Ok(done) = done_rx.recv() else {
                // Every worker sends each chunk's results before it takes
                // another, and ends only once no chunk is left.
                unreachable!("a row worker ended with chunks outstanding");
            };
            if let Some(end) = order.arrive(done, each)? {
                return Ok(end);
            }
        }
        Ok(read_end.map_or(End::Read, End::FileError))
    })
}

/// About how many bytes a row's value holds: its text, and a word for
/// anything else.
fn approx_bytes(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(approx_bytes).sum(),
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + approx_bytes(v)).sum(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
    }
}

/// One thread: the rows as the reader lends them, no copy.
fn in_this_thread<T, S: Default, E>(
    rows: &mut dyn RowSource,
    work: &Work<'_, T, S>,
    each: &mut Each<'_, T, E>,
) -> Result<End, E> {
    let mut scratch = S::default();
    let mut errors = Vec::new();
    while let Some(next) = rows.next_row() {
        let row = match next {
            Ok(row) => row,
            Err(e) => return Ok(End::FileError(e)),
        };
        errors.clear();
        let mut out = work(row, &mut scratch, &mut errors);
        if !each(&mut out, &errors)? {
            return Ok(End::Stopped);
        }
    }
    Ok(End::Read)
}

/// Chunks' results put back in the order they were read.
struct InOrder<T> {
    /// The chunk to hand over next.
    next: u64,
    /// Chunks that came back before an earlier one, with their worker.
    waiting: BTreeMap<u64, (usize, Vec<Worked<T>>)>,
    /// Emptied chunks, for the reader to fill again.
    spare: Vec<Chunk>,
    /// By worker: where its results go back to be dropped.
    trash: Vec<mpsc::Sender<Vec<Worked<T>>>>,
}

impl<T> InOrder<T> {
    /// Take one chunk's results and hand over every chunk now in order;
    /// how the run ended when it has (the caller stopped, or a record was
    /// a file error), `None` to go on.
    fn arrive<E>(
        &mut self,
        (seq, worker, results, chunk): Done<T>,
        each: &mut Each<'_, T, E>,
    ) -> Result<Option<End>, E> {
        // Shaped rows are freed on the thread that copied them; raw
        // records keep their buffers for the next fill.
        if let Chunk::Rows(mut rows) = chunk {
            rows.clear();
            self.spare.push(Chunk::Rows(rows));
        } else {
            self.spare.push(chunk);
        }
        let results = match results {
            Ok(results) => results,
            // A bug in the work: the run cannot finish, so it ends now.
            Err(panic) => std::panic::resume_unwind(panic),
        };
        self.waiting.insert(seq, (worker, results));
        while let Some((worker, mut results)) = self.waiting.remove(&self.next) {
            self.next += 1;
            let mut end = None;
            for result in &mut results {
                match result {
                    Ok((out, errors)) => {
                        if !each(out, errors)? {
                            end = Some(End::Stopped);
                            break;
                        }
                    }
                    // The rows after it were never there.
                    Err(e) => {
                        end = Some(End::FileError(e.clone()));
                        break;
                    }
                }
            }
            // A worker that has ended (the run is stopping) leaves its
            // results to be dropped here.
            let _ = self.trash[worker].send(results);
            if end.is_some() {
                return Ok(end);
            }
        }
        Ok(None)
    }
}
