//! `switchyard plugin new --lang rust|python|js --kind scorer|filter|picker NAME`: writes a
//! buildable plugin into `NAME/` — the component's source with its decision in a plain
//! function, a unit test of that function, `build.sh`, `test.sh` (unit tests, build, then
//! `switchyard plugin check`), a README, and a copy of the WIT package in `wit/` (toolchains
//! only see the plugin's own directory).

mod js;
mod python;
mod rust;

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

/// The WIT package the scaffold builds against: the router's own copy, built in.
const WIT: &str = include_str!("../../../wit/plugin.wit");

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Scorer,
    Filter,
    Picker,
}

impl Kind {
    fn world(self) -> &'static str {
        match self {
            Kind::Scorer => "scorer",
            Kind::Filter => "filter",
            Kind::Picker => "picker",
        }
    }
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: lower-case letters, digits and dashes (also the directory's).
    pub name: String,
    /// Language of the scaffold.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// What it decides.
    #[arg(long, value_enum, default_value = "scorer")]
    pub kind: Kind,
    /// Where to create it [default: ./NAME]; must not exist yet.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// What is being scaffolded.
pub struct Scaffold {
    pub name: String,
    pub lang: Lang,
    pub kind: Kind,
}

/// Writes the scaffold; returns the directory.
pub fn run(args: NewArgs) -> anyhow::Result<PathBuf> {
    check_name(&args.name)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        anyhow::bail!(
            "{} already exists; choose another name or --dir",
            dir.display()
        );
    }
    let scaffold = Scaffold {
        name: args.name,
        lang: args.lang,
        kind: args.kind,
    };
    let mut files = match scaffold.lang {
        Lang::Rust => rust::files(&scaffold),
        Lang::Python => python::files(&scaffold),
        Lang::Js => js::files(&scaffold),
    };
    files.push(("wit/plugin.wit".into(), WIT.to_owned()));
    files.push(("README.md".into(), readme(&scaffold)));
    for (path, text) in &files {
        write(&dir.join(path), text)?;
    }
    Ok(dir)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        anyhow::bail!(
            "plugin name `{name}` must be 1-64 lower-case letters, digits and dashes, starting with a letter (it names the crate/module, the .wasm and the router's plugin)"
        )
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "sh") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn readme(s: &Scaffold) -> String {
    let (lang, source, unit) = match s.lang {
        Lang::Rust => ("Rust", "`src/lib.rs`", "cargo test"),
        Lang::Python => (
            "Python",
            "`logic.py` (the decision) and `app.py` (the bindings)",
            "python3 -m unittest",
        ),
        Lang::Js => (
            "JavaScript",
            "`logic.js` (the decision) and `plugin.js` (the exports)",
            "node --test",
        ),
    };
    let setup = match s.lang {
        Lang::Rust => "rustup target add wasm32-wasip2",
        Lang::Python => "pip install componentize-py==0.25.1",
        Lang::Js => "npm install",
    };
    let world = s.kind.world();
    let kind = match s.kind {
        Kind::Scorer => "scorer",
        Kind::Filter => "filter",
        Kind::Picker => "picker",
    };
    format!(
        r#"# {name}

A Switchyard **{world}** plugin in {lang}, scaffolded by `switchyard plugin new`. Its decision is in
{source}; edit it, then:

```sh
{setup}        # once
{unit}         # unit tests of the decision
./build.sh     # -> {name}.wasm
switchyard plugin check {name}.wasm   # runs it on edge-case candidates (full KV cache, unhealthy, idle, ties)
switchyard plugin bench {name}.wasm   # per-decision latency at 8/64/512 candidates
```

`./test.sh` does all three. `wit/plugin.wit` is a copy of the router's WIT package
(`switchyard:plugin@0.1.0`), which documents every field a candidate carries.

Load it into a running router without a restart:

```sh
curl -X PUT -H "Authorization: Bearer $ADMIN_TOKEN" --data-binary @{name}.wasm \
  "localhost:8001/admin/plugins/{name}?kind={kind}&wait=true&sha256=$(sha256sum {name}.wasm | cut -d' ' -f1)"
```

or in the router's YAML:

```yaml
plugins:
  - name: {name}
    kind: {kind}
    path: {name}.wasm
```

Add `mode=Shadow` (YAML `mode: Shadow`) to compare its choices with live routing first, or
replay recorded traffic: `switchyard plugin replay {name}.wasm --trace decisions.jsonl`.
"#,
        name = s.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["my-scorer", "a", "kv2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "My", "1x", "a_b", "a-", "../x", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_language_and_kind_writes_a_readme_a_test_and_a_build_script() {
        let root = tempfile::tempdir().unwrap();
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for kind in [Kind::Scorer, Kind::Filter, Kind::Picker] {
                let dir = root.path().join(format!("{lang:?}-{kind:?}"));
                let made = run(NewArgs {
                    name: "my-plugin".into(),
                    lang,
                    kind,
                    dir: Some(dir.clone()),
                })
                .unwrap();
                let names: Vec<String> = walk(&made);
                for wanted in ["README.md", "build.sh", "test.sh", "wit/plugin.wit"] {
                    assert!(
                        names.iter().any(|n| n == wanted),
                        "{lang:?} {kind:?}: {names:?}"
                    );
                }
                assert!(
                    names.iter().any(|n| n.contains("test")),
                    "{lang:?} {kind:?}: no test in {names:?}"
                );
                // A second run into the same place is refused rather than overwriting.
                assert!(run(NewArgs {
                    name: "my-plugin".into(),
                    lang,
                    kind,
                    dir: Some(dir),
                })
                .is_err());
            }
        }
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out
    }
}
