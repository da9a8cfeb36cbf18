//! Any bytes through the IDX loader (split into an images and a labels file, each maybe gzipped).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wgtrain::fuzzing::idx(data);
});
