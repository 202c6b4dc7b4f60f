//! The typed configuration. `config.example.toml` is embedded, printed by
//! `archivist config --example`, and parsed by a test, so the example can never drift from the
//! code. Secrets never live here: they come from the environment.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            import: ImportConfig::default(),
            server: ServerConfig::default(),
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8080".into(),
        }
    }
}

impl Config {
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
    }
}
