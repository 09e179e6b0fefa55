//! From a request path to a file inside the media root, and nothing outside it.
//!
//! Two steps, so that the rules can be tested without a file system:
//! 1. [`segments`] decodes the raw path one segment at a time and refuses `.`/`..`, encoded
//!    slashes and backslashes, NUL, empty segments and hidden names. Decoding per segment is what
//!    makes `/%2e%2e/x` and `/..%2fx` harmless: they can never become a separator.
//! 2. [`resolve`] joins the segments to the canonical root, canonicalises the result (following
//!    symlinks) and checks that it is still inside the root, so a symlink that leads out is
//!    refused too.

use std::path::{Path, PathBuf};

use http::StatusCode;
use percent_encoding::percent_decode_str;

/// Why a path was refused. Each maps to a client error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("malformed path: {0}")]
    Malformed(&'static str),
    #[error("path escapes the media root")]
    Escapes,
    #[error("not found")]
    NotFound,
}

impl PathError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            PathError::Malformed(_) | PathError::Escapes => StatusCode::BAD_REQUEST,
            PathError::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// Decodes and checks a raw request path (without query) into its segments.
pub fn segments(raw: &str) -> Result<Vec<String>, PathError> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(PathError::Malformed("path must start with /"));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    if raw.contains('\\') {
        return Err(PathError::Malformed("backslash in path"));
    }
    let mut out = Vec::new();
    for raw_segment in rest.split('/') {
        if raw_segment.is_empty() {
            return Err(PathError::Malformed("empty path segment"));
        }
        let decoded = percent_decode_str(raw_segment)
            .decode_utf8()
            .map_err(|_| PathError::Malformed("path is not UTF-8"))?;
        if decoded == "." || decoded == ".." {
            return Err(PathError::Escapes);
        }
        if decoded.contains(['/', '\\', '\0']) {
            return Err(PathError::Malformed("encoded separator or NUL in path"));
        }
        if decoded.starts_with('.') {
            // Hidden files (.git, .env) are never media.
            return Err(PathError::NotFound);
        }
        out.push(decoded.into_owned());
    }
    Ok(out)
}

/// Finds the regular file that `segments` names below `root` (which must be canonical).
pub async fn resolve(root: &Path, segments: &[String]) -> Result<PathBuf, PathError> {
    let mut path = root.to_path_buf();
    path.extend(segments);
    let canonical = tokio::fs::canonicalize(&path)
        .await
        .map_err(|_| PathError::NotFound)?;
    if !canonical.starts_with(root) {
        return Err(PathError::Escapes);
    }
    match tokio::fs::metadata(&canonical).await {
        Ok(meta) if meta.is_file() => Ok(canonical),
        _ => Err(PathError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Vec<String> {
        segments(raw).expect(raw)
    }

    #[test]
    fn ordinary_paths_decode() {
        assert_eq!(
            ok("/vod/a/720p/seg_00001.m4s"),
            ["vod", "a", "720p", "seg_00001.m4s"]
        );
        assert_eq!(ok("/vod/my%20title/x.m3u8"), ["vod", "my title", "x.m3u8"]);
        assert!(ok("/").is_empty());
    }

    #[test]
    fn traversal_is_refused() {
        for raw in [
            "/../Cargo.toml",
            "/%2e%2e/Cargo.toml",
            "/vod/./x",
            "/vod/%2E%2e/x",
            "/vod/..",
        ] {
            assert_eq!(segments(raw), Err(PathError::Escapes), "{raw}");
        }
        for raw in [
            "/..%2fCargo.toml",
            "/vod%5c..%5cx",
            "/a\\b",
            "//etc/passwd",
            "/a//b",
            "/a%00b",
            "relative",
        ] {
            assert!(
                matches!(segments(raw), Err(PathError::Malformed(_))),
                "{raw}"
            );
        }
        assert_eq!(segments("/.git/config"), Err(PathError::NotFound));
    }

    proptest::proptest! {
        #[test]
        fn accepted_segments_never_climb(raw in "/[a-z./%2eEfF5cC0\\\\]{0,24}") {
            if let Ok(segs) = segments(&raw) {
                for s in segs {
                    proptest::prop_assert!(s != ".." && s != "." && !s.contains('/') && !s.contains('\\'));
                }
            }
        }
    }
}
