//! Glob patterns as GitLab uses them for `artifacts`, `rules:changes`,
//! `rules:exists` and `include:local`: `*` within one path segment, `**`
//! across segments, `?`, `[abc]`/`[!abc]`, `{a,b}`. Paths are relative,
//! `/`-separated.

use regex::Regex;

/// A compiled glob.
#[derive(Debug, Clone)]
pub struct Glob {
    re: Regex,
    literal_prefix: String,
}

impl Glob {
    /// Compiles `pattern`; `None` when it is malformed (unclosed `[` or `{`).
    pub fn new(pattern: &str) -> Option<Glob> {
        let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
        let mut re = String::from("^");
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        let mut brace = 0usize;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '*' if chars.get(i + 1) == Some(&'*') => {
                    let at_start = i == 0 || chars[i - 1] == '/';
                    if at_start && chars.get(i + 2) == Some(&'/') {
                        re.push_str("(?:[^/]*/)*");
                        i += 3;
                        continue;
                    }
                    re.push_str(".*");
                    i += 2;
                    continue;
                }
                '*' => re.push_str("[^/]*"),
                '?' => re.push_str("[^/]"),
                '[' => {
                    let end = chars[i + 1..].iter().position(|&c| c == ']')? + i + 1;
                    let mut class: String = chars[i + 1..end].iter().collect();
                    if let Some(rest) = class.strip_prefix('!') {
                        class = format!("^{rest}");
                    }
                    re.push('[');
                    re.push_str(&class.replace('\\', "\\\\"));
                    re.push(']');
                    i = end;
                }
                '{' => {
                    brace += 1;
                    re.push_str("(?:");
                }
                '}' if brace > 0 => {
                    brace -= 1;
                    re.push(')');
                }
                ',' if brace > 0 => re.push('|'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
            i += 1;
        }
        if brace != 0 {
            return None;
        }
        re.push('$');
        let literal_prefix = match pattern.find(['*', '?', '[', '{']) {
            Some(i) => pattern[..i]
                .rsplit_once('/')
                .map_or("", |(d, _)| d)
                .to_string(),
            None => pattern.to_string(),
        };
        Some(Glob {
            re: Regex::new(&re).ok()?,
            literal_prefix,
        })
    }

    /// Whether `path` (relative, `/`-separated) matches.
    pub fn is_match(&self, path: &str) -> bool {
        self.re.is_match(path.trim_start_matches("./"))
    }

    /// The directory below which every match lies ("" for the root).
    pub fn base_dir(&self) -> &str {
        &self.literal_prefix
    }
}

/// Whether `pattern` has glob metacharacters at all.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_gitlab() {
        let g = Glob::new("src/**/*.py").unwrap();
        assert!(g.is_match("src/a.py"));
        assert!(g.is_match("src/x/y/a.py"));
        assert!(!g.is_match("srcx/a.py"));
        assert_eq!(g.base_dir(), "src");
        let g = Glob::new("*.{yml,yaml}").unwrap();
        assert!(g.is_match("a.yml") && g.is_match("b.yaml") && !g.is_match("d/a.yml"));
        let g = Glob::new("data/[!t]?.csv").unwrap();
        assert!(g.is_match("data/a1.csv") && !g.is_match("data/t1.csv"));
        assert!(Glob::new("a{b").is_none());
    }
}
