#![no_main]
//! See `citytwin::fuzzing::mqtt`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| citytwin::fuzzing::mqtt(data));
