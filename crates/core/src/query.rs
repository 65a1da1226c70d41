//! Permission queries for verification: `data.read AND (pinning.unpin OR fabric/_system:rw)`.
//!
//! A term is a permission string or `path:level` (that level or more on the path). `AND`
//! binds tighter than `OR`; both are case-insensitive; parentheses group.

use crate::error::{CoreError, CoreResult};
use crate::perm::{AccessLevel, Grants, Permission, ResourcePath};

pub const MAX_QUERY_LEN: usize = 2048;
const MAX_DEPTH: usize = 32;

/// One thing a query can ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    Permission(Permission),
    Access(ResourcePath, AccessLevel),
}

impl Requirement {
    pub fn parse(text: &str) -> CoreResult<Self> {
        match text.rsplit_once(':') {
            Some((path, level)) => Ok(Requirement::Access(
                ResourcePath::parse(path)?,
                AccessLevel::parse(level)?,
            )),
            None => Ok(Requirement::Permission(Permission::parse(text)?)),
        }
    }

    pub fn is_met_by(&self, grants: &Grants) -> bool {
        match self {
            Requirement::Permission(p) => grants.allows(p),
            Requirement::Access(path, level) => grants.level_at(path) >= *level,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    Require(Requirement),
    All(Vec<Query>),
    Any(Vec<Query>),
}

impl Query {
    /// Every one of `entries` (the JSON-array form of a query).
    pub fn all_of<S: AsRef<str>>(entries: &[S]) -> CoreResult<Self> {
        // Held to the expression's bound: its cost is its terms times the grants.
        let length: usize = entries.iter().map(|e| e.as_ref().len() + 5).sum();
        if length > MAX_QUERY_LEN {
            return Err(CoreError::invalid(
                "permissions",
                format!("a permission query is at most {MAX_QUERY_LEN} characters"),
            ));
        }
        let terms = entries
            .iter()
            .map(|e| Requirement::parse(e.as_ref()).map(Query::Require))
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(Query::All(terms))
    }

    pub fn parse(text: &str) -> CoreResult<Self> {
        if text.len() > MAX_QUERY_LEN {
            return Err(invalid(format!(
                "a permission query is at most {MAX_QUERY_LEN} characters"
            )));
        }
        let tokens = tokenize(text);
        let mut parser = Parser { tokens, pos: 0 };
        let query = parser.or_expr(0)?;
        match parser.tokens.get(parser.pos) {
            None => Ok(query),
            Some(extra) => Err(invalid(format!("unexpected '{extra}' in permission query"))),
        }
    }

    /// How many requirements the query names: its cost is about this times the grants
    /// it is evaluated against.
    pub fn terms(&self) -> usize {
        match self {
            Query::Require(_) => 1,
            Query::All(qs) | Query::Any(qs) => qs.iter().map(Query::terms).sum(),
        }
    }

    /// Whether a principal satisfies the query. `grants_hold` answers for one
    /// requirement, so a caller can demand it of several grant sets at once.
    pub fn is_satisfied(&self, grants_hold: &dyn Fn(&Requirement) -> bool) -> bool {
        match self {
            Query::Require(r) => grants_hold(r),
            Query::All(qs) => qs.iter().all(|q| q.is_satisfied(grants_hold)),
            Query::Any(qs) => qs.iter().any(|q| q.is_satisfied(grants_hold)),
        }
    }
}

fn invalid(message: String) -> CoreError {
    CoreError::invalid("permissions", message)
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_whitespace() || c == '(' || c == ')' {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            if c != ' ' && !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

struct Parser {
    tokens: Vec<String>,
    pos: usize,
}

impl Parser {
    fn peek_keyword(&self, keyword: &str) -> bool {
        self.tokens
            .get(self.pos)
            .is_some_and(|t| t.eq_ignore_ascii_case(keyword))
    }

    fn or_expr(&mut self, depth: usize) -> CoreResult<Query> {
        let mut terms = vec![self.and_expr(depth)?];
        while self.peek_keyword("OR") {
            self.pos += 1;
            terms.push(self.and_expr(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().unwrap()
        } else {
            Query::Any(terms)
        })
    }

    fn and_expr(&mut self, depth: usize) -> CoreResult<Query> {
        let mut terms = vec![self.atom(depth)?];
        while self.peek_keyword("AND") {
            self.pos += 1;
            terms.push(self.atom(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().unwrap()
        } else {
            Query::All(terms)
        })
    }

    fn atom(&mut self, depth: usize) -> CoreResult<Query> {
        if depth > MAX_DEPTH {
            return Err(invalid("permission query nests too deeply".into()));
        }
        let token = self
            .tokens
            .get(self.pos)
            .cloned()
            .ok_or_else(|| invalid("permission query ends too early".into()))?;
        self.pos += 1;
        match token.as_str() {
            "(" => {
                let inner = self.or_expr(depth + 1)?;
                if self.tokens.get(self.pos).map(String::as_str) != Some(")") {
                    return Err(invalid("missing ')' in permission query".into()));
                }
                self.pos += 1;
                Ok(inner)
            }
            ")" => Err(invalid("unexpected ')' in permission query".into())),
            t if t.eq_ignore_ascii_case("AND") || t.eq_ignore_ascii_case("OR") => {
                Err(invalid(format!("unexpected '{t}' in permission query")))
            }
            t => Ok(Query::Require(Requirement::parse(t)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(grants: &[&str], query: &str) -> bool {
        let grants = Grants::parse(grants).unwrap();
        Query::parse(query)
            .unwrap()
            .is_satisfied(&|r| r.is_met_by(&grants))
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert!(holds(&["a"], "a OR b AND c"));
        assert!(!holds(&["b"], "a OR b AND c"));
        assert!(holds(&["b", "c"], "a or b and c"));
        assert!(holds(&["a", "c"], "a AND (b OR c)"));
        assert!(!holds(&["a"], "a AND (b OR c)"));
        assert!(holds(&["data.*"], "data.read AND data.write"));
    }

    #[test]
    fn access_terms() {
        assert!(holds(&["fabric/_system:rw"], "fabric/_system:ro"));
        assert!(!holds(&["fabric/_system:ro"], "fabric/_system:rw"));
        assert!(holds(&["fabric/*:ro"], "fabric/x/collection/y:ro"));
    }

    #[test]
    fn malformed_queries_are_refused() {
        for bad in [
            "",
            "a AND",
            "(a",
            "a)",
            "AND a",
            "a b",
            "a OR OR b",
            "x:admin",
            "()",
        ] {
            assert!(Query::parse(bad).is_err(), "{bad:?}");
        }
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(Query::parse(&deep).is_err());
    }
}
