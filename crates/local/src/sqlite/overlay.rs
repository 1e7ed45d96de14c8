//! What an open upload knows about the rows it has written but not yet
//! indexed: their record ids and people, by position since the upload
//! began, so merge reads of one batch find the records of earlier batches.
//!
//! Kept to a few bytes a row (about 24 MB for 1,000,000 rows) because an
//! upload's index entries are only written when it is published.

/// Record-id hash → row offsets (an open-addressing table of offsets into
/// `hashes`), plus each row's person hash.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    /// Record-id hash of each row, by offset.
    hashes: Vec<i64>,
    /// Person-id hash of each row, by offset.
    persons: Vec<i64>,
    /// Offsets + 1 (0 = empty slot), probed linearly from the hash.
    slots: Vec<u32>,
}

impl Overlay {
    /// Rows held.
    pub(super) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Add the next row (its offset is the current length).
    pub(super) fn push(&mut self, id_hash: i64, person_hash: i64) {
        if (self.hashes.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let offset = self.hashes.len();
        self.hashes.push(id_hash);
        self.persons.push(person_hash);
        self.place(offset);
    }

    /// The row at `offset` now belongs to another person.
    pub(super) fn set_person(&mut self, offset: usize, person_hash: i64) {
        if let Some(p) = self.persons.get_mut(offset) {
            *p = person_hash;
        }
    }

    /// Offsets of rows whose record id hashes to `id_hash` (usually none or
    /// one; the caller checks the id itself).
    pub(super) fn rows_with_id(&self, id_hash: i64) -> Vec<usize> {
        let mut out = Vec::new();
        if self.slots.is_empty() {
            return out;
        }
        let mask = self.slots.len() - 1;
        let mut at = spread(id_hash) & mask;
        while let Some(&slot) = self.slots.get(at).filter(|&&s| s != 0) {
            let offset = slot as usize - 1;
            if self.hashes[offset] == id_hash {
                out.push(offset);
            }
            at = (at + 1) & mask;
        }
        out
    }

    /// Offsets of rows whose person hashes to `person_hash`.
    pub(super) fn rows_of_person(&self, person_hash: i64) -> impl Iterator<Item = usize> + '_ {
        self.persons
            .iter()
            .enumerate()
            .filter(move |&(_, &p)| p == person_hash)
            .map(|(i, _)| i)
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        self.slots = vec![0; size];
        for offset in 0..self.hashes.len() {
            self.place(offset);
        }
    }

    fn place(&mut self, offset: usize) {
        let mask = self.slots.len() - 1;
        let mut at = spread(self.hashes[offset]) & mask;
        while self.slots[at] != 0 {
            at = (at + 1) & mask;
        }
        // An upload of more than 4 billion rows is refused long before
        // this (the SQLite rowid offset would not fit either).
        self.slots[at] = u32::try_from(offset + 1).unwrap_or(u32::MAX);
    }
}

/// Table position of a hash. The FNV-1a hashes' low bits are already
/// mixed, but a multiply keeps clustered inputs from clustering in the table.
fn spread(h: i64) -> usize {
    let x = u64::from_ne_bytes(h.to_ne_bytes()).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // The high bits are the well-mixed ones.
    usize::try_from(x >> 32).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::Overlay;

    #[test]
    fn finds_every_row_by_id_and_person_through_growth_and_collisions() {
        let mut o = Overlay::default();
        for i in 0..5000_i64 {
            // Every id hash appears twice: the table must return both rows.
            o.push(i / 2, i % 7);
        }
        assert_eq!(o.len(), 5000);
        for h in [0_i64, 1, 1234, 2499] {
            let rows = o.rows_with_id(h);
            let want = [
                usize::try_from(2 * h).expect("small"),
                usize::try_from(2 * h + 1).expect("small"),
            ];
            let mut got = rows.clone();
            got.sort_unstable();
            assert_eq!(got, want, "id hash {h}");
        }
        assert!(o.rows_with_id(9999).is_empty());
        assert_eq!(o.rows_of_person(3).count(), 714);
        o.set_person(3, 6);
        assert_eq!(o.rows_of_person(3).count(), 713);
        assert!(o.rows_of_person(6).any(|r| r == 3));
    }
}
