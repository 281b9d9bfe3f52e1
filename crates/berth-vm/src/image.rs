//! Guest images: a kernel, an initramfs and a root filesystem, built from a recipe in
//! `vm-images/` and cached in the data dir under the recipe's content hash.
//!
//! ```text
//! <images>/<name>-<hash>/vmlinux        uncompressed kernel (direct PVH boot)
//!                       /initrd.img     busybox + modules + berth-agent + init
//!                       /rootfs.img     ext4 root filesystem, never written (VMs use overlays)
//!                       /manifest.json
//! <images>/.cache/kernel-<hash>/        stage outputs reused across agent rebuilds
//! <images>/.cache/rootfs-<hash>.img
//! ```

mod build;
mod recipe;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use build::{BuildOutcome, build_image, build_rootfs_layer, image_hash};
pub use recipe::{DEFAULT_RECIPE, Recipe};

#[derive(Debug, Error)]
pub enum ImageError {
    #[error("no image named '{name}' is built in {dir}; run `berth image build`")]
    NotBuilt { name: String, dir: PathBuf },
    #[error("no recipe named '{0}'; available: default")]
    UnknownRecipe(String),
    #[error("the guest agent binary {path} is not usable: {why}")]
    Agent { path: PathBuf, why: String },
    #[error("image stage '{stage}' failed ({status}); its last output:\n{tail}")]
    Stage {
        stage: &'static str,
        status: String,
        tail: String,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image manifest {path} is unreadable: {source}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub(crate) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.to_path_buf();
    move |source| ImageError::Io { what, path, source }
}

/// What `manifest.json` records about a built image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    /// Content hash of the recipe and the agent binary: the image's identity.
    pub hash: String,
    pub kernel_version: String,
    pub agent_sha256: String,
    /// Seconds since the Unix epoch, from the caller's clock.
    pub built_at: u64,
    /// Seconds the build took (0 when every stage came from the cache).
    pub build_seconds: u64,
}

/// A built image on disk.
#[derive(Debug, Clone)]
pub struct Image {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Image {
    pub fn kernel(&self) -> PathBuf {
        self.dir.join("vmlinux")
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.img")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs.img")
    }
    /// `name-hash12`, how listings name it.
    pub fn id(&self) -> String {
        format!("{}-{}", self.manifest.name, &self.manifest.hash[..12])
    }

    pub fn open(dir: &Path) -> Result<Image, ImageError> {
        let path = dir.join("manifest.json");
        let text = std::fs::read(&path).map_err(io_err("cannot read", &path))?;
        let manifest = serde_json::from_slice(&text)
            .map_err(|source| ImageError::Manifest { path, source })?;
        Ok(Image {
            dir: dir.to_path_buf(),
            manifest,
        })
    }
}

/// The directory that holds built images.
#[derive(Debug, Clone)]
pub struct ImageStore {
    pub dir: PathBuf,
}

impl ImageStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Every complete image, newest first.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("cannot list", &self.dir)(e)),
        };
        let mut images = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            if entry.path().join("manifest.json").is_file() {
                images.push(Image::open(&entry.path())?);
            }
        }
        images.sort_by_key(|i| std::cmp::Reverse(i.manifest.built_at));
        Ok(images)
    }

    /// The image this binary needs: built from `recipe` with exactly `agent` on this host
    /// (`host`, as for [`build_image`]). Another build (an older agent, other apt sources) is
    /// never picked in its place.
    pub fn matching(
        &self,
        recipe: &Recipe,
        agent: &Path,
        host: &[u8],
    ) -> Result<Image, ImageError> {
        let bytes = std::fs::read(agent).map_err(|e| ImageError::Agent {
            path: agent.to_path_buf(),
            why: e.to_string(),
        })?;
        let hash = image_hash(recipe, &recipe::hash_parts(&[&bytes]), host);
        let dir = self.dir.join(format!("{}-{}", recipe.name, &hash[..12]));
        if dir.join("manifest.json").is_file() {
            return Image::open(&dir);
        }
        let others = self
            .list()?
            .iter()
            .filter(|i| i.manifest.name == recipe.name)
            .count();
        Err(ImageError::NotBuilt {
            name: if others == 0 {
                recipe.name.to_string()
            } else {
                format!(
                    "{} for this berth ({others} other build(s) of it are for another agent \
                     or host)",
                    recipe.name
                )
            },
            dir: self.dir.clone(),
        })
    }

    /// The newest image built from recipe `name` (tests and `berth vm run --image`).
    pub fn latest(&self, name: &str) -> Result<Image, ImageError> {
        self.list()?
            .into_iter()
            .find(|i| i.manifest.name == name)
            .ok_or_else(|| ImageError::NotBuilt {
                name: name.into(),
                dir: self.dir.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_image(store: &ImageStore, hash: &str, built_at: u64) {
        let dir = store.dir.join(format!("default-{}", &hash[..12]));
        std::fs::create_dir_all(&dir).unwrap();
        let m = Manifest {
            name: "default".into(),
            hash: hash.into(),
            kernel_version: "6.1".into(),
            agent_sha256: "x".into(),
            built_at,
            build_seconds: 0,
        };
        std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    }

    #[test]
    fn the_image_for_this_agent_and_host_is_picked_never_a_newer_other_build() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::new(tmp.path().join("images"));
        let agent = tmp.path().join("agent");
        std::fs::write(&agent, b"this agent").unwrap();
        let host = b"bookworm sources";
        let ours = image_hash(&DEFAULT_RECIPE, &recipe::hash_parts(&[b"this agent"]), host);
        let other_agent = image_hash(&DEFAULT_RECIPE, &recipe::hash_parts(&[b"old agent"]), host);
        let other_host = image_hash(&DEFAULT_RECIPE, &recipe::hash_parts(&[b"this agent"]), b"x");
        fake_image(&store, &other_agent, 300);
        fake_image(&store, &other_host, 200);
        let err = store.matching(&DEFAULT_RECIPE, &agent, host).unwrap_err();
        assert!(err.to_string().contains("2 other build(s)"), "{err}");
        fake_image(&store, &ours, 100);
        let img = store.matching(&DEFAULT_RECIPE, &agent, host).unwrap();
        assert_eq!(img.manifest.hash, ours);
        assert_eq!(store.latest("default").unwrap().manifest.hash, other_agent);
    }
}
