//! Choosing the accelerator: KVM only where it will really be fast, otherwise TCG.

use std::fmt;

/// How the guest CPU is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization through /dev/kvm.
    Kvm,
    /// QEMU's software emulation: works everywhere, 5-50x slower.
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

impl std::str::FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(format!("unknown accelerator '{other}'; use kvm or tcg")),
        }
    }
}

/// The accelerator picked for this host and why, in one sentence a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: String,
}

/// What the host offers, read by the caller (the binaries read /proc and /dev).
#[derive(Debug, Clone)]
pub struct HostCpu {
    /// Contents of /proc/cpuinfo.
    pub cpuinfo: String,
    /// Whether /dev/kvm opened read-write; the error text otherwise.
    pub kvm_device: Result<(), String>,
}

impl HostCpu {
    fn has_virt_flag(&self) -> Option<&'static str> {
        for line in self.cpuinfo.lines() {
            if line.starts_with("flags") {
                let flags: Vec<&str> = line.split_whitespace().collect();
                if flags.contains(&"vmx") {
                    return Some("vmx");
                }
                if flags.contains(&"svm") {
                    return Some("svm");
                }
            }
        }
        None
    }

    /// This host's CPU flags and whether `/dev/kvm` opens for reading and writing.
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let kvm_device = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map(|_| ())
            .map_err(|e| e.to_string());
        HostCpu {
            cpuinfo,
            kvm_device,
        }
    }

    /// The host TSC frequency in kHz from `cpu MHz`, for `tsc_early_khz` under TCG.
    pub fn tsc_khz(&self) -> Option<u64> {
        let line = self.cpuinfo.lines().find(|l| l.starts_with("cpu MHz"))?;
        let mhz: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
        Some((mhz * 1000.0) as u64)
    }
}

/// KVM only when the CPU advertises vmx/svm *and* /dev/kvm opens: a nested or paravirtual
/// host (no vmx/svm flag, e.g. a PVM guest) exposes /dev/kvm but runs a stock guest kernel
/// far slower than TCG does.
pub fn choose(host: &HostCpu, forced: Option<Accel>) -> AccelChoice {
    let flag = host.has_virt_flag();
    if let Some(accel) = forced {
        return AccelChoice {
            accel,
            reason: format!("{accel} (forced with --accel)"),
        };
    }
    match (flag, &host.kvm_device) {
        (Some(flag), Ok(())) => AccelChoice {
            accel: Accel::Kvm,
            reason: format!("kvm: the CPU has {flag} and /dev/kvm is usable"),
        },
        (Some(flag), Err(e)) => AccelChoice {
            accel: Accel::Tcg,
            reason: format!(
                "tcg (slow): the CPU has {flag} but /dev/kvm is not usable ({e}); \
                 add yourself to the kvm group or load kvm_intel/kvm_amd"
            ),
        },
        (None, Ok(())) => AccelChoice {
            accel: Accel::Tcg,
            reason: "tcg (slow): /dev/kvm exists but the CPU shows no vmx/svm flag \
                     (a nested or paravirtual host), where KVM is slower than emulation"
                .into(),
        },
        (None, Err(_)) => AccelChoice {
            accel: Accel::Tcg,
            reason: "tcg (slow): no hardware virtualization (no vmx/svm flag, no /dev/kvm)".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(flags: &str, kvm: Result<(), String>) -> HostCpu {
        HostCpu {
            cpuinfo: format!("processor\t: 0\ncpu MHz\t\t: 2596.122\nflags\t\t: fpu {flags} sse\n"),
            kvm_device: kvm,
        }
    }

    #[test]
    fn kvm_needs_both_the_flag_and_the_device() {
        assert_eq!(choose(&host("vmx", Ok(())), None).accel, Accel::Kvm);
        assert_eq!(choose(&host("svm", Ok(())), None).accel, Accel::Kvm);
        assert_eq!(
            choose(&host("vmx", Err("EACCES".into())), None).accel,
            Accel::Tcg
        );
    }

    #[test]
    fn a_nested_pvm_host_with_dev_kvm_but_no_flag_gets_tcg() {
        let c = choose(&host("pvm", Ok(())), None);
        assert_eq!(c.accel, Accel::Tcg);
        assert!(c.reason.contains("no vmx/svm"), "{}", c.reason);
    }

    #[test]
    fn forcing_wins_and_tsc_is_read() {
        assert_eq!(
            choose(&host("", Ok(())), Some(Accel::Kvm)).accel,
            Accel::Kvm
        );
        assert_eq!(host("", Ok(())).tsc_khz(), Some(2_596_122));
        assert_eq!("tcg".parse::<Accel>(), Ok(Accel::Tcg));
        assert!("xen".parse::<Accel>().is_err());
    }
}
