//! Prints why a command failed. `main` calls it once per run, so every error
//! is printed once and in one place; the wording of library errors is their
//! own `Display`.

use anstyle::{AnsiColor, Style};

use kiln_core::registry::push::PushError;

use crate::exit::Failure;
use crate::render::stdout::{self, err};
use crate::render::tty::colour_stderr;

/// `text` with its `error:` and `hint:` labels coloured (red, cyan) when
/// `colour`; the words are the same either way.
pub fn painted(text: &str, colour: bool) -> String {
    if !colour {
        return text.to_string();
    }
    let paint =
        |style: Style, label: &str| format!("{}{label}{}", style.render(), style.render_reset());
    let mut out = String::new();
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if let Some(rest) = line.strip_prefix("error:") {
            out.push_str(&paint(AnsiColor::Red.on_default().bold(), "error:"));
            out.push_str(rest);
        } else if let Some(rest) = line.strip_prefix("hint:") {
            out.push_str(&paint(AnsiColor::Cyan.on_default().bold(), "hint:"));
            out.push_str(rest);
        } else {
            out.push_str(line);
        }
    }
    out
}

pub fn print(failure: &Failure) {
    let colour = colour_stderr();
    match failure {
        // Diagnostics end with their own newline.
        Failure::Config(d) => stdout::message(format_args!("{d}")),
        Failure::Build(e) => err!("{}", painted(&e.to_string(), colour)),
        Failure::Instance(e) => err!("{}", painted(&e.to_string(), colour)),
        Failure::Interrupted { removed, .. } => {
            let noun = if *removed == 1 {
                "container"
            } else {
                "containers"
            };
            err!("interrupted: removed {removed} build {noun}; snapshots so far are kept")
        }
        Failure::NotAMember { arg } => err!(
            "{}",
            painted(
                &format!(
                    "error: `{arg}` is a path, not a member name\nhint: name the habitat with `-C {arg}`"
                ),
                colour
            )
        ),
        Failure::Registry(e) => {
            let mut text = format!("error: {e}");
            if let Some(hint) = e.hint() {
                text.push_str(&format!("\nhint: {hint}"));
            }
            err!("{}", painted(&text, colour))
        }
        Failure::NoRegistry { file, command } => err!(
            "{}",
            painted(
                &format!(
                    "error: `{}` has no `registry:` section, which `kiln {command}` needs\nhint: add `registry: {{ repository: HOST[:PORT]/PATH }}` (see docs/config.md)",
                    file.display()
                ),
                colour
            )
        ),
        Failure::Promote(e) => err!("{}", painted(&format!("error: {e}"), colour)),
        Failure::Runtime(e) => err!("error: cannot start the async runtime: {e}"),
        Failure::Schema(e) => err!("error: cannot render the schema: {e}"),
        Failure::Cache(e) => err!("{}", painted(&e.to_string(), colour)),
        Failure::Push(e) => err!("{}", painted(&push_error(e), colour)),
        Failure::BadTag { template, error } => err!(
            "{}",
            painted(&format!("error: --tag `{template}`: {error}"), colour)
        ),
    }
}

/// `error: …` and, when the user can act, `hint: …`.
fn push_error(e: &PushError) -> String {
    let hint = match e {
        PushError::Registry(r) => r.hint(),
        _ => None,
    };
    match hint {
        Some(h) => format!("error: {e}\nhint: {h}"),
        None => format!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::painted;

    #[test]
    fn error_and_hint_labels_are_coloured_only_when_asked() {
        let text = "error: phase `6-setup` failed\n  | output\nhint: build again to resume";
        assert_eq!(painted(text, false), text);
        let coloured = painted(text, true);
        assert!(
            coloured.contains("\x1b[1m\x1b[31merror:\x1b[0m phase"),
            "{coloured:?}"
        );
        assert!(
            coloured.contains("\x1b[1m\x1b[36mhint:\x1b[0m build"),
            "{coloured:?}"
        );
        assert!(coloured.contains("\n  | output\n"));
    }
}
