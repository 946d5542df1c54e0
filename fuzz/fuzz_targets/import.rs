#![no_main]
//! See `citytwin::fuzzing::import`. The import runs the third-party FlatGeobuf and Shapefile
//! readers under `catch_unwind` (a panic of theirs is the file's error), so the target silences
//! libfuzzer-sys's abort-on-panic hook: a panic the import catches is its answer; one that
//! escapes it still aborts through libfuzzer-sys's own catch and is a finding.

libfuzzer_sys::fuzz_target!(init: std::panic::set_hook(Box::new(|_| {})), |data: &[u8]| {
    let _ = citytwin::fuzzing::import(data);
});
