//! Retention: a record is kept no longer than its dataset's schema says
//! (`x-retention-days`, counted from the record's event date), then removed
//! from the store as a withdrawal removes an upload's records, the people
//! it touched re-derived, and an `expired` lineage event says how many went
//! from which uploads (so reconciliation still balances).
//!
//! `agencylink retention apply` runs it; on AWS the same command runs
//! against the DynamoDB store. A dataset without the annotation keeps its
//! records until they are withdrawn. Each dataset is one store session: in
//! SQLite one transaction under the write lock, the lineage event inside
//! it, so a killed run leaves that dataset as it was. A store that removes
//! as it goes (DynamoDB) gets an `expiry_started` event before the first
//! delete, with what the run takes by upload; the next run completes an
//! expiry cut short, with its own cutoff, and closes it with those counts
//! before it expires anything newer. The removed bytes stay in the body
//! file until `agencylink compact`.

use std::collections::BTreeMap;

use crate::events::{ExpiredEvent, ExpiryStartedEvent, LineageEvent};
use crate::lineage;
use crate::ports::{ChainLog, RecordStore, StoreError};
use crate::schema::Dataset;
use crate::withdraw::{Doomed, in_session};

/// Why retention could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// The run's date is not `YYYY-MM-DD`.
    #[error("the retention date must be YYYY-MM-DD (got a value of {0} characters)")]
    Date(usize),
    /// The store failed; the dataset being expired was left as it was.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The day `days` before `today` (`YYYY-MM-DD`), or `None` for a bad date.
pub fn cutoff(today: &str, days: u32) -> Option<String> {
    let d = crate::pseudo::generalise::parse_ymd(today)?;
    let day = days_from_civil(i32::from(d.0), u32::from(d.1), u32::from(d.2)) - i64::from(days);
    let (y, m, dd) = civil_from_days(day);
    Some(format!("{y:04}-{m:02}-{dd:02}"))
}

/// What one dataset's run found: the event, when anything expired.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRun {
    /// The dataset.
    pub dataset: String,
    /// Its retention period, days (`None`: kept until withdrawn).
    pub retention_days: Option<u32>,
    /// The cutoff, when there is a period.
    pub cutoff: Option<String>,
    /// The `expired` event appended, when records were removed.
    pub event: Option<ExpiredEvent>,
    /// That event as lineage stored it (with its seq and hashes, for a
    /// WORM copy).
    pub entry: Option<serde_json::Value>,
}

/// Apply every dataset's retention period as of `today`: remove the
/// records dated before its cutoff and append one `expired` event per
/// dataset that lost any. `time` stamps the events.
pub fn apply(
    records: &dyn RecordStore,
    lineage_log: &dyn ChainLog,
    datasets: &[&Dataset],
    today: &str,
    time: &str,
) -> Result<Vec<DatasetRun>, RetentionError> {
    // Expiries an earlier run began and did not close, by dataset (only a
    // store that removes as it goes leaves any).
    let mut unfinished = if records.writes_through() {
        unfinished_expiries(&lineage_log.entries()?)
    } else {
        BTreeMap::new()
    };
    let mut runs = Vec::new();
    for ds in datasets {
        if let Some(started) = unfinished.remove(&ds.id) {
            let done = in_session(records, || {
                expire_in(
                    records,
                    lineage_log,
                    &ds.id,
                    started.retention_days,
                    &started.cutoff,
                    time,
                    Some(&started),
                )
            })?;
            runs.push(DatasetRun {
                dataset: ds.id.clone(),
                retention_days: Some(started.retention_days),
                cutoff: Some(started.cutoff.clone()),
                event: done.as_ref().map(|(e, _)| e.clone()),
                entry: done.map(|(_, entry)| entry),
            });
        }
        let Some(days) = ds.retention_days else {
            runs.push(DatasetRun {
                dataset: ds.id.clone(),
                retention_days: None,
                cutoff: None,
                event: None,
                entry: None,
            });
            continue;
        };
        let cut = cutoff(today, days).ok_or(RetentionError::Date(today.chars().count()))?;
        let done = in_session(records, || {
            expire_in(records, lineage_log, &ds.id, days, &cut, time, None)
        })?;
        runs.push(DatasetRun {
            dataset: ds.id.clone(),
            retention_days: Some(days),
            cutoff: Some(cut),
            event: done.as_ref().map(|(e, _)| e.clone()),
            entry: done.map(|(_, entry)| entry),
        });
    }
    Ok(runs)
}

/// The `expiry_started` events no `expired` event of the same dataset
/// followed, by dataset.
fn unfinished_expiries(entries: &[serde_json::Value]) -> BTreeMap<String, ExpiryStartedEvent> {
    let mut open = BTreeMap::new();
    for e in entries {
        match LineageEvent::from_entry(e) {
            LineageEvent::ExpiryStarted(x) => {
                open.insert(x.dataset.clone(), x);
            }
            LineageEvent::Expired(x) => {
                open.remove(&x.dataset);
            }
            _ => {}
        }
    }
    open
}

/// Remove `dataset`'s records dated before `cut`; `resumed`: the start of
/// an expiry cut short, which this one completes and whose counts it
/// closes with.
fn expire_in(
    records: &dyn RecordStore,
    lineage_log: &dyn ChainLog,
    dataset: &str,
    days: u32,
    cut: &str,
    time: &str,
    resumed: Option<&ExpiryStartedEvent>,
) -> Result<Option<(ExpiredEvent, serde_json::Value)>, StoreError> {
    // The day before the cutoff is the last one that goes: a record dated
    // on the cutoff has been kept exactly `days` days.
    let Some(last) = cutoff(cut, 1) else {
        return Ok(None);
    };
    let mut doomed = Doomed::new(records)?;
    records.scan_dataset(dataset, None, Some(&last), &mut |r| {
        // The scan's bound is inclusive and by event date; a record with no
        // usable date sorts first and is kept: it cannot be said to be old.
        if !r.event_date.is_empty() && r.event_date.as_str() < cut {
            doomed.add(r);
        }
        true
    })?;
    if doomed.is_empty() && resumed.is_none() {
        return Ok(None);
    }
    // What a store that removes as it goes takes: fixed before its first
    // delete, by this run or by the one cut short.
    let planned = match resumed {
        Some(started) => Some((
            started.records_removed,
            started.records_removed_from.clone(),
        )),
        None if records.writes_through() => {
            let (n, from) = doomed.counts();
            let started = ExpiryStartedEvent {
                dataset: dataset.to_owned(),
                retention_days: days,
                cutoff: cut.to_owned(),
                records_removed: n,
                records_removed_from: from.clone(),
                time: time.to_owned(),
            };
            lineage::append_event(lineage_log, &LineageEvent::ExpiryStarted(started.clone()))?;
            Some((started.records_removed, started.records_removed_from))
        }
        None => None,
    };
    let (gone, from) = doomed.remove(records)?;
    let (records_removed, records_removed_from) = planned.unwrap_or((gone.records_removed, from));
    let event = ExpiredEvent {
        dataset: dataset.to_owned(),
        retention_days: days,
        cutoff: cut.to_owned(),
        records_removed,
        records_removed_from,
        people_removed: gone.people_removed,
        people_kept: gone.people_kept,
        people_split: gone.people_split,
        keys_removed: gone.keys_removed,
        reviews_removed: gone.reviews_removed,
        time: time.to_owned(),
    };
    let entry = lineage::append_event(lineage_log, &LineageEvent::Expired(event.clone()))?;
    Ok(Some((event, entry)))
}

// Howard Hinnant's civil-date algorithms: days since 1970-01-01 and back.
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_counts_back_whole_days_across_leap_years() {
        assert_eq!(cutoff("2026-03-01", 1).as_deref(), Some("2026-02-28"));
        assert_eq!(cutoff("2024-03-01", 1).as_deref(), Some("2024-02-29"));
        assert_eq!(cutoff("2026-12-03", 365).as_deref(), Some("2025-12-03"));
        assert_eq!(cutoff("2026-12-03", 2557).as_deref(), Some("2019-12-03"));
        assert_eq!(cutoff("2000-01-01", 0).as_deref(), Some("2000-01-01"));
        assert_eq!(cutoff("03/12/2026", 1), None);
        assert_eq!(cutoff("2026-02-30", 1), None);
    }
}
