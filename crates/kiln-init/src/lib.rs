//! kiln's init, as a library: the services spec kiln writes into an image
//! ([`spec`]) and the pure supervision state machine ([`supervise`]) that the
//! `kiln-init` binary drives. kiln-core uses only [`spec`].

pub mod spec;
pub mod supervise;
