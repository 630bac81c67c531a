//! Strict JSON request bodies (api.md "Other statuses"): a body is exactly one JSON value;
//! an object key appears once; objects only where the contract has objects (an array is never
//! read as a struct, as serde would by default); every string is bounded. Anything else is a
//! 400 whose issue names the field.
//!
//! Two steps: the body becomes a [`Value`] tree, refusing duplicate keys, over-long strings
//! and trailing bytes; then the tree becomes the request type through [`Strict`], a
//! deserializer that hands a struct only an object, and an enum only a string (or an
//! object), so a wrong type names its field instead of reading as a syntax error.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, Visitor,
};
use serde_json::{Map, Value};

use crate::api::ValidationIssue;
use crate::text::truncate_for_echo;
use crate::validate::{issue, issue_at};

/// Longest string anywhere in a request body (keys included), in characters, as JSON
/// Schema's `maxLength` counts them (the OpenAPI document states it): the bound of every
/// free-text field — tokens, challenge values, key authorizations, account URIs, prefixes,
/// header values — far above what any of them needs (an ACME token is 43 characters, a key
/// authorization 87). Fields with tighter rules (the target, `trace_identifier`) check
/// their own.
pub const MAX_STRING_CHARS: usize = 1024;

/// Parses a request body into `T`, or the issue that names what is wrong.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ValidationIssue> {
    let tree = tree(body)?;
    serde_path_to_error::deserialize::<_, T>(Strict(tree)).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = if path == "." {
            format!("invalid field: {inner}")
        } else {
            format!("field `{path}`: {inner}")
        };
        issue_at(issue::INVALID_FIELD, truncate_for_echo(&message, 512))
    })
}

/// The body as one JSON value, checked for duplicate keys, string lengths and trailing bytes.
fn tree(body: &[u8]) -> Result<Value, ValidationIssue> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let Tree(value) = serde_path_to_error::deserialize(&mut de)
        .map_err(|err| body_issue(&err.path().to_string(), err.into_inner()))?;
    de.end().map_err(|e| body_issue(".", e))?;
    Ok(value)
}

/// The issue for an error at `path` while reading the body.
fn body_issue(path: &str, error: serde_json::Error) -> ValidationIssue {
    use serde_json::error::Category;
    let (issue_type, message) = match error.classify() {
        Category::Data if path == "." => (issue::INVALID_FIELD, format!("invalid field: {error}")),
        Category::Data => (issue::INVALID_FIELD, format!("field `{path}`: {error}")),
        Category::Syntax if error.to_string().starts_with("trailing characters") => (
            issue::INVALID_JSON,
            format!("the body holds more than one JSON value: {error}"),
        ),
        _ => (
            issue::INVALID_JSON,
            format!("the body is not valid JSON: {error}"),
        ),
    };
    issue_at(issue_type, truncate_for_echo(&message, 512))
}

/// A [`Value`] built refusing what a plain `Value` would silently accept.
struct Tree(Value);

impl<'de> serde::Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Tree, D::Error> {
        deserializer.deserialize_any(TreeVisitor).map(Tree)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        bounded(v)?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        bounded(&v)?;
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Tree(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            bounded(&key)?;
            if fields.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key `{}`",
                    truncate_for_echo(&key, 64)
                )));
            }
            let Tree(value) = map.next_value()?;
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

fn bounded<E: de::Error>(s: &str) -> Result<(), E> {
    // At most four bytes a character: only a long string needs counting.
    if s.len() > MAX_STRING_CHARS && s.chars().count() > MAX_STRING_CHARS {
        Err(E::custom(format_args!(
            "a string longer than {MAX_STRING_CHARS} characters"
        )))
    } else {
        Ok(())
    }
}

/// A deserializer over a [`Value`] that gives a struct only an object and an enum only a
/// string or an object, all the way down.
struct Strict(Value);

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Unexpected::Unsigned(u),
            (_, Some(i), _) => Unexpected::Signed(i),
            (_, _, Some(f)) => Unexpected::Float(f),
            _ => Unexpected::Other("number"),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> Deserializer<'de> for Strict {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(StrictSeq(items.into_iter())),
            Value::Object(fields) => visitor.visit_map(StrictMap {
                fields: fields.into_iter(),
                value: None,
            }),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(fields) => visitor.visit_map(StrictMap {
                fields: fields.into_iter(),
                value: None,
            }),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            value @ (Value::String(_) | Value::Object(_)) => {
                value.deserialize_enum(name, variants, visitor)
            }
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Strict(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct tuple tuple_struct identifier
    }
}

struct StrictSeq(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for StrictSeq {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(Strict(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct StrictMap {
    fields: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for StrictMap {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.fields.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(key.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = self.value.take().unwrap_or(Value::Null);
        seed.deserialize(Strict(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DcvPerspectiveRequest, MpicRequest};

    struct Case {
        name: &'static str,
        body: String,
        issue_type: &'static str,
        /// What the message must contain (the field, usually).
        names: &'static str,
    }

    fn case(name: &'static str, body: &str, issue_type: &'static str, names: &'static str) -> Case {
        Case {
            name,
            body: body.to_owned(),
            issue_type,
            names,
        }
    }

    #[test]
    fn what_is_refused_and_the_field_named() {
        let long = "é".repeat(MAX_STRING_CHARS + 1);
        let cases = [
            case(
                "a second value after the first",
                r#"{"domain_or_ip_target":"a.example"}{"domain_or_ip_target":"b.example"}"#,
                issue::INVALID_JSON,
                "more than one JSON value",
            ),
            case(
                "trailing garbage",
                r#"{"domain_or_ip_target":"a.example"} x"#,
                issue::INVALID_JSON,
                "more than one JSON value",
            ),
            case(
                "an array for the body",
                r#"["caa","example.com"]"#,
                issue::INVALID_FIELD,
                "invalid field: invalid type: sequence",
            ),
            case(
                "an array for orchestration_parameters",
                r#"{"domain_or_ip_target":"a.example","orchestration_parameters":[2,1]}"#,
                issue::INVALID_FIELD,
                "`orchestration_parameters`",
            ),
            case(
                "an array for caa_check_parameters",
                r#"{"domain_or_ip_target":"a.example","caa_check_parameters":["tls-server",null,true]}"#,
                issue::INVALID_FIELD,
                "`caa_check_parameters`",
            ),
            case(
                "a duplicate key at the top",
                r#"{"domain_or_ip_target":"a.example","domain_or_ip_target":"b.example"}"#,
                issue::INVALID_FIELD,
                "duplicate key `domain_or_ip_target`",
            ),
            case(
                "a duplicate key inside dcv_check_parameters",
                r#"{"check_type":"dcv","domain_or_ip_target":"a.example","dcv_check_parameters":{"validation_method":"acme-dns-01","key_authorization_hash":"x","key_authorization_hash":"y"}}"#,
                issue::INVALID_FIELD,
                "field `dcv_check_parameters`: duplicate key `key_authorization_hash`",
            ),
            case(
                "a number in an enum field",
                r#"{"check_type":5,"domain_or_ip_target":"a.example"}"#,
                issue::INVALID_FIELD,
                "field `check_type`",
            ),
            case(
                "a number in a nested enum field",
                r#"{"domain_or_ip_target":"a.example","caa_check_parameters":{"certificate_type":1}}"#,
                issue::INVALID_FIELD,
                "field `caa_check_parameters.certificate_type`",
            ),
            case(
                "an over-long string",
                &format!(r#"{{"domain_or_ip_target":"a.example","trace_identifier":"{long}"}}"#),
                issue::INVALID_FIELD,
                "field `trace_identifier`: a string longer than 1024 characters",
            ),
            case(
                "an over-long key",
                &format!(r#"{{"{long}":1}}"#),
                issue::INVALID_FIELD,
                "longer than 1024 characters",
            ),
            case("empty", "", issue::INVALID_JSON, "not valid JSON"),
            case(
                "cut short",
                r#"{"domain_or_ip_target":"#,
                issue::INVALID_JSON,
                "not valid JSON",
            ),
            case(
                "a string for a count",
                r#"{"domain_or_ip_target":"a.example","orchestration_parameters":{"perspective_count":"3"}}"#,
                issue::INVALID_FIELD,
                "field `orchestration_parameters.perspective_count`",
            ),
        ];
        for case in cases {
            let got = parse::<MpicRequest>(case.body.as_bytes());
            let Err(issue) = got else {
                panic!("{}: accepted", case.name);
            };
            assert_eq!(
                issue.issue_type, case.issue_type,
                "{}: {issue:?}",
                case.name
            );
            assert!(
                issue.message.contains(case.names),
                "{}: {:?} does not contain {:?}",
                case.name,
                issue.message,
                case.names
            );
        }
    }

    #[test]
    fn well_formed_bodies_parse_as_before() {
        let request: MpicRequest = parse(
            br#"{"check_type":"caa","domain_or_ip_target":"example.com","trace_identifier":null,
                "orchestration_parameters":{"perspective_count":3,"quorum_count":null},
                "caa_check_parameters":{"certificate_type":"tls-server","caa_domains":["ca.example"]}} "#,
        )
        .expect("parses");
        assert_eq!(request.domain_or_ip_target, "example.com");
        let dcv: DcvPerspectiveRequest = parse(
            br#"{"domain_or_ip_target":"example.com","dcv_check_parameters":{"validation_method":"website-change","http_token_path":"p","challenge_value":"c","http_headers":{"X-A":"1"}}}"#,
        )
        .expect("parses");
        assert_eq!(dcv.domain_or_ip_target, "example.com");
        // A string of exactly the bound is fine, in any script.
        let at_bound = "é".repeat(MAX_STRING_CHARS);
        let body = format!(
            r#"{{"domain_or_ip_target":"example.com","caa_check_parameters":{{"account_uri":"{at_bound}"}}}}"#
        );
        assert!(parse::<MpicRequest>(body.as_bytes()).is_ok());
    }
}
