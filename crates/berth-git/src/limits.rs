/// Caps on what an attempt may bring back into the user's repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single file (blob).
    pub max_blob_bytes: u64,
    /// All new objects together, and all object files copied out of the workspace.
    pub max_total_bytes: u64,
    /// Number of new objects (commits, trees, blobs).
    pub max_objects: u64,
    /// Commits between the base and the result.
    pub max_commits: u64,
    /// Deepest nesting of trees (directories), like git's `core.maxTreeDepth`.
    pub max_tree_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_blob_bytes: 100 << 20,
            max_total_bytes: 2 << 30,
            max_objects: 200_000,
            max_commits: 10_000,
            max_tree_depth: 2048,
        }
    }
}
