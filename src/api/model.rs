//! What one listed key looks like once it has been read off the wire.
//!
//! The API's JSON item becomes a [`KeyRecord`]: its id, the versioned data columns in the fixed
//! order of [`COLUMNS`] (the same order the store uses for its SQL), and the full key value
//! when the API sent one unmasked. Columns are plain SQLite values so that change detection is
//! a NULL-safe element-wise comparison, and one list ([`COLUMNS`], with [`DATA_COLUMNS`],
//! [`API_FIELDS`] and [`TIME_COLUMNS`] derived from it) drives parsing, comparing and writing.

use std::borrow::Cow;

use rusqlite::types::Value;
use serde_json::Value as Json;
use serde_json::value::RawValue;

use crate::api::known::{ItemDigest, item_digest};
use crate::api::raw::{self, Members};
use sha2::{Digest, Sha256};

/// The JSON type an API field must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Integer,
    Text,
    Bool,
}

/// Where the value of a data column comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnSource {
    /// The documented API field of the column's name, which must have this JSON type.
    Api(FieldKind),
    /// The API's `key` as its hint: the gateway's mask of it, or the masked value it sent.
    KeyHint,
    /// The SHA-256 of the API's `key`, when it was sent unmasked.
    KeySha256,
    /// Every field the API does not document, as canonical JSON text; compared by [`same_extra`].
    Extra,
}

/// One versioned column of `keys` and `key_versions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DataColumn {
    /// The column's name in SQL, and the API field's name for [`ColumnSource::Api`].
    pub name: &'static str,
    pub source: ColumnSource,
    /// Holds unix seconds (`expired_time` -1 means never), shown to people as a date.
    pub is_time: bool,
}

const fn api(name: &'static str, kind: FieldKind) -> DataColumn {
    DataColumn {
        name,
        source: ColumnSource::Api(kind),
        is_time: false,
    }
}

const fn api_time(name: &'static str) -> DataColumn {
    DataColumn {
        is_time: true,
        ..api(name, FieldKind::Integer)
    }
}

const fn derived(name: &'static str, source: ColumnSource) -> DataColumn {
    DataColumn {
        name,
        source,
        is_time: false,
    }
}

/// The one list of the versioned columns, in the order of [`KeyRecord::values`] and of every
/// column list the store writes (the staging table, `keys`, `key_versions`) and compares. `id`
/// and the full `key` are not in it: `id` is the row identity, `key` a secret. The migrations
/// create these columns; a unit test of the store checks that they match.
pub(crate) const COLUMNS: [DataColumn; 17] = [
    api("user_id", FieldKind::Integer),
    api("name", FieldKind::Text),
    api("status", FieldKind::Integer),
    api_time("created_time"),
    api_time("accessed_time"),
    api_time("expired_time"),
    api("remain_quota", FieldKind::Integer),
    api("used_quota", FieldKind::Integer),
    api("unlimited_quota", FieldKind::Bool),
    api("model_limits_enabled", FieldKind::Bool),
    api("model_limits", FieldKind::Text),
    api("allow_ips", FieldKind::Text),
    api("group", FieldKind::Text),
    api("cross_group_retry", FieldKind::Bool),
    derived("key_hint", ColumnSource::KeyHint),
    derived("key_sha256", ColumnSource::KeySha256),
    derived("extra", ColumnSource::Extra),
];

/// The names of [`COLUMNS`], in order.
pub const DATA_COLUMNS: [&str; COLUMNS.len()] = {
    let mut names = [""; COLUMNS.len()];
    let mut i = 0;
    while i < COLUMNS.len() {
        names[i] = COLUMNS[i].name;
        i += 1;
    }
    names
};

const API_FIELD_COUNT: usize = {
    let (mut count, mut i) = (0, 0);
    while i < COLUMNS.len() {
        if matches!(COLUMNS[i].source, ColumnSource::Api(_)) {
            count += 1;
        }
        i += 1;
    }
    count
};

/// The documented API fields of [`COLUMNS`], stored under their API names, in column order.
pub const API_FIELDS: [(&str, FieldKind); API_FIELD_COUNT] = {
    let mut fields = [("", FieldKind::Integer); API_FIELD_COUNT];
    let (mut found, mut i) = (0, 0);
    while i < COLUMNS.len() {
        if let ColumnSource::Api(kind) = COLUMNS[i].source {
            fields[found] = (COLUMNS[i].name, kind);
            found += 1;
        }
        i += 1;
    }
    fields
};

/// The position of a data column in [`DATA_COLUMNS`]; the name must be one of them.
pub(crate) fn data_column(name: &str) -> usize {
    DATA_COLUMNS
        .iter()
        .position(|column| *column == name)
        .unwrap_or_else(|| panic!("{name} is not a data column"))
}

const TIME_COLUMN_COUNT: usize = {
    let (mut count, mut i) = (0, 0);
    while i < COLUMNS.len() {
        if COLUMNS[i].is_time {
            count += 1;
        }
        i += 1;
    }
    count
};

/// The data columns that hold unix times (`expired_time` -1 means never).
pub(crate) const TIME_COLUMNS: [&str; TIME_COLUMN_COUNT] = {
    let mut names = [""; TIME_COLUMN_COUNT];
    let (mut found, mut i) = (0, 0);
    while i < COLUMNS.len() {
        if COLUMNS[i].is_time {
            names[found] = COLUMNS[i].name;
            found += 1;
        }
        i += 1;
    }
    names
};

/// The column an API field is stored in, for a name the API documents.
fn api_column(name: &str) -> Option<usize> {
    COLUMNS
        .iter()
        .position(|column| matches!(column.source, ColumnSource::Api(_)) && column.name == name)
}

/// One key as one listing observed it.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    pub id: i64,
    /// One value per entry of [`DATA_COLUMNS`].
    pub values: Vec<Value>,
    /// The full key value, when the API sent it unmasked. Written only with `--store-secrets`.
    pub secret: Option<String>,
    /// The digest of the item's text, by which the next pull knows it unchanged.
    pub digest: ItemDigest,
}

impl KeyRecord {
    /// Reads one `items[]` entry from its raw text. A missing documented field is stored as
    /// NULL; a field of the wrong type is an error naming the field, because silently storing
    /// it would be a lie. Unknown fields go to `extra` exactly as written (see [`raw`]).
    pub fn from_raw(item: &RawValue) -> Result<KeyRecord, String> {
        KeyRecord::from_raw_with_digest(item, item_digest(item.get()))
    }

    /// [`KeyRecord::from_raw`] of an item whose digest the caller computed already.
    pub fn from_raw_with_digest(item: &RawValue, digest: ItemDigest) -> Result<KeyRecord, String> {
        let Some(members) = Members::of(item) else {
            return Err(match raw::kind(item) {
                "an object" => "an item has a member name that is not valid text".to_string(),
                other => format!("an item is {other}, expected an object"),
            });
        };
        let Sorted {
            id,
            key,
            documented,
            mut unknown,
        } = Sorted::of(members);
        let id = match id {
            Some(value) => integer(value).map_err(|e| format!("field `id` {e}"))?,
            None => return Err("an item has no `id`".to_string()),
        };
        // Columns are read in table order, so a bad field is named in that order too.
        let mut values = Vec::with_capacity(COLUMNS.len());
        let mut key_parts: Option<(Value, Value)> = None;
        let mut secret = None;
        for (column, value) in COLUMNS.iter().zip(documented) {
            let value = match column.source {
                ColumnSource::Api(kind) => value
                    .map_or(Ok(Value::Null), |v| column_value(v, kind))
                    .map_err(|e| format!("key {id}: field `{}` {e}", column.name))?,
                ColumnSource::KeyHint | ColumnSource::KeySha256 => {
                    if key_parts.is_none() {
                        let (hint, sha256, sent) = read_key(key, id)?;
                        key_parts = Some((hint, sha256));
                        secret = sent;
                    }
                    let (hint, sha256) = key_parts.as_mut().expect("read just now");
                    let part = if column.source == ColumnSource::KeyHint {
                        hint
                    } else {
                        sha256
                    };
                    std::mem::replace(part, Value::Null)
                }
                ColumnSource::Extra => {
                    Value::Text(Members(std::mem::take(&mut unknown)).canonical_text())
                }
            };
            values.push(value);
        }
        Ok(KeyRecord {
            id,
            values,
            secret,
            digest,
        })
    }

    /// [`KeyRecord::from_raw`] of a JSON value, for code that builds items in memory.
    pub fn from_json(item: &Json) -> Result<KeyRecord, String> {
        let text = serde_json::value::to_raw_value(item).map_err(|e| e.to_string())?;
        KeyRecord::from_raw(&text)
    }
}

/// An item's members sorted, in one pass, into `id`, `key`, the documented columns (by index
/// in [`COLUMNS`]) and the rest; a name written twice keeps its last value, as everywhere else.
struct Sorted<'a> {
    id: Option<&'a RawValue>,
    key: Option<&'a RawValue>,
    documented: [Option<&'a RawValue>; COLUMNS.len()],
    unknown: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Sorted<'a> {
    #[inline]
    fn of(members: Members<'a>) -> Sorted<'a> {
        let mut sorted = Sorted {
            id: None,
            key: None,
            documented: [None; COLUMNS.len()],
            unknown: Vec::new(),
        };
        for (name, value) in members.0 {
            match &*name {
                "id" => sorted.id = Some(value),
                "key" => sorted.key = Some(value),
                other => match api_column(other) {
                    Some(i) => sorted.documented[i] = Some(value),
                    None => sorted.unknown.push((name, value)),
                },
            }
        }
        sorted
    }
}

/// The `key_hint` and `key_sha256` columns of key `id`, and its full value when the API sent
/// one: all NULL when `key` is missing or null.
#[inline]
fn read_key(key: Option<&RawValue>, id: i64) -> Result<(Value, Value, Option<String>), String> {
    Ok(match key.filter(|v| !raw::is_null(v)) {
        None => (Value::Null, Value::Null, None),
        Some(value) => key_columns(text(value).map_err(|e| format!("key {id}: field `key` {e}"))?),
    })
}

fn column_value(value: &RawValue, kind: FieldKind) -> Result<Value, String> {
    if raw::is_null(value) {
        return Ok(Value::Null);
    }
    let (read, expected) = match kind {
        FieldKind::Integer => return integer(value).map(Value::Integer),
        FieldKind::Text => return text(value).map(Value::Text),
        FieldKind::Bool => (
            match value.get().trim_ascii() {
                "true" => Some(Value::Integer(1)),
                "false" => Some(Value::Integer(0)),
                _ => None,
            },
            "a boolean",
        ),
    };
    read.ok_or_else(|| format!("is {}, expected {expected}", raw::kind(value)))
}

/// A 64-bit integer, or what it is instead. The text is valid JSON already, so a plain integer
/// parses as Rust reads it.
fn integer(value: &RawValue) -> Result<i64, String> {
    let text = value.get().trim_ascii();
    text.parse::<i64>().map_err(|_| match raw::kind(value) {
        "a number" => format!("is {text}, expected a 64-bit integer"),
        other => format!("is {other}, expected an integer"),
    })
}

/// A string's value: copied as it is when it holds no escape, decoded otherwise; or what it
/// is instead.
fn text(value: &RawValue) -> Result<String, String> {
    let raw = value.get().trim_ascii();
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return Err(format!("is {}, expected a string", raw::kind(value)));
    };
    if !inner.contains('\\') {
        return Ok(inner.to_string());
    }
    if let Some(text) = unescape_short(inner) {
        return Ok(text);
    }
    // JSON allows escapes that name no character (a lone surrogate, `\ud800`); text cannot.
    serde_json::from_str(raw).map_err(|e| format!("is a string keysync cannot read as text ({e})"))
}

/// A JSON string's content with its two-character escapes (`\n`, `\"`, ...) decoded, or `None`
/// when it holds a `\u` escape, left to `serde_json`. The content is valid JSON already (it was
/// read as a raw value), and a gateway's newline-separated `allow_ips` is the common case:
/// decoded here, it costs no second parse.
fn unescape_short(inner: &str) -> Option<String> {
    let mut text = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(at) = rest.find('\\') {
        text.push_str(&rest[..at]);
        text.push(match rest.as_bytes().get(at + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => return None,
        });
        rest = &rest[at + 2..];
    }
    text.push_str(rest);
    Some(text)
}

/// `key_hint`, `key_sha256` and the secret for a key value as the API sent it.
fn key_columns(key: String) -> (Value, Value, Option<String>) {
    if key.contains('*') {
        // Already masked upstream: it is its own hint, and nothing secret is left to hash.
        return (Value::Text(key), Value::Null, None);
    }
    let digest = Sha256::digest(key.as_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 15)]));
    }
    (Value::Text(mask_key(&key)), Value::Text(hex), Some(key))
}

/// Whether two `extra` texts hold the same unknown fields. A field that is `null` on one side
/// and absent on the other is the same: gateways add fields as `null` when they upgrade
/// (`auto_groups`, `DeletedAt`), which changes how a key is represented, not the key. Any
/// other appearance, disappearance or new value is a difference. Numbers compare by their
/// exact text.
pub(crate) fn same_extra(a: Option<&str>, b: Option<&str>) -> bool {
    fn fields(text: Option<&str>) -> Option<Members<'_>> {
        let raw: &RawValue = serde_json::from_str(text.unwrap_or("{}")).ok()?;
        let mut members = Members::of(raw)?;
        members.0.retain(|(_, value)| !raw::is_null(value));
        Some(members)
    }
    if a == b {
        return true;
    }
    match (fields(a), fields(b)) {
        (Some(a), Some(b)) => raw::same_members(&raw::last_of_each(a), &raw::last_of_each(b)),
        _ => false,
    }
}

/// Whether two values of the data column at `column` are the same, by the rule the history
/// keeps: NULL-safe equality, and [`same_extra`] for `extra`.
pub(crate) fn same_column_value(column: usize, a: &Value, b: &Value) -> bool {
    if COLUMNS[column].source != ColumnSource::Extra {
        return a == b;
    }
    let text = |v: &Value| match v {
        Value::Text(t) => Some(t.clone()),
        _ => None,
    };
    a == b || same_extra(text(a).as_deref(), text(b).as_deref())
}

/// The upstream gateway's masking rule: first 4 + 10 stars + last 4; 5 to 8 characters keep
/// 2 + 4 stars + 2; up to 4 characters become all stars.
pub(crate) fn mask_key(key: &str) -> String {
    let n = key.chars().count();
    // The byte offset where the `at`th character starts (the end for `n`).
    let offset = |at: usize| key.char_indices().nth(at).map_or(key.len(), |(i, _)| i);
    let (kept, stars) = match n {
        0..=4 => return "*".repeat(n),
        5..=8 => (2, "****"),
        _ => (4, "**********"),
    };
    let (head, tail) = (&key[..offset(kept)], &key[offset(n - kept)..]);
    let mut masked = String::with_capacity(head.len() + stars.len() + tail.len());
    masked.push_str(head);
    masked.push_str(stars);
    masked.push_str(tail);
    masked
}

/// One of the versioned data fields, by its column name.
pub(crate) fn parse_field(text: &str) -> Result<&'static str, String> {
    let text = text.trim();
    DATA_COLUMNS
        .iter()
        .find(|column| **column == text)
        .copied()
        .ok_or_else(|| {
            format!(
                "unknown field {text:?}; the fields are: {}",
                DATA_COLUMNS.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_data_columns() {
        assert_eq!(parse_field("accessed_time"), Ok("accessed_time"));
        assert_eq!(parse_field("group"), Ok("group"));
        let error = parse_field("quota").unwrap_err();
        assert!(error.starts_with("unknown field \"quota\"; the fields are: user_id, name,"));
        assert!(parse_field("id").is_err(), "the id is the key, not a field");
    }

    use serde_json::json;

    #[test]
    fn masks_like_upstream() {
        assert_eq!(mask_key("abcdefghijklmnop"), "abcd**********mnop");
        assert_eq!(mask_key("abcdefgh"), "ab****gh");
        assert_eq!(mask_key("abcde"), "ab****de");
        assert_eq!(mask_key("abcd"), "****");
        assert_eq!(mask_key(""), "");
        // Characters, not bytes.
        assert_eq!(mask_key("é1234567890ü"), "é123**********890ü");
        assert_eq!(mask_key("ééééé"), "éé****éé");
        assert_eq!(mask_key("ü"), "*");
    }

    #[test]
    fn strings_are_decoded_and_undecodable_ones_named() {
        let record = |body: &str| KeyRecord::from_raw(serde_json::from_str(body).unwrap());
        let rec = record(r#"{"id":1,"name":"a\u00e9\ud83d\ude00\"b"}"#).unwrap();
        assert_eq!(
            rec.values[data_column("name")],
            Value::Text("aé😀\"b".into())
        );
        let err = record(r#"{"id":1,"name":"\ud800"}"#).unwrap_err();
        assert!(
            err.starts_with("key 1: field `name` is a string keysync cannot read as text"),
            "{err}"
        );
        let err = record(r#"{"id":1,"key":7}"#).unwrap_err();
        assert_eq!(err, "key 1: field `key` is a number, expected a string");
    }

    #[test]
    fn short_escapes_decode_as_serde_json_decodes_them() {
        for content in [
            r"203.0.113.7\n2001:db8::/32",
            r#"\"quoted\" \\ back\/slash\b\f\n\r\t"#,
            r"\\n is a backslash and an n",
            r"é\tü\n",
            r"ends with an escape\n",
        ] {
            let quoted = format!("\"{content}\"");
            let decoded: String = serde_json::from_str(&quoted).unwrap();
            assert_eq!(unescape_short(content), Some(decoded), "{content}");
            let value = serde_json::value::RawValue::from_string(quoted).unwrap();
            assert_eq!(
                text(&value).unwrap(),
                serde_json::from_str::<String>(value.get()).unwrap()
            );
        }
        // `\u` escapes are serde_json's to decode, or to refuse.
        assert_eq!(unescape_short(r"a\u00e9"), None);
        assert_eq!(unescape_short(r"\n\ud800"), None);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = KeyRecord::from_json(&json!({"id": 7, "remain_quota": "lots"})).unwrap_err();
        assert_eq!(
            err,
            "key 7: field `remain_quota` is a string, expected an integer"
        );
        let err = KeyRecord::from_json(&json!({"id": "7"})).unwrap_err();
        assert_eq!(err, "field `id` is a string, expected an integer");
    }

    #[test]
    fn unknown_fields_go_to_extra_sorted() {
        let rec = KeyRecord::from_json(&json!({"id": 1, "zeta": [1], "DeletedAt": null})).unwrap();
        assert_eq!(
            rec.values[16],
            Value::Text(r#"{"DeletedAt":null,"zeta":[1]}"#.into())
        );
        assert_eq!(rec.values[0], Value::Null);
    }

    #[test]
    fn a_null_field_appearing_or_going_is_no_change() {
        let same = |a: &str, b: &str| same_extra(Some(a), Some(b));
        assert!(same("{}", r#"{"auto_groups":null}"#));
        assert!(same(r#"{"DeletedAt":null}"#, "{}"));
        assert!(same(r#"{"a":1,"b":null}"#, r#"{"a":1,"c":null}"#));
        assert!(same_extra(None, Some(r#"{"x":null}"#)));
        assert!(!same("{}", r#"{"auto_groups":[]}"#));
        assert!(!same(r#"{"auto_groups":["a"]}"#, r#"{"auto_groups":null}"#));
        assert!(!same(r#"{"a":1}"#, "{}"));
        assert!(!same(r#"{"a":1}"#, r#"{"a":1.0}"#));
        assert!(!same(
            r#"{"n":123456789012345678901234567890}"#,
            r#"{"n":123456789012345678901234567891}"#
        ));
    }

    #[test]
    fn unknown_numbers_keep_their_exact_text() {
        let rec = KeyRecord::from_raw(
            serde_json::from_str(
                r#"{"id":1, "big": 123456789012345678901234567890, "huge":1e400,"f":0.1000}"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            rec.values[data_column("extra")],
            Value::Text(r#"{"big":123456789012345678901234567890,"f":0.1000,"huge":1e400}"#.into())
        );
    }

    #[test]
    fn masked_key_has_no_hash_or_secret() {
        let rec = KeyRecord::from_json(&json!({"id": 1, "key": "abcd**********wxyz"})).unwrap();
        assert_eq!(rec.values[14], Value::Text("abcd**********wxyz".into()));
        assert_eq!(rec.values[15], Value::Null);
        assert_eq!(rec.secret, None);
    }

    #[test]
    fn the_derived_lists_follow_the_table() {
        assert_eq!(DATA_COLUMNS.len(), COLUMNS.len());
        assert_eq!(DATA_COLUMNS[0], "user_id");
        assert_eq!(DATA_COLUMNS[16], "extra");
        let api: Vec<&str> = API_FIELDS.iter().map(|(name, _)| *name).collect();
        assert_eq!(api, DATA_COLUMNS[..14]);
        assert_eq!(API_FIELDS[8], ("unlimited_quota", FieldKind::Bool));
        assert_eq!(API_FIELDS[12], ("group", FieldKind::Text));
        assert_eq!(
            TIME_COLUMNS,
            ["created_time", "accessed_time", "expired_time"]
        );
        assert_eq!(api_column("group"), Some(12));
        assert_eq!(
            api_column("key_hint"),
            None,
            "derived, not read from the API"
        );
        assert!(same_column_value(
            data_column("extra"),
            &Value::Text("{}".into()),
            &Value::Text(r#"{"x":null}"#.into())
        ));
        assert!(!same_column_value(
            data_column("name"),
            &Value::Text("{}".into()),
            &Value::Text(r#"{"x":null}"#.into())
        ));
    }

    #[test]
    fn a_bad_field_is_named_in_column_order_and_the_key_after_the_api_fields() {
        let err =
            KeyRecord::from_json(&json!({"id": 1, "key": 5, "group": 7, "name": 8})).unwrap_err();
        assert_eq!(err, "key 1: field `name` is a number, expected a string");
        let err = KeyRecord::from_json(&json!({"id": 1, "key": 5, "group": 7})).unwrap_err();
        assert_eq!(err, "key 1: field `group` is a number, expected a string");
        let rec =
            KeyRecord::from_json(&json!({"id": 1, "key": "abcdefghijklmnop", "z": 1})).unwrap();
        assert_eq!(rec.values.len(), COLUMNS.len());
        assert_eq!(
            rec.values[data_column("key_hint")],
            Value::Text("abcd**********mnop".into())
        );
        assert!(matches!(&rec.values[data_column("key_sha256")], Value::Text(h) if h.len() == 64));
        assert_eq!(
            rec.values[data_column("extra")],
            Value::Text(r#"{"z":1}"#.into())
        );
        assert_eq!(rec.secret.as_deref(), Some("abcdefghijklmnop"));
    }
}
