//! An on-disk cache of compiled components, so a restart (or a second replica sharing the
//! directory) loads a Python or JS plugin in milliseconds instead of compiling it again for
//! seconds.
//!
//! An entry is named after what determines its content — the component's sha256 and the
//! engine's compatibility hash (wasmtime version, target and every codegen setting) — and
//! holds a header with both plus the sha256 of the compiled artifact. Loading machine code
//! from disk is only as safe as the file, so an entry is used only when:
//!
//! - the directory and the file belong to this process's user and nobody else can write them
//!   (the directory is created `0700`, entries `0600`, written to a temporary name and renamed);
//! - the header names this component and this engine, and the artifact hashes to what the
//!   header says (a truncated, corrupted or swapped file is a miss, not a crash);
//! - wasmtime itself accepts it (`Component::deserialize` checks its own version and config).
//!
//! Anything else is a miss: the component is compiled as without a cache and the entry is
//! rewritten. The cache never makes a load fail.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// First bytes of every entry; bump the version when the layout changes.
const MAGIC: &[u8; 8] = b"SYCC0001";
/// Magic, component sha256, engine hash, artifact sha256.
const HEADER_LEN: usize = 8 + 32 + 32 + 32;

/// Where compiled components are kept, for one engine.
#[derive(Debug)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    /// The engine's compatibility hash, as 32 bytes.
    engine_hash: [u8; 32],
    /// This process's user, learnt from a file it created in `dir`.
    uid: u32,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    Hit,
    /// No entry, or one that was refused; the reason is for the log.
    Miss(&'static str),
}

impl CompileCache {
    /// Opens (creating it `0700` if needed) the cache directory for `engine`. Refuses a
    /// directory another user owns or that group or others may write.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Self, String> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let uid = own_uid(dir)?;
        let meta = fs::metadata(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        if meta.uid() != uid || meta.mode() & 0o022 != 0 {
            return Err(format!(
                "{} must belong to this process's user and not be writable by group or others (owner uid {}, mode {:o})",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ));
        }
        Ok(Self {
            dir: dir.to_owned(),
            engine_hash: engine_hash(engine),
            uid,
        })
    }

    /// The compiled component for `bytes`, from the cache when a trustworthy entry exists,
    /// otherwise compiled and stored. Errors are compile errors only.
    pub(crate) fn compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, Lookup)> {
        let component_hash: [u8; 32] = Sha256::digest(bytes).into();
        let path = self.entry_path(&component_hash);
        let miss = match self.read(&path, &component_hash) {
            Ok(artifact) => match deserialize(engine, &artifact) {
                Ok(component) => return Ok((component, Lookup::Hit)),
                Err(_) => "wasmtime refused the entry",
            },
            Err(reason) => reason,
        };
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.write(&path, &component_hash, &component) {
            tracing::warn!(path = %path.display(), "plugin compile cache: not stored: {e}");
        }
        Ok((component, Lookup::Miss(miss)))
    }

    fn entry_path(&self, component_hash: &[u8; 32]) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.cwasm",
            hex(component_hash),
            &hex(&self.engine_hash)[..16]
        ))
    }

    /// The artifact of a trustworthy entry, or why there is none.
    fn read(&self, path: &Path, component_hash: &[u8; 32]) -> Result<Vec<u8>, &'static str> {
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(_) => return Err("no entry"),
        };
        if !meta.file_type().is_file() || meta.uid() != self.uid || meta.mode() & 0o022 != 0 {
            return Err("entry not a private regular file of this user");
        }
        let data = fs::read(path).map_err(|_| "entry unreadable")?;
        if data.len() < HEADER_LEN || &data[..8] != MAGIC {
            return Err("entry has no valid header");
        }
        if data[8..40] != component_hash[..] || data[40..72] != self.engine_hash[..] {
            return Err("entry is for another component or engine");
        }
        let artifact = &data[HEADER_LEN..];
        if Sha256::digest(artifact)[..] != data[72..104] {
            return Err("entry's artifact does not match its checksum");
        }
        Ok(artifact.to_vec())
    }

    fn write(
        &self,
        path: &Path,
        component_hash: &[u8; 32],
        component: &Component,
    ) -> Result<(), String> {
        let artifact = component.serialize().map_err(|e| format!("{e:#}"))?;
        let mut data = Vec::with_capacity(HEADER_LEN + artifact.len());
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(component_hash);
        data.extend_from_slice(&self.engine_hash);
        data.extend_from_slice(&Sha256::digest(&artifact));
        data.extend_from_slice(&artifact);
        // A unique temporary name, then an atomic rename: a reader never sees half an entry,
        // and two writers of the same entry each rename a whole one.
        let temp = self.dir.join(format!(
            ".{}.{}.tmp",
            hex(component_hash),
            rand::random::<u64>()
        ));
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut file| file.write_all(&data).and_then(|()| file.sync_all()));
        if let Err(e) = written.and_then(|()| fs::rename(&temp, path)) {
            let _ = fs::remove_file(&temp);
            return Err(e.to_string());
        }
        Ok(())
    }
}

/// Loads a compiled artifact into `engine`.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires that the bytes be an artifact it produced (they are machine
    // code it will run). They come from an entry this user alone can write (checked in
    // `read`: owner, mode, and the directory's owner and mode in `open`), whose header names
    // this component and engine and whose checksum matches, written by `write` from
    // `Component::serialize`. wasmtime additionally rejects artifacts from another version
    // or configuration.
    unsafe { Component::deserialize(engine, artifact) }
}

/// The user this process writes files as: the owner of a file it just created in `dir`
/// (no libc call needed, and it is the owner that counts for the checks).
fn own_uid(dir: &Path) -> Result<u32, String> {
    let probe = dir.join(format!(".owner.{}.tmp", rand::random::<u64>()));
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    let uid = file.metadata().map(|m| m.uid());
    drop(file);
    let _ = fs::remove_file(&probe);
    uid.map_err(|e| format!("cannot read {}: {e}", probe.display()))
}

/// wasmtime's compatibility hash (version, target, settings) folded into 32 bytes; stable
/// across processes of the same build because it only feeds bytes to sha256.
fn engine_hash(engine: &Engine) -> [u8; 32] {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component wasmtime accepts: `(component)` in binary.
    fn empty_component() -> Vec<u8> {
        vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]
    }

    fn engine() -> Engine {
        Engine::default()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-cc-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn only_entry(dir: &Path) -> PathBuf {
        let entries: Vec<PathBuf> = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect();
        assert_eq!(entries.len(), 1, "one entry in {}", dir.display());
        entries[0].clone()
    }

    #[test]
    fn a_second_compile_is_a_hit_and_the_directory_is_private() -> Result<(), String> {
        let dir = temp_dir("hit");
        let engine = engine();
        let cache = CompileCache::open(&dir, &engine)?;
        let bytes = empty_component();
        let (_, first) = cache.compile(&engine, &bytes).map_err(|e| e.to_string())?;
        assert_eq!(first, Lookup::Miss("no entry"));
        let (_, second) = cache.compile(&engine, &bytes).map_err(|e| e.to_string())?;
        assert_eq!(second, Lookup::Hit);
        let mode = fs::metadata(&dir).map_err(|e| e.to_string())?.mode() & 0o777;
        assert_eq!(mode, 0o700);
        let entry = only_entry(&dir);
        let mode = fs::metadata(&entry).map_err(|e| e.to_string())?.mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn a_corrupted_or_foreign_entry_is_a_miss_and_is_replaced() -> Result<(), String> {
        let dir = temp_dir("corrupt");
        let engine = engine();
        let cache = CompileCache::open(&dir, &engine)?;
        let bytes = empty_component();
        cache.compile(&engine, &bytes).map_err(|e| e.to_string())?;
        let entry = only_entry(&dir);

        // One flipped bit in the artifact: the checksum catches it.
        let mut data = fs::read(&entry).map_err(|e| e.to_string())?;
        let last = data.len() - 1;
        data[last] ^= 1;
        fs::write(&entry, &data).map_err(|e| e.to_string())?;
        let (_, lookup) = cache.compile(&engine, &bytes).map_err(|e| e.to_string())?;
        assert_eq!(
            lookup,
            Lookup::Miss("entry's artifact does not match its checksum")
        );
        // ... and the recompiled entry replaced it.
        let (_, lookup) = cache.compile(&engine, &bytes).map_err(|e| e.to_string())?;
        assert_eq!(lookup, Lookup::Hit);

        // Truncated to less than a header.
        fs::write(&entry, b"SYCC").map_err(|e| e.to_string())?;
        let (_, lookup) = cache.compile(&engine, &bytes).map_err(|e| e.to_string())?;
        assert_eq!(lookup, Lookup::Miss("entry has no valid header"));

        // Writable by others: not trusted even though the content is intact.
        let (_, lookup) = cache.compile(&engine, &bytes).map_err(|e| e.to_string())?;
        assert_eq!(lookup, Lookup::Hit);
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&entry, fs::Permissions::from_mode(0o666))
            .map_err(|e| e.to_string())?;
        let (_, lookup) = cache.compile(&engine, &bytes).map_err(|e| e.to_string())?;
        assert_eq!(
            lookup,
            Lookup::Miss("entry not a private regular file of this user")
        );
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn an_entry_from_another_engine_configuration_is_a_miss() -> Result<(), String> {
        let dir = temp_dir("engine");
        let plain = engine();
        let bytes = empty_component();
        CompileCache::open(&dir, &plain)?
            .compile(&plain, &bytes)
            .map_err(|e| e.to_string())?;
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).map_err(|e| e.to_string())?;
        let cache = CompileCache::open(&dir, &other)?;
        let (_, lookup) = cache.compile(&other, &bytes).map_err(|e| e.to_string())?;
        // Named by the engine hash, so the other engine does not even find the entry.
        assert_eq!(lookup, Lookup::Miss("no entry"));
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn a_directory_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = temp_dir("open");
        let created = fs::create_dir_all(&dir)
            .and_then(|()| fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)));
        assert!(created.is_ok());
        let refused = CompileCache::open(&dir, &engine());
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("not be writable by group or others")),
            "{refused:?}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
