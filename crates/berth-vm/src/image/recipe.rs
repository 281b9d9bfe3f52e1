//! Image recipes, embedded in the binary so an installed `berth` needs no source tree.

use sha2::{Digest, Sha256};

/// A recipe: shell stages run on the host, from distribution packages only.
#[derive(Debug, Clone, Copy)]
pub struct Recipe {
    pub name: &'static str,
    pub kernel_sh: &'static str,
    pub rootfs_sh: &'static str,
    pub initramfs_sh: &'static str,
    pub init: &'static str,
}

pub const DEFAULT_RECIPE: Recipe = Recipe {
    name: "default",
    kernel_sh: include_str!("../../../../vm-images/default/kernel.sh"),
    rootfs_sh: include_str!("../../../../vm-images/default/rootfs.sh"),
    initramfs_sh: include_str!("../../../../vm-images/default/initramfs.sh"),
    init: include_str!("../../../../vm-images/default/init"),
};

impl Recipe {
    pub fn by_name(name: &str) -> Option<Recipe> {
        (name == DEFAULT_RECIPE.name).then_some(DEFAULT_RECIPE)
    }

    pub fn files(&self) -> [(&'static str, &'static str); 4] {
        [
            ("kernel.sh", self.kernel_sh),
            ("rootfs.sh", self.rootfs_sh),
            ("initramfs.sh", self.initramfs_sh),
            ("init", self.init),
        ]
    }
}

/// Hex SHA-256 over length-prefixed parts, so ("ab","c") and ("a","bc") differ.
pub fn hash_parts(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_separates_parts() {
        assert_ne!(hash_parts(&[b"ab", b"c"]), hash_parts(&[b"a", b"bc"]));
        assert_eq!(hash_parts(&[b"x"]), hash_parts(&[b"x"]));
    }
}
