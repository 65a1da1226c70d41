//! The worst the no-escalation check can be made to cost within the limits: the most
//! access grants a key may hold, each of the most segments, every segment a `*` or a
//! literal that all of them share, checked against a holder with as many (the shape of
//! the grants that took seconds before the check was bounded).
//! `cargo bench -p keyward-core --bench grants`

use criterion::{criterion_group, criterion_main, Criterion};
use keyward_core::perm::{MAX_ACCESS_GRANTS, MAX_GRANTS, MAX_SEGMENTS};
use keyward_core::{Grants, Query};
use std::hint::black_box;

/// `count` access grants of `MAX_SEGMENTS` segments alternating `*` and a literal,
/// each distinct in where its literals fall.
fn crafted(count: usize, level: &str) -> Grants {
    let entries: Vec<String> = (0..count)
        .map(|i| {
            let segments: Vec<String> = (0..MAX_SEGMENTS)
                .map(|s| {
                    if (i >> (s % 8)) & 1 == 1 {
                        format!("s{s}")
                    } else {
                        "*".to_string()
                    }
                })
                .collect();
            format!("{}:{level}", segments.join("/"))
        })
        .collect();
    Grants::parse(&entries).expect("within the limits")
}

/// `count` access grants that all share their first segments and differ only in the
/// last: at any point, every more specific pattern is compared to its end before it
/// fails.
fn late_failing(count: usize, level: &str) -> Grants {
    let entries: Vec<String> = (0..count)
        .map(|i| {
            let stars = vec!["*"; MAX_SEGMENTS - 1 - (i % 4)].join("/");
            format!("{stars}/last{i}:{level}")
        })
        .chain(std::iter::once(format!("{}:{level}", ["*"; 4].join("/"))))
        .take(count)
        .collect();
    Grants::parse(&entries).expect("within the limits")
}

fn worst_case(c: &mut Criterion) {
    let key = crafted(MAX_ACCESS_GRANTS, "rw");
    let holder = crafted(MAX_ACCESS_GRANTS, "ro");
    let within = crafted(MAX_ACCESS_GRANTS, "ro");
    c.bench_function("subset, refused (first excess found)", |b| {
        b.iter(|| black_box(&key).first_excess_over(black_box(&holder)))
    });
    c.bench_function("subset, accepted (every point checked)", |b| {
        b.iter(|| black_box(&within).is_subset_of(black_box(&holder)))
    });
    let late = late_failing(MAX_ACCESS_GRANTS, "ro");
    let late_holder = late_failing(MAX_ACCESS_GRANTS, "rw");
    c.bench_function(
        "subset, accepted, patterns failing at their last segment",
        |b| b.iter(|| black_box(&late).is_subset_of(black_box(&late_holder))),
    );
}

/// `count` permission strings of the most segments, all `*` but a last segment of
/// their own: each check walks every segment before it fails.
fn crafted_permissions(count: usize, tag: &str) -> Vec<String> {
    (0..count)
        .map(|i| format!("{}.{tag}{i}", vec!["*"; MAX_SEGMENTS - 1].join(".")))
        .collect()
}

fn permission_strings(c: &mut Criterion) {
    let key = Grants::parse(&crafted_permissions(MAX_GRANTS - 1, "a")).expect("valid");
    let holder = Grants::parse(&crafted_permissions(MAX_GRANTS - 1, "b")).expect("valid");
    c.bench_function("subset of permission strings, every one checked", |b| {
        b.iter(|| black_box(&key).is_subset_of(black_box(&key)))
    });
    // The longest query allowed, every term a permission the key lacks.
    let mut terms = Vec::new();
    let mut length = 0;
    for i in 0.. {
        let term = format!("z{i}.y.x");
        length += term.len() + 4;
        if length > keyward_core::query::MAX_QUERY_LEN - 8 {
            break;
        }
        terms.push(term);
    }
    let query = Query::parse(&terms.join(" OR ")).expect("within the limits");
    c.bench_function("the longest query against the most grants", |b| {
        b.iter(|| black_box(&query).is_satisfied(&|r| r.is_met_by(black_box(&holder))))
    });
}

criterion_group!(benches, worst_case, permission_strings);
criterion_main!(benches);
