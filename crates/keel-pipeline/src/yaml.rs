//! A YAML tree that remembers where every node and key came from.
//!
//! Built from `saphyr-parser`'s event stream (a YAML 1.2 parser that reports
//! spans and tags). Aliases are expanded into copies of their anchored
//! node, `<<` merge keys are applied (explicit keys win over merged ones,
//! earlier merged maps over later ones), plain scalars are typed with the
//! YAML 1.2 core schema, and tags are kept so the GitLab layer can resolve
//! `!reference`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::error::{Error, Pos, Result, Warning};

/// What a scalar's text means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    /// `null`, `~` or nothing at all.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer, written as in the file.
    Int,
    /// A float, written as in the file.
    Float,
    /// Any other text, or quoted text.
    Str,
}

/// One YAML node's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar and its type.
    Scalar {
        /// The text as written (without quotes).
        text: String,
        /// Its type.
        kind: ScalarKind,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order, keys unique.
    Map(Vec<Entry>),
}

/// A mapping entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key text.
    pub key: String,
    /// Where the key is written.
    pub key_pos: Pos,
    /// The value.
    pub value: Node,
}

/// A YAML node with its position and tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The content.
    pub value: Value,
    /// Where the node starts.
    pub pos: Pos,
    /// A non-core tag such as `!reference`, if any.
    pub tag: Option<String>,
}

impl Node {
    /// A string scalar at `pos`.
    pub fn string(text: impl Into<String>, pos: Pos) -> Node {
        Node {
            value: Value::Scalar {
                text: text.into(),
                kind: ScalarKind::Str,
            },
            pos,
            tag: None,
        }
    }

    /// A mapping's entries.
    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// A sequence's items.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// A non-null scalar's text (numbers and booleans as written).
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar {
                kind: ScalarKind::Null,
                ..
            } => None,
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A boolean scalar.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Scalar {
                kind: ScalarKind::Bool(b),
                ..
            } => Some(*b),
            _ => None,
        }
    }

    /// An integer scalar.
    pub fn as_int(&self) -> Option<i64> {
        match &self.value {
            Value::Scalar {
                text,
                kind: ScalarKind::Int,
            } => parse_int(text),
            _ => None,
        }
    }

    /// Whether this is `null` (or an empty value).
    pub fn is_null(&self) -> bool {
        matches!(
            self.value,
            Value::Scalar {
                kind: ScalarKind::Null,
                ..
            }
        )
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    /// The entry for `key` in a mapping.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.as_map()?.iter().find(|e| e.key == key)
    }

    /// A word for error messages: "a string", "a mapping"…
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar { kind, .. } => match kind {
                ScalarKind::Null => "null",
                ScalarKind::Bool(_) => "a boolean",
                ScalarKind::Int => "an integer",
                ScalarKind::Float => "a float",
                ScalarKind::Str => "a string",
            },
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The node as JSON (numbers become JSON numbers where they fit).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Scalar { text, kind } => match kind {
                ScalarKind::Null => J::Null,
                ScalarKind::Bool(b) => J::Bool(*b),
                ScalarKind::Int => parse_int(text).map_or_else(|| J::String(text.clone()), J::from),
                ScalarKind::Float => text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| J::String(text.clone()), J::Number),
                ScalarKind::Str => J::String(text.clone()),
            },
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let v = if let Some(h) = digits.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = digits.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// Types a plain scalar with the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> ScalarKind {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarKind::Null,
        "true" | "True" | "TRUE" => return ScalarKind::Bool(true),
        "false" | "False" | "FALSE" => return ScalarKind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "-.inf" | "+.inf" | ".nan" | ".NaN" | ".NAN" => {
            return ScalarKind::Float
        }
        _ => {}
    }
    if parse_int(text).is_some() {
        return ScalarKind::Int;
    }
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mant_ok = {
        let mut parts = mant.splitn(2, '.');
        let int = parts.next().unwrap_or("");
        let frac = parts.next();
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        digits(int)
            && frac.is_none_or(digits)
            && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()))
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    if mant_ok && exp_ok && (mant.contains('.') || exp.is_some()) {
        ScalarKind::Float
    } else {
        ScalarKind::Str
    }
}

/// A parsed file: its documents and the warnings met on the way.
#[derive(Debug)]
pub struct Parsed {
    /// One node per YAML document (an empty file gives one null node).
    pub documents: Vec<Node>,
    /// Duplicate keys and the like.
    pub warnings: Vec<Warning>,
}

/// Parses `text`, naming `file` in positions.
pub fn parse(text: &str, file: &Path) -> Result<Parsed> {
    let file: Arc<Path> = Arc::from(file);
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        file,
        anchors: HashMap::new(),
        warnings: Vec::new(),
        depth: 0,
    };
    let mut documents = Vec::new();
    loop {
        let (ev, span) = b.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                let (ev, span) = b.next()?;
                if matches!(ev, Event::DocumentEnd) {
                    documents.push(b.null(span));
                } else {
                    documents.push(b.node(ev, span)?);
                }
            }
            Event::StreamEnd => break,
            other => {
                return Err(Error::Syntax {
                    pos: b.pos(span),
                    message: format!("unexpected {other:?}"),
                })
            }
        }
    }
    if documents.is_empty() {
        let pos = Pos::new(b.file.clone(), 1, 1);
        documents.push(Node {
            value: Value::Scalar {
                text: String::new(),
                kind: ScalarKind::Null,
            },
            pos,
            tag: None,
        });
    }
    Ok(Parsed {
        documents,
        warnings: b.warnings,
    })
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    file: Arc<Path>,
    anchors: HashMap<usize, Node>,
    warnings: Vec<Warning>,
    depth: usize,
}

impl<'a> Builder<'a> {
    fn pos(&self, span: Span) -> Pos {
        Pos::new(self.file.clone(), span.start.line(), span.start.col() + 1)
    }

    fn null(&self, span: Span) -> Node {
        Node {
            value: Value::Scalar {
                text: String::new(),
                kind: ScalarKind::Null,
            },
            pos: self.pos(span),
            tag: None,
        }
    }

    fn next(&mut self) -> Result<(Event<'a>, Span)> {
        match self.parser.next_event() {
            Some(Ok(x)) => Ok(x),
            Some(Err(e)) => Err(Error::Syntax {
                pos: Pos::new(self.file.clone(), e.marker().line(), e.marker().col() + 1),
                message: e.info().to_string(),
            }),
            None => Err(Error::Syntax {
                pos: Pos::new(self.file.clone(), 1, 1),
                message: "unexpected end of input".into(),
            }),
        }
    }

    fn tag_of(&self, tag: Option<&saphyr_parser::Tag>) -> (Option<String>, Option<String>) {
        // (core tag suffix, custom tag)
        match tag {
            None => (None, None),
            Some(t) if t.is_yaml_core_schema() => (Some(t.suffix.clone()), None),
            Some(t) => (None, Some(format!("{}{}", t.handle, t.suffix))),
        }
    }

    fn node(&mut self, ev: Event<'a>, span: Span) -> Result<Node> {
        self.depth += 1;
        if self.depth > 256 {
            return Err(Error::Syntax {
                pos: self.pos(span),
                message: "nesting deeper than 256 levels".into(),
            });
        }
        let out = self.node_inner(ev, span);
        self.depth -= 1;
        out
    }

    fn node_inner(&mut self, ev: Event<'a>, span: Span) -> Result<Node> {
        let pos = self.pos(span);
        let (anchor, node) = match ev {
            Event::Alias(id) => {
                return self.anchors.get(&id).cloned().ok_or_else(|| Error::Syntax {
                    pos,
                    message: "alias refers to an anchor that is not defined (or not yet complete)"
                        .into(),
                })
            }
            Event::Scalar(text, style, anchor, tag) => {
                let (core, custom) = self.tag_of(tag.as_deref());
                let kind = match core.as_deref() {
                    Some("str") => ScalarKind::Str,
                    Some("null") => ScalarKind::Null,
                    Some("bool") | Some("int") | Some("float") => resolve_plain(&text),
                    _ if style == ScalarStyle::Plain && custom.is_none() => resolve_plain(&text),
                    _ => ScalarKind::Str,
                };
                let node = Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        kind,
                    },
                    pos,
                    tag: custom,
                };
                (anchor, node)
            }
            Event::SequenceStart(anchor, tag) => {
                let (_, custom) = self.tag_of(tag.as_deref());
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, span)?);
                }
                (
                    anchor,
                    Node {
                        value: Value::Seq(items),
                        pos,
                        tag: custom,
                    },
                )
            }
            Event::MappingStart(anchor, tag) => {
                let (_, custom) = self.tag_of(tag.as_deref());
                let mut pairs = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(ev, span)?;
                    let (ev, span) = self.next()?;
                    let value = self.node(ev, span)?;
                    pairs.push((key, value));
                }
                let entries = self.build_map(pairs)?;
                (
                    anchor,
                    Node {
                        value: Value::Map(entries),
                        pos,
                        tag: custom,
                    },
                )
            }
            other => {
                return Err(Error::Syntax {
                    pos,
                    message: format!("unexpected {other:?}"),
                })
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn build_map(&mut self, pairs: Vec<(Node, Node)>) -> Result<Vec<Entry>> {
        // `merged[i]` is true while entries[i] came from a `<<` merge and may
        // still be overridden by an explicit key.
        let mut entries: Vec<Entry> = Vec::with_capacity(pairs.len());
        let mut merged: Vec<bool> = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let key_text = match &key.value {
                Value::Scalar { text, .. } => text.clone(),
                _ => {
                    return Err(Error::Syntax {
                        pos: key.pos,
                        message: "mapping keys must be scalars".into(),
                    })
                }
            };
            let is_merge = key_text == "<<"
                && matches!(
                    key.value,
                    Value::Scalar {
                        kind: ScalarKind::Str,
                        ..
                    }
                )
                && key.tag.is_none();
            if is_merge {
                let sources: Vec<Node> = match value.value {
                    Value::Map(_) => vec![value],
                    Value::Seq(items) => items,
                    _ => {
                        return Err(Error::Syntax {
                            pos: value.pos,
                            message: "`<<` merge key needs a mapping or a list of mappings".into(),
                        })
                    }
                };
                for src in sources {
                    let Value::Map(src_entries) = src.value else {
                        return Err(Error::Syntax {
                            pos: src.pos,
                            message: "`<<` merge key needs a mapping or a list of mappings".into(),
                        });
                    };
                    for e in src_entries {
                        if !entries.iter().any(|x| x.key == e.key) {
                            entries.push(e);
                            merged.push(true);
                        }
                    }
                }
                continue;
            }
            let entry = Entry {
                key: key_text,
                key_pos: key.pos,
                value,
            };
            match entries.iter().position(|x| x.key == entry.key) {
                Some(i) => {
                    if !merged[i] {
                        self.warnings.push(Warning {
                            pos: entry.key_pos.clone(),
                            message: format!(
                                "duplicate key `{}` (first at line {}); the last one wins",
                                entry.key, entries[i].key_pos.line
                            ),
                        });
                    }
                    entries[i] = entry;
                    merged[i] = false;
                }
                None => {
                    entries.push(entry);
                    merged.push(false);
                }
            }
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Node {
        parse(text, Path::new("t.yml")).unwrap().documents.remove(0)
    }

    #[test]
    fn positions_types_and_tags() {
        let n = doc("a: 1\nb:\n  - x\n  - !reference [c, d]\nc: 'true'\nd: 0.10\ne: ~\n");
        let a = n.entry("a").unwrap();
        assert_eq!((a.key_pos.line, a.key_pos.col), (1, 1));
        assert_eq!(a.value.as_int(), Some(1));
        let b = n.get("b").unwrap().as_seq().unwrap();
        assert_eq!((b[1].pos.line, b[1].pos.col), (4, 5));
        assert_eq!(b[1].tag.as_deref(), Some("!reference"));
        assert_eq!(n.get("c").unwrap().as_bool(), None);
        assert_eq!(n.get("c").unwrap().as_str(), Some("true"));
        assert_eq!(n.get("d").unwrap().type_name(), "a float");
        assert_eq!(n.get("d").unwrap().as_str(), Some("0.10"));
        assert!(n.get("e").unwrap().is_null());
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let n = doc(
            ".base: &base\n  x: 1\n  y: 2\n.other: &o {y: 3, z: 4}\njob:\n  <<: [*base, *o]\n  x: 9\nlist: &l [1, 2]\ncopy: *l\n",
        );
        let job = n.get("job").unwrap();
        assert_eq!(job.get("x").unwrap().as_int(), Some(9));
        assert_eq!(
            job.get("y").unwrap().as_int(),
            Some(2),
            "earlier merge source wins"
        );
        assert_eq!(job.get("z").unwrap().as_int(), Some(4));
        assert_eq!(n.get("copy").unwrap().as_seq().unwrap().len(), 2);
    }

    #[test]
    fn bad_indentation_is_a_syntax_error_with_position() {
        let err = parse(
            "job:\n  script:\n    - echo\n   stage: x\n",
            Path::new("c.yml"),
        )
        .unwrap_err();
        let Error::Syntax { pos, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(pos.line, 4, "{err}");
    }

    #[test]
    fn duplicate_keys_warn_and_last_wins() {
        let p = parse("a: 1\na: 2\n", Path::new("t.yml")).unwrap();
        assert_eq!(p.documents[0].get("a").unwrap().as_int(), Some(2));
        assert_eq!(p.warnings.len(), 1);
    }
}
