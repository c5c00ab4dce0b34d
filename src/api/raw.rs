//! JSON read without building a tree: values stay slices of the response body (`RawValue`)
//! until a documented field is read into its type, and unknown fields are kept as the exact
//! text the API wrote. So a 30-digit number stays exact, and a hostile page costs about its own
//! size in memory instead of the many times more a `serde_json::Value` tree takes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The JSON type of a raw value, by its first character.
pub(crate) fn kind(raw: &RawValue) -> &'static str {
    match raw.get().trim_ascii_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get().trim_ascii() == "null"
}

/// An object's members in the order written, names borrowed from the body where they hold no
/// escapes. A name written twice keeps both; readers take the last, as `serde_json` does.
pub(crate) struct Members<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Members<'a> {
    /// The members of `raw`, or `None` when it is not an object.
    pub(crate) fn of(raw: &'a RawValue) -> Option<Members<'a>> {
        serde_json::from_str(raw.get()).ok()
    }

    /// Takes the last member named `name` out, and every other of that name.
    pub(crate) fn take(&mut self, name: &str) -> Option<&'a RawValue> {
        let mut found = None;
        self.0.retain(|(member, value)| {
            let matched = member == name;
            if matched {
                found = Some(*value);
            }
            !matched
        });
        found
    }

    /// The members left as one canonical object text: names sorted (the last of a repeated
    /// name wins), values exactly as written less insignificant white space.
    pub(crate) fn canonical_text(self) -> String {
        let sorted: BTreeMap<Cow<'a, str>, &RawValue> = self.0.into_iter().collect();
        // Sized up front: an unknown field may be megabytes, and doubling would hold twice that.
        let size: usize = sorted
            .iter()
            .map(|(n, v)| n.len() + v.get().len() + 4)
            .sum();
        let mut text = String::with_capacity(size + 2);
        text.push('{');
        for (i, (name, value)) in sorted.into_iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&serde_json::to_string(&*name).expect("a string serialises"));
            text.push(':');
            text.push_str(&compact(value.get()));
        }
        text.push('}');
        text
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members<'de>, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(20));
                while let Some((name, value)) = map.next_entry::<Name<'de>, &'de RawValue>()? {
                    members.push((name.0, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A member name: borrowed when the body holds it verbatim, owned when it had escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name.to_string())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// JSON text without the white space outside strings.
pub(crate) fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

/// How deep [`same_value`] looks for the same value written another way. Each level reads
/// the rest of the value again, and a gateway's fields are a level or two deep: past this,
/// values are the same only when their text is.
const DEEPEST_COMPARED: usize = 32;

/// Whether two JSON texts hold the same value: objects by their members whatever their order,
/// arrays element by element, strings by what they say (escapes decoded), numbers and literals
/// by their exact text (so `1` and `1.0`, or two 30-digit numbers, are told apart). Values
/// nested deeper than [`DEEPEST_COMPARED`] compare by their compact text alone, so a hostile
/// depth costs linear time and no deep recursion.
pub(crate) fn same_value(a: &RawValue, b: &RawValue) -> bool {
    let (a_text, b_text) = (compact(a.get()), compact(b.get()));
    a_text == b_text
        || (depth(&a_text) <= DEEPEST_COMPARED
            && depth(&b_text) <= DEEPEST_COMPARED
            && same_shallow_value(a, b))
}

/// The deepest nesting of arrays and objects in a JSON text.
fn depth(text: &str) -> usize {
    let (mut deepest, mut current) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in text.bytes() {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'[' | b'{') => {
                current += 1;
                deepest = deepest.max(current);
            }
            (false, _, b']' | b'}') => current = current.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn same_shallow_value(a: &RawValue, b: &RawValue) -> bool {
    match (kind(a), kind(b)) {
        ("an object", "an object") => match (Members::of(a), Members::of(b)) {
            (Some(a), Some(b)) => same_members(&last_of_each(a), &last_of_each(b)),
            _ => false,
        },
        ("an array", "an array") => match (elements(a), elements(b)) {
            (Some(a), Some(b)) => {
                a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| same_value(x, y))
            }
            _ => false,
        },
        ("a string", "a string") => {
            let text = |raw: &RawValue| serde_json::from_str::<String>(raw.get());
            match (text(a), text(b)) {
                (Ok(a), Ok(b)) => a == b,
                // An escape that names no character (`\ud800`): only the same text is the same.
                _ => false,
            }
        }
        (x, y) if x == y => compact(a.get()) == compact(b.get()),
        _ => false,
    }
}

fn elements(raw: &RawValue) -> Option<Vec<&RawValue>> {
    serde_json::from_str(raw.get()).ok()
}

/// One value per name, the last written.
pub(crate) fn last_of_each(members: Members<'_>) -> BTreeMap<Cow<'_, str>, &RawValue> {
    members.0.into_iter().collect()
}

/// Same names, and the same value under each.
pub(crate) fn same_members(
    a: &BTreeMap<Cow<'_, str>, &RawValue>,
    b: &BTreeMap<Cow<'_, str>, &RawValue>,
) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((na, va), (nb, vb))| na == nb && same_value(va, vb))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn compact_keeps_strings_whole() {
        assert_eq!(
            compact(" { \"a b\" : [ 1 , \"x \\\" y\" ] } "),
            r#"{"a b":[1,"x \" y"]}"#
        );
    }

    #[test]
    fn canonical_text_sorts_names_and_keeps_values_exact() {
        let body =
            r#"{"z": 123456789012345678901234567890, "a\u0062": [1e400, 0.10], "a": null, "z": 2}"#;
        let members = Members::of(raw(body)).unwrap();
        assert_eq!(
            members.canonical_text(),
            r#"{"a":null,"ab":[1e400,0.10],"z":2}"#
        );
    }

    #[test]
    fn values_compare_by_meaning_but_numbers_by_text() {
        let same = |a: &str, b: &str| same_value(raw(a), raw(b));
        assert!(same(
            r#"{"a":1,"b":[true,null]}"#,
            r#"{ "b": [true, null], "a": 1 }"#
        ));
        assert!(same(r#""\u00e9""#, r#""é""#));
        assert!(!same("1", "1.0"));
        assert!(!same(
            "123456789012345678901234567890",
            "123456789012345678901234567891"
        ));
        assert!(!same("[1,2]", "[2,1]"));
        assert!(!same(r#"{"a":1}"#, r#"{"a":1,"b":2}"#));
        assert!(!same("null", "0"));
        assert!(!same(r#""\ud800""#, r#""\udbff""#));
        assert!(same(r#""\ud800""#, r#""\ud800""#));
    }

    #[test]
    fn deep_values_compare_by_text_in_linear_time() {
        let nested = |depth: usize, inner: &str| {
            format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
        };
        let same = |a: &str, b: &str| same_value(raw(a), raw(b));
        assert_eq!(depth(&nested(32, "1")), 32);
        assert_eq!(depth(r#"{"a":"[[[[","b":[{}]}"#), 3);
        assert!(same(
            &nested(31, r#"{"a":1,"b":2}"#),
            &nested(31, r#"{"b":2,"a":1}"#)
        ));
        // Past the depth looked into, members written in another order count as different.
        assert!(!same(
            &nested(40, r#"{"a":1,"b":2}"#),
            &nested(40, r#"{"b":2,"a":1}"#)
        ));
        // A hostile depth: no stack overflow, and done at once.
        let (a, b) = (nested(200_000, "1"), nested(200_000, "2"));
        assert!(same(&a, &a));
        assert!(!same(&a, &b));
    }
}
