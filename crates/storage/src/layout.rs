//! Where objects live in the bucket.
//!
//! ```text
//! <tenant>/segments/<shard>/<ulid>.block   level-0 segments written by ingesters
//! <tenant>/blocks/<level>/<ulid>.block     compacted blocks and roll-up tiers
//! ```
//! Tenant first, so that a tenant's data can be listed or removed by prefix.

use ulid::Ulid;

/// Object key of an ingester segment.
pub fn segment_key(tenant: &str, shard: u32, id: Ulid) -> String {
    format!("{tenant}/segments/{shard}/{id}.block")
}

/// Object key of a compacted block.
pub fn block_key(tenant: &str, level: u32, id: Ulid) -> String {
    format!("{tenant}/blocks/{level}/{id}.block")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_tenant_scoped() {
        let id = Ulid::from_string("01GR3QABQB6J30Q04K4E6MAKRE").unwrap();
        assert_eq!(
            segment_key("anonymous", 3, id),
            "anonymous/segments/3/01GR3QABQB6J30Q04K4E6MAKRE.block"
        );
        assert_eq!(
            block_key("t1", 2, id),
            "t1/blocks/2/01GR3QABQB6J30Q04K4E6MAKRE.block"
        );
    }
}
