//! Weighted splits: sampling the picker and judging the observed fractions.
//!
//! A vectors file gives the expected fraction per backend, an absolute tolerance and a sample size
//! (500 at ±0.05 in the shared file). For an exact 70/30 picker one batch of 500 lands outside
//! ±0.05 about 1.5 % of the time (2.4 standard deviations), so judging one batch makes CI fail now
//! and then for nothing. The Gateway API suite itself retries the whole check up to ten times and
//! passes on any good batch; that lets a picker biased just past the tolerance through by luck. We
//! keep sampling instead and judge the pooled counts after each batch, up to ten batches: an exact
//! picker's pooled fractions settle well inside the band, a biased one's settle outside it.

use std::collections::BTreeMap;

use crate::outcome::Outcome;

/// Batches sampled at most before a split is declared off (the suite's own retry count).
pub const MAX_BATCHES: u32 = 10;

/// Sends `batch` requests at a time through `send` (which returns the backend that answered, or
/// why the exchange itself failed) and judges the pooled counts after each batch. A failed exchange
/// fails the case at once; an infrastructure error (`E`) is returned as is.
pub fn sample<E>(
    case_id: &str,
    expected: &BTreeMap<String, f64>,
    batch: u32,
    tolerance: f64,
    mut send: impl FnMut() -> Result<Result<Option<String>, String>, E>,
) -> Result<Outcome, E> {
    let batch = batch.max(1);
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let mut first_miss: Option<String> = None;
    let mut last_miss = String::new();
    for batches in 1..=MAX_BATCHES {
        for _ in 0..batch {
            match send()? {
                Ok(Some(backend)) => *counts.entry(backend).or_default() += 1,
                Ok(None) => {}
                Err(failure) => return Ok(Outcome::Fail(failure)),
            }
        }
        match compare(expected, &counts, batch.saturating_mul(batches), tolerance) {
            Ok(()) => {
                if let Some(miss) = first_miss {
                    eprintln!(
                        "note: {case_id}: within tolerance over {} requests ({batches} batches); \
                         the first batch alone was not: {miss}",
                        batch.saturating_mul(batches)
                    );
                }
                return Ok(Outcome::Pass);
            }
            Err(miss) => {
                if counts.keys().any(|b| !expected.contains_key(b)) {
                    // A backend that must never be picked was: more samples cannot fix that.
                    return Ok(Outcome::Fail(miss));
                }
                first_miss.get_or_insert_with(|| miss.clone());
                last_miss = miss;
            }
        }
    }
    // The judgement of all the requests sent.
    Ok(Outcome::Fail(last_miss))
}

/// Observed fractions against the expected ones, within an absolute tolerance.
pub fn compare(
    expected: &BTreeMap<String, f64>,
    counts: &BTreeMap<String, u32>,
    samples: u32,
    tolerance: f64,
) -> Result<(), String> {
    for backend in counts.keys() {
        if !expected.contains_key(backend) {
            return Err(format!(
                "distribution: unexpected backend {backend} ({counts:?})"
            ));
        }
    }
    for (backend, fraction) in expected {
        let got = f64::from(counts.get(backend).copied().unwrap_or(0)) / f64::from(samples);
        if (got - fraction).abs() > tolerance {
            return Err(format!(
                "distribution: {backend} expected {fraction:.3}±{tolerance}, got {got:.3} over {samples} requests ({counts:?})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> BTreeMap<String, f64> {
        BTreeMap::from([("a".to_owned(), 0.7), ("b".to_owned(), 0.3)])
    }

    /// A deterministic picker that sends `a` for `a_per_100` of every 100 requests.
    fn picker(a_per_100: u32) -> impl FnMut() -> Result<Result<Option<String>, String>, ()> {
        let mut n = 0u32;
        move || {
            n += 1;
            Ok(Ok(Some(
                if n % 100 < a_per_100 { "a" } else { "b" }.to_owned(),
            )))
        }
    }

    #[test]
    fn an_exact_split_passes_in_one_batch() {
        assert_eq!(
            sample("c", &expected(), 500, 0.05, picker(70)),
            Ok(Outcome::Pass)
        );
    }

    #[test]
    fn a_split_off_by_more_than_the_tolerance_fails_after_every_batch() {
        let mut calls = 0;
        let mut inner = picker(60);
        let outcome = sample("c", &expected(), 500, 0.05, || {
            calls += 1;
            inner()
        })
        .unwrap();
        assert!(
            matches!(&outcome, Outcome::Fail(m) if m.contains("got 0.600 over 5000 requests")),
            "{outcome:?}"
        );
        assert_eq!(calls, 5000);
    }

    #[test]
    fn an_unlucky_first_batch_is_outweighed_by_the_pooled_counts() {
        // First 500 requests 62 % `a` (outside ±0.05), then exact: the pooled 1,000 are at 0.66.
        let mut n = 0u32;
        let outcome = sample("c", &expected(), 500, 0.05, || {
            n += 1;
            let a = if n <= 500 { n % 100 < 62 } else { n % 100 < 70 };
            Ok::<_, ()>(Ok(Some(if a { "a" } else { "b" }.to_owned())))
        });
        assert_eq!(outcome, Ok(Outcome::Pass));
        assert_eq!(n, 1000);
    }

    #[test]
    fn an_unexpected_backend_or_a_failed_exchange_fails_at_once() {
        let mut n = 0;
        let outcome = sample("c", &expected(), 500, 0.05, || {
            n += 1;
            Ok::<_, ()>(Ok(Some("zzz".to_owned())))
        });
        assert!(matches!(outcome, Ok(Outcome::Fail(m)) if m.contains("unexpected backend zzz")));
        assert_eq!(n, 500);
        let outcome = sample("c", &expected(), 500, 0.05, || {
            Ok::<_, ()>(Err("status 500".to_owned()))
        });
        assert_eq!(outcome, Ok(Outcome::Fail("status 500".to_owned())));
    }
}
