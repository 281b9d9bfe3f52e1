//! QEMU's programs must come from one QEMU release: `qemu-img` builds the overlays that
//! `qemu-system-x86_64` opens, and Debian refuses to mix `qemu-utils` and `qemu-system-common`
//! of different releases. `berth doctor` uses this to name a mismatch and how to fix it.

/// The release number in the first line of `qemu-system-x86_64 --version` or
/// `qemu-img --version` ("QEMU emulator version 7.2.19 (Debian …)" → "7.2.19").
pub fn release(version_output: &str) -> Option<&str> {
    let line = version_output.lines().next()?;
    let rest = &line[line.find("version ")? + "version ".len()..];
    let release = rest.split_whitespace().next()?;
    release
        .chars()
        .next()
        .filter(char::is_ascii_digit)
        .map(|_| release)
}

/// Why the two programs do not belong together, with the fix; `None` when they do.
pub fn mismatch(qemu_output: &str, qemu_img_output: &str) -> Option<String> {
    let (Some(system), Some(img)) = (release(qemu_output), release(qemu_img_output)) else {
        return Some(
            "cannot read the versions of qemu-system-x86_64 and qemu-img \
             (their `--version` prints no release)"
                .into(),
        );
    };
    (system != img).then(|| {
        format!(
            "qemu-system-x86_64 is {system} but qemu-img is {img}: overlays made by one may not \
             open in the other. Install both from one release: run scripts/install-deps.sh, or \
             `apt-get install --allow-downgrades qemu-utils=$(dpkg-query -W -f='${{Version}}' \
             qemu-system-x86)`"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM_7: &str = "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n\
                            Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n";
    const IMG_7: &str = "qemu-img version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n";
    const IMG_10: &str = "qemu-img version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n";

    #[test]
    fn release_reads_both_programs_first_lines() {
        assert_eq!(release(SYSTEM_7), Some("7.2.19"));
        assert_eq!(release(IMG_10), Some("10.0.2"));
        assert_eq!(release("qemu-img version\n"), None);
        assert_eq!(release("no such words"), None);
        assert_eq!(release(""), None);
    }

    #[test]
    fn one_release_is_no_mismatch() {
        assert_eq!(mismatch(SYSTEM_7, IMG_7), None);
    }

    #[test]
    fn backported_qemu_img_is_a_mismatch_that_names_the_fix() {
        let why = mismatch(SYSTEM_7, IMG_10).expect("a mismatch");
        assert!(why.contains("7.2.19") && why.contains("10.0.2"), "{why}");
        assert!(why.contains("install-deps.sh"), "{why}");
    }

    #[test]
    fn unreadable_version_is_reported_not_taken_as_a_match() {
        assert!(mismatch("", IMG_7).is_some());
    }
}
