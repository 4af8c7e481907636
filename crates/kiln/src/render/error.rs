//! Prints why a command failed. `main` calls it once per run, so every error
//! is printed once and in one place; the wording of library errors is their
//! own `Display`.

use crate::exit::Failure;
use crate::render::stdout::{self, err};

pub fn print(failure: &Failure) {
    match failure {
        // Diagnostics end with their own newline.
        Failure::Config(d) => stdout::message(format_args!("{d}")),
        Failure::Build(e) => err!("{e}"),
        Failure::Instance(e) => err!("{e}"),
        Failure::Interrupted { removed, .. } => {
            err!("interrupted: removed {removed} build container(s); snapshots so far are kept")
        }
        Failure::NotAMember { arg } => err!(
            "error: `{arg}` is a path, not a member name\nhint: name the habitat with `-C {arg}`"
        ),
        Failure::Runtime(e) => err!("error: cannot start the async runtime: {e}"),
        Failure::Schema(e) => err!("error: cannot render the schema: {e}"),
    }
}
