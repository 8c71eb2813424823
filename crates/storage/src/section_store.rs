//! A read-only `ObjectStore` view in which every section of a block is its
//! own object, so that Parquet readers (and DataFusion) can open a section
//! like a standalone file.
//!
//! Virtual paths look like `<block key>/<section>@<offset>-<length>.parquet`:
//! the section's byte range is encoded in the name, so no lookup is needed
//! to translate a read. Range requests are shifted into the block object;
//! `head` answers from the path alone plus one metadata request.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// URL scheme and host under which DataFusion finds the section store.
pub const SECTION_STORE_URL: &str = "kiln://sections";

/// Read-only view of block sections as objects.
#[derive(Debug, Clone)]
pub struct SectionStore {
    inner: Arc<dyn ObjectStore>,
}

impl SectionStore {
    /// Wraps the store that holds the blocks.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        SectionStore { inner }
    }

    /// The virtual path of a section.
    pub fn path_of(block_key: &str, section: &str, offset: u64, length: u64) -> String {
        format!("{block_key}/{section}@{offset}-{length}.parquet")
    }

    /// The URL (for DataFusion) of a section.
    pub fn url_of(block_key: &str, section: &str, offset: u64, length: u64) -> String {
        format!(
            "{SECTION_STORE_URL}/{}",
            Self::path_of(block_key, section, offset, length)
        )
    }

    /// Splits a virtual path into (block key, offset, length).
    fn resolve(location: &Path) -> object_store::Result<(Path, u64, u64)> {
        let bad = || object_store::Error::NotFound {
            path: location.to_string(),
            source: "not a block section path".into(),
        };
        let s = location.as_ref();
        let (key, last) = s.rsplit_once('/').ok_or_else(bad)?;
        let last = last.strip_suffix(".parquet").ok_or_else(bad)?;
        let (_, range) = last.rsplit_once('@').ok_or_else(bad)?;
        let (off, len) = range.split_once('-').ok_or_else(bad)?;
        let off: u64 = off.parse().map_err(|_| bad())?;
        let len: u64 = len.parse().map_err(|_| bad())?;
        Ok((Path::from(key), off, len))
    }

    fn shift(range: &GetRange, off: u64, len: u64) -> Range<u64> {
        match range {
            GetRange::Bounded(r) => (off + r.start.min(len))..(off + r.end.min(len)),
            GetRange::Offset(o) => (off + (*o).min(len))..(off + len),
            GetRange::Suffix(n) => (off + len - (*n).min(len))..(off + len),
        }
    }
}

impl fmt::Display for SectionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SectionStore({})", self.inner)
    }
}

fn read_only(operation: &str) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!("{operation} on the read-only section store").into(),
    }
}

#[async_trait]
impl ObjectStore for SectionStore {
    async fn put_opts(
        &self,
        _: &Path,
        _: PutPayload,
        _: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(read_only("put"))
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only("put"))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let (key, off, len) = Self::resolve(location)?;
        if options.head {
            // Everything a head needs is in the path; asking the backend with
            // a range would make S3 answer 200 where a 206 is expected.
            let meta = ObjectMeta {
                location: location.clone(),
                last_modified: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                size: len,
                e_tag: None,
                version: None,
            };
            return Ok(GetResult {
                payload: GetResultPayload::Stream(stream::empty().boxed()),
                meta,
                range: 0..len,
                attributes: Default::default(),
            });
        }
        let wanted = options.range.clone().unwrap_or(GetRange::Bounded(0..len));
        let real = Self::shift(&wanted, off, len);
        let inner_opts = GetOptions {
            range: Some(GetRange::Bounded(real.clone())),
            ..options
        };
        let result = self.inner.get_opts(&key, inner_opts).await?;
        let meta = ObjectMeta {
            location: location.clone(),
            last_modified: result.meta.last_modified,
            size: len,
            e_tag: result.meta.e_tag.clone(),
            version: result.meta.version.clone(),
        };
        let attributes = result.attributes.clone();
        let range = (real.start - off)..(real.end - off);
        // Materialise: a file-backed payload would be read at the block
        // object's offsets, which this view has shifted.
        let bytes = result.bytes().await?;
        let payload = GetResultPayload::Stream(stream::once(async move { Ok(bytes) }).boxed());
        Ok(GetResult {
            payload,
            meta,
            range,
            attributes,
        })
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let (key, off, len) = Self::resolve(location)?;
        let shifted: Vec<Range<u64>> = ranges
            .iter()
            .map(|r| Self::shift(&GetRange::Bounded(r.clone()), off, len))
            .collect();
        self.inner.get_ranges(&key, &shifted).await
    }

    fn delete_stream(
        &self,
        _: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        stream::once(async { Err(read_only("delete")) }).boxed()
    }

    fn list(&self, _: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        stream::once(async { Err(read_only("list")) }).boxed()
    }

    async fn list_with_delimiter(&self, _: Option<&Path>) -> object_store::Result<ListResult> {
        Err(read_only("list"))
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> object_store::Result<()> {
        Err(read_only("copy"))
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn reads_are_shifted_into_the_block() {
        let inner = Arc::new(InMemory::new());
        inner
            .put(
                &Path::from("t/b.block"),
                PutPayload::from_static(b"xxHELLOyy"),
            )
            .await
            .unwrap();
        let store = SectionStore::new(inner);
        let p = Path::from(SectionStore::path_of("t/b.block", "samples", 2, 5));
        assert_eq!(
            store.get(&p).await.unwrap().bytes().await.unwrap(),
            Bytes::from_static(b"HELLO")
        );
        assert_eq!(
            store.get_range(&p, 1..3).await.unwrap(),
            Bytes::from_static(b"EL")
        );
        assert_eq!(store.head(&p).await.unwrap().size, 5);
        let r = store
            .get_opts(
                &p,
                GetOptions {
                    range: Some(GetRange::Suffix(2)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(r.range, 3..5);
        assert_eq!(r.bytes().await.unwrap(), Bytes::from_static(b"LO"));
        assert_eq!(
            store.get_ranges(&p, &[0..1, 4..5]).await.unwrap(),
            vec![Bytes::from_static(b"H"), Bytes::from_static(b"O")]
        );
        assert!(store.get(&Path::from("t/b.block")).await.is_err());
    }
}
