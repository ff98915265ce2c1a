//! The JPEG cleaner (and the leak guard's reader of it): no panic, and its output is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    schuilnaam_fuzz::sanitise_and_check("foto.jpg", "image/jpeg", data);
});
