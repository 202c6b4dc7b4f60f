//! The typed configuration. `config.example.toml` is embedded, printed by
//! `archivist config --example`, and parsed by a test, so the example can never drift from the
//! code. Secrets never live here: they come from the environment.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::message::ZoneOffset;

/// The example configuration, which also documents every default.
pub const EXAMPLE: &str = include_str!("../config.example.toml");

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory holding the archive database and the index.
    pub data_dir: PathBuf,
    /// Import settings.
    pub import: ImportConfig,
    /// Web server settings.
    pub server: ServerConfig,
    /// Weekly digest settings.
    pub digest: DigestConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            import: ImportConfig::default(),
            server: ServerConfig::default(),
            digest: DigestConfig::default(),
        }
    }
}

/// `[import]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImportConfig {
    /// Messages per transaction.
    pub batch_size: usize,
    /// Largest message kept whole.
    pub max_message_bytes: usize,
    /// zstd level.
    pub compression_level: i32,
    /// Parser threads.
    pub parse_threads: usize,
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            batch_size: 1000,
            max_message_bytes: 256 << 20,
            compression_level: 1,
            parse_threads: 2,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listen address.
    pub bind: String,
    /// Memory for the cache of rendered pages, in MiB (0 turns it off).
    pub cache_mb: usize,
    /// Show addresses as `user at example.org` in pages, the API and feeds.
    pub obfuscate_addresses: bool,
    /// Believe `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host` for the absolute links
    /// of feeds: only behind a reverse proxy that sets (and overwrites) them.
    pub trust_proxy_headers: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8080".into(),
            cache_mb: 64,
            obfuscate_addresses: false,
            trust_proxy_headers: false,
        }
    }
}

/// `[digest]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DigestConfig {
    /// Sender of digests and confirmation emails (`Name <addr>` or `addr`).
    pub from: String,
    /// Public URL of the web archive, without a trailing slash.
    pub base_url: String,
    /// Weeks run from Monday 00:00 to Monday 00:00 at this offset from UTC.
    pub timezone: ZoneOffset,
    /// Day of the week `archivist serve` sends the previous week's digest.
    pub weekday: Weekday,
    /// Hour (0-23, in `timezone`) it sends.
    pub hour: u8,
    /// Whether a week without any message is sent anyway.
    pub send_empty_weeks: bool,
    /// Earlier weeks grouped first so topics keep their labels.
    pub history_weeks: u32,
    /// Hours a confirmation link stays valid.
    pub confirm_hours: u32,
    /// Where digests go: an SMTP server or a directory of `.eml` files.
    pub transport: TransportKind,
    /// The `.eml` directory for `transport = "directory"`, relative to `data_dir`.
    pub directory: PathBuf,
    /// SMTP settings.
    pub smtp: SmtpConfig,
    /// The key signing subscription tokens, from `ARCHIVIST_TOKEN_KEY` only; printed as
    /// `[redacted]`.
    #[serde(skip)]
    pub token_key: Secret,
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            from: "Archivist digests <digest@localhost>".into(),
            base_url: "http://127.0.0.1:8080".into(),
            timezone: ZoneOffset::UTC,
            weekday: Weekday::Monday,
            hour: 7,
            send_empty_weeks: false,
            history_weeks: 2,
            confirm_hours: 48,
            transport: TransportKind::Smtp,
            directory: PathBuf::from("outbox"),
            smtp: SmtpConfig::default(),
            token_key: Secret::default(),
        }
    }
}

/// Days of the week, for the digest schedule.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    /// Days after Monday (Monday is 0).
    pub fn days_from_monday(self) -> i64 {
        self as i64
    }
}

/// Where digests are delivered.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// The SMTP server of `[digest.smtp]`.
    Smtp,
    /// One `.eml` file per message in `digest.directory` (demos, inspection).
    Directory,
}

/// `[digest.smtp]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Server host name.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Connection security.
    pub tls: TlsMode,
    /// User name, if the server wants one; the password comes from `ARCHIVIST_SMTP_PASSWORD`.
    pub username: String,
    /// The password, from the environment only (never from a file); printed as `[redacted]`.
    #[serde(skip)]
    pub password: Secret,
    /// At most this many messages per second (0: no limit).
    pub rate: f64,
    /// Connections (and delivery threads) used in parallel.
    pub connections: usize,
    /// Attempts per message and run for transient failures (4xx, timeouts), with exponential
    /// backoff; a message out of attempts stays queued for the next run.
    pub max_attempts: u32,
    /// Seconds before a connection or command times out.
    pub timeout_seconds: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: 25,
            tls: TlsMode::Plain,
            username: String::new(),
            password: Secret::default(),
            rate: 10.0,
            connections: 4,
            max_attempts: 5,
            timeout_seconds: 30,
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// STARTTLS, required (port 587).
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or network.
    Plain,
}

/// A secret read from the environment: shown as `[redacted]`, compared by value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Option<String>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: Option<String>) -> Secret {
        Secret(value.filter(|v| !v.is_empty()))
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(_) => f.write_str("[redacted]"),
            None => f.write_str("[unset]"),
        }
    }
}

/// Environment variable holding the SMTP password.
pub const SMTP_PASSWORD_ENV: &str = "ARCHIVIST_SMTP_PASSWORD";
/// Environment variable holding the key that signs subscription tokens (at least 32 bytes).
pub const TOKEN_KEY_ENV: &str = "ARCHIVIST_TOKEN_KEY";

impl Config {
    /// Fills in the secrets from the environment, through `lookup` (`std::env::var` at the
    /// edge, a map in tests).
    pub fn with_secrets(mut self, lookup: impl Fn(&str) -> Option<String>) -> Config {
        self.digest.smtp.password = Secret::new(lookup(SMTP_PASSWORD_ENV));
        self.digest.token_key = Secret::new(lookup(TOKEN_KEY_ENV));
        self
    }

    /// Parses configuration text and checks the values.
    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Loads a file, or the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        match path {
            None => Ok(Config::default()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                Config::parse(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))
            }
        }
    }

    fn validate(&self) -> Result<()> {
        anyhow::ensure!(
            self.import.batch_size >= 1,
            "import.batch_size must be at least 1"
        );
        anyhow::ensure!(
            (1..=22).contains(&self.import.compression_level),
            "import.compression_level must be between 1 and 22"
        );
        anyhow::ensure!(
            self.import.max_message_bytes >= 1 << 16,
            "import.max_message_bytes must be at least 65536"
        );
        anyhow::ensure!(
            (1..=64).contains(&self.import.parse_threads),
            "import.parse_threads must be between 1 and 64"
        );
        let d = &self.digest;
        anyhow::ensure!(d.hour <= 23, "digest.hour must be between 0 and 23");
        anyhow::ensure!(
            d.base_url.starts_with("https://") || d.base_url.starts_with("http://"),
            "digest.base_url must start with https:// or http://"
        );
        anyhow::ensure!(
            !d.base_url.ends_with('/') && !d.base_url.contains(['\r', '\n', ' ', '"', '<', '>']),
            "digest.base_url must have no trailing slash, spaces, quotes or brackets"
        );
        anyhow::ensure!(
            !d.from.contains(['\r', '\n']) && d.from.contains('@'),
            "digest.from must be one address such as \"Name <digest@example.org>\""
        );
        anyhow::ensure!(
            d.smtp.rate >= 0.0 && d.smtp.rate.is_finite(),
            "digest.smtp.rate must be zero (no limit) or positive"
        );
        anyhow::ensure!(
            (1..=32).contains(&d.smtp.connections),
            "digest.smtp.connections must be between 1 and 32"
        );
        anyhow::ensure!(
            (1..=20).contains(&d.smtp.max_attempts),
            "digest.smtp.max_attempts must be between 1 and 20"
        );
        anyhow::ensure!(
            d.history_weeks <= 8,
            "digest.history_weeks must be at most 8"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_and_equals_defaults() {
        let parsed = Config::parse(EXAMPLE).expect("example config parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::parse("[import]\nbatch_sise = 3\n").expect_err("typo must fail");
        assert!(format!("{err:#}").contains("batch_sise"), "{err:#}");
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(Config::parse("[import]\ncompression_level = 99\n").is_err());
        assert!(Config::parse("[import]\nbatch_size = 0\n").is_err());
        for bad in [
            "[digest]\nhour = 24\n",
            "[digest]\ntimezone = \"Europe/Paris\"\n",
            "[digest]\nbase_url = \"ftp://x\"\n",
            "[digest]\nbase_url = \"https://x/\"\n",
            "[digest]\nweekday = \"someday\"\n",
            "[digest.smtp]\ntls = \"ssl3\"\n",
            "[digest.smtp]\npassword = \"in-a-file\"\n",
        ] {
            assert!(Config::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_come_from_the_environment_and_are_redacted() {
        let config = Config::default().with_secrets(|k| match k {
            SMTP_PASSWORD_ENV => Some("hunter2".to_string()),
            TOKEN_KEY_ENV => Some("sekrit-key-of-some-length".to_string()),
            _ => None,
        });
        assert_eq!(config.digest.smtp.password.expose(), Some("hunter2"));
        assert_eq!(
            config.digest.token_key.expose(),
            Some("sekrit-key-of-some-length")
        );
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("sekrit") && shown.contains("[redacted]"),
            "{shown}"
        );
        assert!(Config::parse("[digest]\ntoken_key = \"x\"\n").is_err());
        let parsed = Config::parse("[digest]\ntimezone = \"+02:00\"\nweekday = \"friday\"\n")
            .expect("parses");
        assert_eq!(parsed.digest.timezone.seconds(), 7200);
        assert_eq!(parsed.digest.weekday, Weekday::Friday);
    }
}
