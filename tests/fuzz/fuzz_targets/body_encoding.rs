//! Fuzz target; the property it checks is `pushgateway::fuzz_checks::body_encoding`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pushgateway::fuzz_checks::body_encoding(data);
});
