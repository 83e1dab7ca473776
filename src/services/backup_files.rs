//! Backup files on disk: gzip-compressing a stream into a synced file while hashing it, hashing a file, and
//! streaming a file back out decompressed. Blocking I/O, for `spawn_blocking`.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use tokio::sync::mpsc;

/// A writer that hashes and counts what passes through.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Gzips chunks into `tmp` (mode 0600), synced; returns (compressed size, SHA-256 hex, uncompressed bytes).
pub(super) fn write_compressed(tmp: &Path, mut rx: mpsc::Receiver<Bytes>) -> std::io::Result<(u64, String, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(tmp)?;
    let hashing = Hashing { inner: std::io::BufWriter::new(file), hasher: Sha256::new(), written: 0 };
    let mut gz = flate2::write::GzEncoder::new(hashing, flate2::Compression::default());
    let mut raw = 0u64;
    while let Some(chunk) = rx.blocking_recv() {
        gz.write_all(&chunk)?;
        raw += chunk.len() as u64;
    }
    let hashing = gz.finish()?;
    let file = hashing.inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((hashing.written, hex::encode(hashing.hasher.finalize()), raw))
}

/// SHA-256 of a file, hex.
pub(super) fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Streams the decompressed file into `tx` until it ends or the receiver goes away.
pub(super) fn read_decompressed(path: &Path, tx: mpsc::Sender<Bytes>) -> std::io::Result<()> {
    let mut gz = flate2::read::GzDecoder::new(std::io::BufReader::new(std::fs::File::open(path)?));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = gz.read(&mut buf)?;
        if n == 0 || tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
            return Ok(());
        }
    }
}

pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
