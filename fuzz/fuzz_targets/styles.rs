#![no_main]
//! See `citytwin::fuzzing::styles`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| citytwin::fuzzing::styles(data));
