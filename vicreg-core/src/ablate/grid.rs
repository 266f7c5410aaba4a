//! Ablation grid files: a `[base]` table of configuration keys, a `[grid]`
//! table of `key -> [values]` (cartesian product) and / or an explicit
//! `[[run]]` list of overrides (for variants that are not a product, such as
//! coefficient triples), plus app-specific tables (e.g. `[data]`, `[eval]`).
//!
//! ```toml
//! [base]                      # every run starts from these keys
//! epochs = 2
//! mlp = "512-512-512"
//!
//! [grid]                      # cartesian product of every list
//! batch-size = [32, 64]
//!
//! [[run]]                     # explicit variants (each crossed with [grid])
//! name = "vicreg"             # optional; default: from the varied values
//! sim-coeff = 25.0
//! std-coeff = 25.0
//! cov-coeff = 1.0
//!
//! [[run]]
//! name = "no-covariance"
//! sim-coeff = 25.0
//! std-coeff = 25.0
//! cov-coeff = 0.0
//! ```
//!
//! Every run's configuration is `[base]`, then the `[[run]]` entry, then its
//! `[grid]` values; the app turns that table into its own configuration
//! (and reports unknown keys).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::{Error, Result};

/// The top-level tables the generic grid format itself reads.
const OWN_SECTIONS: [&str; 3] = ["base", "grid", "run"];

/// One explicit variant of a `[[run]]` list.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOverride {
    /// The run's name, if the file gives one (`name = "..."`).
    pub name: Option<String>,
    /// The configuration keys it sets (without `name`).
    pub values: Table,
}

/// A parsed grid file.
#[derive(Clone, Debug, PartialEq)]
pub struct GridFile {
    /// Where it was read from (named in every error).
    pub path: PathBuf,
    /// Keys shared by every run.
    pub base: Table,
    /// `key -> values`, in file order of the keys as `toml` yields them (sorted).
    pub grid: Vec<(String, Vec<Value>)>,
    /// Explicit variants (empty: the product of `[grid]` alone).
    pub runs: Vec<RunOverride>,
    /// App-specific tables (`[data]`, `[eval]`, ...), by name.
    pub sections: BTreeMap<String, Table>,
}

/// One run of an ablation: its directory name, full configuration table and
/// the values that distinguish it from the base.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPlan {
    /// Directory name (unique within the grid; `[A-Za-z0-9._=+-]` only).
    pub name: String,
    /// `[base]` overlaid with the run's `[[run]]` entry and `[grid]` values.
    pub config: Table,
    /// The `(key, value)` pairs set by `[[run]]` and `[grid]`, in that order.
    pub varied: Vec<(String, Value)>,
}

impl GridFile {
    /// Reads and parses `path`; `app_sections` are the extra top-level tables
    /// the app accepts (any other table is an error naming the file).
    pub fn load(path: impl AsRef<Path>, app_sections: &[&str]) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path, app_sections)
    }

    /// Parses the text of a grid file (`path` is only used in errors).
    pub fn parse(text: &str, path: impl AsRef<Path>, app_sections: &[&str]) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bad = |msg: String| Error::bad_file(&path, msg);
        let top: Table = toml::from_str(text).map_err(|e| bad(format!("not valid TOML: {e}")))?;
        let mut out = GridFile {
            path: path.clone(),
            base: Table::new(),
            grid: Vec::new(),
            runs: Vec::new(),
            sections: BTreeMap::new(),
        };
        for (key, value) in top {
            match key.as_str() {
                "base" => {
                    out.base = as_table(value)
                        .ok_or_else(|| bad("`base` must be a table ([base])".into()))?;
                }
                "grid" => {
                    let t = as_table(value)
                        .ok_or_else(|| bad("`grid` must be a table ([grid])".into()))?;
                    for (k, v) in t {
                        match v {
                            Value::Array(vals) if !vals.is_empty() => out.grid.push((k, vals)),
                            _ => {
                                return Err(bad(format!(
                                    "[grid] key `{k}` must be a non-empty array of values (e.g. {k} = [1, 2])"
                                )))
                            }
                        }
                    }
                }
                "run" => {
                    let Value::Array(items) = value else {
                        return Err(bad(
                            "`run` must be an array of tables ([[run]] entries)".into()
                        ));
                    };
                    for (i, item) in items.into_iter().enumerate() {
                        let mut t = as_table(item).ok_or_else(|| {
                            bad(format!("[[run]] entry #{} must be a table", i + 1))
                        })?;
                        let name = match t.remove("name") {
                            None => None,
                            Some(Value::String(s)) => Some(s),
                            Some(_) => {
                                return Err(bad(format!(
                                    "[[run]] entry #{}: key `name` must be a string",
                                    i + 1
                                )))
                            }
                        };
                        out.runs.push(RunOverride { name, values: t });
                    }
                }
                other if app_sections.contains(&other) => {
                    let t = as_table(value)
                        .ok_or_else(|| bad(format!("`{other}` must be a table ([{other}])")))?;
                    out.sections.insert(other.to_string(), t);
                }
                other => {
                    let mut allowed: Vec<&str> = OWN_SECTIONS.to_vec();
                    allowed.extend_from_slice(app_sections);
                    return Err(bad(format!(
                        "unknown top-level key `{other}` (expected tables: {})",
                        allowed.join(", ")
                    )));
                }
            }
        }
        for (i, r) in out.runs.iter().enumerate() {
            if let Some((k, _)) = out.grid.iter().find(|(k, _)| r.values.contains_key(k)) {
                return Err(bad(format!(
                    "key `{k}` is set both in [grid] and in [[run]] entry #{}",
                    i + 1
                )));
            }
        }
        Ok(out)
    }

    /// The app table `name` (empty if the file has none).
    pub fn section(&self, name: &str) -> Table {
        self.sections.get(name).cloned().unwrap_or_default()
    }

    /// The app table `name` as a `T` (a missing table: `T`'s serde defaults);
    /// errors name the file and the table.
    pub fn section_as<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        Value::Table(self.section(name))
            .try_into()
            .map_err(|e| Error::invalid(format!("{}: [{name}]: {e}", self.path.display())))
    }

    /// The keys whose value differs between runs (`[[run]]` keys, then `[grid]` keys).
    pub fn varied_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for r in &self.runs {
            for k in r.values.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        for (k, _) in &self.grid {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        keys
    }

    /// Every run: each `[[run]]` entry (or the base alone when there is none)
    /// crossed with the cartesian product of `[grid]`. Errors (naming the
    /// file) when two runs would get the same directory name.
    pub fn plan(&self) -> Result<Vec<RunPlan>> {
        let explicit: Vec<RunOverride> = if self.runs.is_empty() {
            vec![RunOverride {
                name: None,
                values: Table::new(),
            }]
        } else {
            self.runs.clone()
        };
        let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
        for (k, vals) in &self.grid {
            let mut next = Vec::with_capacity(combos.len() * vals.len());
            for c in &combos {
                for v in vals {
                    let mut c = c.clone();
                    c.push((k.clone(), v.clone()));
                    next.push(c);
                }
            }
            combos = next;
        }
        let mut plans: Vec<RunPlan> = Vec::new();
        for r in &explicit {
            for combo in &combos {
                let mut config = self.base.clone();
                let mut varied: Vec<(String, Value)> = Vec::new();
                for (k, v) in r.values.iter() {
                    config.insert(k.clone(), v.clone());
                    varied.push((k.clone(), v.clone()));
                }
                for (k, v) in combo {
                    config.insert(k.clone(), v.clone());
                    varied.push((k.clone(), v.clone()));
                }
                let grid_part: Vec<(String, Value)> = combo.clone();
                let name = match (&r.name, grid_part.is_empty()) {
                    (Some(n), true) => sanitize(n),
                    (Some(n), false) => format!("{}_{}", sanitize(n), name_of(&grid_part)),
                    (None, _) if varied.is_empty() => "base".to_string(),
                    (None, _) => name_of(&varied),
                };
                if let Some(p) = plans.iter().find(|p| p.name == name) {
                    return Err(Error::bad_file(
                        &self.path,
                        format!(
                            "two runs would share the directory name `{name}` ({} and {}); give the [[run]] entries distinct names",
                            describe(&p.varied),
                            describe(&varied)
                        ),
                    ));
                }
                plans.push(RunPlan {
                    name,
                    config,
                    varied,
                });
            }
        }
        Ok(plans)
    }
}

fn as_table(v: Value) -> Option<Table> {
    match v {
        Value::Table(t) => Some(t),
        _ => None,
    }
}

/// A value as it appears in run names and summary tables (strings unquoted).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", *f as i64)
            } else {
                format!("{f}")
            }
        }
        other => other.to_string(),
    }
}

fn describe(varied: &[(String, Value)]) -> String {
    if varied.is_empty() {
        return "the base".into();
    }
    varied
        .iter()
        .map(|(k, v)| format!("{k} = {}", value_text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn name_of(varied: &[(String, Value)]) -> String {
    sanitize(
        &varied
            .iter()
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect::<Vec<_>>()
            .join("_"),
    )
}

/// Keeps `[A-Za-z0-9._=+-]`, replaces anything else by `-` (directory-safe names).
pub fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=+-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        "run".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_of_runs_and_grid() {
        let g = GridFile::parse(
            r#"
            [base]
            epochs = 2
            [grid]
            batch-size = [8, 16]
            [[run]]
            name = "a"
            sim-coeff = 25.0
            [[run]]
            sim-coeff = 1.5
            [eval]
            probe-epochs = 3
            "#,
            "g.toml",
            &["eval"],
        )
        .unwrap();
        let p = g.plan().unwrap();
        let names: Vec<&str> = p.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "a_batch-size=8",
                "a_batch-size=16",
                "sim-coeff=1.5_batch-size=8",
                "sim-coeff=1.5_batch-size=16"
            ]
        );
        assert_eq!(p[3].config["epochs"].as_integer(), Some(2));
        assert_eq!(p[3].config["batch-size"].as_integer(), Some(16));
        assert_eq!(p[3].config["sim-coeff"].as_float(), Some(1.5));
        assert_eq!(g.varied_keys(), ["sim-coeff", "batch-size"]);
        assert_eq!(g.section("eval")["probe-epochs"].as_integer(), Some(3));
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let e = GridFile::parse("[grid]\nmlp = \"64-64\"\n", "x/grid.toml", &[]).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("x/grid.toml") && m.contains("`mlp`"), "{m}");
        let e = GridFile::parse("[grid]\nmlp = []\n", "g.toml", &[]).unwrap_err();
        assert!(e.to_string().contains("`mlp`"), "{e}");
        let e = GridFile::parse("[bogus]\na = 1\n", "g.toml", &["eval"]).unwrap_err();
        assert!(e.to_string().contains("`bogus`"), "{e}");
        let e = GridFile::parse(
            "[grid]\nepochs = [1, 2]\n[[run]]\nepochs = 3\n",
            "g.toml",
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("`epochs`"), "{e}");
        let e = GridFile::parse("[[run]]\nname = 3\n", "g.toml", &[]).unwrap_err();
        assert!(e.to_string().contains("`name`"), "{e}");
        let dup = GridFile::parse(
            "[[run]]\nname = \"a\"\nx = 1\n[[run]]\nname = \"a\"\nx = 2\n",
            "g.toml",
            &[],
        )
        .unwrap();
        assert!(dup.plan().unwrap_err().to_string().contains("`a`"));
        let e = GridFile::parse("[base\n", "broken.toml", &[]).unwrap_err();
        assert!(e.to_string().contains("broken.toml"), "{e}");
    }

    #[test]
    fn names_are_directory_safe() {
        assert_eq!(sanitize("a/b c"), "a-b-c");
        assert_eq!(sanitize(".."), "run");
        assert_eq!(value_text(&Value::Float(25.0)), "25");
        assert_eq!(value_text(&Value::Float(0.0051)), "0.0051");
        let g = GridFile::parse("[base]\nx = 1\n", "g.toml", &[]).unwrap();
        assert_eq!(g.plan().unwrap()[0].name, "base");
    }
}
