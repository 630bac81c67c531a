//! A directory laid out as Kubernetes mounts a Secret or a ConfigMap, updated as the kubelet
//! updates it (its `AtomicWriter`): each file is a symlink `<name> → ..data/<name>`, `..data`
//! a symlink to a timestamped directory holding the files. An update writes a new timestamped
//! directory, points a new symlink `..data_tmp` at it, renames that over `..data` (atomic),
//! and removes the old directory: a reader of `<name>` sees the old files or the new ones,
//! and a path resolved before the swap may vanish under it.

use std::path::{Path, PathBuf};

/// A mounted Secret.
#[derive(Debug)]
pub struct SecretVolume {
    dir: PathBuf,
    version: usize,
    current: PathBuf,
}

impl SecretVolume {
    /// Creates the volume in `dir` (created if needed) holding `files` (name, contents).
    pub fn create(dir: &Path, files: &[(&str, &[u8])]) -> std::io::Result<SecretVolume> {
        std::fs::create_dir_all(dir)?;
        let mut volume = SecretVolume {
            dir: dir.to_owned(),
            version: 0,
            current: PathBuf::new(),
        };
        volume.update(files)?;
        for (name, _) in files {
            std::os::unix::fs::symlink(Path::new("..data").join(name), dir.join(name))?;
        }
        Ok(volume)
    }

    /// The path a configuration names for the file `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Replaces every file at once, as the kubelet does when the Secret changes (the names
    /// stay those given at creation).
    pub fn update(&mut self, files: &[(&str, &[u8])]) -> std::io::Result<()> {
        self.version += 1;
        let data = self.dir.join(format!(
            "..2026_01_01_00_00_{:02}.{}",
            self.version,
            std::process::id()
        ));
        std::fs::create_dir(&data)?;
        for (name, contents) in files {
            std::fs::write(data.join(name), contents)?;
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(data.file_name().unwrap_or_default(), &tmp)?;
        std::fs::rename(&tmp, self.dir.join("..data"))?;
        let old = std::mem::replace(&mut self.current, data);
        if !old.as_os_str().is_empty() {
            std::fs::remove_dir_all(old)?;
        }
        Ok(())
    }
}
