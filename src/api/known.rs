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
pub type ItemDigest = [u8; 16];

/// The digest of one `items[]` entry's exact text.
pub fn item_digest(text: &str) -> ItemDigest {
    let full = Sha256::digest(text.as_bytes());
    let mut digest = [0; 16];
    digest.copy_from_slice(&full[..16]);
    digest
}

/// The stored keys' item digests, each with its key's id, sorted for lookup.
#[derive(Debug, Default)]
pub struct KnownItems {
    entries: Vec<(ItemDigest, i64)>,
}

impl KnownItems {
    pub fn new(mut entries: Vec<(ItemDigest, i64)>) -> KnownItems {
        entries.sort_unstable();
        KnownItems { entries }
    }

    /// The id of the stored key this exact item text was written from, if any.
    pub fn id_of(&self, digest: &ItemDigest) -> Option<i64> {
        let at = self
            .entries
            .binary_search_by(|(known, _)| known.cmp(digest))
            .ok()?;
        Some(self.entries[at].1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
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
}
