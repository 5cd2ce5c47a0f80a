//! The persistence ceiling: sled alone doing the inserts the broker does,
//! single-threaded, on the same disk, in the same run.

use std::{path::Path, time::Instant};

/// Inserts `count` values of `payload_bytes`, flushing every `flush_every`
/// inserts (0: never), and returns inserts per second.
pub fn sled_inserts_per_second(
    dir: &Path,
    count: u64,
    payload_bytes: usize,
    flush_every: u64,
) -> Result<f64, String> {
    let db = sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .open()
        .map_err(|e| format!("sled: {e}"))?;
    let value = vec![b'x'; payload_bytes];
    let started = Instant::now();
    for i in 0..count {
        db.insert(i.to_be_bytes(), value.as_slice())
            .map_err(|e| e.to_string())?;
        if flush_every > 0 && (i + 1) % flush_every == 0 {
            db.flush().map_err(|e| e.to_string())?;
        }
    }
    db.flush().map_err(|e| e.to_string())?;
    Ok(count as f64 / started.elapsed().as_secs_f64())
}
