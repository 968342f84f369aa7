//! libFuzzer entry for [`syncmail::fuzzing::folder_name`]; the invariants live there so the
//! stable corpus replay (`tests/suite/fuzz_corpora.rs`) checks the same things.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| syncmail::fuzzing::folder_name(data));
