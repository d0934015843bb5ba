//! Query strings as HubSpot reads them: array parameters repeat their key, as HubSpot's SDKs
//! send them, or separate values with commas, or both; a value that does not parse is a 400
//! `VALIDATION_ERROR` with HubSpot's JSON body, never a framework's plain-text rejection.
//!
//! ```text
//! ?properties=email&properties=firstname,lastname&limit=5
//!   -> list("properties") = [email, firstname, lastname], number("limit") = Some(5)
//! ?limit=five -> 400 {"status":"error","category":"VALIDATION_ERROR","message":"..limit..",..}
//! ```
//!
//! A scalar parameter given twice takes its first value, as the JAX-RS servers behind HubSpot's
//! API do (an assumption: HubSpot does not document it).

use std::convert::Infallible;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::errors::ApiError;

/// A request's query parameters, decoded, in the order given.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Params::parse(parts.uri.query().unwrap_or("")))
    }
}

impl Params {
    pub fn parse(query: &str) -> Self {
        Params {
            pairs: form_urlencoded(query.as_bytes()),
        }
    }

    /// The first value of `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of an array parameter, from repeated keys and comma-separated values alike;
    /// `None` when the parameter is absent.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        let mut found = false;
        let mut values = Vec::new();
        for (_, value) in self.pairs.iter().filter(|(key, _)| key == name) {
            found = true;
            values.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
            );
        }
        found.then_some(values)
    }

    /// A numeric parameter; absent or empty is `None`.
    pub fn number<T: FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        match self.first(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(raw) => raw.parse().map(Some).map_err(|_| {
                ApiError::validation(format!(
                    "Unable to parse query parameter {name}: {raw} is not a valid number"
                ))
            }),
        }
    }

    /// A boolean parameter (`true` or `false`, any case); absent or empty is `None`.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.first(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(raw) if raw.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(raw) if raw.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(raw) => Err(ApiError::validation(format!(
                "Unable to parse query parameter {name}: {raw} is not true or false"
            ))),
        }
    }
}

/// `a=b&c=d` with `+` and percent escapes decoded.
pub fn form_urlencoded(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(key), decode_component(value))
        })
        .collect()
}

/// One percent-encoded component; an escape that is not one is kept as it is.
pub fn decode_component(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_parameters_repeat_or_separate_with_commas_or_both() {
        let params = Params::parse("properties=email&properties=firstname,%20lastname&x=1");
        assert_eq!(
            params.list("properties"),
            Some(vec![
                "email".to_string(),
                "firstname".to_string(),
                "lastname".to_string()
            ])
        );
        assert_eq!(params.list("associations"), None);
        assert_eq!(
            Params::parse("properties=").list("properties"),
            Some(vec![])
        );
    }

    #[test]
    fn scalars_parse_or_name_the_bad_parameter() {
        let params = Params::parse("limit=5&limit=7&after=&archived=TRUE&bad=x");
        assert_eq!(params.number::<usize>("limit").expect("number"), Some(5));
        assert_eq!(params.number::<u64>("after").expect("empty"), None);
        assert_eq!(params.flag("archived").expect("flag"), Some(true));
        let error = params.number::<usize>("bad").expect_err("not a number");
        assert_eq!(error.category, "VALIDATION_ERROR");
        assert!(error.message.contains("bad"), "{}", error.message);
        assert!(params.flag("bad").is_err());
    }

    #[test]
    fn decodes_escapes_and_keeps_broken_ones() {
        assert_eq!(decode_component("a%40b.io+x"), "a@b.io x");
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("%zz%4"), "%zz%4");
    }
}
