//! A record body as the profile reads it: the fields, the borough and the
//! derived values, borrowed from the stored JSON text where it has no
//! escapes, every other value skipped unread.
//!
//! Parsing each body into a `serde_json::Value` tree (an ordered map and a
//! string allocation for every key and value) was more than half of a
//! profile's time; the profile reads a handful of values of each record,
//! so it keeps only what it may ask for.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A JSON value as the profile uses it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    /// A non-negative whole number.
    U64(u64),
    /// An array: its string items (others are left out).
    Strs(Vec<Cow<'a, str>>),
    /// Anything else: null, another number, an object.
    Other,
}

/// Text, borrowed from the input when it holds no escape.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Val<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Val::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Val::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Val::Str(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Val::Bool(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Val::U64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                // serde_json hands non-negative integers to visit_u64.
                Ok(u64::try_from(v).map_or(Val::Other, Val::U64))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Val::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Val::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Val::Other)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                Val::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Val<'de>>()? {
                    if let Val::Str(s) = item {
                        items.push(s);
                    }
                }
                Ok(Val::Strs(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Val::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// An object's members, in order.
#[derive(Debug, Default, PartialEq)]
struct Members<'a>(Vec<(Cow<'a, str>, Val<'a>)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((Text(k), v)) = map.next_entry::<Text<'de>, Val<'de>>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
            // Not an object (null, say): as if absent.
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Members::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Members::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Members::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Members::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Members::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Members::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Members::default())
            }
        }
        d.deserialize_any(V)
    }
}

impl<'a> Members<'a> {
    /// The value of `name` (the last, as serde_json keeps, when repeated).
    fn get(&self, name: &str) -> Option<&Val<'a>> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// What the profile reads of a record body.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct BodyView<'a> {
    fields: Members<'a>,
    borough: Option<Cow<'a, str>>,
    derived: Members<'a>,
}

impl<'de> Deserialize<'de> for BodyView<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BodyView<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a record body (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut body = BodyView::default();
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    match key.as_ref() {
                        "fields" => body.fields = map.next_value()?,
                        "derived" => body.derived = map.next_value()?,
                        "borough" => {
                            body.borough = match map.next_value::<Val<'de>>()? {
                                Val::Str(s) => Some(s),
                                _ => None,
                            }
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(body)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> BodyView<'a> {
    /// Read a stored body (`None`: not a JSON object).
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// Field `name` as text.
    pub(crate) fn field_str(&self, name: &str) -> Option<&str> {
        match self.fields.get(name)? {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Field `name` as a boolean.
    pub(crate) fn field_bool(&self, name: &str) -> Option<bool> {
        match self.fields.get(name)? {
            Val::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Field `name`'s string items, when it is an array.
    pub(crate) fn field_strs(&self, name: &str) -> Option<impl Iterator<Item = &str>> {
        match self.fields.get(name)? {
            Val::Strs(items) => Some(items.iter().map(AsRef::as_ref)),
            _ => None,
        }
    }

    /// The borough, when it is text.
    pub(crate) fn borough(&self) -> Option<&str> {
        self.borough.as_deref()
    }

    /// Derived value `name` as text.
    pub(crate) fn derived_str(&self, name: &str) -> Option<&str> {
        match self.derived.get(name)? {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Derived value `name` as a non-negative whole number.
    pub(crate) fn derived_u64(&self, name: &str) -> Option<u64> {
        match self.derived.get(name)? {
            Val::U64(n) => Some(*n),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Every accessor answers as the `Value` tree did.
    #[test]
    fn reads_as_a_value_tree_does() {
        let body = json!({
            "record_id": "r1",
            "borough": "Oldham",
            "fields": {
                "role": "victim",
                "escaped": "a \"quoted\" \\ word",
                "flag": true,
                "count": 7,
                "negative": -2,
                "ratio": 1.5,
                "factors": ["CSE", 3, "Missing", null, {"x": 1}],
                "nothing": null,
                "nested": {"a": [1, 2, {"b": "c"}]},
                "repeated": "first",
            },
            "derived": {"age": 14, "sector": "OL1 2", "old": -1},
            "other": [1, {"deep": [true]}],
        });
        let mut text = body.to_string();
        // A repeated key: serde_json keeps the last.
        text = text.replacen(
            "\"repeated\":\"first\"",
            "\"repeated\":\"first\",\"repeated\":\"last\"",
            1,
        );
        let tree: Value = serde_json::from_str(&text).expect("JSON");
        let view = BodyView::parse(&text).expect("a body");
        let fields = tree["fields"].as_object().expect("fields");
        for name in fields.keys().map(String::as_str).chain(["missing"]) {
            let v = fields.get(name);
            assert_eq!(view.field_str(name), v.and_then(Value::as_str), "{name}");
            assert_eq!(view.field_bool(name), v.and_then(Value::as_bool), "{name}");
            let items: Option<Vec<&str>> = view.field_strs(name).map(Iterator::collect);
            let want: Option<Vec<&str>> = v
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect());
            assert_eq!(items, want, "{name}");
        }
        assert_eq!(view.field_str("repeated"), Some("last"));
        assert_eq!(view.field_str("escaped"), Some("a \"quoted\" \\ word"));
        assert_eq!(view.borough(), Some("Oldham"));
        for name in ["age", "sector", "old", "missing"] {
            let v = tree["derived"].get(name);
            assert_eq!(view.derived_str(name), v.and_then(Value::as_str), "{name}");
            assert_eq!(view.derived_u64(name), v.and_then(Value::as_u64), "{name}");
        }
    }

    #[test]
    fn a_body_without_its_parts_reads_as_empty_and_a_non_object_fails() {
        let view = BodyView::parse(r#"{"fields": null, "borough": 3}"#).expect("an object");
        assert_eq!(view.field_str("a"), None);
        assert_eq!(view.borough(), None);
        assert_eq!(view.derived_u64("age"), None);
        assert!(BodyView::parse("[1, 2]").is_none());
        assert!(BodyView::parse("\"text\"").is_none());
        assert!(BodyView::parse("{\"fields\": ").is_none());
    }
}
