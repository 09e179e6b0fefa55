//! The edge's error type: who failed (the client, the origin, or the edge itself), which HTTP
//! status the viewer gets, whether retrying may help, and a short label for metrics.
//!
//! Errors are cheap to clone because coalesced waiters share one failure.

use std::sync::Arc;

use http::StatusCode;

/// Who failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Culprit {
    Client,
    Origin,
    Internal,
}

/// An edge failure.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// No origin could be connected to or answered (the message lists what each said).
    #[error("origin unreachable: {0}")]
    OriginUnreachable(Arc<str>),
    /// The origin took too long to send response headers.
    #[error("origin timed out before sending headers")]
    OriginTimeout,
    /// The origin's body broke off or stalled after the headers were sent.
    #[error("origin body failed: {0}")]
    OriginBody(Arc<str>),
    /// The request cannot be served as sent.
    #[error("bad request: {0}")]
    BadRequest(Arc<str>),
    /// A bug or resource failure inside the edge.
    #[error("internal: {0}")]
    Internal(Arc<str>),
}

impl EdgeError {
    pub fn culprit(&self) -> Culprit {
        match self {
            EdgeError::OriginUnreachable(_)
            | EdgeError::OriginTimeout
            | EdgeError::OriginBody(_) => Culprit::Origin,
            EdgeError::BadRequest(_) => Culprit::Client,
            EdgeError::Internal(_) => Culprit::Internal,
        }
    }

    /// The status a viewer gets for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            EdgeError::OriginUnreachable(_) | EdgeError::OriginBody(_) => StatusCode::BAD_GATEWAY,
            EdgeError::OriginTimeout => StatusCode::GATEWAY_TIMEOUT,
            EdgeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EdgeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the same request may succeed if tried again.
    pub fn retryable(&self) -> bool {
        !matches!(self, EdgeError::BadRequest(_))
    }

    /// A bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            EdgeError::OriginUnreachable(_) => "origin_unreachable",
            EdgeError::OriginTimeout => "origin_timeout",
            EdgeError::OriginBody(_) => "origin_body",
            EdgeError::BadRequest(_) => "bad_request",
            EdgeError::Internal(_) => "internal",
        }
    }

    /// The text a viewer sees: who failed and what to do.
    pub fn advice(&self) -> String {
        let who = match self.culprit() {
            Culprit::Client => "client error",
            Culprit::Origin => "origin error",
            Culprit::Internal => "edge error",
        };
        let hint = if self.retryable() {
            "; retry, or try another edge"
        } else {
            ""
        };
        format!("{who}: {self}{hint}")
    }

    /// An I/O error for a body stream that must end abnormally.
    pub fn to_io(&self) -> std::io::Error {
        std::io::Error::other(self.to_string())
    }
}
