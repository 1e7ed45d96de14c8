//! Lineage and the access log: append-only, hash-chained events.
//!
//! `hash = SHA-256(prev_hash + "\n" + canonical JSON of the event without
//! its hash)`, where canonical JSON sorts object keys and has no spaces.
//! Editing, deleting, inserting or reordering any event breaks the chain at
//! that event, and `verify` names it.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::events::Event;
use crate::ports::{ChainLog, StoreError};

/// RFC 3339 UTC time (to the second) for seconds since the Unix epoch.
/// The core reads no clock; edges pass `SystemTime::now()` through this.
pub fn rfc3339_utc(unix_secs: u64) -> String {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(0);
    let rem = unix_secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// JSON with object keys sorted and no insignificant whitespace.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The hash of an event given the previous hash.
pub fn event_hash(prev_hash: Option<&str>, event_without_hash: &Value) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.unwrap_or("").as_bytes());
    h.update(b"\n");
    h.update(canonical_json(event_without_hash).as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Append `fields` as the next event: adds `seq`, `prev_hash`, `hash`.
/// Retries when another writer moved the head in between.
pub fn append(log: &dyn ChainLog, fields: Map<String, Value>) -> Result<Value, StoreError> {
    let mut last = None;
    for _ in 0..16 {
        let head = log.head()?;
        let seq = head.as_ref().map_or(1, |(s, _)| s + 1);
        let prev = head.as_ref().map(|(_, h)| h.clone());
        let mut event = fields.clone();
        event.insert("seq".into(), Value::from(seq));
        event.insert(
            "prev_hash".into(),
            prev.clone().map_or(Value::Null, Value::String),
        );
        let hash = event_hash(prev.as_deref(), &Value::Object(event.clone()));
        event.insert("hash".into(), Value::String(hash));
        let event = Value::Object(event);
        match log.append(seq, &event, prev.as_deref()) {
            Ok(()) => return Ok(event),
            Err(StoreError::Precondition(m)) => last = Some(m),
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Precondition(last.unwrap_or_default()))
}

/// Append a typed event (see [`crate::events`]): its fields are hashed and
/// stored exactly as [`append`] hashes and stores a hand-built object.
pub fn append_event(log: &dyn ChainLog, event: &impl Event) -> Result<Value, StoreError> {
    append(log, event.to_fields())
}

/// The key id the store's records were pseudonymised under: that of the
/// latest lineage event that names one (every ingest does). `None` for a
/// store nothing was ingested into.
pub fn store_key_id(entries: &[Value]) -> Option<&str> {
    entries
        .iter()
        .rev()
        .find_map(|e| e.get("key_id").and_then(Value::as_str))
}

/// [`store_key_id`] read from the log newest first, a page at a time: the
/// latest ingest is near the head, so this reads a page, not the log.
pub fn store_key_id_in(log: &dyn ChainLog) -> Result<Option<String>, StoreError> {
    const PAGE: usize = 64;
    let mut before = None;
    loop {
        let page = log.page_back(before, PAGE)?;
        if let Some(kid) = page
            .iter()
            .find_map(|e| e.get("key_id").and_then(Value::as_str))
        {
            return Ok(Some(kid.to_owned()));
        }
        match page.last().map(crate::ports::entry_seq) {
            Some(seq) if page.len() == PAGE && seq > 1 => before = Some(seq),
            _ => return Ok(None),
        }
    }
}

/// [`check_store_key`] against the log itself (see [`store_key_id_in`]).
pub fn check_store_key_in(
    log: &dyn ChainLog,
    given: &str,
) -> Result<Result<(), KeyMismatch>, StoreError> {
    Ok(match store_key_id_in(log)? {
        Some(store) if store != given => Err(KeyMismatch {
            store,
            given: given.to_owned(),
        }),
        _ => Ok(()),
    })
}

/// A command ran under another key than the one the store was built with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this store was built with key id {store}, but the key given is {given}: tokens under \
     different keys never match, so ingesting would split every person the upload shares \
     with the store, and a lookup would find nothing: use the store's key, or start a new store"
)]
pub struct KeyMismatch {
    /// The store's key id.
    pub store: String,
    /// The key id the command was given.
    pub given: String,
}

/// Refuse a key whose id is not the store's (a store with no key yet
/// takes any).
pub fn check_store_key(entries: &[Value], given: &str) -> Result<(), KeyMismatch> {
    match store_key_id(entries) {
        Some(store) if store != given => Err(KeyMismatch {
            store: store.to_owned(),
            given: given.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// The first problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainProblem {
    /// Position in the log (1-based) of the first bad event.
    pub position: usize,
    /// The event's own `seq`, when readable.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

/// Recompute the chain. Also checks, for every event that carries row
/// counts, that `rows_in = rows_accepted + rows_rejected`.
pub fn verify(entries: &[Value]) -> Result<usize, ChainProblem> {
    let mut prev: Option<String> = None;
    for (i, e) in entries.iter().enumerate() {
        let position = i + 1;
        let seq = e.get("seq").and_then(Value::as_u64);
        let bad = |reason: String| ChainProblem {
            position,
            seq,
            reason,
        };
        let Some(obj) = e.as_object() else {
            return Err(bad(
                "the event is not a JSON object (edited by hand?)".into()
            ));
        };
        if seq != Some(position as u64) {
            return Err(bad(format!(
                "expected seq {position}, found {} (an event was deleted, inserted or reordered)",
                seq.map_or("none".to_owned(), |s| s.to_string())
            )));
        }
        let claimed_prev = obj.get("prev_hash").and_then(Value::as_str);
        if claimed_prev != prev.as_deref() {
            return Err(bad(
                "prev_hash does not match the previous event's hash".into()
            ));
        }
        let claimed = obj.get("hash").and_then(Value::as_str).unwrap_or_default();
        let mut without = obj.clone();
        without.remove("hash");
        let actual = event_hash(prev.as_deref(), &Value::Object(without));
        if claimed != actual {
            return Err(bad(
                "the event's content does not match its hash (edited)".into()
            ));
        }
        let n = |k: &str| obj.get(k).and_then(Value::as_u64);
        if let (Some(i), Some(a), Some(r)) = (n("rows_in"), n("rows_accepted"), n("rows_rejected"))
            && i != a + r
        {
            return Err(bad(format!(
                "rows_in {i} != rows_accepted {a} + rows_rejected {r}"
            )));
        }
        prev = Some(actual);
    }
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryChainLog;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn chain_detects_edits_deletes_and_reorders() {
        let log = MemoryChainLog::default();
        for i in 0..4u64 {
            append(&log, fields(json!({"type": "ingest", "rows_in": 10, "rows_accepted": 10 - i, "rows_rejected": i}))).expect("append");
        }
        let good = log.entries().expect("entries");
        assert_eq!(verify(&good), Ok(4));
        let mut edited = good.clone();
        edited[2]["rows_accepted"] = json!(9);
        assert_eq!(verify(&edited).expect_err("edit").position, 3);
        let mut deleted = good.clone();
        deleted.remove(1);
        assert_eq!(verify(&deleted).expect_err("delete").position, 2);
        let mut swapped = good.clone();
        swapped.swap(1, 2);
        assert_eq!(verify(&swapped).expect_err("reorder").position, 2);
        let mut inserted = good.clone();
        inserted.insert(2, good[1].clone());
        assert_eq!(verify(&inserted).expect_err("insert").position, 3);
    }

    #[test]
    fn the_store_key_is_the_latest_event_that_names_one() {
        assert_eq!(
            check_store_key(&[], "k9"),
            Ok(()),
            "an empty store takes any key"
        );
        let entries = vec![
            json!({"type": "ingest", "key_id": "k1"}),
            json!({"type": "link_train"}),
        ];
        assert_eq!(store_key_id(&entries), Some("k1"));
        assert_eq!(check_store_key(&entries, "k1"), Ok(()));
        let refused = check_store_key(&entries, "k2").expect_err("another key");
        assert_eq!(
            (refused.store.as_str(), refused.given.as_str()),
            ("k1", "k2")
        );
        assert!(refused.to_string().contains("key id k1") && refused.to_string().contains("k2"));
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_939_199), "2026-11-29T07:59:59Z");
    }

    #[test]
    fn canonical_json_sorts_keys() {
        assert_eq!(
            canonical_json(&json!({"b": 1, "a": [true, {"d": null, "c": "x"}]})),
            r#"{"a":[true,{"c":"x","d":null}],"b":1}"#
        );
    }
}
