//! `redis+sentinel://[user[:password]@]host1:26379[,host2:26379...]/<master-name>[/db]`: the
//! sentinels to ask for the master's address, split off the URL so that the rest (user,
//! password, database) is read like a `redis://` URL's.

use super::invalid;
use crate::error::ConfigError;

/// The default sentinel port.
const SENTINEL_PORT: u16 = 26379;

/// The sentinels and the master they are asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentinelConfig {
    /// Sentinel addresses, asked in this order.
    pub addrs: Vec<(String, u16)>,
    /// The master's name (`sentinel monitor <name> ...`).
    pub master: String,
}

impl SentinelConfig {
    /// `host1:port1,host2:port2/<master>`, as in the URL.
    pub fn describe(&self) -> String {
        let addrs: Vec<String> = self
            .addrs
            .iter()
            .map(|(host, port)| format!("{host}:{port}"))
            .collect();
        format!("{}/{}", addrs.join(","), self.master)
    }
}

/// For a `redis+sentinel://` URL: the equivalent `redis://` URL (user, password, first
/// sentinel, database) and the sentinels; any other URL is returned as it is.
pub(super) fn split_url(url: String) -> Result<(String, Option<SentinelConfig>), ConfigError> {
    let Some(rest) = url.strip_prefix("redis+sentinel://") else {
        return Ok((url, None));
    };
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (format!("{auth}@"), rest),
        None => (String::new(), rest),
    };
    let (hosts, path) = rest.split_once('/').ok_or_else(|| {
        invalid(
            "redis.url",
            "redis+sentinel:// needs /<master-name> after the sentinels",
        )
    })?;
    let mut addrs = Vec::new();
    for host in hosts.split(',') {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) => {
                let port = port.parse::<u16>().map_err(|_| {
                    invalid(
                        "redis.url",
                        format!("sentinel {host:?}: the port is not a number"),
                    )
                })?;
                (name, port)
            }
            None => (host, SENTINEL_PORT),
        };
        if name.is_empty() {
            return Err(invalid(
                "redis.url",
                format!("sentinel {host:?} has no host"),
            ));
        }
        addrs.push((name.to_string(), port));
    }
    let (master, db) = match path.split_once('/') {
        Some((master, db)) => (master, db),
        None => (path, ""),
    };
    if master.is_empty() {
        return Err(invalid(
            "redis.url",
            "redis+sentinel:// needs the master's name: .../<master-name>",
        ));
    }
    let (first_host, first_port) = &addrs[0];
    let plain = format!("redis://{auth}{first_host}:{first_port}/{db}");
    let sentinel = SentinelConfig {
        addrs,
        master: master.to_string(),
    };
    Ok((plain, Some(sentinel)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_url_names_its_sentinels_master_and_database() {
        let (plain, sentinel) =
            split_url("redis+sentinel://u:p@h1:26380,h2/cold/3".to_string()).unwrap();
        assert_eq!(plain, "redis://u:p@h1:26380/3");
        let sentinel = sentinel.unwrap();
        assert_eq!(
            sentinel.addrs,
            vec![("h1".to_string(), 26380), ("h2".to_string(), 26379)]
        );
        assert_eq!(sentinel.master, "cold");
        assert_eq!(sentinel.describe(), "h1:26380,h2:26379/cold");
        let (plain, _) = split_url("redis+sentinel://h1/cold".to_string()).unwrap();
        assert_eq!(plain, "redis://h1:26379/");
        let err = split_url("redis+sentinel://h1:26379".to_string()).unwrap_err();
        assert!(err.to_string().contains("master-name"), "{err}");
        let err = split_url("redis+sentinel://h1:x/m".to_string()).unwrap_err();
        assert!(err.to_string().contains("redis.url"), "{err}");
        let (plain, none) = split_url("redis://h:1/0".to_string()).unwrap();
        assert_eq!((plain.as_str(), none), ("redis://h:1/0", None));
    }
}
