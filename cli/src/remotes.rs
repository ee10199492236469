//! Where NB and SB are: `--nb`/`--sb`, else `ROVN_NB`/`ROVN_SB`, else the ConfigMap
//! `kube-system/rovn-config` (keys `nb-remote`, `sb-remote`), in that order, so a flag always
//! wins and a cluster that publishes its remotes needs no configuration at all.

use std::path::PathBuf;

/// The namespace of the ConfigMap naming the OVN databases.
pub const CONFIGMAP_NAMESPACE: &str = "kube-system";
/// The ConfigMap naming the OVN databases (`deploy/base/rovn-config.yaml`).
pub const CONFIGMAP_NAME: &str = "rovn-config";
/// The ConfigMap key holding the NB remote.
pub const NB_KEY: &str = "nb-remote";
/// The ConfigMap key holding the SB remote.
pub const SB_KEY: &str = "sb-remote";
/// The environment variable naming the NB remote.
pub const NB_ENV: &str = "ROVN_NB";
/// The environment variable naming the SB remote.
pub const SB_ENV: &str = "ROVN_SB";

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// OVN_Northbound.
    Nb,
    /// OVN_Southbound.
    Sb,
}

impl Db {
    /// The flag naming it.
    pub fn flag(self) -> &'static str {
        match self {
            Db::Nb => "--nb",
            Db::Sb => "--sb",
        }
    }

    /// The environment variable naming it.
    pub fn env(self) -> &'static str {
        match self {
            Db::Nb => NB_ENV,
            Db::Sb => SB_ENV,
        }
    }

    /// Its key in the ConfigMap.
    pub fn configmap_key(self) -> &'static str {
        match self {
            Db::Nb => NB_KEY,
            Db::Sb => SB_KEY,
        }
    }
}

/// Where a remote came from, so an error can say which setting to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// The ConfigMap key.
    ConfigMap(&'static str),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "${var}"),
            Source::ConfigMap(key) => {
                write!(
                    f,
                    "ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} key {key}"
                )
            }
        }
    }
}

/// A database's remote and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The remote, in `ovn-nbctl --db` notation.
    pub remote: String,
    /// Where it came from.
    pub source: Source,
}

/// The first non-blank of flag, environment and ConfigMap value, in that order. Pure.
pub fn pick(
    db: Db,
    flag: Option<&str>,
    env: Option<&str>,
    configmap: Option<&str>,
) -> Option<Resolved> {
    pick_setting([
        (flag, Source::Flag(db.flag())),
        (env, Source::Env(db.env())),
        (configmap, Source::ConfigMap(db.configmap_key())),
    ])
}

/// The first non-blank candidate of any setting found the same way as the remotes (flag,
/// environment, ConfigMap key). Pure.
pub fn pick_setting(candidates: [(Option<&str>, Source); 3]) -> Option<Resolved> {
    candidates.into_iter().find_map(|(value, source)| {
        let value = value?.trim();
        (!value.is_empty()).then(|| Resolved {
            remote: value.to_string(),
            source,
        })
    })
}

/// The three PEM files an `ssl:` remote needs, as `ovn-nbctl` takes them.
pub type Tls = rovn_ovsdb::TlsConfig;

/// Why the TLS flags do not make a [`Tls`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// Some of the three files were given, not all.
    #[error("--private-key, --certificate and --ca-cert go together; missing {0}")]
    Incomplete(String),
    /// An `ssl:` remote without them.
    #[error(
        "{remote} (from {from}) is an ssl: remote; give --private-key, --certificate and --ca-cert"
    )]
    Needed {
        /// The remote.
        remote: String,
        /// Where it came from.
        from: Source,
    },
}

/// The TLS files from the three optional flags: all or none. Pure.
pub fn tls_from_flags(
    private_key: Option<PathBuf>,
    certificate: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
) -> Result<Option<Tls>, TlsError> {
    Tls::from_files(private_key, certificate, ca_cert).map_err(|e| TlsError::Incomplete(e.missing))
}

/// Checks that an `ssl:` remote has its files.
pub fn check_tls(resolved: &Resolved, tls: Option<&Tls>) -> Result<(), TlsError> {
    if resolved.remote.starts_with("ssl:") && tls.is_none() {
        return Err(TlsError::Needed {
            remote: resolved.remote.clone(),
            from: resolved.source.clone(),
        });
    }
    Ok(())
}

/// The arguments OVN's tools take for a database: `--db=REMOTE` and the TLS files. Pure.
pub fn tool_args(remote: &str, tls: Option<&Tls>) -> Vec<String> {
    let mut args = vec![format!("--db={remote}")];
    if let Some(tls) = tls {
        args.push(format!("--private-key={}", tls.private_key.display()));
        args.push(format!("--certificate={}", tls.certificate.display()));
        args.push(format!("--ca-cert={}", tls.ca_cert.display()));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_env_beats_configmap() {
        let r = pick(
            Db::Nb,
            Some("tcp:1.2.3.4:6641"),
            Some("unix:/e"),
            Some("unix:/c"),
        )
        .unwrap();
        assert_eq!(r.remote, "tcp:1.2.3.4:6641");
        assert_eq!(r.source, Source::Flag("--nb"));
        let r = pick(Db::Sb, None, Some("unix:/e"), Some("unix:/c")).unwrap();
        assert_eq!(
            (r.remote.as_str(), r.source),
            ("unix:/e", Source::Env("ROVN_SB"))
        );
        let r = pick(Db::Sb, None, Some("  "), Some("unix:/c")).unwrap();
        assert_eq!(r.source, Source::ConfigMap("sb-remote"));
        assert_eq!(pick(Db::Nb, None, None, None), None);
        assert!(r.source.to_string().contains("kube-system/rovn-config"));
    }

    #[test]
    fn tls_is_all_or_nothing_and_needed_for_ssl() {
        assert_eq!(tls_from_flags(None, None, None), Ok(None));
        let err = tls_from_flags(Some("k".into()), None, Some("a".into())).unwrap_err();
        assert!(err.to_string().contains("missing --certificate"), "{err}");
        let tls = tls_from_flags(Some("k".into()), Some("c".into()), Some("a".into()))
            .unwrap()
            .unwrap();
        let ssl = Resolved {
            remote: "ssl:10.0.0.1:6641".into(),
            source: Source::Flag("--nb"),
        };
        assert!(check_tls(&ssl, None).is_err());
        assert!(check_tls(&ssl, Some(&tls)).is_ok());
        assert_eq!(
            tool_args("ssl:10.0.0.1:6641", Some(&tls)),
            vec![
                "--db=ssl:10.0.0.1:6641",
                "--private-key=k",
                "--certificate=c",
                "--ca-cert=a"
            ]
        );
        assert_eq!(tool_args("unix:/x", None), vec!["--db=unix:/x"]);
    }
}
