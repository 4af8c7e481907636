//! The phases, one file each (base, env and final share `env_final.rs`: all
//! three only change the image config), with the pure helpers beside the
//! phases that use them (`accounts`, `script`).

pub mod accounts;
mod base;
mod env_final;
mod files;
mod habitat;
mod repos;
pub mod script;
mod setup;
mod tools;
mod users;
mod verify;
