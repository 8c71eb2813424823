//! The block index: which blocks exist, per tenant, by time.

use std::collections::{BTreeMap, HashMap};

use kiln_proto::kiln::metastore::v1::BlockMeta;

#[derive(Debug, Default, Clone)]
struct TenantBlocks {
    /// Blocks keyed by (min_time, id).
    by_start: BTreeMap<(i64, String), BlockMeta>,
    /// id → min_time, to find a block by id.
    starts: HashMap<String, i64>,
    /// The longest `max_time - min_time` of any block, to bound range scans.
    max_span: i64,
}

/// All blocks of all tenants.
#[derive(Debug, Default, Clone)]
pub struct BlockIndex {
    tenants: BTreeMap<String, TenantBlocks>,
}

impl BlockIndex {
    /// Adds a block; adding a block id twice is a no-op. Returns whether it was new.
    pub fn insert(&mut self, block: BlockMeta) -> bool {
        let t = self.tenants.entry(block.tenant.clone()).or_default();
        if t.starts.contains_key(&block.id) {
            return false;
        }
        t.max_span = t
            .max_span
            .max(block.max_time.saturating_sub(block.min_time));
        t.starts.insert(block.id.clone(), block.min_time);
        t.by_start.insert((block.min_time, block.id.clone()), block);
        true
    }

    /// Removes a block by tenant and id; returns it if present.
    pub fn remove(&mut self, tenant: &str, id: &str) -> Option<BlockMeta> {
        let t = self.tenants.get_mut(tenant)?;
        let start = t.starts.remove(id)?;
        t.by_start.remove(&(start, id.to_owned()))
    }

    /// A block by tenant and id.
    pub fn get(&self, tenant: &str, id: &str) -> Option<&BlockMeta> {
        let t = self.tenants.get(tenant)?;
        let start = t.starts.get(id)?;
        t.by_start.get(&(*start, id.to_owned()))
    }

    /// Blocks of `tenant` whose time range overlaps `[start, end]` (ns,
    /// inclusive) and that hold one of `services` (all if empty), by start time.
    pub fn query(
        &self,
        tenant: &str,
        start: i64,
        end: i64,
        services: &[String],
    ) -> Vec<&BlockMeta> {
        let Some(t) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        let lower = (start.saturating_sub(t.max_span), String::new());
        t.by_start
            .range(lower..)
            .take_while(|((min, _), _)| *min <= end)
            .map(|(_, b)| b)
            .filter(|b| b.max_time >= start)
            .filter(|b| {
                services.is_empty()
                    || b.datasets
                        .iter()
                        .any(|d| services.contains(&d.service_name))
            })
            .collect()
    }

    /// The tenants that have blocks.
    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        self.tenants.keys().map(String::as_str)
    }

    /// The blocks of one tenant, by start time.
    pub fn tenant_blocks(&self, tenant: &str) -> impl Iterator<Item = &BlockMeta> {
        self.tenants
            .get(tenant)
            .into_iter()
            .flat_map(|t| t.by_start.values())
    }

    /// Every block, by tenant then start time.
    pub fn iter(&self) -> impl Iterator<Item = &BlockMeta> {
        self.tenants.values().flat_map(|t| t.by_start.values())
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.tenants.values().map(|t| t.by_start.len()).sum()
    }

    /// Whether there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use kiln_proto::kiln::metastore::v1::Dataset;

    use super::*;

    fn block(id: &str, tenant: &str, min: i64, max: i64, service: &str) -> BlockMeta {
        BlockMeta {
            id: id.into(),
            tenant: tenant.into(),
            min_time: min,
            max_time: max,
            datasets: vec![Dataset {
                service_name: service.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn queries_by_overlap_tenant_and_service() {
        let mut idx = BlockIndex::default();
        assert!(idx.insert(block("a", "t", 0, 10, "api")));
        assert!(idx.insert(block("b", "t", 100, 1000, "web")));
        assert!(idx.insert(block("c", "t", 20, 30, "api")));
        assert!(idx.insert(block("d", "u", 0, 10, "api")));
        assert!(!idx.insert(block("a", "t", 0, 10, "api")), "idempotent");
        let ids = |v: Vec<&BlockMeta>| v.iter().map(|b| b.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(idx.query("t", 0, 1_000_000, &[])), vec!["a", "c", "b"]);
        assert_eq!(ids(idx.query("t", 11, 19, &[])), Vec::<String>::new());
        assert_eq!(
            ids(idx.query("t", 500, 600, &[])),
            vec!["b"],
            "long block found from inside"
        );
        assert_eq!(
            ids(idx.query("t", 10, 20, &[])),
            vec!["a", "c"],
            "inclusive bounds"
        );
        assert_eq!(ids(idx.query("t", 0, 2000, &["web".into()])), vec!["b"]);
        assert_eq!(ids(idx.query("u", 0, 2000, &[])), vec!["d"]);
        assert_eq!(ids(idx.query("nobody", 0, 2000, &[])), Vec::<String>::new());
        assert_eq!(idx.remove("t", "c").map(|b| b.id), Some("c".into()));
        assert_eq!(idx.len(), 3);
    }
}
