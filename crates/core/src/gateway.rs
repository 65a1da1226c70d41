//! Forward-auth policies: which rule applies to a request a proxy asks about (host,
//! path, method), and what the rule asks of the key. Read from a TOML file; every
//! refusal names its line.
//!
//! ```toml
//! [defaults]                  # every field optional; these are the defaults
//! key_required = true
//! key_from = ["authorization", "header:X-API-Key"]
//! credit_cost = 1
//!
//! [[route]]                   # the first route that matches decides
//! host = "api.example.com"    # or "*.example.com"; absent: any host
//! path = "/invoices/**"       # `*` one segment, `**` the rest; else exact
//! methods = ["POST", "PUT"]   # absent: any method
//! permissions = "invoices.write"
//! ratelimits = [{ name = "requests", cost = 1 }]
//! identity_headers = ["key_id", "owner_id"]  # default: all four
//! metadata_headers = ["plan"] # sent upstream as X-Keyward-Meta-Plan
//! permissions_from_header = true  # the proxy may add X-Keyward-Permissions
//! ```

use crate::error::{CoreError, CoreResult};
use crate::limits::LimitAsk;
use crate::query::Query;
use serde::Deserialize;
use toml::Spanned;

/// The largest policy file read.
pub const MAX_POLICY_BYTES: usize = 1 << 20;
/// Routes one policy may hold.
pub const MAX_ROUTES: usize = 1_000;

/// Where a proxy's request may carry the key, in the order they are tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `Authorization: Bearer <key>` or `Authorization: apikey <key>`.
    Authorization,
    /// A header holding the bare key.
    Header(String),
    /// A query parameter of the original URI.
    Query(String),
}

impl KeySource {
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("authorization") {
            return Some(KeySource::Authorization);
        }
        let (kind, name) = text.split_once(':')?;
        let name = name.trim();
        let token = !name.is_empty()
            && name.len() <= 100
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        match kind.trim() {
            "header" if token && !name.eq_ignore_ascii_case("authorization") => {
                Some(KeySource::Header(name.to_ascii_lowercase()))
            }
            "query" if token => Some(KeySource::Query(name.to_string())),
            _ => None,
        }
    }
}

/// What a matched rule asks of the request.
#[derive(Clone, Debug)]
pub struct Rule {
    pub key_required: bool,
    pub key_from: Vec<KeySource>,
    pub permissions: Option<Query>,
    /// The query as written, to be combined with one a proxy asks for.
    pub permissions_text: Option<String>,
    /// Limits named and the credit cost, charged with the key's auto-applied limits.
    pub ask: LimitAsk,
    /// Whether the proxy may ask for permissions with `X-Keyward-Permissions`.
    pub permissions_from_header: bool,
    /// Metadata fields sent upstream as `X-Keyward-Meta-<name>`.
    pub metadata_headers: Vec<String>,
    /// Which of the key's identity headers are answered for the upstream.
    pub identity_headers: Vec<Identity>,
}

/// An identity header a pass answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    KeyId,
    OwnerId,
    Tenant,
    Permissions,
}

impl Identity {
    pub const ALL: [Identity; 4] = [
        Identity::KeyId,
        Identity::OwnerId,
        Identity::Tenant,
        Identity::Permissions,
    ];

    /// The name in a policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            Identity::KeyId => "key_id",
            Identity::OwnerId => "owner_id",
            Identity::Tenant => "tenant",
            Identity::Permissions => "permissions",
        }
    }

    /// The header it is answered in.
    pub fn header(self) -> &'static str {
        match self {
            Identity::KeyId => "x-keyward-key-id",
            Identity::OwnerId => "x-keyward-owner-id",
            Identity::Tenant => "x-keyward-tenant",
            Identity::Permissions => "x-keyward-permissions",
        }
    }
}

impl Default for Rule {
    /// A key is required, from `Authorization` or `X-API-Key`, with its auto-applied
    /// limits and one credit.
    fn default() -> Self {
        Rule {
            key_required: true,
            key_from: vec![
                KeySource::Authorization,
                KeySource::Header("x-api-key".into()),
            ],
            permissions: None,
            permissions_text: None,
            ask: LimitAsk {
                named: Vec::new(),
                credit_cost: 1,
            },
            permissions_from_header: false,
            metadata_headers: Vec::new(),
            identity_headers: Identity::ALL.to_vec(),
        }
    }
}

#[derive(Clone, Debug)]
struct Route {
    host: Option<String>,
    path: Vec<Segment>,
    methods: Option<Vec<String>>,
    rule: Rule,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Exact(String),
    /// `*`: any one segment.
    One,
    /// `**`: everything from here on, nothing included.
    Rest,
}

/// A parsed policy: routes in file order, and the rule for requests no route matches.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    routes: Vec<Route>,
    defaults: Rule,
}

impl Policy {
    /// The rule for a request: the first route whose host, path and method match it,
    /// else the defaults. `path` is the original URI's path (no query).
    pub fn rule_for(&self, host: Option<&str>, path: &str, method: &str) -> &Rule {
        let host = host.map(|h| h.split(':').next().unwrap_or(h));
        self.routes
            .iter()
            .find(|r| r.matches(host, path, method))
            .map_or(&self.defaults, |r| &r.rule)
    }

    pub fn routes(&self) -> usize {
        self.routes.len()
    }

    /// Parses a policy file; a refusal says which line is wrong and why.
    pub fn parse(text: &str) -> CoreResult<Policy> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(invalid(0, format!("larger than {MAX_POLICY_BYTES} bytes")));
        }
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            invalid(line, e.message().to_string())
        })?;
        if file.route.len() > MAX_ROUTES {
            return Err(invalid(0, format!("more than {MAX_ROUTES} routes")));
        }
        let defaults = match &file.defaults {
            Some(d) => d.rule(text, &Rule::default())?,
            None => Rule::default(),
        };
        let routes = file
            .route
            .iter()
            .map(|r| r.route(text, &defaults))
            .collect::<CoreResult<_>>()?;
        Ok(Policy { routes, defaults })
    }
}

impl Route {
    fn matches(&self, host: Option<&str>, path: &str, method: &str) -> bool {
        if let Some(want) = &self.host {
            let Some(host) = host else { return false };
            let matched = match want.strip_prefix("*.") {
                Some(domain) => host
                    .len()
                    .checked_sub(domain.len() + 1)
                    .is_some_and(|cut| host[cut..].eq_ignore_ascii_case(&format!(".{domain}"))),
                None => host.eq_ignore_ascii_case(want),
            };
            if !matched {
                return false;
            }
        }
        if let Some(methods) = &self.methods {
            if !methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
                return false;
            }
        }
        path_matches(&self.path, path)
    }
}

fn path_matches(pattern: &[Segment], path: &str) -> bool {
    let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
    for segment in pattern {
        match segment {
            Segment::Rest => return true,
            Segment::One => {
                if parts.next().is_none_or(str::is_empty) {
                    return false;
                }
            }
            Segment::Exact(want) => {
                if parts.next() != Some(want.as_str()) {
                    return false;
                }
            }
        }
    }
    parts.next().is_none()
}

fn parse_path(text: &str) -> Option<Vec<Segment>> {
    let rest = text.strip_prefix('/')?;
    if text.len() > 1_000 || text.contains(['?', '#']) {
        return None;
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        out.push(match *part {
            "**" if i + 1 == parts.len() => Segment::Rest,
            "*" => Segment::One,
            p if p.contains('*') => return None,
            p => Segment::Exact(p.to_string()),
        });
    }
    Some(out)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn invalid(line: usize, message: impl Into<String>) -> CoreError {
    let message = message.into();
    let message = message.trim_end();
    CoreError::invalid(
        "gateway_config",
        if line == 0 {
            format!("gateway policy: {message}")
        } else {
            format!("gateway policy, line {line}: {message}")
        },
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    defaults: Option<RuleFile>,
    #[serde(default)]
    route: Vec<RouteFile>,
}

/// A route: where it applies, then a rule's fields (spelled out rather than flattened:
/// serde's flatten would lose the spans that give refusals their line).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    host: Option<Spanned<String>>,
    path: Spanned<String>,
    methods: Option<Vec<String>>,
    key_required: Option<bool>,
    key_from: Option<Spanned<Vec<String>>>,
    permissions: Option<Spanned<String>>,
    ratelimits: Option<Spanned<Vec<LimitFile>>>,
    credit_cost: Option<u64>,
    permissions_from_header: Option<bool>,
    metadata_headers: Option<Spanned<Vec<String>>>,
    identity_headers: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    key_required: Option<bool>,
    key_from: Option<Spanned<Vec<String>>>,
    permissions: Option<Spanned<String>>,
    ratelimits: Option<Spanned<Vec<LimitFile>>>,
    credit_cost: Option<u64>,
    permissions_from_header: Option<bool>,
    metadata_headers: Option<Spanned<Vec<String>>>,
    identity_headers: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct LimitFile {
    name: String,
    cost: Option<u64>,
}

impl RouteFile {
    fn route(&self, text: &str, defaults: &Rule) -> CoreResult<Route> {
        let line = line_of(text, self.path.span().start);
        let path = parse_path(self.path.get_ref()).ok_or_else(|| {
            invalid(
                line,
                format!(
                    "bad path pattern '{}': start with /, use * for one segment and ** \
                     only at the end",
                    self.path.get_ref()
                ),
            )
        })?;
        let host = match &self.host {
            None => None,
            Some(host) => {
                let text_host = host.get_ref().trim().to_ascii_lowercase();
                let bare = text_host.strip_prefix("*.").unwrap_or(&text_host);
                let ok = !bare.is_empty()
                    && bare
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
                if !ok {
                    let line = line_of(text, host.span().start);
                    return Err(invalid(
                        line,
                        format!("bad host pattern '{}'", host.get_ref()),
                    ));
                }
                Some(text_host)
            }
        };
        let methods = match &self.methods {
            None => None,
            Some(list) => {
                if list.is_empty()
                    || !list
                        .iter()
                        .all(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()))
                {
                    return Err(invalid(line, "methods must be HTTP method names"));
                }
                Some(list.iter().map(|m| m.to_ascii_uppercase()).collect())
            }
        };
        let rule = RuleFile {
            key_required: self.key_required,
            key_from: self.key_from.clone(),
            permissions: self.permissions.clone(),
            ratelimits: self.ratelimits.clone(),
            credit_cost: self.credit_cost,
            permissions_from_header: self.permissions_from_header,
            metadata_headers: self.metadata_headers.clone(),
            identity_headers: self.identity_headers.clone(),
        };
        Ok(Route {
            host,
            path,
            methods,
            rule: rule.rule(text, defaults)?,
        })
    }
}

impl RuleFile {
    fn rule(&self, text: &str, base: &Rule) -> CoreResult<Rule> {
        let mut rule = base.clone();
        if let Some(required) = self.key_required {
            rule.key_required = required;
        }
        if let Some(from) = &self.key_from {
            let line = line_of(text, from.span().start);
            if from.get_ref().is_empty() {
                return Err(invalid(line, "key_from names no place"));
            }
            rule.key_from = from
                .get_ref()
                .iter()
                .map(|s| {
                    KeySource::parse(s).ok_or_else(|| {
                        invalid(
                            line,
                            format!(
                                "bad key_from '{s}': use authorization, header:<name> or \
                                 query:<name>"
                            ),
                        )
                    })
                })
                .collect::<CoreResult<_>>()?;
        }
        if let Some(query) = &self.permissions {
            let parsed = Query::parse(query.get_ref()).map_err(|e| {
                let line = line_of(text, query.span().start);
                invalid(line, format!("bad permissions '{}': {e}", query.get_ref()))
            })?;
            rule.permissions = Some(parsed);
            rule.permissions_text = Some(query.get_ref().clone());
        }
        if let Some(limits) = &self.ratelimits {
            let line = line_of(text, limits.span().start);
            rule.ask.named = limits
                .get_ref()
                .iter()
                .map(|l| {
                    let cost = l.cost.unwrap_or(1);
                    if l.name.trim().is_empty() || cost > crate::limits::MAX_LIMIT {
                        return Err(invalid(line, format!("bad rate limit '{}'", l.name)));
                    }
                    Ok((l.name.clone(), cost))
                })
                .collect::<CoreResult<_>>()?;
        }
        if let Some(cost) = self.credit_cost {
            rule.ask.credit_cost = cost;
        }
        if let Some(allow) = self.permissions_from_header {
            rule.permissions_from_header = allow;
        }
        if let Some(fields) = &self.metadata_headers {
            let line = line_of(text, fields.span().start);
            for field in fields.get_ref() {
                let ok = !field.is_empty()
                    && field.len() <= 64
                    && field
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                if !ok {
                    return Err(invalid(
                        line,
                        format!("bad metadata header field '{field}'"),
                    ));
                }
            }
            rule.metadata_headers = fields.get_ref().clone();
        }
        if let Some(names) = &self.identity_headers {
            let line = line_of(text, names.span().start);
            rule.identity_headers = names
                .get_ref()
                .iter()
                .map(|name| {
                    Identity::ALL
                        .into_iter()
                        .find(|i| i.as_str() == name)
                        .ok_or_else(|| {
                            invalid(
                                line,
                                format!(
                                    "bad identity header '{name}': use key_id, owner_id, \
                                     tenant or permissions"
                                ),
                            )
                        })
                })
                .collect::<CoreResult<_>>()?;
        }
        Ok(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[defaults]
key_from = ["authorization", "header:X-Api-Key", "query:api_key"]

[[route]]
host = "*.example.com"
path = "/invoices/**"
methods = ["post", "PUT"]
permissions = "invoices.write"
ratelimits = [{ name = "writes", cost = 2 }]
credit_cost = 5

[[route]]
path = "/invoices/**"
permissions = "invoices.read"
metadata_headers = ["plan"]
identity_headers = ["key_id"]

[[route]]
path = "/public/*"
key_required = false
"#;

    #[test]
    fn the_first_matching_route_decides() {
        let p = Policy::parse(FILE).unwrap();
        assert_eq!(p.routes(), 3);
        let write = p.rule_for(Some("api.example.com:443"), "/invoices/7", "POST");
        assert_eq!(write.ask.credit_cost, 5);
        assert_eq!(write.ask.named[0].1, 2);
        assert_eq!(write.key_from.len(), 3, "the defaults' sources");
        let read = p.rule_for(Some("other.org"), "/invoices/7", "POST");
        assert_eq!(read.metadata_headers, ["plan"]);
        assert_eq!(read.identity_headers, [Identity::KeyId]);
        assert_eq!(write.identity_headers.len(), 4);
        assert_eq!(read.ask.credit_cost, 1);
        assert!(!p.rule_for(None, "/public/a", "GET").key_required);
        assert!(
            p.rule_for(None, "/public/a/b", "GET").key_required,
            "* is one segment"
        );
        assert!(p.rule_for(None, "/public/", "GET").key_required);
        assert!(p.rule_for(None, "/elsewhere", "GET").permissions.is_none());
        let subdomain_only = p.rule_for(Some("example.com"), "/invoices/1", "POST");
        assert_eq!(subdomain_only.ask.credit_cost, 1);
    }

    fn refusal(text: &str) -> String {
        match Policy::parse(text) {
            Err(CoreError::Invalid { message, .. }) => message,
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn refusals_name_their_line() {
        let unknown = refusal("[[route]]\npath = \"/a\"\ncolour = \"red\"\n");
        assert!(unknown.contains("line 3"), "{unknown}");
        assert!(unknown.contains("colour"), "{unknown}");
        let pattern = refusal("\n[[route]]\npath = \"/a/**/b\"\n");
        assert!(
            pattern.contains("line 3") && pattern.contains("path"),
            "{pattern}"
        );
        let query = refusal("[[route]]\npath = \"/a\"\n\npermissions = \"a AND (\"\n");
        assert!(
            query.contains("line 4") && query.contains("permissions"),
            "{query}"
        );
        let source = refusal("[defaults]\nkey_from = [\"cookie:x\"]\n");
        assert!(source.contains("line 2"), "{source}");
        let syntax = refusal("[[route]\n");
        assert!(syntax.contains("line 1"), "{syntax}");
        assert!(refusal("[[route]]\nhost = \"a b\"\npath = \"/\"\n").contains("line 2"));
        let identity = refusal("[defaults]\n\nidentity_headers = [\"email\"]\n");
        assert!(
            identity.contains("line 3") && identity.contains("email"),
            "{identity}"
        );
    }
}
