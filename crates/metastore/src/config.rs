//! Metastore configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `metastore` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetastoreConfig {
    /// gRPC address(es) of the metastore replicas, comma separated, used by
    /// the other roles; empty means this process (which must then run the
    /// metastore role).
    pub address: String,
    /// Raft node id of this replica (when it runs the metastore role).
    pub node_id: u64,
    /// Every replica as `id@host:port`, comma separated (e.g.
    /// `1@10.0.0.1:9095,2@10.0.0.2:9095,3@10.0.0.3:9095`); empty means a
    /// single replica: this node at its advertised address.
    pub peers: String,
    /// Raft leader heartbeat interval.
    #[serde(with = "humantime_serde")]
    pub raft_heartbeat_interval: Duration,
    /// Raft election timeout (the upper bound is twice this).
    #[serde(with = "humantime_serde")]
    pub raft_election_timeout: Duration,
    /// Log entries between snapshots.
    pub snapshot_every: u64,
    /// How often nodes renew their registration.
    #[serde(with = "humantime_serde")]
    pub member_heartbeat_interval: Duration,
    /// A node whose registration is older than this leaves the ring.
    #[serde(with = "humantime_serde")]
    pub member_timeout: Duration,
}

impl Default for MetastoreConfig {
    fn default() -> Self {
        MetastoreConfig {
            address: String::new(),
            node_id: 1,
            peers: String::new(),
            raft_heartbeat_interval: Duration::from_millis(250),
            raft_election_timeout: Duration::from_millis(1500),
            snapshot_every: 5000,
            member_heartbeat_interval: Duration::from_secs(5),
            member_timeout: Duration::from_secs(20),
        }
    }
}

impl MetastoreConfig {
    /// The replicas as (id, address), or an error naming the bad entry.
    pub fn parse_peers(&self) -> Result<Vec<(u64, String)>, String> {
        let mut out = Vec::new();
        for (i, part) in self
            .peers
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            match part.split_once('@') {
                Some((id, addr)) => {
                    let id: u64 = id.parse().map_err(|_| {
                        format!(
                            "`metastore.peers`: {part:?} must be id@host:port with a numeric id"
                        )
                    })?;
                    out.push((id, addr.to_owned()));
                }
                None => out.push((i as u64 + 1, part.to_owned())),
            }
        }
        let mut ids: Vec<u64> = out.iter().map(|p| p.0).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != out.len() {
            return Err("`metastore.peers` lists the same id twice".into());
        }
        if ids.contains(&0) {
            return Err("`metastore.peers`: ids must be at least 1".into());
        }
        Ok(out)
    }

    /// The client addresses (`address` split on commas).
    pub fn addresses(&self) -> Vec<String> {
        self.address
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        let peers = self.parse_peers()?;
        if !peers.is_empty() && !peers.iter().any(|p| p.0 == self.node_id) {
            return Err(format!(
                "`metastore.node_id` {} is not among `metastore.peers`",
                self.node_id
            ));
        }
        if self.raft_election_timeout < self.raft_heartbeat_interval * 3 {
            return Err("`metastore.raft_election_timeout` must be at least 3 × `metastore.raft_heartbeat_interval`".into());
        }
        if self.member_timeout < self.member_heartbeat_interval * 2 {
            return Err("`metastore.member_timeout` must be at least 2 × `metastore.member_heartbeat_interval`".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse() {
        let c = MetastoreConfig {
            peers: "1@a:1, 2@b:2,3@c:3".into(),
            ..Default::default()
        };
        assert_eq!(
            c.parse_peers().unwrap(),
            vec![(1, "a:1".into()), (2, "b:2".into()), (3, "c:3".into())]
        );
        let c = MetastoreConfig {
            peers: "a:1,b:2".into(),
            node_id: 2,
            ..Default::default()
        };
        assert_eq!(
            c.parse_peers().unwrap(),
            vec![(1, "a:1".into()), (2, "b:2".into())]
        );
        c.validate().unwrap();
        assert!(
            MetastoreConfig {
                peers: "1@a,1@b".into(),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            MetastoreConfig {
                peers: "x@a".into(),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            MetastoreConfig {
                peers: "1@a,2@b".into(),
                node_id: 3,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert_eq!(
            MetastoreConfig {
                address: "a:1, b:2".into(),
                ..Default::default()
            }
            .addresses(),
            vec!["a:1", "b:2"]
        );
    }
}
