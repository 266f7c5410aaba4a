//! One generic overlay for every configuration: defaults, then a TOML file,
//! then the command-line flags, key by key, whatever the struct.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// Largest config file read (a config is a few kilobytes).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// `base`, then every key of the TOML file `file` (if any), then every key
/// that `flags` serializes: a flag left unset is a `None` field, which TOML
/// (having no null) leaves out, so it keeps the file's value. Tables merge key by
/// key at every depth, so `[run] epochs = 10` in the file keeps `run`'s other
/// keys. The result is deserialized as `T` (with `deny_unknown_fields`, an
/// unknown or misspelt key is an error naming the file).
pub fn overlay<T, F>(base: &T, file: Option<&Path>, flags: &F) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: Serialize + ?Sized,
{
    Ok(overlay_given(base, file, flags)?.0)
}

/// [`overlay`], also returning the keys the file and the flags gave (merged,
/// flags winning): what was set rather than defaulted, e.g. to treat a file
/// written before a key existed as meaning its old behaviour.
pub fn overlay_given<T, F>(base: &T, file: Option<&Path>, flags: &F) -> Result<(T, toml::Table)>
where
    T: Serialize + DeserializeOwned,
    F: Serialize + ?Sized,
{
    let mut over = toml::Table::new();
    if let Some(path) = file {
        merge(&mut over, read_table(path)?);
    }
    merge(&mut over, to_table(flags, "the flags")?);
    let what = file.map_or("the flags".to_string(), |p| p.display().to_string());
    Ok((overlay_table(base, over.clone(), &what)?, over))
}

/// `base`, then every key of the TOML table `over` (merged as in
/// [`overlay`]), deserialized as `T`; `what` names where `over` came from in
/// errors (a file, a section of a grid file, ...), with the offending key.
pub fn overlay_table<T>(base: &T, over: toml::Table, what: &str) -> Result<T>
where
    T: Serialize + DeserializeOwned,
{
    let base = to_table(base, "the defaults")?;
    let mut table = base.clone();
    merge(&mut table, over.clone());
    toml::Value::Table(table).try_into().map_err(|e| {
        // Sections flattened into one table report a bad value without its
        // key: find the key by applying the given keys one at a time.
        let key = leaves(&over, "")
            .into_iter()
            .find(|(_, one)| {
                let mut t = base.clone();
                merge(&mut t, one.clone());
                toml::Value::Table(t).try_into::<T>().is_err()
            })
            .map_or(String::new(), |(k, _)| format!("`{k}`: "));
        Error::bad_file(what, format!("invalid configuration: {key}{e}"))
    })
}

/// Every non-table value of `t` as (dotted key, a table holding just it).
fn leaves(t: &toml::Table, prefix: &str) -> Vec<(String, toml::Table)> {
    let mut out = Vec::new();
    for (k, v) in t {
        let path = format!("{prefix}{k}");
        match v {
            toml::Value::Table(sub) => {
                for (p, one) in leaves(sub, &format!("{path}.")) {
                    let mut wrap = toml::Table::new();
                    wrap.insert(k.clone(), toml::Value::Table(one));
                    out.push((p, wrap));
                }
            }
            _ => {
                let mut one = toml::Table::new();
                one.insert(k.clone(), v.clone());
                out.push((path, one));
            }
        }
    }
    out
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
        epochs: Option<usize>,
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
        // A section flattened into a flat table: the bad key is still named.
        #[derive(Serialize, Deserialize, Default, Debug)]
        #[serde(default)]
        struct Inner {
            epochs: usize,
        }
        #[derive(Serialize, Deserialize, Default, Debug)]
        #[serde(default, deny_unknown_fields)]
        struct Flat {
            #[serde(flatten)]
            run: Inner,
            name: String,
        }
        let no_flags = toml::Table::new();
        std::fs::write(&file, "name = \"x\"\nepochs = \"ten\"\n").unwrap();
        let e = overlay(&Flat::default(), Some(&file), &no_flags).unwrap_err();
        assert!(e.to_string().contains("`epochs`"), "{e}");
        std::fs::write(&file, "nmae = \"x\"\n").unwrap();
        let e = overlay(&Flat::default(), Some(&file), &no_flags).unwrap_err();
        assert!(e.to_string().contains("nmae"), "{e}");
        std::fs::write(&file, "[run\n").unwrap();
        let e = overlay(&Config::default(), Some(&file), &flags).unwrap_err();
        assert!(e.to_string().contains("invalid TOML"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
