//! Permissions: one model with two forms.
//!
//! - Permission strings with dot segments and wildcards: `pinning.unpin`, `data.*`, `*`.
//!   A `*` segment matches exactly one segment, except as the last segment, where it
//!   matches one or more (so `data.*` covers `data.pin_list` and `data.a.b`).
//! - Access levels `none` < `ro` < `rw` on resource paths such as
//!   `fabric/_system/collection/users`. A grant's path may use `*` for any one segment
//!   (`fabric/*` is the default for every fabric, `*` for everything). The grant whose
//!   path matches the longest prefix of the asked path wins; on a tie, the one with
//!   literal segments earlier wins.
//!
//! Both forms travel as one list of strings: `path:level` is an access grant, anything
//! else a permission string. A principal may only hand out a subset of what it holds.

use crate::error::{CoreError, CoreResult};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

const MAX_GRANT_LEN: usize = 256;
/// The most segments a permission string or a resource path may have.
pub const MAX_SEGMENTS: usize = 16;
/// A principal holds at most this many grants: checks are linear in it.
pub const MAX_GRANTS: usize = 64;
/// Of which at most this many access grants: comparing two sides' access grants costs
/// their product (see `Grants::first_access_excess`).
pub const MAX_ACCESS_GRANTS: usize = 32;

/// [`Permission::is_valid`], in one pass over the bytes; `const` so that constants are
/// checked at compile time. Each dot-separated segment is `*` or a non-empty run of
/// letters, digits, `_` and `-`.
const fn valid_text(text: &[u8]) -> bool {
    if text.is_empty() || text.len() > MAX_GRANT_LEN {
        return false;
    }
    let (mut at, mut start, mut segments) = (0, 0, 1);
    while at <= text.len() {
        if at == text.len() || text[at] == b'.' {
            let star = at == start + 1 && text[start] == b'*';
            if at == start || (!star && !plain_segment(text, start, at)) {
                return false;
            }
            if at < text.len() {
                segments += 1;
                if segments > MAX_SEGMENTS {
                    return false;
                }
            }
            start = at + 1;
        }
        at += 1;
    }
    true
}

/// Whether `text[start..end]` holds only letters, digits, `_` and `-`.
const fn plain_segment(text: &[u8], start: usize, end: usize) -> bool {
    let mut at = start;
    while at < end {
        let b = text[at];
        if !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return false;
        }
        at += 1;
    }
    true
}

fn valid_segment(segment: &[u8], extra: &[u8]) -> bool {
    segment == b"*"
        || (!segment.is_empty()
            && segment.iter().all(|&b| {
                b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || extra.contains(&b)
            }))
}

/// A permission string (a pattern when it holds `*`). Keyward's own permissions are
/// constants, checked when the program is compiled ([`Permission::constant`]), so that
/// checking a caller for one costs no parsing on each request.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(Cow<'static, str>);

impl Permission {
    pub fn parse(text: &str) -> CoreResult<Self> {
        let bad = || {
            CoreError::invalid(
                "permissions",
                format!(
                    "'{text}' is not a permission: use dot-separated segments of letters, \
                     digits, '_' or '-', or '*' (for example 'data.read' or 'data.*')"
                ),
            )
        };
        if !Permission::is_valid(text) {
            return Err(bad());
        }
        Ok(Permission(Cow::Owned(text.to_string())))
    }

    /// A permission written in the program; one that would not parse fails the build
    /// (in a `const`) or panics.
    pub const fn constant(text: &'static str) -> Permission {
        assert!(valid_text(text.as_bytes()), "not a valid permission");
        Permission(Cow::Borrowed(text))
    }

    /// Whether `text` would parse, without building a permission.
    pub fn is_valid(text: &str) -> bool {
        valid_text(text.as_bytes())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether every concrete permission this one matches is matched by `self`
    /// as well; for a concrete `other`, simply whether `self` grants it.
    pub fn covers(&self, other: &Permission) -> bool {
        pattern_covers(&self.0, &other.0)
    }
}

/// [`Permission::covers`] on the text of two valid permissions.
fn pattern_covers(mine: &str, theirs: &str) -> bool {
    // This runs for every held grant on every authenticated request, and nearly every
    // grant is a literal or ends in its only `*`: those two need no segment walk. A `*`
    // is always a whole segment, and every segment of a valid permission is non-empty.
    match mine.bytes().position(|b| b == b'*') {
        None => mine == theirs,
        Some(star) if star + 1 == mine.len() => {
            theirs.len() > star && theirs.as_bytes().starts_with(&mine.as_bytes()[..star])
        }
        Some(_) => segments_cover(mine, theirs),
    }
}

/// [`pattern_covers`] for any pattern: walks both segment lists in step.
fn segments_cover(mine: &str, theirs: &str) -> bool {
    let mut mine = mine.split('.').peekable();
    let mut theirs = theirs.split('.').peekable();
    while let Some(segment) = mine.next() {
        let Some(their_segment) = theirs.next() else {
            return false;
        };
        let my_last = mine.peek().is_none();
        let their_last = theirs.peek().is_none();
        if segment == "*" {
            if my_last {
                return true;
            }
            // Their trailing `*` spans several segments; my inner `*` spans one.
            if their_segment == "*" && their_last {
                return false;
            }
        } else if segment != their_segment {
            return false;
        }
    }
    theirs.next().is_none()
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({})", self.0)
    }
}

/// Access to a resource, ordered from least to most.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum AccessLevel {
    None,
    Ro,
    Rw,
}

impl AccessLevel {
    pub fn parse(text: &str) -> CoreResult<Self> {
        match text {
            "none" => Ok(AccessLevel::None),
            "ro" => Ok(AccessLevel::Ro),
            "rw" => Ok(AccessLevel::Rw),
            other => Err(CoreError::invalid(
                "access",
                format!("'{other}' is not an access level: use 'rw', 'ro' or 'none'"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::None => "none",
            AccessLevel::Ro => "ro",
            AccessLevel::Rw => "rw",
        }
    }
}

impl fmt::Display for AccessLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource path (`fabric/_system/stream/s1`), or a grant's pattern over such paths.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePath(String);

impl ResourcePath {
    pub fn parse(text: &str) -> CoreResult<Self> {
        let bad = || {
            CoreError::invalid(
                "permissions",
                format!(
                    "'{text}' is not a resource path: use '/'-separated segments of letters, \
                     digits, '_', '-', '.' or '@', or '*' (for example 'fabric/_system')"
                ),
            )
        };
        if text.is_empty() || text.len() > MAX_GRANT_LEN {
            return Err(bad());
        }
        let segments: Vec<&str> = text.split('/').collect();
        if segments.len() > MAX_SEGMENTS
            || !segments.iter().all(|s| valid_segment(s.as_bytes(), b".@"))
        {
            return Err(bad());
        }
        Ok(ResourcePath(text.to_string()))
    }

    /// Builds a path from segments that are already known to be valid names, such as
    /// a fabric or collection name that a dialect validated.
    pub fn from_segments(segments: &[&str]) -> CoreResult<Self> {
        ResourcePath::parse(&segments.join("/"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// How specifically this pattern matches a prefix of `path`, or `None` when it
    /// matches no prefix. A `*` in `path` stands for "some name no literal names", so
    /// only a `*` in the pattern matches it.
    fn specificity_for(&self, path: &[&str]) -> Option<Specificity> {
        let mut literals = Vec::new();
        for (i, segment) in self.segments().enumerate() {
            let asked = path.get(i)?;
            if segment == "*" {
                literals.push(false);
            } else if segment == *asked {
                literals.push(true);
            } else {
                return None;
            }
        }
        Some(Specificity(literals))
    }
}

/// Longer matches win; on equal length, the one whose literal segments come first.
#[derive(PartialEq, Eq)]
struct Specificity(Vec<bool>);

impl Ord for Specificity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Specificity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ResourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ResourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourcePath({})", self.0)
    }
}

/// Everything a principal may do: permission strings plus access levels on paths.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Grants {
    /// Sorted and without repeats: the wire form lists them in order, and two grants
    /// holding the same permissions are equal whatever order they were added in.
    permissions: Vec<Permission>,
    access: BTreeMap<ResourcePath, AccessLevel>,
}

impl Grants {
    /// Everything: what an administrator holds.
    pub fn all() -> Self {
        let mut grants = Grants::default();
        grants.permissions.push(Permission::constant("*"));
        grants
            .access
            .insert(ResourcePath("*".into()), AccessLevel::Rw);
        grants
    }

    /// Parses the wire form: a list where `path:level` is an access grant and any other
    /// entry a permission string.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> CoreResult<Self> {
        if entries.len() > MAX_GRANTS {
            return Err(CoreError::invalid(
                "permissions",
                format!("at most {MAX_GRANTS} permissions are allowed"),
            ));
        }
        let mut grants = Grants::default();
        for entry in entries {
            grants.add_entry(entry.as_ref())?;
        }
        if grants.access.len() > MAX_ACCESS_GRANTS {
            return Err(CoreError::invalid(
                "permissions",
                format!("at most {MAX_ACCESS_GRANTS} access grants (path:level) are allowed"),
            ));
        }
        Ok(grants)
    }

    fn add_entry(&mut self, entry: &str) -> CoreResult<()> {
        match entry.rsplit_once(':') {
            Some((path, level)) => {
                let path = ResourcePath::parse(path)?;
                let level = AccessLevel::parse(level)?;
                self.set_access(path, level);
            }
            None => self.add_permission(Permission::parse(entry)?),
        }
        Ok(())
    }

    /// The wire form, permission strings first, each list sorted. Serializing the grants
    /// gives the same list without building it.
    pub fn to_strings(&self) -> Vec<String> {
        self.wire_entries().map(|entry| entry.to_string()).collect()
    }

    /// The entries of the wire form, in order: the one definition of it.
    fn wire_entries(&self) -> impl Iterator<Item = WireEntry<'_>> {
        self.permissions.iter().map(WireEntry::Permission).chain(
            self.access
                .iter()
                .map(|(path, level)| WireEntry::Access(path, *level)),
        )
    }

    pub fn permissions(&self) -> &[Permission] {
        &self.permissions
    }

    pub fn access(&self) -> &BTreeMap<ResourcePath, AccessLevel> {
        &self.access
    }

    /// How many entries (permissions and resource grants) there are.
    pub fn len(&self) -> usize {
        self.permissions.len() + self.access.len()
    }

    pub fn is_empty(&self) -> bool {
        self.permissions.is_empty() && self.access.is_empty()
    }

    pub fn set_access(&mut self, path: ResourcePath, level: AccessLevel) {
        self.access.insert(path, level);
    }

    pub fn clear_access(&mut self, path: &ResourcePath) -> bool {
        self.access.remove(path).is_some()
    }

    pub fn add_permission(&mut self, permission: Permission) {
        if let Err(at) = self.permissions.binary_search(&permission) {
            self.permissions.insert(at, permission);
        }
    }

    pub fn remove_permission(&mut self, permission: &Permission) -> bool {
        let before = self.permissions.len();
        self.permissions.retain(|p| p != permission);
        before != self.permissions.len()
    }

    pub fn allows(&self, permission: &Permission) -> bool {
        self.allows_text(permission.as_str())
    }

    /// [`Grants::allows`] for a permission known to be valid, given as text: checks of
    /// Keyward's own constant permissions run on every request and need not allocate.
    pub fn allows_text(&self, permission: &str) -> bool {
        self.permissions
            .iter()
            .any(|held| pattern_covers(&held.0, permission))
    }

    /// The access level at `path`: the most specific matching grant's, else `none`.
    pub fn level_at(&self, path: &ResourcePath) -> AccessLevel {
        let asked: Vec<&str> = path.segments().collect();
        self.level_at_segments(&asked)
    }

    fn level_at_segments(&self, asked: &[&str]) -> AccessLevel {
        self.access
            .iter()
            .filter_map(|(pattern, level)| Some((pattern.specificity_for(asked)?, *level)))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map_or(AccessLevel::None, |(_, level)| level)
    }

    /// These grants' permission strings, with the access grants replaced by the levels
    /// these grants give at each of `paths` (a level of `none` is left out). Used to give
    /// a new key its creator's levels on the resources that exist now, and nothing on
    /// those made later.
    pub fn snapshot_at(&self, paths: &[ResourcePath]) -> Grants {
        let mut snapshot = Grants {
            permissions: self.permissions.clone(),
            access: BTreeMap::new(),
        };
        for path in paths {
            let level = self.level_at(path);
            if level > AccessLevel::None {
                snapshot.set_access(path.clone(), level);
            }
        }
        snapshot
    }

    /// Whether `self` grants nothing that `holder` does not: the no-escalation rule.
    pub fn is_subset_of(&self, holder: &Grants) -> bool {
        self.permissions.iter().all(|p| holder.allows(p))
            && self.first_access_excess(holder).is_none()
    }

    /// The first grant of `self` that `holder` does not hold, for error messages.
    pub fn first_excess_over(&self, holder: &Grants) -> Option<String> {
        if let Some(p) = self.permissions.iter().find(|p| !holder.allows(p)) {
            return Some(p.to_string());
        }
        self.first_access_excess(holder)
            .map(|(point, level)| format!("{}:{level}", point.join("/")))
    }

    /// A path where `self` gives more access than `holder`, with `self`'s level there.
    ///
    /// Levels are piecewise constant over the path tree. Where `self` exceeds `holder`
    /// at some path `p`, take `s`, `self`'s most specific pattern there, and `h`,
    /// `holder`'s (if any): at `q = meet(s, h)` (or `s` itself), every pattern of
    /// either side that matches `q` also matches `p` (a literal of `q` is one of `p`'s,
    /// and a `*` of `q` is a `*` of both `s` and `h`), so both most specific patterns,
    /// and so both levels, are the same at `q` as at `p`. Comparing the two sides at
    /// `self`'s patterns and at their meets with `holder`'s therefore compares them
    /// everywhere: `|self| * (|holder| + 1)` points, each costing one pass over both
    /// lists. (Meets of two patterns of one side are never needed; checking them made
    /// the check grow with the fourth power of the number of grants.)
    fn first_access_excess<'a>(
        &'a self,
        holder: &'a Grants,
    ) -> Option<(Vec<&'a str>, AccessLevel)> {
        let mine = Levels::of(self);
        let theirs = Levels::of(holder);
        let mut point: Vec<&str> = Vec::with_capacity(MAX_SEGMENTS);
        for (s, _) in &mine.0 {
            let partners = theirs.0.iter().map(|(h, _)| Some(h.as_slice()));
            for h in partners.chain([None]) {
                if !meet_into(s, h.unwrap_or(&[]), &mut point) {
                    continue;
                }
                let level = mine.at(&point);
                if level > theirs.at(&point) {
                    return Some((point, level));
                }
            }
        }
        None
    }
}

/// A side's access grants, split into segments once for the many points they are
/// evaluated at.
struct Levels<'a>(Vec<(Vec<&'a str>, AccessLevel)>);

impl<'a> Levels<'a> {
    /// Most specific first, so that the first pattern matching a point is the one whose
    /// level holds there.
    fn of(grants: &'a Grants) -> Self {
        let mut levels: Vec<(Vec<&str>, AccessLevel)> = grants
            .access
            .iter()
            .map(|(path, level)| (path.segments().collect(), *level))
            .collect();
        levels.sort_by(|(a, _), (b, _)| specificity_order(b, a));
        Levels(levels)
    }

    /// The level at `point`: the most specific matching pattern's, else `none`. Longer
    /// matches win; on equal length, the one whose literal segments come first, as
    /// [`ResourcePath::specificity_for`] orders them.
    fn at(&self, point: &[&str]) -> AccessLevel {
        self.0
            .iter()
            .find(|(pattern, _)| matches_prefix(pattern, point))
            .map_or(AccessLevel::None, |(_, level)| *level)
    }
}

/// Whether `pattern` matches a prefix of `point` (a `*` in `point` only by a `*`).
fn matches_prefix(pattern: &[&str], point: &[&str]) -> bool {
    pattern.len() <= point.len()
        && pattern
            .iter()
            .zip(point)
            .all(|(mine, asked)| *mine == "*" || mine == asked)
}

/// How specific `a` is against `b`: longer is more; on equal length, the first position
/// where one has a literal and the other a `*` decides. Two distinct patterns that both
/// match one point never compare equal (their literals would have to be the same).
fn specificity_order(a: &[&str], b: &[&str]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x != "*").cmp(&(*y != "*")))
            .find(|order| order.is_ne())
            .unwrap_or(Ordering::Equal)
    })
}

/// Writes into `point` the most general path both patterns match a prefix of, if any.
fn meet_into<'a>(a: &[&'a str], b: &[&'a str], point: &mut Vec<&'a str>) -> bool {
    point.clear();
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    for (i, segment) in long.iter().enumerate() {
        let merged = match short.get(i) {
            None => *segment,
            Some(&"*") => *segment,
            Some(other) if *segment == "*" => *other,
            Some(other) if other == segment => *segment,
            Some(_) => return false,
        };
        point.push(merged);
    }
    true
}

/// The wire form of [`Grants::to_strings`], written straight into the serializer: grants
/// are in every verify answer, so this must not allocate.
impl serde::Serialize for Grants {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.wire_entries())
    }
}

/// One entry of the wire form: a permission string, or an access grant `path:level`.
enum WireEntry<'a> {
    Permission(&'a Permission),
    Access(&'a ResourcePath, AccessLevel),
}

impl fmt::Display for WireEntry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireEntry::Permission(permission) => f.write_str(permission.as_str()),
            WireEntry::Access(path, level) => write!(f, "{path}:{level}"),
        }
    }
}

impl serde::Serialize for WireEntry<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            WireEntry::Permission(permission) => serializer.serialize_str(permission.as_str()),
            WireEntry::Access(..) => serializer.collect_str(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(text: &str) -> Permission {
        Permission::parse(text).unwrap()
    }

    fn g(entries: &[&str]) -> Grants {
        Grants::parse(entries).unwrap()
    }

    #[test]
    fn permission_wildcards() {
        assert!(p("*").covers(&p("a")));
        assert!(p("*").covers(&p("a.b.c")));
        assert!(p("data.*").covers(&p("data.pin_list")));
        assert!(p("data.*").covers(&p("data.a.b")));
        assert!(!p("data.*").covers(&p("data")));
        assert!(!p("data.*").covers(&p("pinning.unpin")));
        assert!(p("a.*.c").covers(&p("a.b.c")));
        assert!(!p("a.*.c").covers(&p("a.b.d")));
        assert!(!p("a.*.c").covers(&p("a.*")));
        assert!(p("a.*").covers(&p("a.*.c")));
        assert!(!p("a.b").covers(&p("a.*")));
        assert!(!p("a.b").covers(&p("a.b.c")));
    }

    #[test]
    fn bad_permissions_are_refused() {
        for bad in [
            "", ".", ".a", "a..b", "a b", "a.b.", "é", "a/b", "a*", "**", "a.*b",
        ] {
            assert!(Permission::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Permission::parse(&"a".repeat(300)).is_err());
        for good in [
            "*",
            "a",
            "*.b",
            "a.*.b",
            "a.*",
            "A_b-9.x",
            "keyward.keys.verify",
        ] {
            assert!(Permission::parse(good).is_ok(), "{good:?}");
        }
        assert!(Grants::parse(&["fabric/_system:admin"]).is_err());
        assert!(Grants::parse(&["fabric//x:rw"]).is_err());
        // At most MAX_SEGMENTS segments.
        let deepest = vec!["a"; MAX_SEGMENTS].join(".");
        assert!(Permission::parse(&deepest).is_ok());
        assert!(Permission::parse(&format!("{deepest}.a")).is_err());
        assert!(!Permission::is_valid(&format!("{deepest}.a")));
    }

    #[test]
    fn most_specific_access_wins() {
        let grants = g(&[
            "*:none",
            "fabric/*:ro",
            "fabric/_system:rw",
            "fabric/_system/collection/secret:none",
        ]);
        let at = |path: &str| grants.level_at(&ResourcePath::parse(path).unwrap());
        assert_eq!(at("billing"), AccessLevel::None);
        assert_eq!(at("fabric/other"), AccessLevel::Ro);
        assert_eq!(at("fabric/_system"), AccessLevel::Rw);
        assert_eq!(at("fabric/_system/collection/users"), AccessLevel::Rw);
        assert_eq!(at("fabric/_system/collection/secret"), AccessLevel::None);
    }

    #[test]
    fn snapshot_keeps_permissions_and_fixes_levels_at_paths() {
        let holder = g(&[
            "keyward.keys.*",
            "fabric/*:ro",
            "fabric/a:rw",
            "billing:none",
        ]);
        let paths: Vec<ResourcePath> = ["fabric/a", "fabric/b", "billing"]
            .iter()
            .map(|p| ResourcePath::parse(p).unwrap())
            .collect();
        let snapshot = holder.snapshot_at(&paths);
        assert_eq!(
            snapshot.to_strings(),
            vec!["keyward.keys.*", "fabric/a:rw", "fabric/b:ro"]
        );
        let later = ResourcePath::parse("fabric/c").unwrap();
        assert_eq!(snapshot.level_at(&later), AccessLevel::None);
        assert!(snapshot.is_subset_of(&holder));
    }

    #[test]
    fn subset_examples() {
        let admin = Grants::all();
        let member = g(&["keyward.keys.*", "data.read", "fabric/_system:ro"]);
        assert!(member.is_subset_of(&admin));
        assert!(!admin.is_subset_of(&member));
        assert!(g(&["keyward.keys.write"]).is_subset_of(&member));
        assert!(!g(&["keyward.*"]).is_subset_of(&member));
        assert!(g(&["fabric/_system/collection/x:ro"]).is_subset_of(&member));
        assert!(!g(&["fabric/_system:rw"]).is_subset_of(&member));
        assert!(!g(&["fabric/*:ro"]).is_subset_of(&member));
        let holder = g(&["fabric/*:rw", "fabric/*/collection/secret:none"]);
        assert!(!g(&["fabric/_system:rw"]).is_subset_of(&holder));
        assert_eq!(
            g(&["fabric/_system:rw"])
                .first_excess_over(&holder)
                .unwrap(),
            "fabric/_system/collection/secret:rw"
        );
    }

    #[test]
    fn wire_form_round_trips() {
        let grants = g(&["b.x", "a.*", "fabric/_system:rw", "*:ro"]);
        let back = Grants::parse(&grants.to_strings()).unwrap();
        assert_eq!(grants.to_strings(), back.to_strings());
        assert_eq!(
            grants.to_strings(),
            vec!["a.*", "b.x", "*:ro", "fabric/_system:rw"]
        );
        assert_eq!(
            serde_json::to_value(&grants).unwrap(),
            serde_json::json!(grants.to_strings())
        );
    }

    #[test]
    fn grants_equal_whatever_order_permissions_came_in() {
        assert_eq!(g(&["b.x", "a.*", "b.x"]), g(&["a.*", "b.x"]));
        assert_eq!(g(&["b.x", "a.*"]).permissions().len(), 2);
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![Just("*".to_string()), "[abc]"]
    }

    fn permission() -> impl Strategy<Value = String> {
        proptest::collection::vec(segment(), 1..4).prop_map(|s| s.join("."))
    }

    fn concrete_permission() -> impl Strategy<Value = String> {
        proptest::collection::vec("[abcd]", 1..5).prop_map(|s| s.join("."))
    }

    fn access_grant() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(segment(), 1..4),
            prop_oneof![Just("none"), Just("ro"), Just("rw")],
        )
            .prop_map(|(s, level)| format!("{}:{level}", s.join("/")))
    }

    fn grants() -> impl Strategy<Value = Grants> {
        proptest::collection::vec(prop_oneof![permission(), access_grant()], 0..6)
            .prop_map(|entries| Grants::parse(&entries).unwrap())
    }

    fn concrete_path() -> impl Strategy<Value = ResourcePath> {
        proptest::collection::vec("[abcd]", 1..5)
            .prop_map(|s| ResourcePath::parse(&s.join("/")).unwrap())
    }

    /// The subset check on access grants as it was (every meet of every two patterns
    /// of either side), kept to hold the faster one to the same decisions.
    fn reference_access_within(mine: &Grants, holder: &Grants) -> bool {
        let patterns: Vec<Vec<&str>> = mine
            .access
            .keys()
            .chain(holder.access.keys())
            .map(|p| p.segments().collect())
            .collect();
        patterns.iter().all(|a| {
            patterns.iter().all(|b| {
                reference_meet(a, b).is_none_or(|point| {
                    let point: Vec<&str> = point.iter().map(String::as_str).collect();
                    mine.level_at_segments(&point) <= holder.level_at_segments(&point)
                })
            })
        })
    }

    /// The most general path that both patterns match a prefix of, if any.
    fn reference_meet(a: &[&str], b: &[&str]) -> Option<Vec<String>> {
        let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
        let mut point = Vec::with_capacity(long.len());
        for (i, segment) in long.iter().enumerate() {
            let merged = match short.get(i) {
                None => *segment,
                Some(&"*") => segment,
                Some(other) if *segment == "*" => other,
                Some(other) if other == segment => segment,
                Some(_) => return None,
            };
            point.push(merged.to_string());
        }
        Some(point)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        // The check over meets with the holder's patterns only decides as the check
        // over every meet did.
        #[test]
        fn the_access_check_decides_as_the_reference_did(key in grants(), owner in grants()) {
            prop_assert_eq!(
                key.first_access_excess(&owner).is_none(),
                reference_access_within(&key, &owner),
                "{:?} within {:?}", key.to_strings(), owner.to_strings()
            );
        }

        // No escalation: whatever passes the subset check grants nothing, on any
        // concrete permission or path, that the holder lacks.
        #[test]
        fn subset_never_escalates(
            key in grants(),
            owner in grants(),
            asked in proptest::collection::vec(concrete_permission(), 8),
            paths in proptest::collection::vec(concrete_path(), 8),
        ) {
            if key.is_subset_of(&owner) {
                for text in &asked {
                    let perm = Permission::parse(text).unwrap();
                    prop_assert!(!key.allows(&perm) || owner.allows(&perm), "{text}");
                }
                for path in &paths {
                    prop_assert!(key.level_at(path) <= owner.level_at(path), "{path}");
                }
            }
        }

        // Pattern coverage agrees with matching on concrete strings.
        #[test]
        fn covers_is_sound(a in permission(), b in permission(), s in concrete_permission()) {
            let (a, b, s) = (p(&a), p(&b), p(&s));
            if a.covers(&b) && b.covers(&s) {
                prop_assert!(a.covers(&s));
            }
        }

        // The shortcuts for literal and trailing-`*` patterns answer as the segment
        // walk does (the generators' segments include `*`, so both sides vary).
        #[test]
        fn shortcuts_agree_with_the_segment_walk(a in permission(), b in permission()) {
            prop_assert_eq!(pattern_covers(&a, &b), segments_cover(&a, &b), "{} / {}", a, b);
        }

        #[test]
        fn everything_is_a_subset_of_itself_and_of_all(key in grants()) {
            prop_assert!(key.is_subset_of(&key));
            prop_assert!(key.is_subset_of(&Grants::all()));
        }
    }
}
