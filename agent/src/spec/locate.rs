//! Where each value sits in a JSON text: field path → line:column, so
//! semantic errors can point at the offending line.

use std::collections::HashMap;

/// 1-based line and column (in characters) of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Positions of every value of a JSON document, keyed by field path
/// (`a.b[2].c`, the form validation errors use).
#[derive(Debug, Default)]
pub struct JsonIndex {
    positions: HashMap<String, Position>,
}

impl JsonIndex {
    /// Indexes `text`; a malformed text yields the positions read before
    /// the first defect.
    pub fn new(text: &str) -> Self {
        let mut s = Scanner {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            lines: (0, 1, 0),
            out: HashMap::new(),
        };
        let _ = s.value(String::new(), 0);
        JsonIndex { positions: s.out }
    }

    /// Position of `path`, or of its nearest indexed ancestor.
    pub fn locate(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(*pos);
            }
            if p.is_empty() {
                return None;
            }
            p = &p[..p.rfind(['.', '[']).unwrap_or(0)];
        }
    }
}

/// Builds `parent.key`, or `key` at the root.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Builds `parent[index]`.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// (offset counted up to, line there, offset of that line's start).
    lines: (usize, usize, usize),
    out: HashMap<String, Position>,
}

const MAX_DEPTH: usize = 128;

impl Scanner<'_> {
    fn ws(&mut self) {
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// Line:column of the cursor; positions are asked for in increasing
    /// order, so lines are counted incrementally.
    fn position(&mut self) -> Position {
        let (seen, mut line, mut line_start) = self.lines;
        for (i, b) in self.bytes[seen..self.pos].iter().enumerate() {
            if *b == b'\n' {
                line += 1;
                line_start = seen + i + 1;
            }
        }
        self.lines = (self.pos, line, line_start);
        Position {
            line,
            column: self.text[line_start..self.pos].chars().count() + 1,
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.ws();
        (self.bytes.get(self.pos) == Some(&b)).then(|| self.pos += 1)
    }

    fn value(&mut self, path: String, depth: usize) -> Option<()> {
        self.ws();
        if depth > MAX_DEPTH {
            return None;
        }
        let here = self.position();
        self.out.insert(path.clone(), here);
        match *self.bytes.get(self.pos)? {
            b'{' => {
                self.pos += 1;
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.eat(b':')?;
                    self.value(join(&path, &key), depth + 1)?;
                    if self.eat(b',').is_none() {
                        return self.eat(b'}');
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                if self.eat(b']').is_some() {
                    return Some(());
                }
                let mut i = 0;
                loop {
                    self.value(index(&path, i), depth + 1)?;
                    i += 1;
                    if self.eat(b',').is_none() {
                        return self.eat(b']');
                    }
                }
            }
            b'"' => self.string().map(drop),
            _ => {
                let start = self.pos;
                while self.pos < self.bytes.len()
                    && !matches!(self.bytes[self.pos], b',' | b'}' | b']')
                    && !self.bytes[self.pos].is_ascii_whitespace()
                {
                    self.pos += 1;
                }
                (self.pos > start).then_some(())
            }
        }
    }

    /// Reads a string literal at the cursor and returns it decoded.
    fn string(&mut self) -> Option<String> {
        if self.bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos;
        self.pos += 1;
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    return serde_json::from_str(self.text.get(start..self.pos)?).ok();
                }
                _ => self.pos += 1,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values_and_falls_back_to_ancestors() {
        let text = "{\n  \"a\": {\n    \"b\": [1, {\"c\": \"x\\\"y\"}],\n    \"é\": 0\n  }\n}\n";
        let idx = JsonIndex::new(text);
        assert_eq!(
            idx.locate("a.b"),
            Some(Position {
                line: 3,
                column: 10
            })
        );
        assert_eq!(
            idx.locate("a.b[1].c"),
            Some(Position {
                line: 3,
                column: 20
            })
        );
        assert_eq!(idx.locate("a.é").map(|p| p.line), Some(4));
        // Unknown leaf: the parent's position.
        assert_eq!(idx.locate("a.b[1].zzz"), idx.locate("a.b[1]"));
        assert_eq!(idx.locate("").map(|p| p.line), Some(1));
    }

    #[test]
    fn malformed_text_keeps_what_was_read() {
        let idx = JsonIndex::new("{\"a\": 1, \"b\": [");
        assert!(idx.locate("a").is_some());
        assert_eq!(idx.locate("zz"), idx.locate(""));
    }

    use proptest::prelude::*;
    use serde_json::Value;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z\"\\\\é ]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::vec(("[a-z_\"é ]{1,6}", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn paths(v: &Value, path: String, out: &mut Vec<(String, Value)>) {
        out.push((path.clone(), v.clone()));
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    paths(item, index(&path, i), out);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    paths(item, join(&path, k), out);
                }
            }
            _ => {}
        }
    }

    fn offset(text: &str, p: Position) -> usize {
        let line_start: usize = text
            .split_inclusive('\n')
            .take(p.line - 1)
            .map(str::len)
            .sum();
        let col: usize = text[line_start..]
            .chars()
            .take(p.column - 1)
            .map(char::len_utf8)
            .sum();
        line_start + col
    }

    proptest! {
        /// Reading JSON at each located position yields the value at that path.
        #[test]
        fn every_value_is_located_where_it_starts(v in arb_json(), pretty: bool) {
            let text = if pretty {
                serde_json::to_string_pretty(&v).unwrap()
            } else {
                serde_json::to_string(&v).unwrap()
            };
            let idx = JsonIndex::new(&text);
            let mut all = Vec::new();
            paths(&v, String::new(), &mut all);
            for (path, expected) in all {
                let pos = *idx.positions.get(&path).expect("every path is indexed");
                let rest = &text[offset(&text, pos)..];
                let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
                prop_assert_eq!(values.next().unwrap().unwrap(), expected, "at {}", path);
            }
        }
    }
}
