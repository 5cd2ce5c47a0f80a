//! What a refused message is told: every failing location, capped.

use std::fmt;

/// Most failing locations one error names; the rest are counted.
pub const MAX_REPORTED_FAILURES: usize = 10;
/// Longest description of one failing location, in bytes (a huge wrong
/// value must not make a huge error).
const MAX_FAILURE_BYTES: usize = 300;

/// Why a message does not match its schema: one entry per failing location
/// (a JSON pointer or a protobuf field path, then what is wrong there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationFailure {
    reported: Vec<String>,
    /// Failures beyond [`MAX_REPORTED_FAILURES`].
    unreported: usize,
}

impl ValidationFailure {
    pub fn new() -> Self {
        Self {
            reported: Vec::new(),
            unreported: 0,
        }
    }

    /// A failure with a single cause (undecodable bytes, wrong content type).
    pub fn single(what: impl Into<String>) -> Self {
        let mut failure = Self::new();
        failure.add(what.into());
        failure
    }

    pub fn add(&mut self, mut what: String) {
        if self.reported.len() == MAX_REPORTED_FAILURES {
            self.unreported += 1;
            return;
        }
        if what.len() > MAX_FAILURE_BYTES {
            let mut cut = MAX_FAILURE_BYTES;
            while !what.is_char_boundary(cut) {
                cut -= 1;
            }
            what.truncate(cut);
            what.push('…');
        }
        self.reported.push(what);
    }

    pub fn is_empty(&self) -> bool {
        self.reported.is_empty()
    }

    /// Every failing location reported, in the order found.
    pub fn locations(&self) -> &[String] {
        &self.reported
    }
}

impl Default for ValidationFailure {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ValidationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Schema validation has failed: ")?;
        f.write_str(&self.reported.join("; "))?;
        if self.unreported > 0 {
            write!(f, "; and {} more", self.unreported)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_location_up_to_the_cap() {
        let mut failure = ValidationFailure::new();
        for i in 0..MAX_REPORTED_FAILURES + 3 {
            failure.add(format!("'/f{i}': wrong"));
        }
        let text = failure.to_string();
        assert!(text.starts_with("Schema validation has failed: '/f0': wrong; '/f1': wrong"));
        assert!(text.ends_with("; and 3 more"), "{text}");
    }

    #[test]
    fn cuts_long_descriptions_on_a_char_boundary() {
        let failure = ValidationFailure::single("é".repeat(400));
        assert!(failure.locations()[0].len() <= MAX_FAILURE_BYTES + '…'.len_utf8());
    }
}
