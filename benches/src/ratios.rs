//! [`Ratios`]: the ratios of paired rounds (a target and its ceiling
//! measured back to back), summarised by their median. A shared machine's
//! speed drifts by a fifth within minutes; the median of close pairs keeps
//! that drift, and one unlucky pair, out of the figure.

use std::fmt;

/// Each round's ratio to its ceiling.
#[derive(Debug, Default)]
pub struct Ratios(Vec<f64>);

impl Ratios {
    pub fn push(&mut self, ratio: f64) {
        self.0.push(ratio);
    }

    /// The middle ratio (the upper one of an even count); 0 when empty.
    pub fn median(&self) -> f64 {
        median(&self.0)
    }

    /// The lowest and highest ratio; 0 when empty.
    fn range(&self) -> (f64, f64) {
        let values = self.0.iter().copied();
        (
            values.clone().min_by(f64::total_cmp).unwrap_or(0.0),
            values.max_by(f64::total_cmp).unwrap_or(0.0),
        )
    }
}

/// Round `round` of paired measurements: the target and its ceiling back
/// to back, the ceiling first in even rounds and second in odd ones, so
/// that neither side always runs second (after the other has warmed or
/// tired the machine). Returns (target, ceiling).
pub fn measure_pair<T, C>(
    round: usize,
    target: impl FnOnce() -> Result<T, String>,
    ceiling: impl FnOnce() -> Result<C, String>,
) -> Result<(T, C), String> {
    if round.is_multiple_of(2) {
        let ceiling = ceiling()?;
        Ok((target()?, ceiling))
    } else {
        let target = target()?;
        Ok((target, ceiling()?))
    }
}

/// The middle value (the upper one of an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// "0.45 x ceiling, the median of 3 rounds' ratios, 0.41-0.47".
impl fmt::Display for Ratios {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (low, high) = self.range();
        write!(
            f,
            "{:.2} x ceiling, the median of {} rounds' ratios, {low:.2}-{high:.2}",
            self.median(),
            self.0.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_alternate_which_side_runs_first() {
        let order = std::cell::RefCell::new(Vec::new());
        for round in 0..3 {
            let side = |name| {
                order.borrow_mut().push((name, round));
                Ok(name)
            };
            let pair = measure_pair(round, || side("target"), || side("ceiling"));
            assert_eq!(pair, Ok(("target", "ceiling")));
        }
        assert_eq!(
            order.into_inner(),
            [
                ("ceiling", 0),
                ("target", 0),
                ("target", 1),
                ("ceiling", 1),
                ("ceiling", 2),
                ("target", 2),
            ]
        );
    }

    #[test]
    fn the_median_is_the_middle_ratio_whatever_the_order() {
        let mut ratios = Ratios::default();
        for ratio in [0.52, 0.41, 0.47] {
            ratios.push(ratio);
        }
        assert_eq!(ratios.median(), 0.47);
        assert_eq!(
            ratios.to_string(),
            "0.47 x ceiling, the median of 3 rounds' ratios, 0.41-0.52"
        );
    }
}
