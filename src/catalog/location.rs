//! Locations that catalogs and table metadata name (`s3a://bucket/warehouse/orders/dt=...`,
//! `file:/data/orders`, `abfss://container@account.dfs.core.windows.net/...`) mapped to paths in
//! the configured store, or refused with the reason.
//!
//! Without `location_prefix`, a location maps when it is in the store `[source]` points at: the
//! same kind of store (`s3`/`s3a`/`s3n` for S3, `gs` for GCS, `oss`, `abfs[s]`/`wasb[s]` for Azure
//! Blob, `file:` or a bare absolute path for the file system), the same bucket (container), and
//! under the store's `root`. With `location_prefix` (the URI of the store's root, for anything
//! else: `hdfs://namenode:8020/warehouse` served by a gateway, another bucket name, a mount), a
//! location maps when it starts with that prefix.

use opendal::Operator;

/// The store a table's locations must be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocations {
    /// opendal scheme of the store (`s3`, `fs`, `gcs`, `azblob`, `oss`).
    scheme: String,
    /// Bucket or container (empty for the file system).
    bucket: String,
    /// The store's root, `/`-separated with a leading and a trailing `/`.
    root: String,
    /// `location_prefix`, without a trailing `/`.
    prefix: Option<String>,
}

impl StoreLocations {
    /// The locations of the store `operator` reads, with the table's `location_prefix`.
    pub fn of(operator: &Operator, location_prefix: Option<&str>) -> StoreLocations {
        let info = operator.info();
        StoreLocations::new(info.scheme(), &info.name(), &info.root(), location_prefix)
    }

    /// From the store's scheme, bucket (or container) and root.
    pub fn new(
        scheme: &str,
        bucket: &str,
        root: &str,
        location_prefix: Option<&str>,
    ) -> StoreLocations {
        let trimmed = root.trim_matches('/');
        let root = if trimmed.is_empty() {
            "/".to_string()
        } else {
            format!("/{trimmed}/")
        };
        StoreLocations {
            scheme: scheme.to_string(),
            bucket: bucket.to_string(),
            root,
            prefix: location_prefix.map(|p| normalize_file_uri(p.trim_end_matches('/'))),
        }
    }

    /// What the store is, for messages: `s3 bucket warehouse, root /` or `fs root /data/`.
    pub fn describe(&self) -> String {
        let bucket = if self.bucket.is_empty() || self.scheme == "fs" {
            String::new()
        } else {
            format!(" bucket {}", self.bucket)
        };
        let prefix = self
            .prefix
            .as_ref()
            .map(|p| format!(", location_prefix {p}"))
            .unwrap_or_default();
        format!("{}{bucket}, root {}{prefix}", self.scheme, self.root)
    }

    /// The path in the store (relative to its root, no leading `/`) of `location`, or why it is
    /// not in the store.
    pub fn to_store_path(&self, location: &str) -> Result<String, String> {
        let location = normalize_file_uri(location);
        if let Some(prefix) = &self.prefix {
            return match location.strip_prefix(prefix.as_str()) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                    Ok(rest.trim_start_matches('/').to_string())
                }
                _ => Err(format!("it does not start with location_prefix {prefix}")),
            };
        }
        let (scheme, authority, path) = split_uri(&location);
        let family = match scheme {
            None | Some("file") => "fs",
            Some("s3" | "s3a" | "s3n") => "s3",
            Some("gs" | "gcs") => "gcs",
            Some("oss") => "oss",
            Some("abfs" | "abfss" | "wasb" | "wasbs") => "azblob",
            Some(other) => {
                return Err(format!(
                    "{other}:// is not a store coldsync reads: set location_prefix to the {other}:// URI of the store's root"
                ))
            }
        };
        let store_family = if self.scheme == "azdls" {
            "azblob"
        } else {
            self.scheme.as_str()
        };
        if family != store_family {
            return Err(format!(
                "it is a {family} location, the store is {}",
                self.scheme
            ));
        }
        if family != "fs" {
            let bucket = match family {
                "azblob" => authority.split('@').next().unwrap_or(""),
                _ => authority,
            };
            if bucket != self.bucket {
                return Err(format!(
                    "it is in bucket {bucket:?}, the store reads bucket {:?} (or set location_prefix)",
                    self.bucket
                ));
            }
        } else if !authority.is_empty() && authority != "localhost" {
            return Err(format!("file://{authority}/ is on another host"));
        }
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        if path.split('/').any(|part| part == "..") {
            return Err("it contains '..'".to_string());
        }
        match path.strip_prefix(self.root.as_str()) {
            Some(rest) => Ok(rest.to_string()),
            None if path.len() + 1 == self.root.len() && self.root.starts_with(path.as_str()) => {
                Ok(String::new())
            }
            None => Err(format!("it is not under the store's root {}", self.root)),
        }
    }
}

/// `file:///x` and `file://localhost/x` as `file:/x` (the forms Hive, Spark and Python write).
fn normalize_file_uri(location: &str) -> String {
    for prefix in ["file://localhost/", "file:///"] {
        if let Some(rest) = location.strip_prefix(prefix) {
            return format!("file:/{rest}");
        }
    }
    location.to_string()
}

/// `(scheme, authority, path)` of `scheme://authority/path`, `file:/path` or a bare path.
fn split_uri(location: &str) -> (Option<&str>, &str, &str) {
    let Some((scheme, rest)) = location.split_once(':') else {
        return (None, "", location);
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return (None, "", location);
    }
    match rest.strip_prefix("//") {
        Some(rest) => match rest.find('/') {
            Some(i) => (Some(scheme), &rest[..i], &rest[i..]),
            None => (Some(scheme), rest, "/"),
        },
        None => (Some(scheme), "", rest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations_map_by_bucket_and_root_with_every_hadoop_scheme() {
        let store = StoreLocations::new("s3", "lake", "/warehouse", None);
        for scheme in ["s3", "s3a", "s3n"] {
            assert_eq!(
                store.to_store_path(&format!("{scheme}://lake/warehouse/orders/dt=2026-11-20")),
                Ok("orders/dt=2026-11-20".to_string())
            );
        }
        let other = store
            .to_store_path("s3a://other/warehouse/orders")
            .unwrap_err();
        assert!(other.contains("bucket \"other\""), "{other}");
        let outside = store.to_store_path("s3a://lake/tmp/orders").unwrap_err();
        assert!(
            outside.contains("not under the store's root /warehouse/"),
            "{outside}"
        );
        let kind = store
            .to_store_path("gs://lake/warehouse/orders")
            .unwrap_err();
        assert!(kind.contains("gcs location, the store is s3"), "{kind}");
    }

    #[test]
    fn file_locations_in_every_spelling() {
        let store = StoreLocations::new("fs", "", "/data/lake/", None);
        for location in [
            "file:/data/lake/orders/dt=2026-11-20",
            "file:///data/lake/orders/dt=2026-11-20",
            "file://localhost/data/lake/orders/dt=2026-11-20",
            "/data/lake/orders/dt=2026-11-20",
        ] {
            assert_eq!(
                store.to_store_path(location),
                Ok("orders/dt=2026-11-20".to_string()),
                "{location}"
            );
        }
        assert_eq!(store.to_store_path("file:/data/lake"), Ok(String::new()));
        assert!(store.to_store_path("file:/data/lakeside/x").is_err());
        assert!(store.to_store_path("file:/data/lake/../etc").is_err());
        assert!(store.to_store_path("file://otherhost/data/lake/x").is_err());
    }

    #[test]
    fn azure_containers_and_unknown_schemes() {
        let store = StoreLocations::new("azblob", "events", "/", None);
        assert_eq!(
            store.to_store_path("abfss://events@acct.dfs.core.windows.net/orders/dt=2026-11-20"),
            Ok("orders/dt=2026-11-20".to_string())
        );
        let hdfs = store
            .to_store_path("hdfs://nn:8020/warehouse/orders")
            .unwrap_err();
        assert!(hdfs.contains("set location_prefix"), "{hdfs}");
    }

    #[test]
    fn a_location_prefix_maps_anything_under_it() {
        let store = StoreLocations::new("s3", "lake", "/", Some("hdfs://nn:8020/warehouse/"));
        assert_eq!(
            store.to_store_path("hdfs://nn:8020/warehouse/orders/dt=2026-11-20"),
            Ok("orders/dt=2026-11-20".to_string())
        );
        assert!(store
            .to_store_path("hdfs://nn:8020/warehouse2/orders")
            .unwrap_err()
            .contains("location_prefix hdfs://nn:8020/warehouse"));
        let file = StoreLocations::new("fs", "", "/", Some("file:///mnt/lake"));
        assert_eq!(
            file.to_store_path("file:/mnt/lake/orders"),
            Ok("orders".to_string())
        );
    }
}
