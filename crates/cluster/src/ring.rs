//! Logical shards and the consistent-hash ring of ingesters.
//!
//! A profile's shard is `jump_hash(xxh64(tenant, service_name, spread
//! index), shards)`: every profile of a service lands on the same shard (or,
//! with `spread > 1`, on a small fixed set), so its symbols deduplicate in
//! the same segments. Shards are assigned to ingesters by a consistent-hash
//! ring: every ingester places `tokens` virtual tokens on a 64-bit circle;
//! the owner of a shard is the first token clockwise from the shard's hash,
//! and the next *distinct* ingesters clockwise are its fail-over order. When
//! an ingester joins or leaves, only the shards next to its tokens move.

use xxhash_rust::xxh64::{Xxh64, xxh64};

/// An ingester on the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Unique node id.
    pub id: String,
    /// gRPC address (`host:port`).
    pub addr: String,
}

/// The ring: members and their tokens.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    members: Vec<Member>,
    /// (token, member index), sorted by token.
    tokens: Vec<(u64, usize)>,
}

impl Ring {
    /// Builds a ring where each member has `tokens_per_member` virtual tokens
    /// derived from its id (so every node computes the same ring).
    pub fn new(mut members: Vec<Member>, tokens_per_member: usize) -> Self {
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members.dedup_by(|a, b| a.id == b.id);
        let mut tokens = Vec::with_capacity(members.len() * tokens_per_member);
        for (i, m) in members.iter().enumerate() {
            for t in 0..tokens_per_member.max(1) {
                let mut h = Xxh64::new(0x6b696c6e);
                h.update(m.id.as_bytes());
                h.update(&(t as u64).to_le_bytes());
                tokens.push((h.digest(), i));
            }
        }
        tokens.sort_unstable();
        Ring { members, tokens }
    }

    /// The members, sorted by id.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Whether the ring has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The owner of `shard` first, then every other member in fail-over order.
    pub fn owners(&self, shard: u32) -> Vec<&Member> {
        if self.tokens.is_empty() {
            return Vec::new();
        }
        let key = xxh64(&shard.to_le_bytes(), 0x7368617264);
        let start = self.tokens.partition_point(|(t, _)| *t < key);
        let mut seen = vec![false; self.members.len()];
        let mut out = Vec::with_capacity(self.members.len());
        for i in 0..self.tokens.len() {
            let (_, m) = self.tokens[(start + i) % self.tokens.len()];
            if !seen[m] {
                seen[m] = true;
                out.push(&self.members[m]);
                if out.len() == self.members.len() {
                    break;
                }
            }
        }
        out
    }
}

/// The shard of a (tenant, service) pair; `spread_index` in `0..spread`
/// picks one of the shards a hot service is spread over.
pub fn shard_for(tenant: &str, service_name: &str, spread_index: u32, shards: u32) -> u32 {
    let mut h = Xxh64::new(0);
    h.update(tenant.as_bytes());
    h.update(&[0]);
    h.update(service_name.as_bytes());
    h.update(&[0]);
    h.update(&spread_index.to_le_bytes());
    jump_hash(h.digest(), shards.max(1))
}

/// Lamping and Veach's jump consistent hash.
fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = (((b + 1) as f64) * ((1u64 << 31) as f64 / (((key >> 33) + 1) as f64))) as i64;
    }
    b as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: usize) -> Member {
        Member {
            id: format!("ingester-{i}"),
            addr: format!("127.0.0.1:{}", 9000 + i),
        }
    }

    #[test]
    fn every_shard_has_all_members_in_failover_order() {
        let ring = Ring::new((0..3).map(member).collect(), 64);
        for shard in 0..64 {
            let owners = ring.owners(shard);
            assert_eq!(owners.len(), 3);
            let mut ids: Vec<_> = owners.iter().map(|m| m.id.clone()).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 3);
        }
        assert!(Ring::default().owners(1).is_empty());
    }

    #[test]
    fn shards_spread_over_members_and_move_little() {
        let three = Ring::new((0..3).map(member).collect(), 128);
        let four = Ring::new((0..4).map(member).collect(), 128);
        let mut counts = [0usize; 3];
        let mut moved = 0;
        for shard in 0..3000 {
            let a = three.owners(shard)[0];
            counts[a
                .id
                .trim_start_matches("ingester-")
                .parse::<usize>()
                .unwrap()] += 1;
            if four.owners(shard)[0].id != a.id {
                moved += 1;
            }
        }
        assert!(counts.iter().all(|&c| c > 600), "{counts:?}");
        // Adding a 4th member moves about a quarter of the shards, all to it.
        assert!((500..1300).contains(&moved), "{moved}");
    }

    #[test]
    fn shard_is_stable_and_in_range() {
        let s = shard_for("anonymous", "api", 0, 16);
        assert!(s < 16);
        assert_eq!(s, shard_for("anonymous", "api", 0, 16));
        let spread: std::collections::BTreeSet<_> = (0..100)
            .map(|i| shard_for("t", &format!("svc{i}"), 0, 16))
            .collect();
        assert!(spread.len() > 10);
        assert_eq!(shard_for("t", "x", 0, 1), 0);
    }
}
