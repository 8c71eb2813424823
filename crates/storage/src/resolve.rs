//! Turning a block's (stack id, value) rows into a tree of frames, shared by
//! the querier (merging blocks) and the compactor (building roll-ups).

use kiln_model::StackTree;
use kiln_model::tree::{NameId, NodeId, ROOT};
use rustc_hash::FxHashMap;

use crate::PartitionSymbols;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameMode {
    /// The function name (flame graphs, tables).
    Function,
    /// Function, file and line (pprof output); see [`frame_key`].
    FunctionLine,
}

/// Separator inside [`FrameMode::FunctionLine`] frame keys.
pub const KEY_SEP: char = '\u{1f}';

/// A frame key holding function name, system name, file and line.
pub fn frame_key(name: &str, system_name: &str, filename: &str, line: i64) -> String {
    format!("{name}{KEY_SEP}{system_name}{KEY_SEP}{filename}{KEY_SEP}{line}")
}

/// Working memory of [`add_stacks_with`], kept between calls so that
/// resolving many partitions one after the other allocates (and, with a
/// fresh process, faults in) its buffers once.
#[derive(Debug, Default)]
pub struct ResolveScratch {
    memo: Vec<u32>,
    names: FxHashMap<(u32, i64), NameId>,
    address_names: FxHashMap<u32, NameId>,
    chain: Vec<u32>,
}

/// Adds `stacks` (stack id, value) of one partition to `tree`.
pub fn add_stacks(
    tree: &mut StackTree,
    sym: &PartitionSymbols,
    stacks: &[(u32, i64)],
    mode: FrameMode,
) {
    add_stacks_with(tree, sym, stacks, mode, &mut ResolveScratch::default());
}

/// [`add_stacks`] with working memory reused from earlier calls.
pub fn add_stacks_with(
    tree: &mut StackTree,
    sym: &PartitionSymbols,
    stacks: &[(u32, i64)],
    mode: FrameMode,
    scratch: &mut ResolveScratch,
) {
    let ResolveScratch {
        memo,
        names,
        address_names,
        chain,
    } = scratch;
    // memo[node] = tree node + 1 of a resolved stack node, 0 if unresolved.
    memo.clear();
    memo.resize(sym.stack_parents.len(), 0);
    names.clear();
    address_names.clear();
    for &(stack, value) in stacks {
        if value == 0 {
            continue;
        }
        let Some(_) = sym.stack_parents.get(stack as usize) else {
            continue;
        };
        // Walk up to the first resolved ancestor, then resolve downwards.
        chain.clear();
        let mut n = stack;
        while n != 0 && memo[n as usize] == 0 {
            chain.push(n);
            n = sym.stack_parents[n as usize];
        }
        let mut cur: NodeId = if n == 0 { ROOT } else { memo[n as usize] - 1 };
        for &node in chain.iter().rev() {
            let loc_id = sym.stack_locations[node as usize];
            let Some(loc) = sym.locations.get(loc_id as usize) else {
                continue;
            };
            if loc.lines.is_empty() {
                let name = *address_names.entry(loc_id).or_insert_with(|| {
                    let mapping = loc
                        .mapping_id
                        .checked_sub(1)
                        .and_then(|m| sym.mappings.get(m as usize))
                        .map(|m| m.filename.rsplit('/').next().unwrap_or_default().to_owned())
                        .unwrap_or_default();
                    let label = if mapping.is_empty() {
                        format!("0x{:x}", loc.address)
                    } else {
                        format!("{mapping} 0x{:x}", loc.address)
                    };
                    match mode {
                        FrameMode::Function => tree.intern(&label),
                        FrameMode::FunctionLine => tree.intern(&frame_key(&label, "", "", 0)),
                    }
                });
                cur = tree.child(cur, name);
            } else {
                // Lines are innermost first; the path goes caller first.
                for &(f, line) in loc.lines.iter().rev() {
                    let key = match mode {
                        FrameMode::Function => (f, 0),
                        FrameMode::FunctionLine => (f, line),
                    };
                    let name = *names.entry(key).or_insert_with(|| {
                        let func = &sym.functions[f as usize];
                        let display = if !func.name.is_empty() {
                            func.name.as_str()
                        } else if !func.system_name.is_empty() {
                            func.system_name.as_str()
                        } else {
                            "unknown"
                        };
                        match mode {
                            FrameMode::Function => tree.intern(display),
                            FrameMode::FunctionLine => tree.intern(&frame_key(
                                display,
                                &func.system_name,
                                &func.filename,
                                line,
                            )),
                        }
                    });
                    cur = tree.child(cur, name);
                }
            }
            memo[node as usize] = cur + 1;
        }
        tree.add_self(cur, value);
    }
}

#[cfg(test)]
mod tests {
    use crate::writer::{FunctionRow, LocationRow};

    use super::*;

    #[test]
    fn resolves_inlined_lines_caller_first() {
        let f = |n: &str| FunctionRow {
            name: n.into(),
            system_name: String::new(),
            filename: "f.go".into(),
            start_line: 0,
        };
        let sym = PartitionSymbols {
            functions: vec![f("main"), f("inner"), f("outer")],
            mappings: vec![],
            // location 1 has `inner` inlined into `outer`
            locations: vec![
                LocationRow {
                    mapping_id: 0,
                    address: 1,
                    lines: vec![(0, 1)],
                },
                LocationRow {
                    mapping_id: 0,
                    address: 2,
                    lines: vec![(1, 5), (2, 9)],
                },
                LocationRow {
                    mapping_id: 0,
                    address: 0xabc,
                    lines: vec![],
                },
            ],
            // 0 root, 1 main, 2 main>loc1, 3 main>loc2
            stack_parents: vec![0, 0, 1, 1],
            stack_locations: vec![0, 0, 1, 2],
        };
        let mut tree = StackTree::new();
        add_stacks(
            &mut tree,
            &sym,
            &[(2, 10), (1, 3), (3, 1)],
            FrameMode::Function,
        );
        let mut out = Vec::new();
        tree.for_each_stack(|s, v| out.push((s.join(";"), v)));
        assert_eq!(
            out,
            vec![
                ("main".into(), 3),
                ("main;0xabc".into(), 1),
                ("main;outer;inner".into(), 10)
            ]
        );
    }
}
