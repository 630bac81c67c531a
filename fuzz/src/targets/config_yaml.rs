//! The YAML configurations of both services: [`parse_yaml`] into [`PerspectiveConfig`] and
//! [`CoordinatorConfig`], then their `validate()`, on any text (invalid UTF-8 replaced).
//! `web.https_ca_file` is cleared before validating: reading files is not what is tested.
//!
//! Invariants: nothing panics; every refusal says where: a validation error names its field
//! (`<field path>: <why>`), a parse error names a field or its place in the text; a configuration that
//! validates has a `/configz` view.

use mpic_common::config::{ConfigError, parse_yaml};
use mpic_coordinator::config::CoordinatorConfig;
use mpic_perspective::config::PerspectiveConfig;
use serde::de::DeserializeOwned;

/// Keys and values of both configurations.
pub const DICTIONARY: &[&[u8]] = &[
    b"listen: 127.0.0.1:8443\n",
    b"ops_listen: ",
    b"perspective:\n  code: ",
    b"rir: ARIN\n",
    b"rir: RIPE NCC\n",
    b"resolver:\n  address: 127.0.0.1:53\n",
    b"timeout_ms: ",
    b"caa:\n  default_issuer_domains:\n    - ",
    b"limits:\n",
    b"check_timeout_ms: ",
    b"max_body_bytes: ",
    b"connections:\n",
    b"web:\n",
    b"danger_http_port: ",
    b"danger_plain_http: true\n",
    b"danger_plain_http_perspectives: true\n",
    b"perspectives:\n  - code: ",
    b"latitude: ",
    b"longitude: ",
    b"url: https://p.example:8443\n",
    b"too_close_codes: [",
    b"default_perspective_count: ",
    b"policy: warn\n",
    b"api_keys: {env: K}\n",
    b"hash_secret: {file: /x}\n",
    b"timeouts:\n",
    b"\n  ",
    b": ",
    b"- ",
    b"&a ",
    b"*a",
    b"!!binary ",
    b"~",
    b".nan",
    b"-.inf",
    b"0x",
    b"1e400",
    b"18446744073709551616",
    b"\"\\u0000\"",
];

/// The target.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match parse_yaml::<PerspectiveConfig>(&text) {
        Ok(mut config) => {
            config.web.https_ca_file = None;
            match config.validate() {
                Ok(()) => drop(config.public_view()),
                Err(e) => names_field(&e),
            }
        }
        Err(e) => names_place::<PerspectiveConfig>(&text, &e),
    }
    match parse_yaml::<CoordinatorConfig>(&text) {
        Ok(config) => match config.validate() {
            Ok(()) => drop(config.public_view()),
            Err(e) => names_field(&e),
        },
        Err(e) => names_place::<CoordinatorConfig>(&text, &e),
    }
}

/// `<field path>: <why>`, the form of [`ConfigError::field`].
fn names_field(error: &ConfigError) {
    let Some((field, why)) = error.0.split_once(": ") else {
        panic!("a validation error without a field: {error}");
    };
    assert!(
        !field.is_empty()
            && field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'[' | b']')),
        "a validation error whose field is {field:?}: {error}"
    );
    assert!(!why.is_empty(), "{error}");
}

/// A parse error names the field (`field ...`, `missing field`, `unknown field`) or the
/// place in the text (`line N column M`, or `position N` for a byte the YAML reader refuses).
/// The YAML library leaves out the place `line 1 column 1`; so an error that names neither
/// must be at the start of the text, and must name its place once the text is moved down a
/// line. The library's errors about the text as a whole have no place: more than one
/// document, too many alias expansions, nothing but comments.
fn names_place<T: DeserializeOwned>(text: &str, error: &ConfigError) {
    const WHOLE_TEXT: [&str; 3] = [
        "more than one document",
        "repetition limit exceeded",
        "EOF while parsing",
    ];
    if has_place(&error.0) || WHOLE_TEXT.iter().any(|w| error.0.contains(w)) {
        return;
    }
    match parse_yaml::<T>(&format!("\n{text}")) {
        Err(moved) => assert!(
            has_place(&moved.0),
            "a parse error that names no field and no place: {error}; moved down a line: {moved}"
        ),
        Ok(_) => panic!("refused, but accepted once moved down a line: {error}"),
    }
}

fn has_place(message: &str) -> bool {
    ["field", "line ", "position "]
        .iter()
        .any(|place| message.contains(place))
}
