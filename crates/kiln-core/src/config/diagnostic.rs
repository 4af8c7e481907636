//! Every problem found in a `kiln.yaml`, each pointing at its line and column and
//! rendered like a compiler error, so a user can fix the whole file in one pass.

use std::fmt;

use super::node::Loc;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it, e.g. `habitats/x/kiln.yaml`.
    pub file: String,
    /// 1-based line; 0 when the problem has no place in the file (e.g. it is missing).
    pub line: usize,
    /// 1-based column, in characters; 0 when `line` is 0.
    pub column: usize,
    /// How many characters to underline.
    pub len: usize,
    /// The offending line of the file, as written.
    pub source_line: String,
    /// Lowercase, names things in backticks.
    pub message: String,
    /// What the user can do about it, e.g. `did you mean `packages`?`.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn line(&self) -> usize {
        self.line
    }

    pub fn column(&self) -> usize {
        self.column
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl Diagnostic {
    /// Render with a gutter `width` digits wide, so that several diagnostics
    /// printed together line up.
    fn render(&self, f: &mut fmt::Formatter<'_>, width: usize) -> fmt::Result {
        let pad = " ".repeat(width);
        let file = escaped(&self.file);
        writeln!(f, "error: {}", escaped(&self.message))?;
        if self.line == 0 {
            writeln!(f, "{pad}--> {file}")?;
        } else {
            // A URL's credentials become `*`s, as many, so the carets stay put.
            let masked = super::url::credentials_masked(&self.source_line);
            let (shown, start, len) = shown_line(&masked, self.column, self.len);
            writeln!(f, "{pad}--> {file}:{}:{}", self.line, self.column)?;
            writeln!(f, "{pad} |")?;
            writeln!(f, "{:>width$} | {}", self.line, shown.trim_end())?;
            writeln!(f, "{pad} | {}{}", " ".repeat(start), "^".repeat(len.max(1)))?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "{pad} = hint: {}", escaped(hint))?;
        }
        Ok(())
    }

    fn gutter_width(&self) -> usize {
        self.line.max(1).to_string().len()
    }
}

/// Characters a terminal would act on rather than show: C0 and C1 controls
/// (ESC starts an escape sequence, an OSC can set the window title or write
/// the clipboard) and the bidirectional overrides that reorder what is shown.
fn is_unshowable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// How one character is shown: itself, or its escape (`\u{1b}`).
fn show(c: char) -> std::borrow::Cow<'static, str> {
    if is_unshowable(c) {
        c.escape_unicode().to_string().into()
    } else {
        String::from(c).into()
    }
}

/// `text` with every character a terminal would act on escaped, so a config
/// can never drive the terminal that shows its diagnostics.
fn escaped(text: &str) -> String {
    text.chars().map(show).collect()
}

/// The source line as shown, and where its carets start and how many there
/// are: tabs become single spaces and control characters their escapes, so
/// the carets stay under the characters they mark.
fn shown_line(line: &str, column: usize, len: usize) -> (String, usize, usize) {
    let first = column.saturating_sub(1);
    let mut shown = String::new();
    let (mut start, mut width) = (0, 0);
    for (i, c) in line.chars().enumerate() {
        let piece = if c == '\t' { " ".into() } else { show(c) };
        let n = piece.chars().count();
        if i < first {
            start += n;
        } else if i < first + len.max(1) {
            width += n;
        }
        shown.push_str(&piece);
    }
    // A caret past the end of the line (a missing value) stays where it was.
    if line.chars().count() < first {
        start += first - line.chars().count();
    }
    (shown, start, width)
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f, self.gutter_width())
    }
}

/// All the problems in one config file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    pub(crate) fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// A problem with no place in the file (it cannot be read, or is missing).
    pub(crate) fn unlocated(
        file: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Self {
        Diagnostics {
            items: vec![Diagnostic {
                file: file.into(),
                line: 0,
                column: 0,
                len: 0,
                source_line: String::new(),
                message: message.into(),
                hint,
            }],
        }
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .items
            .iter()
            .map(Diagnostic::gutter_width)
            .max()
            .unwrap_or(1);
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            d.render(f, width)?;
        }
        if self.items.len() > 1 {
            let mut files: Vec<String> = Vec::new();
            for d in &self.items {
                let name = format!("`{}`", escaped(&d.file));
                if !files.contains(&name) {
                    files.push(name);
                }
            }
            let files = match files.as_slice() {
                [init @ .., last] if !init.is_empty() => format!("{} and {last}", init.join(", ")),
                _ => files.concat(),
            };
            writeln!(f)?;
            writeln!(f, "error: {} problems in {files}", self.items.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics for the files of one habitat (its `kiln.yaml` and
/// the fragments it includes), filling in each one's file name and source
/// line from the file its [`Loc`] names.
pub(crate) struct Sink<'t> {
    /// By file id ([`Loc::file`]); shared with child sinks.
    files: std::rc::Rc<Vec<SinkFile<'t>>>,
    /// Each with the id of its file, for ordering.
    out: Vec<(u16, Diagnostic)>,
}

struct SinkFile<'t> {
    name: String,
    text: &'t str,
    /// The text's lines, split once (on the first diagnostic) and shared
    /// with child sinks: finding each diagnostic's line by walking the text
    /// made a file with many problems quadratic to check.
    lines: std::cell::OnceCell<Vec<&'t str>>,
}

impl<'t> Sink<'t> {
    pub fn new(file: &str, text: &'t str) -> Self {
        Sink::files(vec![(file.to_string(), text)])
    }

    /// A sink for several files: a diagnostic at a [`Loc`] whose `file` is
    /// `i` is in `files[i]` (name and text).
    pub fn files(files: Vec<(String, &'t str)>) -> Self {
        let files = files
            .into_iter()
            .map(|(name, text)| SinkFile {
                name,
                text,
                lines: Default::default(),
            })
            .collect();
        Sink {
            files: std::rc::Rc::new(files),
            out: Vec::new(),
        }
    }

    /// A scratch sink for trying one reading of a node without reporting it.
    pub fn child(&self) -> Sink<'t> {
        Sink {
            files: self.files.clone(),
            out: Vec::new(),
        }
    }

    pub fn error(&mut self, loc: Loc, message: impl Into<String>) {
        self.push(loc, message.into(), None);
    }

    pub fn error_hint(&mut self, loc: Loc, message: impl Into<String>, hint: impl Into<String>) {
        self.push(loc, message.into(), Some(hint.into()));
    }

    /// The name diagnostics give the file with id `file`.
    pub fn file_name(&self, file: u16) -> &str {
        self.file(file).map_or("", |f| f.name.as_str())
    }

    fn file(&self, id: u16) -> Option<&SinkFile<'t>> {
        self.files
            .get(usize::from(id))
            .or_else(|| self.files.first())
    }

    pub fn push(&mut self, loc: Loc, message: String, hint: Option<String>) {
        let (name, source_line) = match self.file(loc.file) {
            Some(f) => {
                let lines = f.lines.get_or_init(|| super::node::lines(f.text).collect());
                let line = lines.get(loc.line.saturating_sub(1)).copied().unwrap_or("");
                (f.name.clone(), line.to_string())
            }
            None => (String::new(), String::new()),
        };
        // Never underline past the end of the shown line.
        let room = source_line
            .chars()
            .count()
            .saturating_sub(loc.column.saturating_sub(1));
        self.out.push((
            loc.file,
            Diagnostic {
                file: name,
                line: loc.line,
                column: loc.column,
                len: loc.len.min(room).max(1),
                source_line,
                message,
                hint,
            },
        ));
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Ordered by file (the `kiln.yaml` first, then the fragments in the
    /// order they were included), then by position in it.
    pub fn finish(mut self) -> Diagnostics {
        self.out.sort_by_key(|(file, d)| (*file, d.line, d.column));
        let mut out = Diagnostics::default();
        for (_, d) in self.out {
            if out.items.last() != Some(&d) {
                out.push(d);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_many_problems_split_the_text_once() {
        // Each diagnostic used to find its line by walking the text from the
        // start: 20,000 problems took minutes. The lines are split once and
        // shared with the scratch sinks that try readings of a node.
        let text = "a: 1\nb: 2\nc: 3\n";
        let mut sink = Sink::new("kiln.yaml", text);
        let child = sink.child();
        sink.error(
            Loc {
                line: 2,
                column: 1,
                len: 1,
                file: 0,
            },
            "one",
        );
        assert!(std::rc::Rc::ptr_eq(&sink.files, &child.files));
        assert_eq!(child.files[0].lines.get().map(Vec::len), Some(3));
        assert_eq!(sink.finish().items()[0].source_line, "b: 2");
    }
}
