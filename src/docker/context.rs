//! Packs a build context directory into an in-memory tar, the way the Docker CLI does.
//!
//! Guarantees: `.dockerignore` in the context root is honoured (see [`IgnoreRules`]); symbolic links are stored
//! as links and never followed, so nothing outside the context is ever read; entries are owned by root with
//! normalised modes and times (like the CLI), so the same tree always gives the same archive.

use super::DockerError;
use super::ignore::IgnoreRules;
use std::fs;
use std::io;
use std::path::{Component, Path};

/// Where a generated Dockerfile is placed inside the context. It is also appended to the archive's
/// `.dockerignore`, which makes the engine drop it from the context after reading it, so `COPY . .` never
/// copies it into the image.
pub(super) const GENERATED_DOCKERFILE: &str = ".berth/Dockerfile";

const IGNORE_FILE: &str = ".dockerignore";

/// The archive of `dir`, with `dockerfile` (a path inside the context) always included even when ignored, or,
/// when `generated` is given, that text added as [`GENERATED_DOCKERFILE`] instead.
pub(super) fn pack(dir: &Path, dockerfile: &str, generated: Option<&str>) -> Result<Vec<u8>, DockerError> {
    let ctx_err = |source: io::Error| DockerError::Context { path: dir.to_owned(), source };
    if !fs::metadata(dir).map_err(ctx_err)?.is_dir() {
        return Err(ctx_err(io::Error::new(io::ErrorKind::NotADirectory, "not a directory")));
    }
    let forced = match generated {
        Some(_) => None,
        None => {
            check_inside(dockerfile)?;
            let meta = fs::symlink_metadata(dir.join(dockerfile)).ok();
            if !meta.is_some_and(|m| m.is_file()) {
                return Err(DockerError::Invalid {
                    message: format!("Dockerfile `{dockerfile}` is not a regular file in the build context"),
                });
            }
            Some(dockerfile.trim_start_matches("./").to_owned())
        }
    };
    let ignore_path = dir.join(IGNORE_FILE);
    let ignore_text = match fs::symlink_metadata(&ignore_path) {
        Ok(m) if m.is_file() => fs::read_to_string(&ignore_path).map_err(ctx_err)?,
        _ => String::new(),
    };
    let packer = Packer { root: dir, rules: IgnoreRules::parse(&ignore_text), forced, generated: generated.is_some() };
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    packer.walk(&mut tar, Path::new("")).map_err(ctx_err)?;
    if let Some(text) = generated {
        append_bytes(&mut tar, GENERATED_DOCKERFILE, text.as_bytes()).map_err(ctx_err)?;
        let ignore = format!("{ignore_text}\n{GENERATED_DOCKERFILE}\n");
        append_bytes(&mut tar, IGNORE_FILE, ignore.as_bytes()).map_err(ctx_err)?;
    }
    tar.into_inner().map_err(ctx_err)
}

/// Rejects absolute paths and `..`, so the Dockerfile is always inside the context.
fn check_inside(path: &str) -> Result<(), DockerError> {
    let p = Path::new(path);
    let inside = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if inside {
        Ok(())
    } else {
        Err(DockerError::Invalid { message: format!("Dockerfile path `{path}` must be relative, inside the context") })
    }
}

struct Packer<'a> {
    root: &'a Path,
    rules: IgnoreRules,
    forced: Option<String>,
    generated: bool,
}

impl Packer<'_> {
    fn walk(&self, tar: &mut tar::Builder<Vec<u8>>, rel_dir: &Path) -> io::Result<()> {
        let mut entries = fs::read_dir(self.root.join(rel_dir))?.collect::<Result<Vec<_>, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let rel = rel_dir.join(entry.file_name());
            let rel_str = rel.to_string_lossy().replace('\\', "/");
            // `file_type` does not follow symlinks: a link is packed as a link.
            let kind = entry.file_type()?;
            if self.generated && (rel_str == GENERATED_DOCKERFILE || rel_str == IGNORE_FILE) {
                // Replaced by the generated Dockerfile and the extended ignore file.
                continue;
            }
            let excluded = self.rules.is_excluded(&rel_str)
                && rel_str != IGNORE_FILE
                && self.forced.as_deref() != Some(rel_str.as_str());
            if kind.is_dir() {
                let holds_forced = self.forced.as_deref().is_some_and(|f| f.starts_with(&format!("{rel_str}/")));
                if excluded && !self.rules.has_exceptions() && !holds_forced {
                    continue;
                }
                if !excluded {
                    tar.append_path_with_name(entry.path(), &rel)?;
                }
                self.walk(tar, &rel)?;
            } else if (kind.is_file() || kind.is_symlink()) && !excluded {
                tar.append_path_with_name(entry.path(), &rel)?;
            }
            // Sockets, fifos and devices are never part of a build context.
        }
        Ok(())
    }
}

fn append_bytes(tar: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append_data(&mut header, name, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;

    fn entries(archive: &[u8]) -> BTreeMap<String, (tar::EntryType, String)> {
        let mut out = BTreeMap::new();
        let mut a = tar::Archive::new(archive);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().trim_end_matches('/').to_owned();
            let kind = e.header().entry_type();
            let mut body = String::new();
            if kind == tar::EntryType::Symlink {
                body = e.link_name().unwrap().unwrap().to_string_lossy().into_owned();
            } else if kind == tar::EntryType::Regular {
                e.read_to_string(&mut body).unwrap();
            }
            out.insert(name, (kind, body));
        }
        out
    }

    #[test]
    fn honours_dockerignore_keeps_dockerfile_and_stores_links_as_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(d.join(".dockerignore"), "secret.txt\nDockerfile\nlogs\n!logs/keep.log\n").unwrap();
        fs::write(d.join("secret.txt"), "s").unwrap();
        fs::write(d.join("app.txt"), "a").unwrap();
        fs::create_dir_all(d.join("logs/sub")).unwrap();
        fs::write(d.join("logs/keep.log"), "k").unwrap();
        fs::write(d.join("logs/sub/drop.log"), "d").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("passwd")).unwrap();
        let e = entries(&pack(d, "Dockerfile", None).unwrap());
        assert!(e.contains_key("Dockerfile"));
        assert!(e.contains_key(".dockerignore"));
        assert!(e.contains_key("app.txt"));
        assert!(e.contains_key("logs/keep.log"));
        assert!(!e.contains_key("secret.txt"));
        assert!(!e.contains_key("logs/sub/drop.log"));
        assert_eq!(e["passwd"], (tar::EntryType::Symlink, "/etc/passwd".to_owned()));
    }

    #[test]
    fn generated_dockerfile_is_added_and_listed_in_the_archive_ignore_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".dockerignore"), "*.tmp\n").unwrap();
        fs::write(dir.path().join("x.tmp"), "t").unwrap();
        let e = entries(&pack(dir.path(), "Dockerfile", Some("FROM scratch\n")).unwrap());
        assert_eq!(e[GENERATED_DOCKERFILE].1, "FROM scratch\n");
        assert!(e[".dockerignore"].1.contains("*.tmp") && e[".dockerignore"].1.contains(GENERATED_DOCKERFILE));
        assert!(!e.contains_key("x.tmp"));
    }

    #[test]
    fn rejects_a_missing_or_escaping_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(pack(dir.path(), "Dockerfile", None), Err(DockerError::Invalid { .. })));
        assert!(matches!(pack(dir.path(), "../Dockerfile", None), Err(DockerError::Invalid { .. })));
        assert!(matches!(pack(dir.path(), "/etc/Dockerfile", None), Err(DockerError::Invalid { .. })));
    }
}
