//! Latency figures the benches print: percentiles of sorted samples and the side-by-side
//! table of a direct path and the same calls through the hangar.

use std::time::Duration;

/// The `p` quantile (0.0..=1.0) of samples sorted ascending; nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A duration in microseconds.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Prints p50/p99 of each path, then what each path adds to `baseline` (the direct one).
/// Every slice must be sorted.
pub fn print_table(
    title: &str,
    width: usize,
    baseline: &[Duration],
    paths: &[(&str, &[Duration])],
    added: &[(&str, &[Duration])],
) {
    let (b50, b99) = (
        us(percentile(baseline, 0.5)),
        us(percentile(baseline, 0.99)),
    );
    println!("{title}");
    println!("  {:<width$} {:>10} {:>10}", "", "p50 µs", "p99 µs");
    for (name, v) in paths {
        println!(
            "  {name:<width$} {:>10.1} {:>10.1}",
            us(percentile(v, 0.5)),
            us(percentile(v, 0.99))
        );
    }
    for (name, v) in added {
        println!(
            "  {name:<width$} {:>10.1} {:>10.1}",
            us(percentile(v, 0.5)) - b50,
            us(percentile(v, 0.99)) - b99
        );
    }
}
