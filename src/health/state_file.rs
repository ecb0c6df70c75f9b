//! `server.state_file`: the drains, kept on disk so that they survive a restart or a
//! crash.
//!
//! The file is JSON naming the drained regions, `{"version": 1, "drained": ["eu-west"]}`:
//! by name, so it survives config changes that reorder regions. The health owner
//! ([`super::service`]) writes it after every drain or undrain, before the caller gets
//! its answer, atomically: a new file in the same folder, fsynced, renamed over the old
//! one, then the folder fsynced (the folder is created when missing). It is read once, at
//! start, before the first health is published. A missing file is an empty state; an
//! unreadable or malformed one is an error that names it, never ignored.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diag::Diagnostic;
use crate::model::Model;

/// The version of the file's format, written and understood.
pub const VERSION: u64 = 1;

/// What the file holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    version: u64,
    drained: Vec<String>,
}

/// What a well-formed file looks like, for error messages.
const EXPECTED: &str = r#"expected {"version": 1, "drained": ["region", ...]}"#;

/// The region names drained in `model`'s `server.state_file`: none without the key or
/// when the file does not exist (yet). Names are returned as written; the caller ignores
/// (and warns about) those the config no longer defines.
pub fn load(model: &Model) -> Result<Vec<String>, Diagnostic> {
    match &model.server.state_file {
        Some(path) => read(path),
        None => Ok(Vec::new()),
    }
}

/// The region names drained in the state file at `path`; empty when it does not exist.
pub fn read(path: &Path) -> Result<Vec<String>, Diagnostic> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            let msg = format!("cannot read the state file (server.state_file): {e}");
            return Err(Diagnostic::new(path, msg));
        }
    };
    parse(&text).map_err(|(message, pos)| {
        let d = Diagnostic::new(
            path,
            format!("not a valid state file (server.state_file): {message}; {EXPECTED}"),
        );
        match pos {
            Some((line, col)) => d.at(line, col),
            None => d,
        }
    })
}

/// What is wrong with a state file, and where (line, column) when known.
type Invalid = (String, Option<(usize, usize)>);

/// The drained names in `text`, or what is wrong with it.
fn parse(text: &str) -> Result<Vec<String>, Invalid> {
    let json_error = |e: serde_json::Error| -> Invalid {
        let pos = (e.line() > 0).then(|| (e.line(), e.column()));
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
        (message, pos)
    };
    // The version first, so that a newer format is named as such rather than as a
    // field this version does not know.
    let value: serde_json::Value = serde_json::from_str(text).map_err(json_error)?;
    match value.get("version") {
        Some(v) if v.as_u64() == Some(VERSION) => {}
        Some(v) => return Err((format!("version {v} is not supported"), None)),
        None => return Err(("no \"version\"".to_string(), None)),
    }
    let saved: Saved = serde_json::from_str(text).map_err(json_error)?;
    Ok(saved.drained)
}

/// A state file that could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteError {
    /// The state file.
    pub file: PathBuf,
    /// What failed, and why.
    pub cause: String,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot write the state file {}: {}",
            self.file.display(),
            self.cause
        )
    }
}

impl std::error::Error for WriteError {}

/// Saves `drained` (region names) to `path` atomically: writes a new file next to it,
/// fsyncs it, renames it over `path`, and fsyncs the folder, creating the folder first
/// when missing. A crash at any point leaves either the old file or the new one.
pub fn write(path: &Path, drained: &[String]) -> Result<(), WriteError> {
    let fail = |cause: String| WriteError {
        file: path.to_path_buf(),
        cause,
    };
    let (Some(folder), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(fail("the path names no file".to_string()));
    };
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    fs::create_dir_all(folder).map_err(|e| {
        fail(format!(
            "cannot create the folder {}: {e}",
            folder.display()
        ))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = folder.join(tmp_name);
    let saved = Saved {
        version: VERSION,
        drained: drained.to_vec(),
    };
    let mut text = serde_json::to_string_pretty(&saved).map_err(|e| fail(e.to_string()))?;
    text.push('\n');
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(fail(format!("cannot write {}: {e}", tmp.display())));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(fail(format!(
            "cannot rename {} over it: {e}",
            tmp.display()
        )));
    }
    fs::File::open(folder)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail(format!("cannot sync the folder {}: {e}", folder.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn missing_is_empty_and_a_write_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/sub/gslbd.json");
        assert_eq!(read(&path), Ok(Vec::new()));
        write(&path, &names(&["eu-west", "ap-south"])).unwrap();
        assert_eq!(read(&path), Ok(names(&["eu-west", "ap-south"])));
        let v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"version": 1, "drained": ["eu-west", "ap-south"]})
        );
        write(&path, &[]).unwrap();
        assert_eq!(read(&path), Ok(Vec::new()));
        // Nothing but the file is left in its folder.
        let left: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["gslbd.json"]);
    }

    #[test]
    fn corrupt_files_are_errors_naming_the_file_and_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gslbd.json");
        let cases = [
            ("{\"version\": 1, \"drained\": [\"a\",", "gslbd.json:1:"),
            ("", "EOF while parsing"),
            ("[]", "no \"version\""),
            (
                "{\"version\": 2, \"drained\": []}",
                "version 2 is not supported",
            ),
            (
                "{\"version\": 1, \"drained\": \"a\"}",
                "invalid type: string",
            ),
            ("{\"version\": 1}", "missing field `drained`"),
            (
                "{\"version\": 1, \"drained\": [], \"x\": 1}",
                "unknown field `x`",
            ),
        ];
        for (text, want) in cases {
            fs::write(&path, text).unwrap();
            let e = read(&path).unwrap_err().to_string();
            assert!(
                e.contains(&path.display().to_string()) && e.contains(want),
                "{text:?}: {e}"
            );
            assert!(e.contains("server.state_file"), "{e}");
        }
        // A folder where the file should be is unreadable, not empty.
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("cannot read the state file"), "{e}");
    }

    #[test]
    fn the_key_is_a_path_relative_to_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("gslb.toml");
        let parse = |text: &str| crate::config::parse(text, &config);
        let m = parse("[server]\nstate_file = \"state/gslbd.json\"\n").unwrap();
        let file = dir.path().join("state/gslbd.json");
        assert_eq!(m.server.state_file.as_deref(), Some(file.as_path()));
        assert_eq!(load(&m), Ok(Vec::new()));
        write(&file, &names(&["x"])).unwrap();
        assert_eq!(load(&m), Ok(names(&["x"])));
        let m = parse("[server]\nstate_file = \"/var/lib/gslbd/state.json\"\n").unwrap();
        let abs = Path::new("/var/lib/gslbd/state.json");
        assert_eq!(m.server.state_file.as_deref(), Some(abs));
        assert_eq!(parse("").unwrap().server.state_file, None);
        let e = parse("[server]\nstate_file = \"\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.state_file: must not be empty"), "{e}");
    }

    #[test]
    fn a_failed_write_names_the_file_and_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("blocker"), "a file, not a folder").unwrap();
        let path = dir.path().join("blocker/gslbd.json");
        let e = write(&path, &names(&["a"])).unwrap_err();
        assert_eq!(e.file, path);
        let text = e.to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("cannot create the folder"),
            "{text}"
        );
    }
}
