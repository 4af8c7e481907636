//! The CLI's one integration-test binary (`cargo test -p kiln --test it`): the
//! real `kiln` binary run against the real Docker Engine. `support` is the
//! `Habitat`/`Test`/`Run` builder the others share. Filter by module, e.g.
//! `cargo test -p kiln --test it cli::`; `quickstart` builds
//! `examples/quickstart` and needs Debian's apt mirror.

mod support;

mod app_with_postgres;
mod cache;
mod check;
mod cli;
mod cli_surface;
mod corpus;
mod credentials;
mod deploy;
mod faults;
mod fidelity_files;
mod instance_volumes;
mod instances;
mod instances_cli;
mod kilnignore;
mod late_copies;
mod push;
mod quickstart;
mod remote;
mod repo_depth;
mod secrets;
mod services;
mod shell;
mod steps;
mod tty;
mod variables;
