//! Secrets: where the config says to find them, and the redacting [`Secret`] that holds them.
//!
//! A secret is never written in the config file itself. It is named as `{ env = "VAR" }` or
//! `{ file = "/run/secrets/hubspot-token" }` and resolved in a separate step
//! ([`super::Config::resolve_secrets`]), so a config can be checked on a machine that does not
//! hold the secrets.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::Problem;

pub use hubsync_hubspot::Secret;

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `{ env = "VAR" }`: the value of an environment variable.
    Env(String),
    /// `{ file = "/path" }`: the contents of a file, without trailing line breaks (as mounted by
    /// Kubernetes or systemd credentials).
    File(PathBuf),
    /// A value set by code (tests, the sandbox); never read from a config file.
    Value(Secret),
}

impl SecretSource {
    /// Reads the secret from the process environment or the file system.
    pub fn resolve(&self, field: &str) -> Result<Secret, Problem> {
        self.resolve_with(field, &|name| std::env::var(name).ok())
    }

    /// Reads the secret, looking environment variables up with `env`.
    pub fn resolve_with(
        &self,
        field: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, Problem> {
        let value = match self {
            Self::Env(name) => env(name).ok_or_else(|| {
                Problem::new(
                    field,
                    format!(
                        "environment variable {name} is not set: export it, or point {field} at \
                         another variable or a file"
                    ),
                )
            })?,
            Self::File(path) => std::fs::read_to_string(path).map_err(|error| {
                Problem::new(
                    field,
                    format!(
                        "cannot read secret file {}: {error}; check the path and that hubsync \
                         may read it",
                        path.display()
                    ),
                )
            })?,
            Self::Value(secret) => return Ok(secret.clone()),
        };
        let value = value.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            return Err(Problem::new(
                field,
                format!("{} is empty: it must hold the secret", self.describe()),
            ));
        }
        Ok(Secret::new(value))
    }

    /// Where the secret comes from, for messages (never the value).
    pub fn describe(&self) -> String {
        match self {
            Self::Env(name) => format!("environment variable {name}"),
            Self::File(path) => format!("file {}", path.display()),
            Self::Value(_) => "a value set in code".to_owned(),
        }
    }
}

const SECRET_FORMS: &str = "{ env = \"VAR\" } or { file = \"/path\" }";

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SourceVisitor)
    }
}

struct SourceVisitor;

impl<'de> Visitor<'de> for SourceVisitor {
    type Value = SecretSource;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a secret written as {SECRET_FORMS}")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(E::custom(format!(
            "secrets are not written in the config file: use {SECRET_FORMS}"
        )))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut source = None;
        while let Some(key) = map.next_key::<String>()? {
            let next = match key.as_str() {
                "env" => {
                    let name: String = map.next_value()?;
                    if name.trim().is_empty() {
                        return Err(de::Error::custom("env must name an environment variable"));
                    }
                    SecretSource::Env(name)
                }
                "file" => {
                    let path: PathBuf = map.next_value()?;
                    if path.as_os_str().is_empty() {
                        return Err(de::Error::custom("file must name a file"));
                    }
                    SecretSource::File(path)
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown key `{other}` in a secret: use {SECRET_FORMS}"
                    )));
                }
            };
            if source.replace(next).is_some() {
                return Err(de::Error::custom(format!(
                    "a secret has one source: use {SECRET_FORMS}, not both"
                )));
            }
        }
        source.ok_or_else(|| de::Error::custom(format!("empty secret: use {SECRET_FORMS}")))
    }
}

/// The secrets of a connection through the platform's public app.
#[derive(Debug, Clone)]
pub struct OAuthSecrets {
    pub client_secret: Secret,
    pub refresh_token: Secret,
}

/// Every secret of a config, resolved.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// The private app's token; empty for an OAuth connection.
    pub hubspot_token: Secret,
    /// An OAuth connection's app secret and refresh token.
    pub oauth: Option<OAuthSecrets>,
    pub registry_password: Option<Secret>,
    /// librdkafka properties given in the secret form, by property name.
    pub kafka_properties: Vec<(String, Secret)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        secret: SecretSource,
    }

    fn parse(text: &str) -> Result<SecretSource, String> {
        toml::from_str::<Holder>(text)
            .map(|h| h.secret)
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn debug_and_display_redact() {
        let secret = Secret::new("pat-na1-0123");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(secret.expose(), "pat-na1-0123");
        let source = SecretSource::Value(secret);
        assert!(!format!("{source:?}").contains("pat-na1"));
    }

    #[test]
    fn sources_are_env_or_file() {
        assert_eq!(
            parse("secret = { env = \"TOKEN\" }"),
            Ok(SecretSource::Env("TOKEN".into()))
        );
        assert_eq!(
            parse("secret = { file = \"/run/secrets/t\" }"),
            Ok(SecretSource::File("/run/secrets/t".into()))
        );
    }

    #[test]
    fn inline_and_malformed_secrets_are_refused() {
        let inline = parse("secret = \"pat-na1-0123\"").unwrap_err();
        assert!(
            inline.contains("not written in the config file"),
            "{inline}"
        );
        assert!(!inline.contains("pat-na1"), "{inline}");
        assert!(
            parse("secret = { value = \"x\" }")
                .unwrap_err()
                .contains("unknown key `value`")
        );
        assert!(
            parse("secret = { env = \"A\", file = \"/b\" }")
                .unwrap_err()
                .contains("not both")
        );
        assert!(parse("secret = {}").unwrap_err().contains("empty secret"));
        assert!(
            parse("secret = { env = \"\" }")
                .unwrap_err()
                .contains("env must name")
        );
    }

    #[test]
    fn env_secrets_resolve_through_the_lookup() {
        let source = SecretSource::Env("HUBSYNC_TEST_TOKEN".into());
        let env = |name: &str| (name == "HUBSYNC_TEST_TOKEN").then(|| "pat-xyz\n".to_owned());
        assert_eq!(
            source.resolve_with("hubspot.token", &env).unwrap().expose(),
            "pat-xyz"
        );

        let missing = source.resolve_with("hubspot.token", &|_| None).unwrap_err();
        assert_eq!(missing.field, "hubspot.token");
        assert!(
            missing.message.contains("HUBSYNC_TEST_TOKEN is not set"),
            "{missing}"
        );

        let empty = source
            .resolve_with("hubspot.token", &|_| Some(String::new()))
            .unwrap_err();
        assert!(empty.message.contains("is empty"), "{empty}");
    }

    #[test]
    fn file_secrets_resolve_without_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "pat-from-file\r\n").unwrap();
        let source = SecretSource::File(path.clone());
        assert_eq!(
            source.resolve("hubspot.token").unwrap().expose(),
            "pat-from-file"
        );

        let missing = SecretSource::File(dir.path().join("absent"));
        let problem = missing.resolve("registry.password").unwrap_err();
        assert_eq!(problem.field, "registry.password");
        assert!(problem.message.contains("absent"), "{problem}");
    }
}
