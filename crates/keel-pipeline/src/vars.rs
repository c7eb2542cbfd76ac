//! Variable expansion as GitLab does it for YAML-level values:
//! `$VAR` and `${VAR}`, `$$` for a literal `$`, references resolved
//! recursively across the whole variable collection.

use std::collections::HashMap;

/// One variable before expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawVar {
    /// Its name.
    pub name: String,
    /// Its value as written.
    pub value: String,
    /// `false` for `{value: …, expand: false}`: the value is taken literally.
    pub expand: bool,
}

/// Expands `$VAR`/`${VAR}` in `s`. Unknown variables are kept as written
/// when `keep_unknown` (GitLab's server-side behaviour for variable
/// values) or replaced by nothing (the runner's behaviour for paths).
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>, keep_unknown: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let next = s[i..].find('$').map_or(s.len(), |j| i + j);
            out.push_str(&s[i..next]);
            i = next;
            continue;
        }
        if b.get(i + 1) == Some(&b'$') {
            out.push('$');
            i += 2;
            continue;
        }
        let (name, end) = if b.get(i + 1) == Some(&b'{') {
            match s[i + 2..].find('}') {
                Some(j) => (&s[i + 2..i + 2 + j], i + 3 + j),
                None => ("", i + 1),
            }
        } else {
            let len = s[i + 1..]
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            (&s[i + 1..i + 1 + len], i + 1 + len)
        };
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            out.push('$');
            i += 1;
            continue;
        }
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None if keep_unknown => out.push_str(&s[i..end]),
            None => {}
        }
        i = end;
    }
    out
}

/// The names `s` refers to.
pub fn references(s: &str) -> Vec<String> {
    let names = std::cell::RefCell::new(Vec::new());
    expand(
        s,
        &|n| {
            names.borrow_mut().push(n.to_string());
            None
        },
        true,
    );
    names.into_inner()
}

/// Resolves a collection (later entries override earlier ones with the
/// same name) into final values. A reference cycle is an error naming the
/// variables on it.
pub fn resolve(vars: &[RawVar]) -> Result<Vec<(String, String)>, String> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_name: HashMap<&str, &RawVar> = HashMap::new();
    for v in vars {
        if by_name.insert(&v.name, v).is_none() {
            order.push(&v.name);
        }
    }
    let mut done: HashMap<String, String> = HashMap::new();
    fn visit(
        name: &str,
        by_name: &HashMap<&str, &RawVar>,
        done: &mut HashMap<String, String>,
        stack: &mut Vec<String>,
    ) -> Result<Option<String>, String> {
        if let Some(v) = done.get(name) {
            return Ok(Some(v.clone()));
        }
        let Some(raw) = by_name.get(name) else {
            return Ok(None);
        };
        if !raw.expand {
            done.insert(name.to_string(), raw.value.clone());
            return Ok(Some(raw.value.clone()));
        }
        if stack.iter().any(|s| s == name) {
            stack.push(name.to_string());
            return Err(format!(
                "circular variable reference: {}",
                stack.join(" -> ")
            ));
        }
        stack.push(name.to_string());
        let mut resolved = HashMap::new();
        for r in references(&raw.value) {
            if let Some(v) = visit(&r, by_name, done, stack)? {
                resolved.insert(r, v);
            }
        }
        stack.pop();
        let value = expand(&raw.value, &|n| resolved.get(n).cloned(), true);
        done.insert(name.to_string(), value.clone());
        Ok(Some(value))
    }
    let mut out = Vec::with_capacity(order.len());
    for name in order {
        let v = visit(name, &by_name, &mut done, &mut Vec::new())?.unwrap_or_default();
        out.push((name.to_string(), v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(n: &str, v: &str) -> RawVar {
        RawVar {
            name: n.into(),
            value: v.into(),
            expand: true,
        }
    }

    #[test]
    fn expands_recursively_and_escapes() {
        let vars = vec![
            raw("A", "x"),
            raw("B", "${A}-$A-$$A-$UNKNOWN"),
            raw("C", "$B/c"),
            RawVar {
                name: "D".into(),
                value: "$A".into(),
                expand: false,
            },
            raw("A", "y"),
        ];
        let r: HashMap<_, _> = resolve(&vars).unwrap().into_iter().collect();
        assert_eq!(r["B"], "y-y-$A-$UNKNOWN");
        assert_eq!(r["C"], "y-y-$A-$UNKNOWN/c");
        assert_eq!(r["D"], "$A");
        assert!(resolve(&[raw("X", "$Y"), raw("Y", "$X")])
            .unwrap_err()
            .contains("circular"));
        assert_eq!(expand("a/${B}/$C", &|_| None, false), "a//");
    }
}
