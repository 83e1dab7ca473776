//! Bounded, root-confined file access for detection: nothing outside the root is read (symlinks are resolved and
//! checked), no file is read past 1 MiB, and directory scans are capped.

use super::DetectError;
use std::cell::RefCell;
use std::fs;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

/// Largest number of bytes detection reads from one file.
const MAX_READ: u64 = 1024 * 1024;
/// Directories that never hold the app's own entry points.
const SKIPPED_DIRS: [&str; 8] = ["node_modules", "target", "vendor", "venv", "env", "__pycache__", "dist", "build"];
/// Upper bound on directories looked into when searching for nested markers.
const MAX_SCANNED_DIRS: usize = 200;
/// Upper bound on nested markers reported.
const MAX_NESTED: usize = 10;

/// A repository root opened for detection, with its top-level listing and the notes gathered while reading.
pub(super) struct Repo {
    /// The canonical root; every path read must resolve inside it.
    root: PathBuf,
    /// Top-level entry names, sorted.
    entries: Vec<String>,
    /// Things worth telling the user that came up while reading (ignored symlinks, truncated files).
    notes: RefCell<Vec<String>>,
}

/// Turns an I/O error on `path` into the module's error.
fn io_error(path: &str, error: &std::io::Error) -> DetectError {
    DetectError { path: path.to_string(), message: error.to_string() }
}

impl Repo {
    /// Opens `root`, which must be a readable directory.
    pub(super) fn open(root: &Path) -> Result<Self, DetectError> {
        let shown = root.display().to_string();
        let canonical = root.canonicalize().map_err(|e| io_error(&shown, &e))?;
        if !canonical.is_dir() {
            return Err(DetectError { path: shown, message: "not a directory".to_string() });
        }
        let mut entries = Vec::new();
        for entry in fs::read_dir(&canonical).map_err(|e| io_error(&shown, &e))? {
            let entry = entry.map_err(|e| io_error(&shown, &e))?;
            entries.push(entry.file_name().to_string_lossy().into_owned());
        }
        entries.sort();
        Ok(Repo { root: canonical, entries, notes: RefCell::new(Vec::new()) })
    }

    /// The sorted names at the top level of the root.
    pub(super) fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Records a note once; notes end up in the evidence of whatever is detected.
    pub(super) fn note(&self, note: String) {
        let mut notes = self.notes.borrow_mut();
        if !notes.contains(&note) {
            notes.push(note);
        }
    }

    /// Hands over the notes gathered so far.
    pub(super) fn take_notes(&self) -> Vec<String> {
        self.notes.take()
    }

    /// The real path of `rel` if it exists and stays inside the root.
    fn resolve(&self, rel: &str) -> Option<PathBuf> {
        let resolved = self.root.join(rel).canonicalize().ok()?;
        if resolved.starts_with(&self.root) {
            Some(resolved)
        } else {
            self.note(format!("{rel} points outside the repository; ignored"));
            None
        }
    }

    /// True when a top-level entry has exactly this name (case-sensitive) and is a file inside the root.
    pub(super) fn is_top_file(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e == name) && self.is_file(name)
    }

    /// True when `rel` (slash-separated, relative to the root) is a file inside the root.
    pub(super) fn is_file(&self, rel: &str) -> bool {
        self.resolve(rel).is_some_and(|p| p.is_file())
    }

    /// True when `rel` is a directory inside the root.
    pub(super) fn is_dir(&self, rel: &str) -> bool {
        self.resolve(rel).is_some_and(|p| p.is_dir())
    }

    /// The text of `rel` (lossily decoded, at most 1 MiB), or `None` when it is absent, not a file or outside.
    pub(super) fn read(&self, rel: &str) -> Result<Option<String>, DetectError> {
        let Some(path) = self.resolve(rel).filter(|p| p.is_file()) else {
            return Ok(None);
        };
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(rel, &e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_READ + 1).read_to_end(&mut bytes).map_err(|e| io_error(rel, &e))?;
        if bytes.len() as u64 > MAX_READ {
            bytes.truncate(MAX_READ as usize);
            self.note(format!("{rel} is larger than 1 MiB; only the first 1 MiB was read"));
        }
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Sorted names of the subdirectories of `rel` (`""` for the root) that are inside the root, skipping hidden
    /// directories and dependency or output folders.
    pub(super) fn subdirs(&self, rel: &str) -> Result<Vec<String>, DetectError> {
        let Some(path) = self.resolve(if rel.is_empty() { "." } else { rel }).filter(|p| p.is_dir()) else {
            return Ok(Vec::new());
        };
        let shown = if rel.is_empty() { "." } else { rel };
        let mut dirs = Vec::new();
        for entry in fs::read_dir(&path).map_err(|e| io_error(shown, &e))? {
            let name = entry.map_err(|e| io_error(shown, &e))?.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || SKIPPED_DIRS.contains(&name.as_str()) {
                continue;
            }
            if self.is_dir(&join(rel, &name)) {
                dirs.push(name);
            }
        }
        dirs.sort();
        Ok(dirs)
    }

    /// Directories up to two levels below the root that contain one of `markers`, with the first marker found.
    pub(super) fn nested_markers(&self, markers: &[&str]) -> Result<Vec<(String, String)>, DetectError> {
        let mut found = Vec::new();
        let mut queue = self.subdirs("")?;
        let mut scanned = 0;
        let mut next = 0;
        while next < queue.len() && scanned < MAX_SCANNED_DIRS && found.len() < MAX_NESTED {
            let dir = queue[next].clone();
            next += 1;
            scanned += 1;
            if let Some(marker) = markers.iter().find(|m| self.is_file(&join(&dir, m))) {
                found.push((dir, (*marker).to_string()));
            } else if !dir.contains('/') {
                queue.extend(self.subdirs(&dir)?.into_iter().map(|sub| join(&dir, &sub)));
            }
        }
        Ok(found)
    }
}

/// Joins slash-separated relative paths, treating `""` as the root.
pub(super) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() || dir == "." { name.to_string() } else { format!("{dir}/{name}") }
}
