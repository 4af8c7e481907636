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
pub mod model;
mod node;
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
}

/// Load the habitat at `path`: a habitat directory, or its `kiln.yaml` itself.
pub fn load(path: &Path) -> Result<Habitat, Diagnostics> {
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
    let config = parse(&file_shown, &text, &dir)?;
    Ok(Habitat {
        dir,
        file: canonical_file,
        config,
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
    let Some(loc) = node::parse_yaml(&text)
        .ok()
        .and_then(|root| root.get(path).map(|n| n.loc))
    else {
        return Diagnostics::unlocated(&shown, message, hint);
    };
    let mut sink = Sink::new(&shown, &text);
    sink.push(loc, message, hint);
    sink.finish()
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
    };
    let message = format!("invalid UTF-8: byte 0x{:02x} is not text", bytes[at]);
    sink.push(loc, message, hint);
    Err(sink.finish())
}

/// Parse and validate the text of a `kiln.yaml`. `file_name` is how diagnostics
/// name the file; `habitat_dir` is where copy sources are looked up.
pub fn parse(file_name: &str, text: &str, habitat_dir: &Path) -> Result<Config, Diagnostics> {
    let mut sink = Sink::new(file_name, text);
    let root = match node::parse_yaml(text) {
        Ok(root) => root,
        Err(err) => {
            // Reword the parser's messages that speak to its API rather than the user.
            let (message, hint) = if err.too_large {
                sink.push(err.loc, err.message, None);
                return Err(sink.finish());
            } else if err.message.contains("multiple YAML documents") {
                (
                    "more than one YAML document".to_string(),
                    Some("a `kiln.yaml` holds one document: remove the `---` separator"),
                )
            } else if err.message.contains("tabs disallowed") {
                (err.message.clone(), Some("indent with spaces, not tabs"))
            } else {
                (err.message.clone(), None)
            };
            sink.push(
                err.loc,
                format!("invalid YAML: {message}"),
                hint.map(str::to_string),
            );
            return Err(sink.finish());
        }
    };
    let schema = schema();
    let value = shape::check(&root, &schema, &mut sink);
    // With structural errors the value leaves out what was wrong; the meaning
    // checks still run on the rest, so one run reports everything it can.
    let complete = sink.is_empty();
    let Some(value) = value else {
        return Err(sink.finish());
    };
    let config: Config = match serde_json::from_value(value) {
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
    let dir = std::fs::canonicalize(habitat_dir).unwrap_or_else(|_| habitat_dir.to_path_buf());
    validate::check(&config, &root, &dir, complete, &mut sink);
    bases::check(&dir, &config.name, &root, &mut sink, read_base);
    if sink.is_empty() {
        Ok(config)
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
    Some(bases::BaseFile {
        dir: file.parent()?.to_path_buf(),
        text,
    })
}
