#![no_main]
//! See `citytwin::fuzzing::import`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = citytwin::fuzzing::import(data);
});
