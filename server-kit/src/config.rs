//! Strict TOML configuration loading.
//!
//! Every server's config struct uses `#[serde(deny_unknown_fields)]`; this module turns what the
//! `toml` crate reports into one error that names the file, the line and the key, so that an
//! operator with a typo is told exactly where it is.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::Error;

/// Reads and parses `path` as `T`. A missing file, a syntax error, an unknown key or a bad value
/// all come back as [`Error::Config`] with the file name and the parser's line and column.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
        path: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&text).map_err(|message| Error::Config {
        path: path.display().to_string(),
        message,
    })
}

/// Parses TOML text as `T`; the error text carries line, column and key.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
}

/// Loads `path` when given, else starts from `T::default()`; then returns it with the folder that
/// relative paths inside the file are resolved against (the file's own folder, or the current
/// folder when there is no file).
pub fn load_or_default<T: DeserializeOwned + Default>(
    path: Option<&Path>,
) -> Result<(T, PathBuf), Error> {
    match path {
        Some(path) => {
            let base = path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            Ok((load(path)?, base))
        }
        None => Ok((T::default(), PathBuf::from("."))),
    }
}

/// Resolves a path written in a config file against the file's folder; absolute paths stay.
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        listen: String,
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = parse::<Sample>("listen = \"x\"\nlisten_typo = 1\n").unwrap_err();
        assert!(err.contains("listen_typo"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn missing_file_names_the_file() {
        let err = load::<Sample>(Path::new("/nonexistent/meridian.toml")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/meridian.toml"),
            "{err}"
        );
    }
}
