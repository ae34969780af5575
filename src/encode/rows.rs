//! [`EncodedRows`]: encoded keys, values and hash fields of many rows held in
//! one flat byte buffer plus offset tables, reused across batches.

#[derive(Debug, Clone, Copy)]
/// Where one row's key, value and hash fields lie in [`EncodedRows`].
pub(super) struct RowSpan {
    pub(super) key_start: usize,
    pub(super) key_end: usize,
    pub(super) value_start: usize,
    pub(super) value_end: usize,
    pub(super) fields_start: usize,
    pub(super) fields_end: usize,
}

#[derive(Debug, Clone, Copy)]
/// Where one hash field's name and value lie; the value starts where the
/// name ends.
pub(super) struct FieldSpan {
    pub(super) name_start: usize,
    pub(super) name_end: usize,
    pub(super) value_end: usize,
}

/// Encoded rows held in one flat byte buffer plus offset tables.
///
/// Reuse one instance across batches: [`clear`](Self::clear) keeps the
/// allocated capacity. Rows are appended by [`RowEncoder::encode_batch`](super::RowEncoder::encode_batch);
/// skipped rows do not appear but are counted.
#[derive(Debug, Clone, Default)]
pub struct EncodedRows {
    pub(super) buf: Vec<u8>,
    pub(super) rows: Vec<RowSpan>,
    pub(super) fields: Vec<FieldSpan>,
    pub(super) skipped_null_keys: u64,
}

impl EncodedRows {
    /// Creates an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets all rows and resets the skip counter, keeping capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.rows.clear();
        self.fields.clear();
        self.skipped_null_keys = 0;
    }

    /// Number of encoded rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no rows are held (skipped rows do not count).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The Redis key of row `i`. Panics if `i >= len()`.
    pub fn key(&self, i: usize) -> &[u8] {
        let r = &self.rows[i];
        &self.buf[r.key_start..r.key_end]
    }

    /// The value of row `i` for the `Json`, `Column` and `Delimited` formats;
    /// empty for `Hash` rows (use [`fields`](Self::fields)). Panics if
    /// `i >= len()`.
    pub fn value(&self, i: usize) -> &[u8] {
        let r = &self.rows[i];
        &self.buf[r.value_start..r.value_end]
    }

    /// The (field name, value) pairs of `Hash` row `i`, one per non-null value
    /// column in spec order; empty for other formats. Panics if `i >= len()`.
    pub fn fields(&self, i: usize) -> impl Iterator<Item = (&[u8], &[u8])> + Clone + '_ {
        let r = &self.rows[i];
        self.fields[r.fields_start..r.fields_end].iter().map(|f| {
            (
                &self.buf[f.name_start..f.name_end],
                &self.buf[f.name_end..f.value_end],
            )
        })
    }

    /// Rows skipped since the last [`clear`](Self::clear) because a key
    /// column was null or an empty string.
    pub fn skipped_null_keys(&self) -> u64 {
        self.skipped_null_keys
    }

    /// Bytes of keys and values held (hash field names included), a proxy
    /// for the payload size of the rows.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }
}
