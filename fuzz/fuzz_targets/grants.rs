//! Grant lists parse or are refused; parsed ones round-trip their wire form, are within
//! themselves and within everything, and the subset check never lets through a level
//! the holder lacks at any of the key's own paths.
#![no_main]

use keyward_core::{Grants, ResourcePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (mine, theirs) = text.split_once("\n\n").unwrap_or((text, "*:ro\ndata.*"));
    let mine: Vec<&str> = mine.split('\n').collect();
    let theirs: Vec<&str> = theirs.split('\n').collect();
    let (Ok(key), Ok(holder)) = (Grants::parse(&mine), Grants::parse(&theirs)) else {
        return;
    };
    let again = Grants::parse(&key.to_strings()).expect("the wire form parses");
    assert_eq!(again, key);
    assert!(key.is_subset_of(&key));
    assert!(key.is_subset_of(&Grants::all()));
    if key.is_subset_of(&holder) {
        for path in key.access().keys() {
            let concrete = ResourcePath::parse(&path.as_str().replace('*', "x")).unwrap();
            assert!(
                key.level_at(&concrete) <= holder.level_at(&concrete),
                "{path}"
            );
        }
        assert!(key.first_excess_over(&holder).is_none());
    }
});
