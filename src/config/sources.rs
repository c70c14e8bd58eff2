//! Where settings come from: [`Sources`] (`offerhub.toml`, `.env`, the environment), each
//! read into a figment provider that keeps every value as text at its TOML path, their
//! layering (a later source wins; an empty value is unset), and the resolution of
//! relative paths against the directory of `offerhub.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::settings::{SETTINGS, Settings};
use super::{ConfigError, ConfigIssue, issue};

/// Where configuration comes from. `Sources::discover` finds the usual files.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `offerhub.toml`; relative paths in the configuration resolve against its directory.
    pub config_file: Option<PathBuf>,
    /// A dotenv file (`KEY=value` lines).
    pub dotenv_file: Option<PathBuf>,
    /// Environment variables (usually `std::env::vars()`); highest priority.
    pub env: BTreeMap<String, String>,
}

impl Sources {
    /// `config` (explicit, must exist) or `./offerhub.toml` when present; the `.env`
    /// beside the configuration file (or in the working directory); the process
    /// environment. `OFFERHUB_CONFIG` names the file when `config` is `None`.
    pub fn discover(config: Option<PathBuf>) -> Result<Sources, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let explicit = config.or_else(|| env.get("OFFERHUB_CONFIG").map(PathBuf::from));
        let config_file = match explicit {
            Some(p) => {
                if !p.is_file() {
                    return Err(issue(
                        "OFFERHUB_CONFIG",
                        format!("configuration file {} does not exist", p.display()),
                    ));
                }
                Some(p)
            }
            None => Some(PathBuf::from("offerhub.toml")).filter(|p| p.is_file()),
        };
        let base = base_dir(config_file.as_deref());
        let dotenv_file = Some(base.join(".env")).filter(|p| p.is_file());
        Ok(Sources {
            config_file,
            dotenv_file,
            env,
        })
    }
}

pub(super) fn base_dir(config_file: Option<&Path>) -> PathBuf {
    let dir = config_file
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    std::path::absolute(&dir).unwrap_or(dir)
}

/// One source of settings as a figment [`Provider`]: each value at its `offerhub.toml`
/// path (`server.port`) and kept as text, so that a value reads the same whichever
/// source gave it (each setting's type reads the text).
struct Layer {
    name: String,
    file: Option<PathBuf>,
    values: Dict,
}

impl Layer {
    /// Values named by environment variables (the process environment, a `.env` file,
    /// generated secrets); names that are no setting are ignored.
    fn variables(name: impl Into<String>, vars: &BTreeMap<String, String>) -> Layer {
        let mut values = Dict::new();
        for setting in SETTINGS {
            if let Some(v) = vars.get(setting.env) {
                insert(&mut values, setting.toml, v.clone());
            }
        }
        Layer {
            name: name.into(),
            file: None,
            values,
        }
    }

    /// Every setting's default.
    fn defaults() -> Layer {
        let mut values = Dict::new();
        for setting in SETTINGS {
            if let Some(d) = setting.default {
                insert(&mut values, setting.toml, d.to_string());
            }
        }
        Layer {
            name: "defaults".into(),
            file: None,
            values,
        }
    }

    /// `offerhub.toml`, with the problems of its layout: unknown keys are errors (typos
    /// must not silently fall back to defaults), and so are top-level values outside a
    /// `[section]`. Numbers, booleans and arrays (joined with commas) become the text an
    /// environment variable would hold.
    fn toml_file(path: &Path) -> Result<(Layer, Vec<ConfigIssue>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            issue(
                "OFFERHUB_CONFIG",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        // The message and position only: the parser's own text quotes the offending
        // line, which may hold a secret (an unquoted key).
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!(" at line {line}, column {column}")
                })
                .unwrap_or_default();
            issue(
                "OFFERHUB_CONFIG",
                format!(
                    "{} is not valid TOML{at}: {}",
                    path.display(),
                    e.message().trim()
                ),
            )
        })?;
        let mut values = Dict::new();
        let mut problems = Vec::new();
        for (section, entries) in &table {
            let Some(entries) = entries.as_table() else {
                problems.push(ConfigIssue {
                    variable: "OFFERHUB_CONFIG".into(),
                    problem: format!("[{section}] must be a table"),
                });
                continue;
            };
            for (key, v) in entries {
                let dotted = format!("{section}.{key}");
                let Some(setting) = SETTINGS.iter().find(|s| s.toml == dotted) else {
                    problems.push(ConfigIssue {
                        variable: "OFFERHUB_CONFIG".into(),
                        problem: format!("unknown setting `{dotted}` in {}", path.display()),
                    });
                    continue;
                };
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    toml::Value::Array(items) => items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| i.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                insert(&mut values, setting.toml, text);
            }
        }
        let layer = Layer {
            name: "offerhub.toml".into(),
            file: Some(path.to_path_buf()),
            values,
        };
        Ok((layer, problems))
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        match &self.file {
            Some(path) => Metadata::from(self.name.clone(), path.as_path()),
            None => Metadata::named(self.name.clone()),
        }
    }

    fn data(&self) -> Result<figment::value::Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// Puts `text` at `section.key`.
fn insert(dict: &mut Dict, path: &str, text: String) {
    let (section, key) = path.split_once('.').unwrap_or(("", path));
    let table = dict
        .entry(section.to_string())
        .or_insert_with(|| Value::from(Dict::new()));
    if let Value::Dict(_, table) = table {
        table.insert(key.to_string(), Value::from(text));
    }
}

/// Removes the empty values: an empty value means "not set" (as in `KEY=` lines of a
/// template), also where it overrode a lower source.
fn strip_blanks(dict: &mut Dict) {
    dict.retain(|_, v| match v {
        Value::String(_, s) => !s.trim().is_empty(),
        Value::Dict(_, inner) => {
            strip_blanks(inner);
            true
        }
        _ => true,
    });
}

fn internal(e: figment::Error) -> ConfigError {
    issue("OFFERHUB_CONFIG", format!("internal: {e}"))
}

/// What the sources set: `offerhub.toml`, then `.env`, then the environment merged by
/// figment (a later source wins, also with an empty value), then the empty values
/// removed; with the problems of `offerhub.toml`'s layout.
pub(super) struct Layered {
    set: Dict,
    pub(super) issues: Vec<ConfigIssue>,
}

impl Layered {
    pub(super) fn read(sources: &Sources) -> Result<Layered, ConfigError> {
        let mut figment = Figment::new();
        let mut issues = Vec::new();
        if let Some(path) = &sources.config_file {
            let (layer, problems) = Layer::toml_file(path)?;
            figment = figment.merge(layer);
            issues = problems;
        }
        if let Some(path) = &sources.dotenv_file {
            figment = figment.merge(Layer::variables(
                path.display().to_string(),
                &read_dotenv(path)?,
            ));
        }
        figment = figment.merge(Layer::variables("environment", &sources.env));
        Layered::new(figment, issues)
    }

    /// Values named by environment variables, as [`Config::from_map`](super::Config::from_map)
    /// takes them.
    pub(super) fn from_map(map: &BTreeMap<String, String>) -> Result<Layered, ConfigError> {
        Layered::new(Figment::from(Layer::variables("values", map)), Vec::new())
    }

    fn new(figment: Figment, issues: Vec<ConfigIssue>) -> Result<Layered, ConfigError> {
        let mut set: Dict = figment.extract().map_err(internal)?;
        strip_blanks(&mut set);
        Ok(Layered { set, issues })
    }

    /// The text a source set at `path` (`section.key`), as given.
    pub(super) fn text(&self, path: &str) -> Option<&str> {
        let (section, key) = path.split_once('.')?;
        self.set.get(section)?.as_dict()?.get(key)?.as_str()
    }

    /// Every setting: what the sources set, then (where unset) `generated` secrets, then
    /// the defaults.
    pub(super) fn settings(
        &self,
        generated: Option<&BTreeMap<String, String>>,
    ) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Layer {
            name: "configuration".into(),
            file: None,
            values: self.set.clone(),
        });
        if let Some(g) = generated {
            figment = figment.join(Layer::variables("generated secrets", g));
        }
        figment.join(Layer::defaults()).extract().map_err(internal)
    }

    /// The data directory, relative to `base` (`data` by default).
    pub(super) fn data_dir(&self, base: &Path) -> PathBuf {
        resolve_path(base, self.text("server.data_dir").unwrap_or("data"))
    }
}

/// Reads a dotenv file into a map (without touching the process environment).
pub fn read_dotenv(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let iter = dotenvy::from_path_iter(path).map_err(|e| {
        issue(
            "OFFERHUB_CONFIG",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let mut out = BTreeMap::new();
    for item in iter {
        // Never the line itself (dotenvy's message quotes it): it may hold a secret.
        let (k, v) = item.map_err(|e| {
            let which = match &e {
                dotenvy::Error::LineParse(_, index) => format!(" (at character {index})"),
                _ => String::new(),
            };
            issue(
                "OFFERHUB_CONFIG",
                format!("{} has a malformed line{which}", path.display()),
            )
        })?;
        out.insert(k, v);
    }
    Ok(out)
}

pub(super) fn resolve_path(base: &Path, p: impl AsRef<Path>) -> PathBuf {
    let path = p.as_ref();
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// `sqlite://relative/x.db?…`, `sqlite:relative/x.db`, `sqlite:///abs/x.db` →
/// `sqlite:///abs/…/x.db?…` so that the file does not depend on the working directory
/// of the process; without a query, `mode=rwc` (`serve` creates the file).
pub(super) fn resolve_sqlite_url(base: &Path, url: &str) -> String {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if rest.starts_with(':') {
        return url.to_string();
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let abs = resolve_path(base, path);
    match query {
        Some(q) => format!("sqlite://{}?{q}", abs.display()),
        None => format!("sqlite://{}?mode=rwc", abs.display()),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::tests::map;

    use super::*;

    #[test]
    fn malformed_files_are_reported_without_echoing_their_lines() {
        let dir =
            std::env::temp_dir().join(format!("oh-cfg-{}", crate::ids::random_alphanumeric(8)));
        std::fs::create_dir_all(&dir).unwrap();
        // An unquoted secret makes both files malformed.
        std::fs::write(
            dir.join("offerhub.toml"),
            "[security]\nmaster_key = s3cr3tKEYvalue\n",
        )
        .unwrap();
        std::fs::write(dir.join(".env"), "WALLET_ENCRYPTION_KEY='s3cr3tKEYvalue\n").unwrap();
        for (config_file, dotenv_file) in [
            (Some(dir.join("offerhub.toml")), None),
            (None, Some(dir.join(".env"))),
        ] {
            let sources = Sources {
                config_file,
                dotenv_file,
                env: map(&[]),
            };
            let e = Config::from_sources(&sources).unwrap_err().to_string();
            assert!(e.contains("OFFERHUB_CONFIG"), "{e}");
            assert!(
                !e.contains("s3cr3tKEYvalue"),
                "a secret reached the message: {e}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sources_layer_toml_then_dotenv_then_env() {
        let dir =
            std::env::temp_dir().join(format!("oh-cfg-{}", crate::ids::random_alphanumeric(8)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("offerhub.toml"),
            "[server]\nport = 5000\nhost = \"0.0.0.0\"\n[stellar]\nusdc_asset_code = \"USDX\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join(".env"),
            "PORT=6000\nSTELLAR_USDC_ASSET_CODE=USDY\n",
        )
        .unwrap();
        let sources = Sources {
            config_file: Some(dir.join("offerhub.toml")),
            dotenv_file: Some(dir.join(".env")),
            env: map(&[("PORT", "7000")]),
        };
        let c = Config::from_sources(&sources).unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert_eq!(c.usdc_asset_code, "USDY");
        assert_eq!(c.data_dir, dir.join("data"));

        std::fs::write(dir.join("offerhub.toml"), "[server]\nprot = 5000\n").unwrap();
        let err = Config::from_sources(&sources).unwrap_err();
        assert!(err.to_string().contains("unknown setting `server.prot`"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_value_is_unset_also_over_a_lower_source() {
        let dir =
            std::env::temp_dir().join(format!("oh-cfg-{}", crate::ids::random_alphanumeric(8)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("offerhub.toml"),
            "[server]\nport = 5000\nhost = \" \"\n[trustless]\nplatform_fee = 2.5\n\
             [secrets]\nwallet_encryption_keys_previous = []\n",
        )
        .unwrap();
        let sources = Sources {
            config_file: Some(dir.join("offerhub.toml")),
            dotenv_file: None,
            env: map(&[("PORT", ""), ("OFFERHUB_SAGA_WAIT_MS", " 0 ")]),
        };
        let c = Config::from_sources(&sources).unwrap();
        assert_eq!(c.port, 4000, "the default, not offerhub.toml's 5000");
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.trustless_platform_fee_bps, 250);
        assert_eq!(c.saga_wait_ms, 0);
        assert!(c.wallet_encryption_keys_previous.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn layout_and_value_problems_are_reported_together_without_secrets() {
        let dir =
            std::env::temp_dir().join(format!("oh-cfg-{}", crate::ids::random_alphanumeric(8)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("offerhub.toml"),
            "[server]\nprot = 5000\nport = \"x\"\n[secrets]\nmaster_key = \"hunter2-too-short\"\n",
        )
        .unwrap();
        let sources = Sources {
            config_file: Some(dir.join("offerhub.toml")),
            dotenv_file: None,
            env: map(&[
                ("WALLET_ENCRYPTION_KEY", "not-hex-swordfish"),
                ("WALLET_ENCRYPTION_KEYS_PREVIOUS", "old-swordfish"),
            ]),
        };
        let err = Config::from_sources(&sources).unwrap_err().to_string();
        for expected in [
            "OFFERHUB_CONFIG: unknown setting `server.prot`",
            "PORT: must be a port number between 1 and 65535 (got \"x\")",
            "OFFERHUB_MASTER_KEY: must be at least 32 characters",
            "WALLET_ENCRYPTION_KEY: must be 64 hexadecimal characters",
            "WALLET_ENCRYPTION_KEYS_PREVIOUS: must be a comma-separated list",
        ] {
            assert!(err.contains(expected), "{expected} missing in {err}");
        }
        assert!(
            !err.contains("hunter2") && !err.contains("swordfish"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
