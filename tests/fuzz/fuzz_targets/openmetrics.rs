//! Fuzz target; the property it checks is `pushgateway::fuzz_checks::openmetrics`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pushgateway::fuzz_checks::openmetrics(data);
});
