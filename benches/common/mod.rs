//! Settings every bench shares: short runs, so `cargo bench` finishes in a
//! few minutes on the 2-core test machine.

use std::time::Duration;

use criterion::Criterion;

pub fn config() -> Criterion {
    Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(20)
}
