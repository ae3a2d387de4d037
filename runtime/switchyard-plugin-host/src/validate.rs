//! Plugin outputs are untrusted input: every answer is checked here before the router uses
//! it, and anything off becomes [`Error::InvalidOutput`] with a plain-words reason.

use std::collections::HashSet;

use crate::{Error, Result, Verdict};

/// Checks a list of candidate positions: each `< n`, no duplicates, and at least one when
/// `require_one` and there are candidates.
pub(crate) fn indices(
    what: &str,
    raw: Vec<u32>,
    n: usize,
    require_one: bool,
) -> Result<Vec<usize>> {
    if raw.len() > n {
        return Err(Error::InvalidOutput(format!(
            "{what} returned {} positions for {n} candidates",
            raw.len()
        )));
    }
    if require_one && n > 0 && raw.is_empty() {
        return Err(Error::InvalidOutput(format!(
            "{what} returned no position for {n} candidates"
        )));
    }
    // A bitmap on the stack covers the common sizes without allocating on the hot path.
    let mut small = [0u64; 8];
    let mut large = if n > small.len() * 64 {
        vec![0u64; n.div_ceil(64)]
    } else {
        Vec::new()
    };
    let seen: &mut [u64] = if large.is_empty() {
        &mut small
    } else {
        &mut large
    };
    let mut out = Vec::with_capacity(raw.len());
    for index in raw {
        let i = index as usize;
        if i >= n {
            return Err(Error::InvalidOutput(format!(
                "{what} returned position {index}, but there are only {n} candidates"
            )));
        }
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if seen[word] & bit != 0 {
            return Err(Error::InvalidOutput(format!(
                "{what} returned position {index} twice"
            )));
        }
        seen[word] |= bit;
        out.push(i);
    }
    Ok(out)
}

/// Checks scores: exactly one per candidate, all finite.
pub(crate) fn scores(raw: Vec<f64>, n: usize) -> Result<Vec<f64>> {
    if raw.len() != n {
        return Err(Error::InvalidOutput(format!(
            "scorer returned {} scores for {n} candidates (must be one each)",
            raw.len()
        )));
    }
    if let Some((i, s)) = raw.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(Error::InvalidOutput(format!(
            "scorer returned a non-finite score ({s}) for candidate {i}"
        )));
    }
    Ok(raw)
}

/// Checks verdicts: at most one per instance, and only for instances the host knows
/// (`known`, the topology's ids, when a topology has been delivered).
pub(crate) fn verdicts(raw: Vec<Verdict>, known: Option<&HashSet<u32>>) -> Result<Vec<Verdict>> {
    let mut seen = HashSet::with_capacity(raw.len());
    for v in &raw {
        if !seen.insert(v.id) {
            return Err(Error::InvalidOutput(format!(
                "health policy returned two verdicts for instance {}",
                v.id
            )));
        }
        if let Some(known) = known {
            if !known.contains(&v.id) {
                return Err(Error::InvalidOutput(format!(
                    "health policy returned a verdict for unknown instance {}",
                    v.id
                )));
            }
        }
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_reject_out_of_range_duplicates_and_empty() {
        assert_eq!(
            indices("picker", vec![2, 0, 1], 3, true).unwrap(),
            vec![2, 0, 1]
        );
        assert!(matches!(
            indices("picker", vec![3], 3, true),
            Err(Error::InvalidOutput(_))
        ));
        assert!(matches!(
            indices("picker", vec![1, 1], 3, true),
            Err(Error::InvalidOutput(_))
        ));
        assert!(matches!(
            indices("picker", vec![], 3, true),
            Err(Error::InvalidOutput(_))
        ));
        assert!(indices("filter", vec![], 3, false).unwrap().is_empty());
        assert!(matches!(
            indices("filter", vec![0, 1, 2, 0], 3, false),
            Err(Error::InvalidOutput(_))
        ));
    }

    #[test]
    fn indices_handle_more_candidates_than_the_stack_bitmap() {
        let n = 2000;
        let all: Vec<u32> = (0..n as u32).rev().collect();
        assert_eq!(indices("picker", all, n, true).unwrap().len(), n);
        assert!(indices("picker", vec![1999, 1999], n, true).is_err());
    }

    #[test]
    fn scores_must_be_finite_and_one_each() {
        assert_eq!(scores(vec![1.0, -2.5], 2).unwrap(), vec![1.0, -2.5]);
        assert!(matches!(scores(vec![1.0], 2), Err(Error::InvalidOutput(_))));
        assert!(matches!(
            scores(vec![1.0, f64::NAN], 2),
            Err(Error::InvalidOutput(_))
        ));
        assert!(matches!(
            scores(vec![f64::INFINITY, 0.0], 2),
            Err(Error::InvalidOutput(_))
        ));
    }

    #[test]
    fn verdicts_must_be_unique_and_known() {
        let known: HashSet<u32> = [1, 2].into();
        let ok = vec![Verdict {
            id: 1,
            healthy: false,
        }];
        assert_eq!(verdicts(ok.clone(), Some(&known)).unwrap(), ok);
        let twice = vec![
            Verdict {
                id: 1,
                healthy: false,
            },
            Verdict {
                id: 1,
                healthy: true,
            },
        ];
        assert!(verdicts(twice, Some(&known)).is_err());
        assert!(verdicts(
            vec![Verdict {
                id: 9,
                healthy: true
            }],
            Some(&known)
        )
        .is_err());
        assert!(verdicts(
            vec![Verdict {
                id: 9,
                healthy: true
            }],
            None
        )
        .is_ok());
    }
}
