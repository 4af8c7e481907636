//! Loading and validating `kiln.yaml`: from text to a typed [`Config`], or to
//! [`Diagnostics`] that name every problem in the file with its line and column.
//!
//! Three passes: YAML into a located node tree ([`node`]), that tree checked
//! against the JSON Schema of the model ([`shape`]), then the typed config checked
//! for meaning ([`validate`]). The typed config is read from the parts of the tree
//! that have the right shape, so serde never has to report an error itself, and
//! the meaning checks run even when some parts were wrong.

pub mod archive;
mod bases;
mod diagnostic;
pub mod expand;
mod include;
pub mod model;
mod node;
pub mod registry;
pub mod runtime;
mod schema;
pub mod services;
mod shape;
pub mod url;
mod validate;

use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, Diagnostics};
pub use model::*;
pub use node::Seg;
pub use schema::schema;

use diagnostic::Sink;
pub(crate) use shape::suggest;

/// The config file's name inside a habitat directory.
pub const FILE_NAME: &str = "kiln.yaml";
/// The other spelling, found when `kiln.yaml` is absent.
pub const ALT_FILE_NAME: &str = "kiln.yml";

/// A loaded, valid habitat.
#[derive(Debug, Clone, PartialEq)]
pub struct Habitat {
    /// The habitat directory, canonical: copy sources and other relative paths
    /// are resolved against it.
    pub dir: PathBuf,
    /// The config file, canonical.
    pub file: PathBuf,
    pub config: Config,
    /// The fragments `include:` merged in (canonical files, in the order
    /// the includes reach them, each once): never copied into an image.
    pub fragments: Vec<PathBuf>,
}

impl Habitat {
    /// The directories copies and local tools are read from, canonical:
    /// the habitat directory, then each fragment's directory (once each).
    pub fn copy_roots(&self) -> Vec<PathBuf> {
        let mut roots = vec![self.dir.clone()];
        for dir in self.fragments.iter().filter_map(|f| f.parent()) {
            if !roots.iter().any(|r| r == dir) {
                roots.push(dir.to_path_buf());
            }
        }
        roots
    }

    /// The host directory a copy or tool root (relative to the habitat
    /// directory, as [`Copy::in_root`] gives it) names.
    pub fn root_dir(&self, root: &str) -> PathBuf {
        root_dir(&self.dir, root)
    }
}

/// The host directory a copy or tool root names: `root` (relative to the
/// habitat directory `dir`, as [`Copy::in_root`] gives it) from `dir`.
pub fn root_dir(dir: &Path, root: &str) -> PathBuf {
    if root.is_empty() {
        dir.to_path_buf()
    } else {
        lexical_join(dir, root)
    }
}

/// `dir` joined with `rel`, whose `..` are taken lexically: the roots are
/// made from canonical directories, so that is where they lead.
fn lexical_join(dir: &Path, rel: &str) -> PathBuf {
    let mut out = dir.to_path_buf();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            name => out.push(name),
        }
    }
    out
}

/// Whether loading a habitat checks that the build's inputs are on this
/// machine: its copy and tool sources, local repos and base habitat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inputs {
    /// `check`, `build` and everything that builds: every input must be there.
    Required,
    /// `up --image` on a deploy machine (SPEC §10), which holds the
    /// `kiln.yaml` and no build input: the config is checked as written
    /// (syntax, schema, names, paths, `instances`, `registry`), an input that
    /// is absent is not an error, and one that is there is checked as ever.
    /// The fragments of `include:` must still be there: without them the
    /// config is not whole.
    NotRequired,
}

/// Load the habitat at `path`: a habitat directory, or its `kiln.yaml` itself.
pub fn load(path: &Path) -> Result<Habitat, Diagnostics> {
    load_with(path, Inputs::Required)
}

/// [`load`], checking the build's inputs as `inputs` says.
pub fn load_with(path: &Path, inputs: Inputs) -> Result<Habitat, Diagnostics> {
    let shown = path.display().to_string();
    let file = if path.is_dir() {
        // `kiln.yml` is found as docker compose finds `compose.yml`; when
        // both exist `kiln.yaml` wins.
        match path.join(FILE_NAME) {
            yaml if !yaml.exists() && path.join(ALT_FILE_NAME).is_file() => {
                path.join(ALT_FILE_NAME)
            }
            yaml => yaml,
        }
    } else {
        path.to_path_buf()
    };
    let file_shown = file.display().to_string();
    if !path.exists() {
        return Err(Diagnostics::unlocated(
            &shown,
            format!("no habitat at `{shown}`: the path does not exist"),
            Some("pass a habitat directory or its `kiln.yaml`".to_string()),
        ));
    }
    if !file.is_file() {
        let hint = match path.is_dir().then(|| near_miss(path)).flatten() {
            Some(found) => format!(
                "`{found}` is there, but kiln reads `{FILE_NAME}` (or `{ALT_FILE_NAME}`): rename it"
            ),
            None => format!("a habitat is a directory holding `{FILE_NAME}`; create one there"),
        };
        return Err(Diagnostics::unlocated(
            &file_shown,
            format!("no `{FILE_NAME}` in `{shown}`"),
            Some(hint),
        ));
    }
    let bytes = std::fs::read(&file).map_err(|err| {
        Diagnostics::unlocated(
            &file_shown,
            format!("cannot read `{file_shown}`: {err}"),
            None,
        )
    })?;
    let text = decode(&file_shown, bytes)?;
    let canonical_file = std::fs::canonicalize(&file).map_err(|err| {
        Diagnostics::unlocated(
            &file_shown,
            format!("cannot resolve `{file_shown}`: {err}"),
            None,
        )
    })?;
    let dir = canonical_file
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let parsed = parse_sources(
        &file_shown,
        &text,
        &dir,
        Some(&canonical_file),
        &read_fragment,
        inputs,
    )?;
    Ok(Habitat {
        dir,
        file: canonical_file,
        config: parsed.config,
        fragments: parsed.fragments,
    })
}

/// A file in `dir` that was likely meant as the habitat's config: a
/// `kiln.yaml` or `kiln.yml` in other letter case, or with a suffix an editor
/// or a copy added (`kiln.yaml.bak`, `kiln.yaml.txt`).
fn near_miss(dir: &Path) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            let lower = n.to_lowercase();
            [FILE_NAME, ALT_FILE_NAME]
                .iter()
                .any(|want| lower == *want || lower.starts_with(&format!("{want}.")))
        })
        .collect();
    names.sort();
    names.into_iter().next()
}

/// A problem a build found with the value at `path` (map keys and list
/// indexes from the top of the habitat's `kiln.yaml`, e.g. a tool's
/// `sha256` that its file no longer matches), located in the file as every
/// diagnostic of `check` is.
pub fn diagnostic_at(
    habitat: &Habitat,
    path: &[Seg<'_>],
    message: String,
    hint: Option<String>,
) -> Diagnostics {
    let shown = habitat.file.display().to_string();
    let Ok(text) = std::fs::read_to_string(&habitat.file) else {
        return Diagnostics::unlocated(&shown, message, hint);
    };
    let Some(included) = merged(&shown, &text, &habitat.dir, Some(&habitat.file)) else {
        return Diagnostics::unlocated(&shown, message, hint);
    };
    let Some(loc) = included.root.get(path).map(|n| n.loc) else {
        return Diagnostics::unlocated(&shown, message, hint);
    };
    let mut sink = sink_of(&included);
    sink.push(loc, message, hint);
    sink.finish()
}

/// The merged tree of a habitat's `kiln.yaml` (`text`, shown as `shown`)
/// and the fragments it includes, read from disk; `None` when the
/// `kiln.yaml` is not YAML.
fn merged(shown: &str, text: &str, dir: &Path, file: Option<&Path>) -> Option<include::Included> {
    let root = node::parse_yaml(text).ok()?;
    Some(include::resolve(
        main_source(shown, text, file),
        root,
        dir,
        &read_fragment,
    ))
}

fn main_source(shown: &str, text: &str, file: Option<&Path>) -> include::Source {
    include::Source {
        name: shown.to_string(),
        text: text.to_string(),
        file: file.map(Path::to_path_buf),
        dir: String::new(),
    }
}

/// A sink over every file of `included`.
fn sink_of(included: &include::Included) -> Sink<'_> {
    Sink::files(
        included
            .sources
            .iter()
            .map(|s| (s.name.clone(), s.text.as_str()))
            .collect(),
    )
}

/// The fragment at `path` (a file, or a directory holding `kiln.yaml`),
/// read from disk: the loader's reader for `include`.
fn read_fragment(path: &Path) -> Result<include::Fragment, String> {
    let file = if path.is_dir() {
        match path.join(FILE_NAME) {
            yaml if !yaml.exists() && path.join(ALT_FILE_NAME).is_file() => {
                path.join(ALT_FILE_NAME)
            }
            yaml => yaml,
        }
    } else {
        path.to_path_buf()
    };
    let file = std::fs::canonicalize(&file).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound if path.is_dir() => {
            format!("no `{FILE_NAME}` in that directory")
        }
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => err.to_string(),
    })?;
    if !file.is_file() {
        return Err("not a file".to_string());
    }
    let text = std::fs::read_to_string(&file).map_err(|err| match err.kind() {
        std::io::ErrorKind::InvalidData => "it is not UTF-8 text".to_string(),
        _ => err.to_string(),
    })?;
    Ok(include::Fragment { file, text })
}

/// The text of a config file, or where it stops being UTF-8.
fn decode(file_name: &str, bytes: Vec<u8>) -> Result<String, Diagnostics> {
    let err = match String::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(err) => err,
    };
    let bytes = err.as_bytes();
    let shown = String::from_utf8_lossy(bytes);
    let mut sink = Sink::new(file_name, &shown);
    let hint = Some(format!("save `{FILE_NAME}` as UTF-8"));
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        let loc = node::Loc {
            line: 1,
            column: 1,
            len: 1,
            file: 0,
        };
        let message = "invalid UTF-8: the file starts with a UTF-16 byte order mark";
        sink.push(loc, message.to_string(), hint);
        return Err(sink.finish());
    }
    let at = err.utf8_error().valid_up_to();
    // The bytes before `at` are valid: lines and columns count as in the parser.
    let before = String::from_utf8_lossy(&bytes[..at]);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let loc = node::Loc {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
        len: 1,
        file: 0,
    };
    let message = format!("invalid UTF-8: byte 0x{:02x} is not text", bytes[at]);
    sink.push(loc, message, hint);
    Err(sink.finish())
}

/// Parse and validate the text of a `kiln.yaml`. `file_name` is how diagnostics
/// name the file; `habitat_dir` is where copy sources are looked up, and the
/// fragments it includes are read from.
pub fn parse(file_name: &str, text: &str, habitat_dir: &Path) -> Result<Config, Diagnostics> {
    parse_sources(
        file_name,
        text,
        habitat_dir,
        None,
        &read_fragment,
        Inputs::Required,
    )
    .map(|p| p.config)
}

/// A parsed config and the fragments it was merged from.
pub(crate) struct Parsed {
    pub config: Config,
    pub fragments: Vec<PathBuf>,
}

/// [`parse`], with the `kiln.yaml`'s canonical path when it is a file (so
/// a fragment that includes it back is a cycle), the reader of fragments,
/// and whether the build's inputs must be there.
pub(crate) fn parse_sources(
    file_name: &str,
    text: &str,
    habitat_dir: &Path,
    file: Option<&Path>,
    read: include::Read<'_>,
    inputs: Inputs,
) -> Result<Parsed, Diagnostics> {
    let root = match node::parse_yaml(text) {
        Ok(root) => root,
        Err(err) => {
            let mut sink = Sink::new(file_name, text);
            let (message, hint) = err.worded();
            sink.push(err.loc, message, hint);
            return Err(sink.finish());
        }
    };
    let dir = std::fs::canonicalize(habitat_dir).unwrap_or_else(|_| habitat_dir.to_path_buf());
    let included = include::resolve(main_source(file_name, text, file), root, &dir, read);
    let mut sink = sink_of(&included);
    for p in &included.problems {
        sink.push(p.loc, p.message.clone(), p.hint.clone());
    }
    let root = &included.root;
    let schema = schema();
    let value = shape::check(root, &schema, &mut sink);
    // With structural errors the value leaves out what was wrong; the meaning
    // checks still run on the rest, so one run reports everything it can.
    let complete = sink.is_empty();
    let Some(value) = value else {
        return Err(sink.finish());
    };
    let mut config: Config = match serde_json::from_value(value) {
        Ok(config) => config,
        Err(_) if !complete => return Err(sink.finish()),
        Err(err) => {
            // The shape check should have caught this; say so rather than hide it.
            sink.error(
                root.loc,
                format!("config does not match its schema: {err} (this is a bug in kiln)"),
            );
            return Err(sink.finish());
        }
    };
    include::assign_roots(&mut config, root, &included.sources);
    let base_users = bases::check(&dir, &config.name, root, &mut sink, read_base);
    validate::check(
        &config,
        root,
        &dir,
        complete,
        &base_users,
        inputs,
        &mut sink,
    );
    if sink.is_empty() {
        Ok(Parsed {
            config,
            fragments: included.fragments(),
        })
    } else {
        Err(sink.finish())
    }
}

/// The habitat at `path` (a directory or its `kiln.yaml`) for the walk of
/// base habitats: its canonical directory and text; `None` when unreadable.
fn read_base(path: &Path) -> Option<bases::BaseFile> {
    let file = if path.is_dir() {
        path.join(FILE_NAME)
    } else {
        path.to_path_buf()
    };
    let file = std::fs::canonicalize(file).ok()?;
    let text = std::fs::read_to_string(&file).ok()?;
    let dir = file.parent()?.to_path_buf();
    let shown = file.display().to_string();
    let tree = merged(&shown, &text, &dir, Some(&file)).map(|i| i.root);
    Some(bases::BaseFile { dir, tree })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A habitat in a temp dir whose every build input is named but absent
    /// (a deploy machine's copy of `kiln.yaml`), with `extra` appended.
    fn deploy_dir(extra: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let yaml = format!(
            r#"name: web
build:
  base: {{ habitat: ../base }}
  files:
    copies:
      - {{ source: files/app.conf, dest: /etc/app/app.conf, owner: app }}
      - {{ source: conf.d, dest: /etc/app/ }}
  repos:
    - {{ url: src-repo, path: /opt/app/src }}
    - {{ url: "file:///nowhere/kdeploy-repo", path: /opt/app/other }}
  tools:
    - {{ name: hello, source: tools/hello.sh, sha256: "{}", dest: /usr/local/bin/hello }}
secrets:
  - {{ id: token, file: secrets/token }}
instances:
  members:
    web: {{}}
registry:
  repository: 127.0.0.1:5000/team/web
{extra}"#,
            "a".repeat(64)
        );
        std::fs::write(d.path().join(FILE_NAME), yaml).unwrap();
        d
    }

    fn messages(d: Diagnostics) -> Vec<String> {
        d.iter().map(|d| d.message.clone()).collect()
    }

    #[test]
    fn without_inputs_required_absent_build_inputs_are_no_error_and_the_config_still_is_checked() {
        let d = deploy_dir("");
        // As ever, each absent input is an error.
        let required = messages(load(d.path()).unwrap_err());
        for want in [
            "copy source `files/app.conf` does not exist",
            "copy source `conf.d` does not exist",
            "repo `src-repo` does not exist",
            "repo `file:///nowhere/kdeploy-repo` does not exist",
            "tool source `tools/hello.sh` does not exist",
            "base habitat `../base` does not exist",
        ] {
            assert!(required.iter().any(|m| m == want), "{want}: {required:?}");
        }
        let h = load_with(d.path(), Inputs::NotRequired).expect("a deploy machine's kiln.yaml");
        assert_eq!(h.config.name, "web");

        // What the config says by itself is still checked.
        for (extra, want) in [("  tags: [\"{nope}\"]\n", "nope"), ("other: 1\n", "other")] {
            let d = deploy_dir(extra);
            let got = messages(load_with(d.path(), Inputs::NotRequired).unwrap_err());
            assert!(got.iter().any(|m| m.contains(want)), "{want}: {got:?}");
        }
        // A copy source outside the habitat is refused without looking.
        let d = deploy_dir("");
        let text = std::fs::read_to_string(d.path().join(FILE_NAME)).unwrap();
        std::fs::write(
            d.path().join(FILE_NAME),
            text.replace("source: conf.d", "source: ../conf.d"),
        )
        .unwrap();
        let got = messages(load_with(d.path(), Inputs::NotRequired).unwrap_err());
        assert_eq!(
            got,
            ["copy source `../conf.d` is outside the habitat directory"]
        );
    }

    #[test]
    fn without_inputs_required_a_missing_include_is_still_an_error() {
        let d = deploy_dir("include: [shared/kiln.yaml]\n");
        let got = messages(load_with(d.path(), Inputs::NotRequired).unwrap_err());
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("shared/kiln.yaml"), "{got:?}");
    }

    #[test]
    fn without_inputs_required_an_input_that_is_there_is_checked_as_ever() {
        let d = deploy_dir("");
        std::fs::create_dir(d.path().join("files")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("files/app.conf")).unwrap();
        let got = messages(load_with(d.path(), Inputs::NotRequired).unwrap_err());
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("leads out of the habitat directory"),
            "{got:?}"
        );
    }
}
