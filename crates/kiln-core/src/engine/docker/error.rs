//! bollard's errors as kiln's: a transport failure is `Unreachable`, a 404
//! the matching `NoSuch*`, anything else `Refused`, worded with the cause.

use bollard::errors::Error as BollardError;

use super::super::EngineError;
use super::DockerEngine;

impl DockerEngine {
    /// Maps a bollard error: transport failures become `Unreachable`, 404s the
    /// matching `NoSuch*` (decided by `not_found`), everything else `Refused`.
    pub(super) fn error(
        &self,
        op: &str,
        e: BollardError,
        not_found: impl FnOnce(&str) -> Option<EngineError>,
    ) -> EngineError {
        match e {
            BollardError::DockerResponseServerError {
                status_code: 404,
                ref message,
            } => not_found(message).unwrap_or_else(|| refused(op, message.clone())),
            BollardError::DockerResponseServerError { message, .. } => refused(op, message),
            e if is_transport(&e) => EngineError::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: describe(&e),
            },
            e => refused(op, e.to_string()),
        }
    }
}

pub(super) fn refused(op: &str, message: String) -> EngineError {
    EngineError::Refused {
        op: op.to_string(),
        message,
    }
}

pub(super) fn no_such_container(id: &str) -> impl FnOnce(&str) -> Option<EngineError> + '_ {
    move |message: &str| {
        message
            .contains("No such container")
            .then(|| EngineError::NoSuchContainer(id.to_string()))
    }
}

pub(super) fn no_such_image(reference: &str) -> impl FnOnce(&str) -> Option<EngineError> + '_ {
    move |_| Some(EngineError::NoSuchImage(reference.to_string()))
}

/// Errors that mean "nothing (sane) answered", as opposed to an answer that said no.
fn is_transport(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::HyperLegacyError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
            | BollardError::SocketNotFoundError(_)
            | BollardError::RequestTimeoutError
            | BollardError::HttpClientError { .. }
            | BollardError::UnsupportedURISchemeError { .. }
    )
}

/// A one-line description of a bollard error including its source chain, so
/// "connection refused" or "No such file or directory" reaches the user.
pub(super) fn describe(e: &BollardError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
