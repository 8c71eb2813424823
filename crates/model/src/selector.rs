//! Label selectors in the Prometheus metric-selector syntax, as Pyroscope
//! accepts them in `label_selector`, `matchers[]` and the render `query`.
//!
//! ```text
//! selector := [metric_name] '{' [ item (',' item)* [','] ] '}'  |  metric_name
//! item     := label_name op string  |  string          (a quoted metric name)
//! op       := '=' | '!=' | '=~' | '!~'
//! string   := "…" (Go escapes) | '…' | `…`
//! ```
//!
//! Label names may be quoted to carry UTF-8 (`{"service.name"="x"}`).
//! Regular expressions are anchored at both ends. A matcher is evaluated
//! against the empty string when a series lacks the label, so `{foo=""}`
//! selects series without `foo`.

use std::fmt;

use regex::{Regex, RegexBuilder};

use crate::{Labels, ModelError};

/// The largest compiled regex accepted from a request.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A matching operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

/// One `name op "value"` condition.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The operator.
    pub op: MatchOp,
    /// The value or regular expression, unescaped.
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    /// Builds a matcher, compiling the regex of `=~`/`!~`.
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Self, ModelError> {
        let name = name.into();
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| ModelError::InvalidSelector {
                        selector: value.clone(),
                        reason: format!("bad regular expression for {name}: {e}"),
                    })?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }

    /// An `=` matcher.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// Whether a label value (absent = empty) satisfies the matcher.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let value = value.unwrap_or("");
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the matcher selects exactly one value (`name="v"` with v non-empty).
    pub fn exact_value(&self) -> Option<&str> {
        (self.op == MatchOp::Equal && !self.value.is_empty()).then_some(self.value.as_str())
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if crate::labels::is_legacy_label_name(&self.name) {
            f.write_str(&self.name)?;
        } else {
            write_quoted(f, &self.name)?;
        }
        write!(f, "{}", self.op)?;
        write_quoted(f, &self.value)
    }
}

/// Writes `s` as a double-quoted string that [`Selector::parse`] reads back
/// as `s` (Go escapes; Rust's `{:?}` would write `\u{82}`, which Go and this
/// parser do not read).
fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    use fmt::Write;
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// A parsed selector: an optional metric name and a conjunction of matchers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    /// The name before the braces, if any (a profile type ID or an OG app name).
    pub metric_name: Option<String>,
    /// All matchers; a series must satisfy every one.
    pub matchers: Vec<Matcher>,
}

impl Selector {
    /// Parses a selector. An empty string is the empty selector.
    pub fn parse(input: &str) -> Result<Self, ModelError> {
        Parser { src: input, pos: 0 }.selector()
    }

    /// Whether every matcher accepts `labels`.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| m.matches(labels.get(&m.name)))
    }

    /// Whether every matcher accepts the labels looked up by `get`.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.matchers.iter().all(|m| m.matches(get(&m.name)))
    }

    /// The values of `name` the selector restricts to, if it pins it with `=`.
    pub fn exact_values(&self, name: &str) -> Option<Vec<&str>> {
        let mut pinned = None;
        for m in self.matchers.iter().filter(|m| m.name == name) {
            if let Some(v) = m.exact_value() {
                match pinned {
                    None => pinned = Some(v),
                    Some(p) if p == v => {}
                    // Two different values for the same label: matches nothing.
                    Some(_) => return Some(Vec::new()),
                }
            }
        }
        pinned.map(|v| vec![v])
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A name the bare form cannot carry (empty, or with whitespace or
        // '{') goes inside the braces as a quoted string.
        let name = self.metric_name.as_deref();
        let bare =
            name.filter(|n| !n.is_empty() && !n.contains(|c: char| c == '{' || c.is_whitespace()));
        if let Some(n) = bare {
            f.write_str(n)?;
        }
        f.write_str("{")?;
        let mut first = true;
        if let Some(n) = name.filter(|_| bare.is_none()) {
            write_quoted(f, n)?;
            first = false;
        }
        for m in &self.matchers {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, reason: impl Into<String>) -> ModelError {
        ModelError::InvalidSelector {
            selector: self.src.to_owned(),
            reason: reason.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.src[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn selector(mut self) -> Result<Selector, ModelError> {
        let mut sel = Selector::default();
        self.skip_ws();
        if self.peek().is_none() {
            return Ok(sel);
        }
        if self.peek() != Some('{') {
            let start = self.pos;
            while self.peek().is_some_and(|c| c != '{' && !c.is_whitespace()) {
                self.bump();
            }
            sel.metric_name = Some(self.src[start..self.pos].to_owned());
            self.skip_ws();
            if self.peek().is_none() {
                return Ok(sel);
            }
        }
        if !self.eat("{") {
            return Err(self.err(format!("expected '{{' at offset {}", self.pos)));
        }
        loop {
            self.skip_ws();
            if self.eat("}") {
                break;
            }
            let quoted = matches!(self.peek(), Some('"' | '\'' | '`'));
            let name = match self.peek() {
                Some('"' | '\'' | '`') => self.string()?,
                Some(c) if c.is_ascii_alphabetic() || c == '_' => self.identifier(),
                Some(c) => {
                    return Err(
                        self.err(format!("unexpected character {c:?} at offset {}", self.pos))
                    );
                }
                None => return Err(self.err("unexpected end of input, expected '}'")),
            };
            self.skip_ws();
            let op = if self.eat("=~") {
                Some(MatchOp::Regex)
            } else if self.eat("!~") {
                Some(MatchOp::NotRegex)
            } else if self.eat("!=") {
                Some(MatchOp::NotEqual)
            } else if self.eat("=") {
                Some(MatchOp::Equal)
            } else {
                None
            };
            match op {
                Some(op) => {
                    self.skip_ws();
                    if !matches!(self.peek(), Some('"' | '\'' | '`')) {
                        return Err(self.err(format!("expected a quoted value for label {name:?}")));
                    }
                    let value = self.string()?;
                    sel.matchers.push(Matcher::new(name, op, value)?);
                }
                None => {
                    // A bare quoted string inside braces is the metric name.
                    if !quoted || sel.metric_name.is_some() {
                        return Err(self.err(format!("expected an operator after {name:?}")));
                    }
                    sel.metric_name = Some(name);
                }
            }
            self.skip_ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("}") {
                break;
            }
            return Err(self.err(format!("expected ',' or '}}' at offset {}", self.pos)));
        }
        self.skip_ws();
        if self.pos != self.src.len() {
            return Err(self.err(format!("unexpected trailing input at offset {}", self.pos)));
        }
        Ok(sel)
    }

    fn identifier(&mut self) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.bump();
        }
        self.src[start..self.pos].to_owned()
    }

    fn string(&mut self) -> Result<String, ModelError> {
        let quote = self.bump().ok_or_else(|| self.err("expected a string"))?;
        let mut out = String::new();
        loop {
            let c = self.bump().ok_or_else(|| self.err("unterminated string"))?;
            if c == quote {
                return Ok(out);
            }
            if c == '\\' && quote != '`' {
                let e = self.bump().ok_or_else(|| self.err("unterminated escape"))?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'x' => out.push(self.hex_escape(2)?),
                    'u' => out.push(self.hex_escape(4)?),
                    'U' => out.push(self.hex_escape(8)?),
                    // Prometheus also keeps unknown escapes such as `\.` so that
                    // regexes written with a single backslash work.
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            } else {
                out.push(c);
            }
        }
    }

    fn hex_escape(&mut self, digits: usize) -> Result<char, ModelError> {
        let end = self.pos + digits;
        let hex = self
            .src
            .get(self.pos..end)
            .ok_or_else(|| self.err("short escape"))?;
        let code = u32::from_str_radix(hex, 16).map_err(|_| self.err("bad hex escape"))?;
        self.pos = end;
        char::from_u32(code).ok_or_else(|| self.err("escape is not a valid character"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn parses_the_forms_clients_send() {
        assert_eq!(Selector::parse("").unwrap(), Selector::default());
        assert_eq!(Selector::parse("{}").unwrap(), Selector::default());
        let s = Selector::parse(r#"{service_name="demo", pod=~"a.*",}"#).unwrap();
        assert_eq!(s.matchers.len(), 2);
        assert_eq!(s.matchers[1].op, MatchOp::Regex);
        let s = Selector::parse(
            r#"process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="demo",pod!~'x|y'}"#,
        )
        .unwrap();
        assert_eq!(
            s.metric_name.as_deref(),
            Some("process_cpu:cpu:nanoseconds:cpu:nanoseconds")
        );
        assert_eq!(s.matchers[1].op, MatchOp::NotRegex);
        assert_eq!(s.matchers[1].value, "x|y");
        let s = Selector::parse(r#"myapp.cpu{env="prod"}"#).unwrap();
        assert_eq!(s.metric_name.as_deref(), Some("myapp.cpu"));
        let s = Selector::parse(r#"{"service.name"="x", "metric"}"#).unwrap();
        assert_eq!(s.matchers[0].name, "service.name");
        assert_eq!(s.metric_name.as_deref(), Some("metric"));
        let s = Selector::parse(r#"{a="q\"uote\n", b=`raw\d`}"#).unwrap();
        assert_eq!(s.matchers[0].value, "q\"uote\n");
        assert_eq!(s.matchers[1].value, "raw\\d");
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in [
            "{",
            "{a}",
            "{a=}",
            "{a=b}",
            r#"{a="b""#,
            r#"{a="b"} x"#,
            r#"{a=~"("}"#,
            r#"{a=="b"}"#,
            r#"{1a="b"}"#,
            r#"{a="\x4"}"#,
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn matches_with_prometheus_semantics() {
        let l = labels(&[("service_name", "api"), ("pod", "api-1")]);
        let m = |s: &str| Selector::parse(s).unwrap().matches(&l);
        assert!(m(r#"{service_name="api"}"#));
        assert!(!m(r#"{service_name="ap"}"#));
        assert!(m(r#"{pod=~"api-.*"}"#));
        assert!(!m(r#"{pod=~"api"}"#), "regexes are anchored");
        assert!(m(r#"{pod!~"web.*"}"#));
        assert!(m(r#"{zone=""}"#), "empty value matches a missing label");
        assert!(!m(r#"{zone!=""}"#));
        assert!(m(r#"{zone=~".*"}"#));
        assert!(!m(r#"{service_name="api", pod="x"}"#));
    }

    #[test]
    fn finds_pinned_values() {
        let s = Selector::parse(r#"{service_name="a", x=~"b"}"#).unwrap();
        assert_eq!(s.exact_values("service_name"), Some(vec!["a"]));
        assert_eq!(s.exact_values("x"), None);
        let s = Selector::parse(r#"{service_name="a", service_name="b"}"#).unwrap();
        assert_eq!(s.exact_values("service_name"), Some(vec![]));
    }

    #[test]
    fn display_round_trips_control_characters_and_escapes() {
        // Found by the selector fuzz target: `\x82` parsed as U+0082 and was
        // printed as `\u{82}` (Rust's debug escape), which does not parse.
        for text in [
            r#"{__name__="process_cpu", env="a\"b\n\x82\u00e9"}"#,
            r#"{"weird\tname"="\x00\x7f\\.\r", x=~"\\d+"}"#,
        ] {
            let s = Selector::parse(text).unwrap();
            let printed = s.to_string();
            assert_eq!(Selector::parse(&printed).unwrap(), s, "{printed}");
        }
        let s = Selector::parse(r#"{env="a\x82"}"#).unwrap();
        assert_eq!(s.to_string(), r#"{env="a\u0082"}"#);
    }

    #[test]
    fn display_quotes_metric_names_the_bare_form_cannot_carry() {
        // Found by the selector fuzz target: a quoted metric name with a
        // newline was printed bare, and the bare form stops at whitespace.
        for (text, printed) in [
            ("{\"a\\nb}\"}", "{\"a\\nb}\"}"),
            (r#"{"a b", x="1"}"#, r#"{"a b",x="1"}"#),
            (r#"{"a{b"}"#, r#"{"a{b"}"#),
            (r#"{""}"#, r#"{""}"#),
            (r#"{"app.cpu", x="1"}"#, r#"app.cpu{x="1"}"#),
        ] {
            let s = Selector::parse(text).unwrap();
            assert_eq!(s.to_string(), printed, "{text}");
            assert_eq!(Selector::parse(printed).unwrap(), s, "{printed}");
        }
    }

    #[test]
    fn display_round_trips() {
        let s = Selector::parse(r#"{service_name="a\"b", "x.y"=~"z.*"}"#).unwrap();
        assert_eq!(Selector::parse(&s.to_string()).unwrap(), s);
    }
}
