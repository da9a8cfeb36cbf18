//! Any bytes through the checkpoint reader and the `--init` tensor reader.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wgtrain::fuzzing::safetensors(data);
});
