//! Permission queries, in both forms, parse or are refused, and evaluate against grants
//! without panicking.
#![no_main]

use keyward_core::{Grants, Query};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let holder = Grants::parse(&["data.*", "a.*.c", "fabric/_system:rw", "*:ro"]).unwrap();
    let check = |query: &Query| query.is_satisfied(&|r| r.is_met_by(&holder));
    if let Ok(query) = Query::parse(text) {
        check(&query);
    }
    let list: Vec<&str> = text.split('\n').collect();
    if let Ok(query) = Query::all_of(&list) {
        check(&query);
    }
});
