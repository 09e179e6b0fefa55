//! Strict TOML configuration loading.
//!
//! Every server's config struct uses `#[serde(deny_unknown_fields)]`; this module turns what the
//! `toml` crate reports into one error that names the file, the line and the key, so that an
//! operator with a typo is told exactly where it is.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::Error;

/// Reads and parses `path` as `T`. A missing file is [`Error::ConfigRead`]; a syntax error, an
/// unknown key or a bad value is [`Error::Config`] with the file name, the line, the column and
/// the key.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path).map_err(|error| Error::ConfigRead {
        path: path.to_path_buf(),
        error,
    })?;
    parse_in(&text, Some(path))
}

/// Parses TOML text as `T`; the error ([`Error::Config`], with no path) carries line, column
/// and key.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    parse_in(text, None)
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

fn parse_in<T: DeserializeOwned>(text: &str, path: Option<&Path>) -> Result<T, Error> {
    toml::from_str(text).map_err(|error| {
        let (line, column, key) = match error.span() {
            Some(span) => {
                let (line, column, key) = locate(text, span.start);
                (Some(line), Some(column), key)
            }
            None => (None, None, None),
        };
        Error::Config {
            path: path.map(Path::to_path_buf),
            line,
            column,
            key,
            message: error.message().trim_end().to_owned(),
        }
    })
}

/// The line and column (from 1) of byte `offset` in `text`, and the key written on that line,
/// dotted with the table it is under (`live.window`). The key is a reading of the line, not of
/// the TOML grammar: `None` for a table header or a line without `=` (inside a multi-line
/// array, say), where the line number alone has to do.
fn locate(text: &str, offset: usize) -> (usize, usize, Option<String>) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let lines: Vec<&str> = text.lines().collect();
    let key = lines.get(line).and_then(|l| {
        let l = l.trim();
        if l.starts_with('[') || l.starts_with('#') {
            return None;
        }
        let key = l.split_once('=')?.0.trim();
        if key.is_empty() {
            return None;
        }
        let table = lines[..line]
            .iter()
            .map(|l| l.trim())
            .rfind(|l| l.starts_with('['))
            .and_then(|h| h.trim_start_matches('[').split(']').next())
            .map(str::trim);
        Some(match table {
            Some(table) if !table.is_empty() => format!("{table}.{key}"),
            _ => key.to_owned(),
        })
    });
    (line + 1, column, key)
}

/// Where a config error is, for its message: `config file X, line 2, column 1, key `k``.
pub(crate) fn place(
    path: Option<&Path>,
    line: Option<usize>,
    column: Option<usize>,
    key: Option<&str>,
) -> String {
    let mut place = match path {
        Some(path) => format!("config file {}", path.display()),
        None => "config".to_owned(),
    };
    if let Some(line) = line {
        place.push_str(&format!(", line {line}"));
    }
    if let Some(column) = column {
        place.push_str(&format!(", column {column}"));
    }
    if let Some(key) = key {
        place.push_str(&format!(", key `{key}`"));
    }
    place
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
        assert!(
            matches!(&err, Error::Config { line: Some(2), column: Some(1), key: Some(k), .. } if k == "listen_typo"),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(
                "config, line 2, column 1, key `listen_typo`: unknown field `listen_typo`"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_bad_value_in_a_table_is_named_with_its_table() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            live: Live,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Live {
            window: u32,
        }
        let err =
            parse::<Outer>("# live\n[live] # the channels\nwindow = \"three\"\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config, line 3, column 10, key `live.window`: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn missing_file_names_the_file() {
        let err = load::<Sample>(Path::new("/nonexistent/meridian.toml")).unwrap_err();
        assert!(matches!(err, Error::ConfigRead { .. }), "{err:?}");
        assert!(
            err.to_string().contains("/nonexistent/meridian.toml"),
            "{err}"
        );
    }

    #[test]
    fn a_file_error_names_file_line_and_key() {
        let (_dir, path) = test_support::temp_file("server.toml", "listen = \"x\"\n\nlistne = 1\n");
        let err = load::<Sample>(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "config file {}, line 3, column 1, key `listne`:",
                path.display()
            )),
            "{err}"
        );
    }
}
