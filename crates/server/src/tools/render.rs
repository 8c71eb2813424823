//! Rendering of query results for `kiln query`: flame-graph levels back to
//! a tree, folded text, a top table, an SVG flame graph, flamebearer JSON
//! and the biggest changes of a diff. Pure functions, no I/O.

use std::fmt::Write as _;

use kiln_model::StackTree;
use kiln_model::tree::{NodeId, ROOT};
use serde_json::{Value, json};
use std::collections::HashMap as FxHashMap;

/// Rebuilds the tree of a flame graph in Pyroscope's levels encoding
/// (4-tuples `[x delta, total, self, name]` per level). Each node's parent
/// is the node of the previous level whose span contains it; both levels
/// are ordered by offset, so one forward scan pairs them.
pub fn tree_from_levels(names: &[String], levels: &[Vec<i64>]) -> StackTree {
    let mut tree = StackTree::new();
    // (start, end, node) of the previous level, in offset order.
    let mut prev: Vec<(i64, i64, NodeId)> = Vec::new();
    for (depth, level) in levels.iter().enumerate() {
        let mut cur = Vec::with_capacity(level.len() / 4);
        let mut end = 0i64;
        let mut p = 0usize;
        for t in level.chunks_exact(4) {
            let start = end + t[0];
            end = start + t[1];
            let node = if depth == 0 {
                ROOT
            } else {
                while p + 1 < prev.len()
                    && prev[p].1 <= start
                    && !(prev[p].0 <= start && end <= prev[p].1)
                {
                    p += 1;
                }
                let parent = prev.get(p).map_or(ROOT, |x| x.2);
                let name = names.get(t[3] as usize).map_or("?", String::as_str);
                let id = tree.intern(name);
                tree.child(parent, id)
            };
            tree.add_self(node, t[2]);
            cur.push((start, end, node));
        }
        prev = cur;
    }
    tree
}

/// Folded text: `root;...;leaf value` per stack with a self value.
pub fn folded(tree: &StackTree) -> String {
    let mut out = String::new();
    tree.for_each_stack(|stack, value| {
        out.push_str(&stack.join(";"));
        let _ = writeln!(out, " {value}");
    });
    out
}

/// One function of a top table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopRow {
    /// Function (frame) name.
    pub name: String,
    /// Sum of the function's self values.
    pub self_value: i64,
    /// Sum of the totals of the function's nodes, each stack counted once
    /// even when the function recurses.
    pub total: i64,
}

/// Self and total per function, largest self first (then total, then name).
pub fn top_rows(tree: &StackTree) -> Vec<TopRow> {
    let totals = tree.totals();
    let children = tree.sorted_children();
    let mut rows: FxHashMap<u32, (i64, i64)> = FxHashMap::default();
    // Depth-first, with how often each name is on the current path so that
    // recursive calls add their total only once.
    let mut on_path: FxHashMap<u32, u32> = FxHashMap::default();
    enum Step {
        Enter(NodeId),
        Leave(u32),
    }
    let mut stack: Vec<Step> = children[ROOT as usize]
        .iter()
        .rev()
        .map(|&c| Step::Enter(c))
        .collect();
    while let Some(step) = stack.pop() {
        match step {
            Step::Enter(n) => {
                let name = tree.name_of(n);
                let entry = rows.entry(name).or_default();
                entry.0 += tree.self_value(n);
                let depth = on_path.entry(name).or_default();
                if *depth == 0 {
                    entry.1 += totals[n as usize];
                }
                *depth += 1;
                stack.push(Step::Leave(name));
                stack.extend(children[n as usize].iter().rev().map(|&c| Step::Enter(c)));
            }
            Step::Leave(name) => {
                if let Some(d) = on_path.get_mut(&name) {
                    *d -= 1;
                }
            }
        }
    }
    let mut out: Vec<TopRow> = rows
        .into_iter()
        .map(|(name, (s, t))| TopRow {
            name: tree.name(name).to_owned(),
            self_value: s,
            total: t,
        })
        .collect();
    out.sort_by(|a, b| {
        b.self_value
            .cmp(&a.self_value)
            .then(b.total.cmp(&a.total))
            .then(a.name.cmp(&b.name))
    });
    out
}

/// Formats a value in `unit` (a pprof sample unit) for people.
pub fn format_value(value: i64, unit: &str) -> String {
    match unit {
        "nanoseconds" => {
            let v = value as f64;
            let a = v.abs();
            if a >= 3_600e9 {
                format!("{:.2} h", v / 3_600e9)
            } else if a >= 60e9 {
                format!("{:.2} min", v / 60e9)
            } else if a >= 1e9 {
                format!("{:.2} s", v / 1e9)
            } else if a >= 1e6 {
                format!("{:.2} ms", v / 1e6)
            } else if a >= 1e3 {
                format!("{:.2} µs", v / 1e3)
            } else {
                format!("{value} ns")
            }
        }
        "bytes" => crate::tools::format_bytes(value as f64),
        _ => value.to_string(),
    }
}

fn percent(part: i64, total: i64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 * 100.0 / total as f64
    }
}

/// The top table: `limit` rows (0 = all) of self, self %, total, total %
/// and function name, headed by the grand total.
pub fn top_table(tree: &StackTree, unit: &str, limit: usize) -> String {
    let total = tree.total();
    let rows = top_rows(tree);
    let n = if limit == 0 {
        rows.len()
    } else {
        limit.min(rows.len())
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "total {} ({total} {unit}), {} functions, showing {n}",
        format_value(total, unit),
        rows.len()
    );
    let _ = writeln!(
        out,
        "{:>12} {:>7} {:>12} {:>7}  FUNCTION",
        "SELF", "SELF%", "TOTAL", "TOTAL%"
    );
    for r in &rows[..n] {
        let _ = writeln!(
            out,
            "{:>12} {:>6.2}% {:>12} {:>6.2}%  {}",
            format_value(r.self_value, unit),
            percent(r.self_value, total),
            format_value(r.total, unit),
            percent(r.total, total),
            r.name
        );
    }
    out
}

/// The flamebearer-style JSON of a flame graph, as `/pyroscope/render`
/// answers it (without the timeline).
pub fn flamebearer_json(
    names: &[String],
    levels: &[Vec<i64>],
    total: i64,
    max_self: i64,
    profile_type: &str,
) -> Value {
    let parts: Vec<&str> = profile_type.split(':').collect();
    json!({
        "version": 1,
        "flamebearer": {
            "names": names,
            "levels": levels,
            "numTicks": total,
            "maxSelf": max_self,
        },
        "metadata": {
            "format": "single",
            "profileType": profile_type,
            "name": parts.get(1).copied().unwrap_or_default(),
            "units": parts.get(2).copied().unwrap_or_default(),
        },
    })
}

/// One function of a diff table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffRow {
    /// Function name.
    pub name: String,
    /// Self value on the left (baseline).
    pub left: i64,
    /// Self value on the right.
    pub right: i64,
}

/// Self values per function of a diff flame graph (7-tuples
/// `[l offset, l total, l self, r offset, r total, r self, name]`),
/// biggest absolute change first.
pub fn diff_rows(names: &[String], levels: &[Vec<i64>]) -> Vec<DiffRow> {
    let mut by_name: FxHashMap<i64, (i64, i64)> = FxHashMap::default();
    for level in levels.iter().skip(1) {
        for t in level.chunks_exact(7) {
            let e = by_name.entry(t[6]).or_default();
            e.0 += t[2];
            e.1 += t[5];
        }
    }
    let mut rows: Vec<DiffRow> = by_name
        .into_iter()
        .filter(|(_, (l, r))| *l != 0 || *r != 0)
        .map(|(n, (left, right))| DiffRow {
            name: names.get(n as usize).cloned().unwrap_or_default(),
            left,
            right,
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.right - b.left)
            .abs()
            .cmp(&(a.right - a.left).abs())
            .then(a.name.cmp(&b.name))
    });
    rows
}

/// The diff table: the `limit` biggest changes of self value per function,
/// with each side's share of its own total.
pub fn diff_table(
    rows: &[DiffRow],
    left_total: i64,
    right_total: i64,
    unit: &str,
    limit: usize,
) -> String {
    let n = if limit == 0 {
        rows.len()
    } else {
        limit.min(rows.len())
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "left total {}, right total {}, {} functions changed, showing {n}",
        format_value(left_total, unit),
        format_value(right_total, unit),
        rows.iter().filter(|r| r.left != r.right).count()
    );
    let _ = writeln!(
        out,
        "{:>12} {:>12} {:>13} {:>7} {:>7}  FUNCTION",
        "LEFT", "RIGHT", "DELTA", "LEFT%", "RIGHT%"
    );
    for r in &rows[..n] {
        let delta = r.right - r.left;
        let sign = if delta > 0 { "+" } else { "" };
        let _ = writeln!(
            out,
            "{:>12} {:>12} {:>13} {:>6.2}% {:>6.2}%  {}",
            format_value(r.left, unit),
            format_value(r.right, unit),
            format!("{sign}{}", format_value(delta, unit)),
            percent(r.left, left_total),
            percent(r.right, right_total),
            r.name
        );
    }
    out
}

/// Layout settings of [`flamegraph_svg`].
#[derive(Debug, Clone, Copy)]
pub struct SvgOptions {
    /// Image width in pixels.
    pub width: f64,
    /// Height of one frame row.
    pub row_height: f64,
    /// Frames narrower than this many pixels are not drawn (nor their
    /// children, which are narrower still).
    pub min_width: f64,
}

impl Default for SvgOptions {
    fn default() -> Self {
        SvgOptions {
            width: 1200.0,
            row_height: 16.0,
            min_width: 0.5,
        }
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A warm colour derived from the name, stable across runs.
fn frame_colour(name: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let r = 205 + (h % 50);
    let g = (h >> 8) % 200;
    let b = (h >> 16) % 55;
    format!("rgb({r},{g},{b})")
}

/// A classic flame graph (root at the bottom, callees above their callers,
/// widths proportional to totals, siblings in name order) as a standalone
/// SVG: one `<rect>` and one `<text>` per frame wider than
/// `options.min_width` pixels, each in a `<g>` with a `<title>` tooltip.
pub fn flamegraph_svg(tree: &StackTree, title: &str, unit: &str, options: SvgOptions) -> String {
    let totals = tree.totals();
    let total = totals[ROOT as usize];
    let children = tree.sorted_children();
    let pad = 10.0;
    let header = 40.0;
    let usable = options.width - 2.0 * pad;
    let scale = if total > 0 {
        usable / total as f64
    } else {
        0.0
    };
    // Visible frames: (node, x in value units, depth).
    let mut frames: Vec<(NodeId, i64, usize)> = Vec::new();
    let mut stack = vec![(ROOT, 0i64, 0usize)];
    let mut max_depth = 0;
    while let Some((node, x, depth)) = stack.pop() {
        if node != ROOT && (totals[node as usize] as f64) * scale < options.min_width {
            continue;
        }
        frames.push((node, x, depth));
        max_depth = max_depth.max(depth);
        let mut cx = x;
        for &c in &children[node as usize] {
            stack.push((c, cx, depth + 1));
            cx += totals[c as usize];
        }
    }
    let height = header + (max_depth as f64 + 1.0) * options.row_height + pad;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<?xml version="1.0" standalone="no"?>
<svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" viewBox="0 0 {w} {height}" font-family="Verdana, sans-serif" font-size="11">
<rect x="0" y="0" width="{w}" height="{height}" fill="#f8f8f4"/>
<text x="{cx}" y="20" text-anchor="middle" font-size="15">{t}</text>
<text x="{cx}" y="34" text-anchor="middle" fill="#555">total {tot} · {n} frames shown</text>"##,
        w = options.width,
        cx = options.width / 2.0,
        t = xml_escape(title),
        tot = xml_escape(&format_value(total, unit)),
        n = frames.len(),
    );
    let char_width = 6.5;
    for (node, x, depth) in frames {
        let w = totals[node as usize] as f64 * scale;
        let px = pad + x as f64 * scale;
        let py = height - pad - (depth as f64 + 1.0) * options.row_height;
        let name = if node == ROOT {
            "all"
        } else {
            tree.name(tree.name_of(node))
        };
        let value = totals[node as usize];
        let tip = format!(
            "{name} ({}, {:.2}%)",
            format_value(value, unit),
            percent(value, total)
        );
        let _ = write!(
            out,
            r#"<g><title>{}</title><rect x="{px:.2}" y="{py:.1}" width="{w:.2}" height="{rh:.1}" fill="{}" rx="2"/>"#,
            xml_escape(&tip),
            frame_colour(name),
            rh = options.row_height - 1.0,
        );
        let fits = ((w - 6.0) / char_width).floor().max(0.0) as usize;
        if fits >= 3 {
            let label: String = if name.chars().count() <= fits {
                name.to_owned()
            } else {
                let mut s: String = name.chars().take(fits - 2).collect();
                s.push_str("..");
                s
            };
            let _ = write!(
                out,
                r#"<text x="{:.2}" y="{:.1}">{}</text>"#,
                px + 3.0,
                py + options.row_height - 4.5,
                xml_escape(&label)
            );
        }
        out.push_str("</g>\n");
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_model::FlameGraph;

    fn tree(stacks: &[(&str, i64)]) -> StackTree {
        let mut t = StackTree::new();
        for (s, v) in stacks {
            let frames: Vec<&str> = s.split(';').collect();
            t.insert_stack(&frames, *v);
        }
        t
    }

    #[test]
    fn levels_decode_back_to_the_same_stacks() {
        let t = tree(&[
            ("main;a;b", 5),
            ("main;a", 2),
            ("main;c;b", 7),
            ("x;y", 1),
            ("main", 3),
        ]);
        let fg = FlameGraph::from_tree(&t, 0);
        let back = tree_from_levels(&fg.names, &fg.levels);
        assert_eq!(folded(&back), folded(&t));
        assert_eq!(
            folded(&t),
            "main 3\nmain;a 2\nmain;a;b 5\nmain;c;b 7\nx;y 1\n"
        );
    }

    #[test]
    fn top_counts_recursion_once() {
        let t = tree(&[("main;f;f;f", 10), ("main;g", 5)]);
        let rows = top_rows(&t);
        assert_eq!(
            rows[0],
            TopRow {
                name: "f".into(),
                self_value: 10,
                total: 10
            }
        );
        let main = rows.iter().find(|r| r.name == "main").unwrap();
        assert_eq!((main.self_value, main.total), (0, 15));
        let table = top_table(&t, "nanoseconds", 2);
        assert!(table.starts_with("total 15 ns"), "{table}");
        assert_eq!(table.lines().count(), 4);
    }

    #[test]
    fn svg_has_one_group_per_visible_frame() {
        let t = tree(&[("main;work", 1_000_000), ("main;tiny", 1), ("other<&>", 10)]);
        let svg = flamegraph_svg(&t, "cpu <test>", "count", SvgOptions::default());
        assert!(
            svg.contains("<title>work (1000000, 100.00%)</title>"),
            "{svg}"
        );
        assert!(svg.contains("cpu &lt;test&gt;"));
        // all, main, work; `tiny` and `other<&>` are below half a pixel.
        assert_eq!(svg.matches("<g><title>").count(), 3, "{svg}");
        assert_eq!(svg.matches("<rect x=").count(), 4, "{svg}");
        assert!(svg.ends_with("</svg>\n"));
    }

    #[test]
    fn diff_rows_sort_by_change() {
        let l = tree(&[("main;foo", 30), ("main;bar", 10)]);
        let r = tree(&[("main;foo", 10), ("main;baz", 25)]);
        let d = kiln_model::FlameGraphDiff::from_trees(&l, &r, 0);
        let rows = diff_rows(&d.names, &d.levels);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["baz", "foo", "bar"]);
        assert_eq!((rows[1].left, rows[1].right), (30, 10));
        let table = diff_table(&rows, 40, 35, "count", 0);
        assert!(table.contains("+25"), "{table}");
    }

    #[test]
    fn values_format_by_unit() {
        assert_eq!(format_value(1_500_000_000, "nanoseconds"), "1.50 s");
        assert_eq!(format_value(2_048, "bytes"), "2.0 KiB");
        assert_eq!(format_value(7, "count"), "7");
    }
}
