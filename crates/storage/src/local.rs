//! The filesystem backend: `object_store`'s [`LocalFileSystem`] with ranged
//! reads served from memory maps.
//!
//! `LocalFileSystem` answers a ranged read by allocating a buffer, zeroing
//! it and copying the file's bytes into it with `pread`. Queries read many
//! ranges of a few hundred KiB to a few MiB (Parquet pages and sections of
//! blocks), so on a fresh process most of that buffer memory is also
//! faulted in page by page, and the first query after a restart spent about
//! a fifth of its CPU zeroing and copying. [`MappedLocalStore`] maps each
//! requested range of at least [`MAP_MIN_BYTES`] instead (`MAP_POPULATE`,
//! so the page-cache pages are mapped, and read from disk if needed, in the
//! blocking thread that serves the request, not later on an async worker
//! that touches them) and hands out the mapping as [`Bytes`]; smaller ranges
//! are read as before. Everything else (writes, lists, deletes, conditional
//! and whole-object reads) is the inner store's.
//!
//! Mapping is safe here because objects are immutable: `LocalFileSystem`
//! writes an object to a temporary file and renames it into place, so a
//! file that is mapped is never truncated or rewritten; deleting or
//! replacing it unlinks the name and leaves the mapped inode intact until
//! the last [`Bytes`] referring to it is dropped. A range is only mapped
//! after checking it lies inside the file.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

/// Ranges shorter than this are read into a buffer: mapping and unmapping
/// cost two system calls and a TLB flush, more than copying a few pages.
pub const MAP_MIN_BYTES: u64 = 64 * 1024;

/// [`LocalFileSystem`] serving ranged reads from memory maps; see the
/// module documentation.
#[derive(Debug)]
pub struct MappedLocalStore {
    inner: Arc<LocalFileSystem>,
}

impl MappedLocalStore {
    /// Wraps `inner`.
    pub fn new(inner: LocalFileSystem) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }
}

impl std::fmt::Display for MappedLocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapped({})", self.inner)
    }
}

fn generic(path: &std::path::Path, source: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(std::io::Error::new(
            source.kind(),
            format!("{}: {source}", path.display()),
        )),
    }
}

/// Reads `range` of `file` (whose length is `len`), mapping it when long
/// enough.
fn read_range(
    file: &File,
    path: &std::path::Path,
    len: u64,
    range: Range<u64>,
) -> object_store::Result<Bytes> {
    if range.start > range.end || range.end > len {
        return Err(object_store::Error::Generic {
            store: "LocalFileSystem",
            source: format!(
                "range {}..{} is outside {} ({len} bytes)",
                range.start,
                range.end,
                path.display()
            )
            .into(),
        });
    }
    let n = range.end - range.start;
    if n < MAP_MIN_BYTES {
        let mut buf = vec![0u8; n as usize];
        file.read_exact_at(&mut buf, range.start)
            .map_err(|e| generic(path, e))?;
        return Ok(Bytes::from(buf));
    }
    // SAFETY: the mapping is read-only and the range was checked to lie
    // inside the file; object files are never modified or truncated in
    // place (see the module documentation), so the mapped bytes cannot
    // change or disappear while the `Bytes` holding them lives.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(range.start)
            .len(n as usize)
            .populate()
            .map(file)
    }
    .map_err(|e| generic(path, e))?;
    Ok(Bytes::from_owner(map))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> object_store::Result<T> + Send + 'static,
) -> object_store::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        })?
}

#[async_trait]
impl ObjectStore for MappedLocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let ranged = options.range.is_some() && !options.head;
        // The inner store opens the file, checks preconditions and resolves
        // the range against the file's length.
        let result = self.inner.get_opts(location, options).await?;
        if !ranged || result.range.end - result.range.start < MAP_MIN_BYTES {
            return Ok(result);
        }
        let GetResultPayload::File(file, path) = result.payload else {
            return Ok(result);
        };
        let (range, size) = (result.range.clone(), result.meta.size);
        let bytes = blocking(move || read_range(&file, &path, size, range)).await?;
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(bytes) }).boxed()),
            ..result
        })
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let path = self.inner.path_to_filesystem(location)?;
        let ranges = ranges.to_vec();
        let location = location.clone();
        blocking(move || {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(object_store::Error::NotFound {
                        path: location.to_string(),
                        source: Box::new(e),
                    });
                }
                Err(e) => return Err(generic(&path, e)),
            };
            let len = file.metadata().map_err(|e| generic(&path, e))?.len();
            ranges
                .into_iter()
                .map(|r| read_range(&file, &path, len, r))
                .collect()
        })
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;

    use super::*;

    fn stores() -> (tempfile::TempDir, MappedLocalStore, LocalFileSystem) {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = LocalFileSystem::new_with_prefix(dir.path()).expect("store");
        let b = LocalFileSystem::new_with_prefix(dir.path()).expect("store");
        (dir, MappedLocalStore::new(a), b)
    }

    #[tokio::test]
    async fn ranged_reads_equal_the_plain_store() {
        let (_dir, mapped, plain) = stores();
        let path = Path::from("t/blocks/1/x.block");
        // Not a multiple of the page size, so mappings start and end
        // inside pages.
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i * 7 + i / 977) as u8).collect();
        mapped
            .put(&path, PutPayload::from(data.clone()))
            .await
            .expect("put");
        let ranges = [
            0..10,
            4095..4097 + 200_000,
            123_457..123_457 + MAP_MIN_BYTES,
            123_457..123_457 + MAP_MIN_BYTES - 1,
            900_000..1_000_003,
        ];
        for r in &ranges {
            let got = mapped.get_range(&path, r.clone()).await.expect("get_range");
            let want = plain.get_range(&path, r.clone()).await.expect("plain");
            assert_eq!(got, want, "range {r:?}");
            assert_eq!(&got[..], &data[r.start as usize..r.end as usize]);
        }
        // `get_ranges` also takes empty ranges.
        let mut ranges = ranges.to_vec();
        ranges.push(5..5);
        let got = mapped.get_ranges(&path, &ranges).await.expect("get_ranges");
        assert_eq!(got.len(), ranges.len());
        for (r, g) in ranges.iter().zip(got) {
            assert_eq!(&g[..], &data[r.start as usize..r.end as usize], "{r:?}");
        }
        // Whole-object reads and metadata are the inner store's.
        let all = mapped.get(&path).await.expect("get");
        assert_eq!(all.meta.size, data.len() as u64);
        assert_eq!(all.bytes().await.expect("bytes"), Bytes::from(data));
    }

    #[tokio::test]
    async fn a_mapped_range_outlives_the_deleted_object() {
        let (_dir, mapped, _) = stores();
        let path = Path::from("t/segments/0/y.block");
        let data = vec![42u8; 3 * MAP_MIN_BYTES as usize];
        mapped
            .put(&path, PutPayload::from(data.clone()))
            .await
            .expect("put");
        let got = mapped
            .get_range(&path, 1..2 * MAP_MIN_BYTES)
            .await
            .expect("get_range");
        mapped.delete(&path).await.expect("delete");
        assert!(got.iter().all(|&b| b == 42));
        assert_eq!(got.len() as u64, 2 * MAP_MIN_BYTES - 1);
        assert!(matches!(
            mapped.get_range(&path, 0..10).await,
            Err(object_store::Error::NotFound { .. })
        ));
        assert!(matches!(
            mapped
                .get_ranges(&path, std::slice::from_ref(&(0..10)))
                .await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn ranges_past_the_end_are_errors_not_faults() {
        let (_dir, mapped, _) = stores();
        let path = Path::from("t/z.block");
        mapped
            .put(&path, PutPayload::from(vec![1u8; 200_000]))
            .await
            .expect("put");
        let err = mapped
            .get_ranges(&path, std::slice::from_ref(&(100_000..300_000)))
            .await
            .expect_err("past the end");
        assert!(err.to_string().contains("outside"), "{err}");
        // A bounded get past the end is truncated by the inner store, as
        // `LocalFileSystem` does.
        let got = mapped
            .get_range(&path, 100_000..300_000)
            .await
            .expect("truncated");
        assert_eq!(got.len(), 100_000);
    }
}
