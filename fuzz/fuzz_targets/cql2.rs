#![no_main]
//! See `citytwin::fuzzing::cql2`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| citytwin::fuzzing::cql2(data));
