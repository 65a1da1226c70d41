//! Human output: aligned tables and `field: value` cards from the server's JSON.

use serde_json::Value;

/// The text of a JSON value as a person reads it in a cell.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_string(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// A table with one row per item, columns picked from each item's fields.
pub fn table(columns: &[(&str, &str)], items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|(_, field)| cell(&item[field]))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (title, _))| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(text, width)| format!("{text:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(columns.iter().map(|(t, _)| t.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

/// One record as `field: value` lines.
pub fn card(fields: &[(&str, &str)], item: &Value) -> String {
    let width = fields.iter().map(|(t, _)| t.len()).max().unwrap_or(0) + 1;
    fields
        .iter()
        .map(|(title, field)| format!("{:<width$} {}", format!("{title}:"), cell(&item[field])))
        .collect::<Vec<_>>()
        .join("\n")
}

pub const KEY_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("START", "start"),
    ("STATE", "state"),
    ("CREATED", "created_at"),
    ("LAST USED", "last_used_at"),
    ("EXPIRES", "expires_at"),
];

pub const KEY_FIELDS: &[(&str, &str)] = &[
    ("id", "id"),
    ("name", "name"),
    ("start", "start"),
    ("state", "state"),
    ("owner", "owner_id"),
    ("permissions", "permissions"),
    ("metadata", "metadata"),
    ("created", "created_at"),
    ("last used", "last_used_at"),
    ("uses", "use_count"),
    ("expires", "expires_at"),
    ("revoked", "revoked_at"),
];

pub const USER_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("EMAIL", "email"),
    ("NAME", "display_name"),
    ("ROLE", "role"),
    ("ACTIVE", "active"),
    ("CREATED", "created_at"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_aligns_columns_and_marks_missing_values() {
        let items = [
            json!({"id": "1", "name": "a-long-name", "x": null}),
            json!({"id": "22", "name": "b", "x": ["p", "q"]}),
        ];
        let text = table(&[("ID", "id"), ("NAME", "name"), ("X", "x")], &items);
        assert_eq!(
            text,
            "ID  NAME         X\n1   a-long-name  -\n22  b            p,q"
        );
    }

    #[test]
    fn card_lists_fields() {
        let text = card(&[("id", "id"), ("uses", "n")], &json!({"id": "k", "n": 3}));
        assert_eq!(text, "id:   k\nuses: 3");
    }
}
