//! Any bytes through the CSV loader: it returns a dataset or an error, never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wgtrain::fuzzing::csv(data);
});
