//! The two text formats of the legacy `/ingest` API.
//!
//! - folded ("collapsed"): `root;child;leaf <count>` per line. The count is
//!   after the **last** space, so frame names may contain spaces; lines
//!   without a space are skipped; identical stacks add up.
//! - lines: `root;child;leaf` per line, each line counting 1; empty lines
//!   are skipped.
//!
//! Both return the distinct stacks (root first) with their summed values,
//! in order of first appearance. Empty frame names (`a;;b`) are dropped.

use rustc_hash::FxHashMap;

use crate::FormatError;

/// A stack (frame names, root first) and its value.
pub type FoldedStack = (Vec<String>, i64);

/// Parses a folded body into distinct stacks; fails on a count that is not
/// a decimal integer (naming the 1-based line), on invalid UTF-8, or when
/// there are more than `max_stacks` distinct stacks.
pub fn parse_folded(text: &[u8], max_stacks: usize) -> Result<Vec<FoldedStack>, FormatError> {
    let mut acc = StackAccumulator::new(max_stacks);
    for (i, line) in text_lines(text) {
        let Some(space) = line.iter().rposition(|&b| b == b' ') else {
            continue;
        };
        let (stack, count) = (&line[..space], &line[space + 1..]);
        let count = std::str::from_utf8(count)
            .ok()
            .and_then(|c| c.parse::<i64>().ok())
            .ok_or_else(|| FormatError::Folded {
                line: i,
                reason: format!(
                    "count {:?} is not an integer",
                    String::from_utf8_lossy(&count[..count.len().min(32)])
                ),
            })?;
        acc.add(i, stack, count)?;
    }
    Ok(acc.finish())
}

/// Parses a lines body: every non-empty line is a stack with value 1.
pub fn parse_lines(text: &[u8], max_stacks: usize) -> Result<Vec<FoldedStack>, FormatError> {
    let mut acc = StackAccumulator::new(max_stacks);
    for (i, line) in text_lines(text) {
        if line.is_empty() {
            continue;
        }
        acc.add(i, line, 1)?;
    }
    Ok(acc.finish())
}

/// The lines of `text` with their 1-based numbers, `\r\n` endings handled.
fn text_lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    text.split(|&b| b == b'\n').enumerate().map(|(i, line)| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (i + 1, line)
    })
}

struct StackAccumulator<'a> {
    index: FxHashMap<&'a [u8], usize>,
    stacks: Vec<FoldedStack>,
    max_stacks: usize,
}

impl<'a> StackAccumulator<'a> {
    fn new(max_stacks: usize) -> Self {
        StackAccumulator {
            index: FxHashMap::default(),
            stacks: Vec::new(),
            max_stacks,
        }
    }

    fn add(&mut self, line: usize, stack: &'a [u8], value: i64) -> Result<(), FormatError> {
        if let Some(&i) = self.index.get(stack) {
            let total = &mut self.stacks[i].1;
            *total = total
                .checked_add(value)
                .ok_or_else(|| FormatError::Folded {
                    line,
                    reason: "sum of counts overflows".into(),
                })?;
            return Ok(());
        }
        if self.stacks.len() >= self.max_stacks {
            return Err(FormatError::LimitExceeded {
                what: "distinct stacks",
                limit: self.max_stacks,
                actual: self.stacks.len() + 1,
            });
        }
        let text = std::str::from_utf8(stack).map_err(|e| FormatError::Folded {
            line,
            reason: format!("invalid UTF-8: {e}"),
        })?;
        let frames = text
            .split(';')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect();
        self.index.insert(stack, self.stacks.len());
        self.stacks.push((frames, value));
        Ok(())
    }

    fn finish(self) -> Vec<FoldedStack> {
        self.stacks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(s: &[&str]) -> Vec<String> {
        s.iter().map(|f| (*f).to_owned()).collect()
    }

    #[test]
    fn splits_at_the_last_space_and_sums_identical_stacks() {
        let body = b"main;foo;bar 100\nmain;baz 200\r\nmain;foo;bar 5\n\nno-count-line\nmain;with space;leaf 7\n";
        let stacks = parse_folded(body, 100).unwrap();
        assert_eq!(
            stacks,
            vec![
                (frames(&["main", "foo", "bar"]), 105),
                (frames(&["main", "baz"]), 200),
                (frames(&["main", "with space", "leaf"]), 7),
            ]
        );
    }

    #[test]
    fn bad_count_names_the_line() {
        let err = parse_folded(b"a;b 1\na;c x1\n", 100).unwrap_err();
        assert!(matches!(err, FormatError::Folded { line: 2, .. }), "{err}");
        assert!(err.to_string().starts_with("parse line 2:"), "{err}");
        // a trailing space leaves an empty count
        assert!(parse_folded(b"a;b 1 \n", 100).is_err());
    }

    #[test]
    fn invalid_utf8_and_too_many_stacks_fail() {
        let err = parse_folded(b"a;\xff 1\n", 100).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
        let err = parse_folded(b"a 1\nb 1\na 1\nc 1\n", 2).unwrap_err();
        assert!(matches!(
            err,
            FormatError::LimitExceeded {
                limit: 2,
                actual: 3,
                ..
            }
        ));
        assert!(parse_folded(b"a 1\nb 1\na 1\n", 2).is_ok());
    }

    #[test]
    fn lines_count_one_each() {
        let stacks = parse_lines(b"a;b\n\na;b\na;;c\r\n", 10).unwrap();
        assert_eq!(
            stacks,
            vec![(frames(&["a", "b"]), 2), (frames(&["a", "c"]), 1)]
        );
    }
}
