#![no_main]
//! See `citytwin::fuzzing::params`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| citytwin::fuzzing::params(data));
