//! Items a pull has seen before, recognised by the digest of their exact text.
//!
//! Most keys of a large account do not change between two pulls, and the API sends an unchanged
//! key as the same bytes. So the store keeps, for every live key, the digest of the item text it
//! was last written from ([`item_digest`]), and hands the client a [`KnownItems`] index of them
//! before the listing starts. An item whose digest is in the index is the stored key unchanged:
//! it is counted by id and never parsed, staged or compared. Anything else (a changed key, a new
//! one, the same key written differently) is read in full, as before.
//!
//! The digest is the first 128 bits of the text's SHA-256: two different texts of one key
//! sharing it is out of reach by chance, and the index is in memory only (24 bytes a key).

use sha2::{Digest, Sha256};

/// The first 16 bytes of the SHA-256 of an item's text, as the API sent it.
pub(crate) type ItemDigest = [u8; 16];

/// The digest of one `items[]` entry's exact text.
pub(crate) fn item_digest(text: &str) -> ItemDigest {
    let full = Sha256::digest(text.as_bytes());
    let mut digest = [0; 16];
    digest.copy_from_slice(&full[..16]);
    digest
}

/// The stored keys' item digests, each with its key's id, for lookup by digest. Digests are
/// uniformly spread, so the entries are sorted and bucketed by their top bits: a lookup reads
/// one bucket of about one entry, instead of a binary search's twenty comparisons.
#[derive(Debug, Default)]
pub struct KnownItems {
    /// (the digest as two big-endian halves, id), sorted.
    entries: Vec<([u64; 2], i64)>,
    /// `starts[b]..starts[b + 1]`: the entries whose digest's top `bits` bits are `b`.
    starts: Vec<u32>,
    bits: u32,
}

impl KnownItems {
    pub fn new(digests: Vec<(ItemDigest, i64)>) -> KnownItems {
        let mut entries: Vec<([u64; 2], i64)> = digests
            .into_iter()
            .map(|(digest, id)| (halves(&digest), id))
            .collect();
        entries.sort_unstable();
        // About one entry a bucket; 2^24 buckets (64 MiB of starts) at most.
        let bits = (entries.len().max(1).next_power_of_two().trailing_zeros()).clamp(1, 24);
        let mut starts = Vec::with_capacity((1 << bits) + 1);
        let mut at = 0;
        for bucket in 0..=(1u64 << bits) {
            while at < entries.len() && bucket_of(entries[at].0[0], bits) < bucket {
                at += 1;
            }
            starts.push(at as u32);
        }
        KnownItems {
            entries,
            starts,
            bits,
        }
    }

    /// The id of the stored key this exact item text was written from, if any.
    pub fn id_of(&self, digest: &ItemDigest) -> Option<i64> {
        if self.entries.is_empty() {
            return None;
        }
        let key = halves(digest);
        let bucket = bucket_of(key[0], self.bits) as usize;
        let bucket = &self.entries[self.starts[bucket] as usize..self.starts[bucket + 1] as usize];
        bucket
            .iter()
            .find(|(known, _)| *known == key)
            .map(|(_, id)| *id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn halves(digest: &ItemDigest) -> [u64; 2] {
    let (high, low) = digest.split_at(8);
    [
        u64::from_be_bytes(high.try_into().expect("8 bytes")),
        u64::from_be_bytes(low.try_into().expect("8 bytes")),
    ]
}

fn bucket_of(high: u64, bits: u32) -> u64 {
    high >> (64 - bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_known_by_its_exact_text() {
        let stored = r#"{"id":7,"name":"a"}"#;
        let known = KnownItems::new(vec![
            (item_digest(r#"{"id":9}"#), 9),
            (item_digest(stored), 7),
        ]);
        assert_eq!(known.id_of(&item_digest(stored)), Some(7));
        assert_eq!(known.id_of(&item_digest(r#"{"id":7,"name":"b"}"#)), None);
        // The same key written differently is read again, not taken as known.
        assert_eq!(known.id_of(&item_digest(r#"{"id":7, "name":"a"}"#)), None);
        assert_eq!(known.len(), 2);
    }

    #[test]
    fn every_entry_is_found_whatever_the_number_of_buckets() {
        for count in [0, 1, 2, 3, 100, 1_000] {
            let entries: Vec<(ItemDigest, i64)> = (0..count)
                .map(|id| (item_digest(&format!("{{\"id\":{id}}}")), id))
                .collect();
            let known = KnownItems::new(entries.clone());
            for (digest, id) in &entries {
                assert_eq!(known.id_of(digest), Some(*id), "{count} entries");
            }
            assert_eq!(known.id_of(&item_digest("{}")), None);
            // The extreme digests land in the first and the last bucket.
            let edges = KnownItems::new(vec![([0; 16], 1), ([255; 16], 2)]);
            assert_eq!(
                (edges.id_of(&[0; 16]), edges.id_of(&[255; 16])),
                (Some(1), Some(2))
            );
            assert_eq!(edges.id_of(&[1; 16]), None);
        }
    }
}
