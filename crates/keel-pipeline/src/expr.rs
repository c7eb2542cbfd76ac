//! GitLab's `rules:if` / `workflow:rules:if` expression language.
//!
//! Operands are `$VAR` (or `${VAR}`), `"string"`/`'string'`, `null` and
//! `/regex/flags`; operators `==`, `!=`, `=~`, `!~`, `&&` (binds tighter),
//! `||` and parentheses. A bare operand is true when it is a defined,
//! non-empty value. Comparisons are on strings; an undefined variable
//! equals `null` only. A regex's right side may be a variable holding
//! `/re/`; an undefined left side matches as the empty string.

use regex::Regex;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Var(String),
    Str(String),
    Null,
    Re(String, String),
    Eq,
    Ne,
    Match,
    NoMatch,
    And,
    Or,
    Open,
    Close,
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub struct Expr(Node);

#[derive(Debug, Clone)]
enum Node {
    Operand(Tok),
    Cmp(Box<Node>, Tok, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

enum Val {
    Null,
    Str(String),
    Re(String, String),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < c.len() {
        let ch = c[i];
        match ch {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '$' => {
                let (name, next) = if c.get(i + 1) == Some(&'{') {
                    let end = c[i + 2..]
                        .iter()
                        .position(|&x| x == '}')
                        .ok_or("unclosed `${`")?;
                    (
                        c[i + 2..i + 2 + end].iter().collect::<String>(),
                        i + 3 + end,
                    )
                } else {
                    let n: String = c[i + 1..]
                        .iter()
                        .take_while(|x| x.is_ascii_alphanumeric() || **x == '_')
                        .collect();
                    let len = n.chars().count();
                    (n, i + 1 + len)
                };
                if name.is_empty() {
                    return Err(format!("`$` without a variable name at offset {i}"));
                }
                out.push(Tok::Var(name));
                i = next;
            }
            '"' | '\'' => {
                let end = c[i + 1..]
                    .iter()
                    .position(|&x| x == ch)
                    .ok_or("unclosed string")?;
                out.push(Tok::Str(c[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '/' => {
                let mut j = i + 1;
                let mut pat = String::new();
                loop {
                    match c.get(j) {
                        None => return Err("unclosed regex".into()),
                        Some('\\') if c.get(j + 1) == Some(&'/') => {
                            pat.push('/');
                            j += 2;
                        }
                        Some('\\') => {
                            pat.push('\\');
                            if let Some(n) = c.get(j + 1) {
                                pat.push(*n);
                            }
                            j += 2;
                        }
                        Some('/') => break,
                        Some(x) => {
                            pat.push(*x);
                            j += 1;
                        }
                    }
                }
                j += 1;
                let flags: String = c[j..]
                    .iter()
                    .take_while(|x| x.is_ascii_alphabetic())
                    .collect();
                j += flags.len();
                out.push(Tok::Re(pat, flags));
                i = j;
            }
            '=' | '!' => {
                let op = match (ch, c.get(i + 1)) {
                    ('=', Some('=')) => Tok::Eq,
                    ('!', Some('=')) => Tok::Ne,
                    ('=', Some('~')) => Tok::Match,
                    ('!', Some('~')) => Tok::NoMatch,
                    _ => return Err(format!("unknown operator at offset {i}")),
                };
                out.push(op);
                i += 2;
            }
            '&' if c.get(i + 1) == Some(&'&') => {
                out.push(Tok::And);
                i += 2
            }
            '|' if c.get(i + 1) == Some(&'|') => {
                out.push(Tok::Or);
                i += 2
            }
            _ if c[i..].starts_with(&['n', 'u', 'l', 'l'])
                && !c.get(i + 4).is_some_and(|x| x.is_ascii_alphanumeric()) =>
            {
                out.push(Tok::Null);
                i += 4;
            }
            other => return Err(format!("unexpected {other:?} at offset {i}")),
        }
    }
    Ok(out)
}

struct P {
    toks: Vec<Tok>,
    i: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }
    fn or(&mut self) -> Result<Node, String> {
        let mut l = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.i += 1;
            l = Node::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Node, String> {
        let mut l = self.cmp()?;
        while self.peek() == Some(&Tok::And) {
            self.i += 1;
            l = Node::And(Box::new(l), Box::new(self.cmp()?));
        }
        Ok(l)
    }
    fn cmp(&mut self) -> Result<Node, String> {
        let l = self.primary()?;
        match self.peek() {
            Some(op @ (Tok::Eq | Tok::Ne | Tok::Match | Tok::NoMatch)) => {
                let op = op.clone();
                self.i += 1;
                let r = self.primary()?;
                Ok(Node::Cmp(Box::new(l), op, Box::new(r)))
            }
            _ => Ok(l),
        }
    }
    fn primary(&mut self) -> Result<Node, String> {
        match self.toks.get(self.i).cloned() {
            Some(Tok::Open) => {
                self.i += 1;
                let n = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err("missing `)`".into());
                }
                self.i += 1;
                Ok(n)
            }
            Some(t @ (Tok::Var(_) | Tok::Str(_) | Tok::Null | Tok::Re(..))) => {
                self.i += 1;
                Ok(Node::Operand(t))
            }
            Some(t) => Err(format!("expected a value, found {t:?}")),
            None => Err("unexpected end of expression".into()),
        }
    }
}

impl Expr {
    /// Parses an expression; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Expr, String> {
        let mut p = P {
            toks: lex(s)?,
            i: 0,
        };
        let n = p.or()?;
        if p.i != p.toks.len() {
            return Err(format!("unexpected {:?}", p.toks[p.i]));
        }
        Ok(Expr(n))
    }

    /// Evaluates with `lookup` giving variable values.
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<bool, String> {
        eval(&self.0, lookup)
    }
}

fn operand(t: &Tok, lookup: &dyn Fn(&str) -> Option<String>) -> Val {
    match t {
        Tok::Var(n) => lookup(n).map_or(Val::Null, Val::Str),
        Tok::Str(s) => Val::Str(s.clone()),
        Tok::Re(p, f) => Val::Re(p.clone(), f.clone()),
        _ => Val::Null,
    }
}

fn compile(p: &str, flags: &str) -> Result<Regex, String> {
    let mut pre = String::new();
    for f in flags.chars() {
        match f {
            'i' => pre.push_str("(?i)"),
            'm' => pre.push_str("(?s)"),
            'x' => pre.push_str("(?x)"),
            _ => return Err(format!("unknown regex flag {f:?}")),
        }
    }
    Regex::new(&format!("{pre}{p}")).map_err(|e| format!("invalid regex /{p}/: {e}"))
}

fn eval(n: &Node, lookup: &dyn Fn(&str) -> Option<String>) -> Result<bool, String> {
    Ok(match n {
        Node::Operand(t) => match operand(t, lookup) {
            Val::Null => false,
            Val::Str(s) => !s.is_empty(),
            Val::Re(..) => true,
        },
        Node::And(a, b) => eval(a, lookup)? && eval(b, lookup)?,
        Node::Or(a, b) => eval(a, lookup)? || eval(b, lookup)?,
        Node::Cmp(a, op, b) => {
            let (Node::Operand(ta), Node::Operand(tb)) = (&**a, &**b) else {
                return Err("comparisons take values, not sub-expressions".into());
            };
            let l = operand(ta, lookup);
            let r = operand(tb, lookup);
            match op {
                Tok::Eq | Tok::Ne => {
                    let eq = match (&l, &r) {
                        (Val::Null, Val::Null) => true,
                        (Val::Str(x), Val::Str(y)) => x == y,
                        (Val::Re(p, f), Val::Re(q, g)) => p == q && f == g,
                        _ => false,
                    };
                    eq == (*op == Tok::Eq)
                }
                _ => {
                    let re = match &r {
                        Val::Re(p, f) => compile(p, f)?,
                        Val::Str(s) if s.starts_with('/') && s.len() > 1 => {
                            let end = s.rfind('/').unwrap_or(0);
                            if end == 0 {
                                compile(&regex::escape(s), "")?
                            } else {
                                compile(&s[1..end], &s[end + 1..])?
                            }
                        }
                        // GitLab: a non-regex right side never matches.
                        _ => return Ok(*op == Tok::NoMatch),
                    };
                    let text = match &l {
                        Val::Str(s) => s.as_str(),
                        _ => "",
                    };
                    re.is_match(text) == (*op == Tok::Match)
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(e: &str) -> bool {
        let vars = |n: &str| match n {
            "BRANCH" => Some("main".to_string()),
            "EMPTY" => Some(String::new()),
            "RE" => Some("/^ma/".to_string()),
            "GITLAB_CI" => Some("false".to_string()),
            _ => None,
        };
        Expr::parse(e).unwrap().eval(&vars).unwrap()
    }

    #[test]
    fn gitlab_semantics() {
        assert!(check("$BRANCH == \"main\""));
        assert!(check("$BRANCH != 'dev'"));
        assert!(check("$BRANCH"));
        assert!(!check("$EMPTY"));
        assert!(!check("$NOPE"));
        assert!(check("$NOPE == null"));
        assert!(!check("$EMPTY == null"));
        assert!(check("$BRANCH =~ /^MA/i"));
        assert!(check("$BRANCH =~ $RE"));
        assert!(check("$BRANCH !~ /^dev/"));
        assert!(check("$NOPE !~ /x/"));
        assert!(check(
            "$NOPE || ($BRANCH == 'main' && $GITLAB_CI == \"false\")"
        ));
        assert!(!check("$NOPE || $BRANCH == 'main' && $EMPTY"));
        assert!(check("${BRANCH} =~ /a\\/?i/"));
        assert!(Expr::parse("$A ==").is_err());
        assert!(Expr::parse("($A").is_err());
        assert!(Expr::parse("$A = 'x'").is_err());
    }
}
