//! Roles (`--target`) and the modules each one needs.
//!
//! `all` is only the union of the roles; there is no separate
//! single-process code path. Modules start in the order of [`Module::ALL`]
//! (dependencies first) and stop in reverse.

use std::collections::BTreeSet;
use std::fmt;

/// A user-visible role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// Write entry point.
    Distributor,
    /// Buffers and flushes segments.
    Ingester,
    /// Read path.
    Querier,
    /// Block index.
    Metastore,
    /// Compaction, roll-ups, retention.
    Compactor,
    /// Query API that spreads every merge query over the queriers (reads
    /// blocks itself only when no querier is alive).
    QueryFrontend,
}

impl Target {
    /// Every role, in display order.
    pub const ALL: [Target; 6] = [
        Target::Distributor,
        Target::Ingester,
        Target::Querier,
        Target::Metastore,
        Target::Compactor,
        Target::QueryFrontend,
    ];

    /// The role's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Distributor => "distributor",
            Target::Ingester => "ingester",
            Target::Querier => "querier",
            Target::Metastore => "metastore",
            Target::Compactor => "compactor",
            Target::QueryFrontend => "query-frontend",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An internal building block started for one or more roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Module {
    /// The object store.
    Storage,
    /// The metastore state machine and its service.
    Metastore,
    /// The client of the metastore.
    MetastoreClient,
    /// The ingester.
    Ingester,
    /// The ring of ingesters and their clients.
    Ring,
    /// The distributor.
    Distributor,
    /// The querier.
    Querier,
    /// The compactor.
    Compactor,
    /// HTTP and gRPC listeners.
    Server,
}

impl Module {
    /// Every module in start order.
    pub const ALL: [Module; 9] = [
        Module::Storage,
        Module::Metastore,
        Module::MetastoreClient,
        Module::Ingester,
        Module::Ring,
        Module::Distributor,
        Module::Querier,
        Module::Compactor,
        Module::Server,
    ];

    /// The modules this one needs.
    pub fn deps(self) -> &'static [Module] {
        match self {
            Module::Storage | Module::Metastore | Module::MetastoreClient => &[],
            Module::Ingester => &[Module::Storage, Module::MetastoreClient],
            Module::Ring => &[],
            Module::Distributor => &[Module::Ring],
            Module::Querier => &[Module::Storage, Module::MetastoreClient],
            Module::Compactor => &[Module::Storage, Module::MetastoreClient],
            Module::Server => &[],
        }
    }
}

fn target_modules(t: Target) -> &'static [Module] {
    match t {
        Target::Distributor => &[Module::Distributor, Module::Server],
        Target::Ingester => &[Module::Ingester, Module::Server],
        Target::Querier => &[Module::Querier, Module::Server],
        Target::Metastore => &[Module::Metastore, Module::Server],
        Target::Compactor => &[Module::Compactor, Module::Server],
        Target::QueryFrontend => &[Module::Querier, Module::Server],
    }
}

/// The roles a process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets(BTreeSet<Target>);

impl Targets {
    /// Parses `all` or a comma list of role names.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                set.extend(Target::ALL);
                continue;
            }
            let t = Target::ALL
                .into_iter()
                .find(|t| t.name() == part)
                .ok_or_else(|| {
                    format!(
                        "unknown target {part:?} in `target`; valid targets: all, {}",
                        Target::ALL.map(Target::name).join(", ")
                    )
                })?;
            set.insert(t);
        }
        if set.is_empty() {
            return Err("`target` must name at least one role".into());
        }
        Ok(Targets(set))
    }

    /// Whether the role runs here.
    pub fn has(&self, t: Target) -> bool {
        self.0.contains(&t)
    }

    /// The modules to start, dependencies included, in start order.
    pub fn modules(&self) -> Vec<Module> {
        let mut wanted: BTreeSet<Module> = BTreeSet::new();
        let mut todo: Vec<Module> = self
            .0
            .iter()
            .flat_map(|t| target_modules(*t).iter().copied())
            .collect();
        while let Some(m) = todo.pop() {
            if wanted.insert(m) {
                todo.extend(m.deps());
            }
        }
        Module::ALL
            .into_iter()
            .filter(|m| wanted.contains(m))
            .collect()
    }

    /// The roles, comma separated.
    pub fn names(&self) -> String {
        self.0
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_the_union_of_the_roles() {
        let all = Targets::parse("all").unwrap();
        let union =
            Targets::parse("distributor,ingester,querier,metastore,compactor,query-frontend")
                .unwrap();
        assert_eq!(all, union);
        assert_eq!(all.modules(), Module::ALL.to_vec());
        assert_eq!(
            Targets::parse("querier").unwrap().modules(),
            vec![
                Module::Storage,
                Module::MetastoreClient,
                Module::Querier,
                Module::Server
            ]
        );
        assert_eq!(
            Targets::parse("distributor").unwrap().modules(),
            vec![Module::Ring, Module::Distributor, Module::Server]
        );
        assert!(Targets::parse("compactr").unwrap_err().contains("compactr"));
        assert!(Targets::parse("").is_err());
    }

    #[test]
    fn start_order_respects_dependencies() {
        for m in Module::ALL {
            let pos = Module::ALL.iter().position(|x| *x == m).unwrap();
            for d in m.deps() {
                assert!(
                    Module::ALL.iter().position(|x| x == d).unwrap() < pos,
                    "{d:?} before {m:?}"
                );
            }
        }
    }
}
