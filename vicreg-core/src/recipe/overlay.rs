//! One generic overlay for every configuration: defaults, then a TOML file,
//! then the command-line flags, key by key, whatever the struct.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// Largest config file read (a config is a few kilobytes).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// `base`, then every key of the TOML file `file` (if any), then every key
/// that `flags` serializes (flags left unset must be skipped, e.g. with
/// `#[serde(skip_serializing_if = "Option::is_none")]`). Tables merge key by
/// key at every depth, so `[run] epochs = 10` in the file keeps `run`'s other
/// keys. The result is deserialized as `T` (with `deny_unknown_fields`, an
/// unknown or misspelt key is an error naming the file).
pub fn overlay<T, F>(base: &T, file: Option<&Path>, flags: &F) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: Serialize + ?Sized,
{
    let mut table = to_table(base, "the defaults")?;
    if let Some(path) = file {
        merge(&mut table, read_table(path)?);
    }
    merge(&mut table, to_table(flags, "the flags")?);
    let what = file.map_or("the flags".to_string(), |p| p.display().to_string());
    toml::Value::Table(table)
        .try_into()
        .map_err(|e| Error::bad_file(what, format!("invalid configuration: {e}")))
}

fn to_table<S: Serialize + ?Sized>(v: &S, what: &str) -> Result<toml::Table> {
    toml::Table::try_from(v)
        .map_err(|e| Error::config(format!("{what} do not form a TOML table: {e}")))
}

fn read_table(path: &Path) -> Result<toml::Table> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(Error::bad_file(
            path,
            format!("{} bytes: not a config file (at most 1 MiB)", meta.len()),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.parse::<toml::Table>()
        .map_err(|e| Error::bad_file(path, format!("invalid TOML: {e}")))
}

/// `over`'s keys into `into`, tables merged recursively.
fn merge(into: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
    struct Section {
        epochs: usize,
        base_lr: f64,
        clip: Option<f64>,
    }
    impl Default for Section {
        fn default() -> Self {
            Self {
                epochs: 100,
                base_lr: 0.2,
                clip: None,
            }
        }
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Config {
        run: Section,
    }
    #[derive(Serialize)]
    struct Flags {
        run: FlagSection,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "kebab-case")]
    struct FlagSection {
        #[serde(skip_serializing_if = "Option::is_none")]
        epochs: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        clip: Option<f64>,
    }

    #[test]
    fn defaults_then_file_then_flags_key_by_key() {
        let dir = std::env::temp_dir().join(format!("overlay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[run]\nepochs = 10\nbase-lr = 0.5\n").unwrap();
        let flags = Flags {
            run: FlagSection {
                epochs: Some(3),
                clip: None,
            },
        };
        let c: Config = overlay(&Config::default(), Some(&file), &flags).unwrap();
        assert_eq!(
            c.run,
            Section {
                epochs: 3,
                base_lr: 0.5,
                clip: None
            }
        );
        // No file: defaults and flags.
        let c: Config = overlay(&Config::default(), None, &flags).unwrap();
        assert_eq!((c.run.epochs, c.run.base_lr), (3, 0.2));
        // A misspelt key or a bad value names the file.
        std::fs::write(&file, "[run]\nepoch = 10\n").unwrap();
        let e = overlay(&Config::default(), Some(&file), &flags).unwrap_err();
        assert!(
            e.to_string().contains("c.toml") && e.to_string().contains("epoch"),
            "{e}"
        );
        std::fs::write(&file, "[run]\nbase-lr = \"ten\"\n").unwrap();
        let e = overlay(&Config::default(), Some(&file), &flags).unwrap_err();
        assert!(e.to_string().contains("c.toml"), "{e}");
        std::fs::write(&file, "[run\n").unwrap();
        let e = overlay(&Config::default(), Some(&file), &flags).unwrap_err();
        assert!(e.to_string().contains("invalid TOML"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
