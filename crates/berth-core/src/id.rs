//! Short random identifiers.

use std::io::Read;

/// `prefix-` and 8 lowercase hex digits from the OS random source.
pub fn random_id(prefix: &str) -> std::io::Result<String> {
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{prefix}-{hex}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_short_and_distinct() {
        let a = super::random_id("vm").unwrap();
        let b = super::random_id("vm").unwrap();
        assert_eq!(a.len(), 11);
        assert_ne!(a, b);
    }
}
