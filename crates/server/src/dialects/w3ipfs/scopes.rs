//! W3IPFS's scope tree and Keyward's permission strings, both ways.
//!
//! `{"admin": false, "data": {"pin_list": true, ...}, ...}` becomes `["data.pin_list",
//! ...]`: each scope that is true becomes the permission string of its path, and
//! `admin: true` becomes `*` (everything, key management included). Unless `admin` is
//! true, every property of the tree must be present and boolean, as W3IPFS requires.

use keyward_core::{CoreError, CoreResult, Grants, Permission};
use serde_json::{json, Map, Value};

/// Every group of the tree and its scopes; each scope is the permission `group.scope`.
pub const TREE: [(&str, &[&str]); 3] = [
    ("data", &["pin_list", "nft_list"]),
    ("pinning", &["unpin", "pin_by_hash", "pin_file_to_ipfs"]),
    ("pin_nft", &["unpin_nft", "pin_nft_to_ipfs"]),
];

const ADMIN: &str = "*";

/// The grants a scope tree asks for, or why the tree is refused (the error's field is
/// the path of the offending property, such as `scopes.pinning.unpin`).
pub fn grants_from_scopes(scopes: &Value) -> CoreResult<Grants> {
    let tree = object(scopes, "scopes")?;
    check_known(tree, "scopes", &known_top())?;
    let admin =
        optional_bool(tree.get("admin"), "scopes.admin")?.ok_or_else(|| missing("scopes.admin"))?;
    let mut granted = Vec::new();
    for (group, names) in TREE {
        let path = format!("scopes.{group}");
        let members = match tree.get(group) {
            None if admin => continue,
            None => return Err(missing(&path)),
            Some(value) => object(value, &path)?,
        };
        check_known(members, &path, names)?;
        for name in names {
            let path = format!("{path}.{name}");
            match optional_bool(members.get(*name), &path)? {
                Some(true) => granted.push(permission(group, name)),
                Some(false) => {}
                None if admin => {}
                None => return Err(missing(&path)),
            }
        }
    }
    if admin {
        Grants::parse(&[ADMIN])
    } else {
        Grants::parse(&granted)
    }
}

/// The tree that shows what `grants` allow: `{"admin": true}` for a key that holds
/// everything, else every scope with whether the grants allow it.
pub fn scopes_from_grants(grants: &Grants) -> Value {
    if allows(grants, ADMIN) {
        return json!({ "admin": true });
    }
    let mut tree = Map::new();
    tree.insert("admin".into(), Value::Bool(false));
    for (group, names) in TREE {
        let members: Map<String, Value> = names
            .iter()
            .map(|name| {
                let held = allows(grants, &format!("{group}.{name}"));
                (name.to_string(), Value::Bool(held))
            })
            .collect();
        tree.insert(group.into(), Value::Object(members));
    }
    Value::Object(tree)
}

/// The permission string that guards a scope, for the routes that check it.
pub fn permission(group: &str, name: &str) -> String {
    debug_assert!(TREE
        .iter()
        .any(|(g, names)| *g == group && names.contains(&name)));
    format!("{group}.{name}")
}

fn allows(grants: &Grants, permission: &str) -> bool {
    Permission::parse(permission).is_ok_and(|p| grants.allows(&p))
}

fn known_top() -> Vec<&'static str> {
    std::iter::once("admin")
        .chain(TREE.iter().map(|(group, _)| *group))
        .collect()
}

fn object<'a>(value: &'a Value, path: &str) -> CoreResult<&'a Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| CoreError::invalid(path, format!("{path} must be an object")))
}

fn optional_bool(value: Option<&Value>, path: &str) -> CoreResult<Option<bool>> {
    match value {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(CoreError::invalid(
            path,
            format!("{path} must be true or false"),
        )),
    }
}

/// A property nobody defined would silently grant nothing; refuse it instead.
fn check_known(members: &Map<String, Value>, path: &str, known: &[&str]) -> CoreResult<()> {
    match members.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(unknown) => Err(CoreError::invalid(
            format!("{path}.{unknown}"),
            format!(
                "{path}.{unknown} is not a scope: {path} has {}",
                known.join(", ")
            ),
        )),
    }
}

fn missing(path: &str) -> CoreError {
    CoreError::invalid(
        path,
        format!("{path} is missing: unless scopes.admin is true, every scope must be given as true or false"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(admin: bool, value: bool) -> Value {
        json!({
            "admin": admin,
            "data": {"pin_list": value, "nft_list": value},
            "pinning": {"unpin": value, "pin_by_hash": value, "pin_file_to_ipfs": value},
            "pin_nft": {"unpin_nft": value, "pin_nft_to_ipfs": value},
        })
    }

    fn field(err: CoreError) -> String {
        match err {
            CoreError::Invalid { field, .. } => field,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn true_scopes_become_permission_strings() {
        let mut tree = full(false, false);
        tree["data"]["pin_list"] = json!(true);
        tree["pinning"]["pin_by_hash"] = json!(true);
        let grants = grants_from_scopes(&tree).unwrap();
        assert_eq!(
            grants.to_strings(),
            ["data.pin_list", "pinning.pin_by_hash"]
        );
        assert!(grants_from_scopes(&full(false, false)).unwrap().is_empty());
        assert_eq!(
            grants_from_scopes(&full(false, true)).unwrap().to_strings(),
            [
                "data.nft_list",
                "data.pin_list",
                "pin_nft.pin_nft_to_ipfs",
                "pin_nft.unpin_nft",
                "pinning.pin_by_hash",
                "pinning.pin_file_to_ipfs",
                "pinning.unpin",
            ]
        );
    }

    #[test]
    fn admin_is_everything_with_or_without_the_rest() {
        for tree in [json!({"admin": true}), full(true, true), full(true, false)] {
            assert_eq!(grants_from_scopes(&tree).unwrap().to_strings(), ["*"]);
        }
        let mut partial = json!({"admin": true, "data": {"pin_list": false}});
        assert!(grants_from_scopes(&partial).is_ok());
        partial["data"]["pin_list"] = json!("yes");
        assert_eq!(
            field(grants_from_scopes(&partial).unwrap_err()),
            "scopes.data.pin_list"
        );
    }

    #[test]
    fn a_missing_property_is_named() {
        let mut tree = full(false, true);
        tree["pinning"].as_object_mut().unwrap().remove("unpin");
        let err = grants_from_scopes(&tree).unwrap_err();
        assert!(err.to_string().contains("scopes.pinning.unpin"), "{err}");
        assert_eq!(field(err), "scopes.pinning.unpin");

        let mut tree = full(false, true);
        tree.as_object_mut().unwrap().remove("pin_nft");
        assert_eq!(
            field(grants_from_scopes(&tree).unwrap_err()),
            "scopes.pin_nft"
        );

        let mut tree = full(false, true);
        tree.as_object_mut().unwrap().remove("admin");
        assert_eq!(
            field(grants_from_scopes(&tree).unwrap_err()),
            "scopes.admin"
        );
    }

    #[test]
    fn wrong_types_and_unknown_properties_are_refused() {
        let cases = [
            (json!([]), "scopes"),
            (json!({"admin": "true"}), "scopes.admin"),
            (json!({"admin": null}), "scopes.admin"),
            (json!({"admin": true, "billing": {}}), "scopes.billing"),
            (json!({"admin": false, "data": true}), "scopes.data"),
        ];
        for (tree, expected) in cases {
            assert_eq!(
                field(grants_from_scopes(&tree).unwrap_err()),
                expected,
                "{tree}"
            );
        }
        let mut tree = full(false, true);
        tree["data"]["pin_all"] = json!(true);
        assert_eq!(
            field(grants_from_scopes(&tree).unwrap_err()),
            "scopes.data.pin_all"
        );
        let mut tree = full(false, true);
        tree["pin_nft"]["unpin_nft"] = json!(1);
        assert_eq!(
            field(grants_from_scopes(&tree).unwrap_err()),
            "scopes.pin_nft.unpin_nft"
        );
    }

    #[test]
    fn the_tree_round_trips_through_grants() {
        let mut tree = full(false, false);
        tree["data"]["nft_list"] = json!(true);
        tree["pin_nft"]["unpin_nft"] = json!(true);
        let grants = grants_from_scopes(&tree).unwrap();
        assert_eq!(scopes_from_grants(&grants), tree);
        assert_eq!(
            scopes_from_grants(&grants_from_scopes(&json!({"admin": true})).unwrap()),
            json!({"admin": true})
        );
        // Grants made elsewhere show through the same permission check.
        let wide = Grants::parse(&["pinning.*"]).unwrap();
        let shown = scopes_from_grants(&wide);
        assert_eq!(
            shown["pinning"],
            json!({"unpin": true, "pin_by_hash": true, "pin_file_to_ipfs": true})
        );
        assert_eq!(shown["admin"], json!(false));
    }
}
