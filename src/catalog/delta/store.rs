//! The object store delta_kernel reads the table through: `[source]`'s opendal operator
//! (`object_store_opendal`), read-only, with sorted listings.
//!
//! - Sorted: delta_kernel expects a listing of `_delta_log/` in path order (as S3 lists) for any
//!   URL but `file:` ones, and the URL it is given cannot be `file:` (the kernel would look for
//!   the path on the local disk, not in the store). The file system, and other stores, list in
//!   any order: every listing is sorted here.
//! - Read-only: coldsync never writes to a table; a write would be a bug, refused here.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use delta_kernel::object_store::path::Path;
use delta_kernel::object_store::{
    CopyOptions, Error, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store_opendal::OpendalStore;

/// [`OpendalStore`], read-only, listing in path order.
#[derive(Debug)]
pub struct LogStore {
    inner: OpendalStore,
}

impl LogStore {
    /// The store of `operator`.
    pub fn new(operator: opendal::Operator) -> LogStore {
        LogStore {
            inner: OpendalStore::new(operator),
        }
    }

    fn sorted(
        listing: BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        stream::once(async move {
            let mut entries: Vec<ObjectMeta> = listing.try_collect().await?;
            entries.sort_by(|a, b| a.location.cmp(&b.location));
            Ok::<_, Error>(stream::iter(entries.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }
}

impl fmt::Display for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "coldsync read-only {}", self.inner)
    }
}

fn read_only(location: &Path) -> Error {
    Error::NotSupported {
        source: format!(
            "coldsync reads Delta tables and never writes them (asked to write {location})"
        )
        .into(),
    }
}

#[async_trait::async_trait]
impl ObjectStore for LogStore {
    async fn put_opts(
        &self,
        location: &Path,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> Result<PutResult> {
        Err(read_only(location))
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(read_only(location))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        locations.map(|location| Err(read_only(&location?))).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        Self::sorted(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        Self::sorted(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, _from: &Path, to: &Path, _options: CopyOptions) -> Result<()> {
        Err(read_only(to))
    }
}

#[cfg(test)]
mod tests {
    use delta_kernel::object_store::ObjectStoreExt;

    use super::*;

    #[tokio::test]
    async fn listings_come_sorted_and_writes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "00000000000000000002.json",
            "00000000000000000000.json",
            "00000000000000000001.json",
            "_last_checkpoint",
        ] {
            std::fs::create_dir_all(dir.path().join("t/_delta_log")).unwrap();
            std::fs::write(dir.path().join("t/_delta_log").join(name), b"{}").unwrap();
        }
        let operator = opendal::Operator::via_iter(
            "fs",
            [("root".to_string(), dir.path().to_str().unwrap().to_string())],
        )
        .unwrap();
        let store = LogStore::new(operator);
        let names: Vec<String> = store
            .list_with_offset(
                Some(&Path::from("t/_delta_log")),
                &Path::from("t/_delta_log/00000000000000000000.json"),
            )
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            names,
            [
                "t/_delta_log/00000000000000000001.json",
                "t/_delta_log/00000000000000000002.json",
                "t/_delta_log/_last_checkpoint"
            ]
        );
        let err = store
            .put(&Path::from("t/x"), PutPayload::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("never writes"), "{err}");
        assert!(!dir.path().join("t/x").exists());
    }
}
