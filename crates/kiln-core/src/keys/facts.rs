//! `Facts`: what keys read from outside the config, resolved on the host and
//! the engine before planning (the base's identity, copy digests, repo commits).

/// What the base phase resolved to: the thing whose identity enters the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseFact {
    /// A local image; `id` is its content-addressed id, `None` when it is not
    /// present locally yet (it will be pulled).
    Image {
        reference: String,
        id: Option<String>,
    },
    /// Another habitat's final key.
    Habitat { final_key: String },
    /// The bootstrap parameters' key.
    Bootstrap { key: String },
}

/// Facts read from outside the config that phases depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub base: BaseFact,
    /// Content digest of each `files.copies` entry, in config order.
    pub copies: Vec<String>,
    /// Commit each `repos` entry resolved to, in config order.
    pub repos: Vec<String>,
    /// The digest of the init the final phase places, with `services:`
    /// (SPEC §9): a new init rebuilds `final` only. `None` without services.
    pub init: Option<String>,
}
