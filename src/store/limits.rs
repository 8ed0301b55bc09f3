//! Store limits (`--push.max-groups`, `--push.max-series`): bounds that
//! keep a runaway job from growing the store until the gateway is killed.
//!
//! A series here is one sample line of the exposition, what a scrape
//! carries and Prometheus stores: a histogram with 10 buckets counts 13
//! (the buckets, `+Inf`, `_sum`, `_count`). The per-group push-time gauges
//! do not count. A push over a limit changes nothing and never creates a
//! group, or the group limit would not hold.

use std::fmt;

use super::{PreparedFamily, PreparedPush, Store, StoredFamily};

/// The configured limits; 0 means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    pub max_groups: usize,
    pub max_series: usize,
}

/// Which limit a push would exceed, with the figures to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LimitError {
    Groups { limit: usize },
    Series { limit: usize, after: usize },
}

impl LimitError {
    /// The `limit` label of `pushgateway_pushes_refused_total`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            LimitError::Groups { .. } => "groups",
            LimitError::Series { .. } => "series",
        }
    }
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::Groups { limit } => write!(
                f,
                "store full: it holds {limit} groups, the limit set by --push.max-groups; \
                 this push would create another (delete groups or raise the limit)"
            ),
            LimitError::Series { limit, after } => write!(
                f,
                "store full: this push would bring it to {after} series, over the limit of \
                 {limit} set by --push.max-series (delete groups or raise the limit)"
            ),
        }
    }
}

impl std::error::Error for LimitError {}

/// Sample lines of a prepared family.
pub(super) fn prepared_samples(f: &PreparedFamily) -> usize {
    stored_samples(f)
}

/// Sample lines of a stored family, kept beside it.
pub(super) fn stored_samples(f: &StoredFamily) -> usize {
    f.samples as usize
}

pub(super) fn lines(text: &[u8]) -> usize {
    text.iter().filter(|b| **b == b'\n').count()
}

impl Store {
    /// Sample lines stored, the unit of `--push.max-series`.
    pub(crate) fn sample_count(&self) -> usize {
        self.samples
    }

    /// Would `push` take the store past a limit? Costs what the push and
    /// its group hold, never what the store holds.
    pub(crate) fn check_limits(
        &self,
        push: &PreparedPush,
        limits: Limits,
    ) -> Result<(), LimitError> {
        let group = self.groups.get(&push.key);
        if limits.max_groups > 0 && group.is_none() && self.groups.len() >= limits.max_groups {
            return Err(LimitError::Groups {
                limit: limits.max_groups,
            });
        }
        if limits.max_series == 0 {
            return Ok(());
        }
        let added: usize = push.families.iter().map(prepared_samples).sum();
        let removed: usize = match group {
            None => 0,
            Some(g) if push.replace => g.families.values().map(|f| stored_samples(f)).sum(),
            Some(g) => push
                .families
                .iter()
                .filter_map(|f| g.families.get(&*f.name))
                .map(|f| stored_samples(f))
                .sum(),
        };
        let after = self.samples - removed + added;
        if after > limits.max_series && added > removed {
            return Err(LimitError::Series {
                limit: limits.max_series,
                after,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Label;
    use crate::store::{GroupKey, prepare_push};
    use crate::telemetry::GatewayFamilies;

    fn push(job: &str, body: &str, replace: bool) -> PreparedPush {
        let key: GroupKey = vec![Label::new("job", job)].into();
        let fams = crate::wire::text_format::parse(body.as_bytes()).unwrap();
        prepare_push(key, fams, replace).unwrap()
    }

    fn apply(store: &mut Store, p: PreparedPush) {
        store.check(&p, &GatewayFamilies).unwrap();
        store.apply(p, 1);
    }

    /// Ten buckets without `+Inf`: the exposition adds it, then `_sum` and
    /// `_count`: 13 lines.
    const HISTOGRAM_10: &str = "# TYPE h histogram\n\
        h_bucket{le=\"1\"} 0\nh_bucket{le=\"2\"} 0\nh_bucket{le=\"3\"} 0\nh_bucket{le=\"4\"} 0\n\
        h_bucket{le=\"5\"} 0\nh_bucket{le=\"6\"} 0\nh_bucket{le=\"7\"} 0\nh_bucket{le=\"8\"} 0\n\
        h_bucket{le=\"9\"} 0\nh_bucket{le=\"10\"} 0\nh_sum 0\nh_count 0\n";

    #[test]
    fn series_are_sample_lines() {
        let mut store = Store::new();
        apply(&mut store, push("a", HISTOGRAM_10, true));
        assert_eq!(store.sample_count(), 13);
        apply(&mut store, push("b", "x 1\ny 2\n", true));
        assert_eq!(store.sample_count(), 15);
        // PUT replaces the group's samples, POST only its families'.
        apply(&mut store, push("a", "z 1\n", true));
        assert_eq!(store.sample_count(), 3);
        apply(&mut store, push("b", "x 3\n", false));
        assert_eq!(store.sample_count(), 3);
        store.delete(&vec![Label::new("job", "b")].into());
        assert_eq!(store.sample_count(), 1);
    }

    #[test]
    fn exactly_at_the_limit_passes_one_past_is_refused() {
        let limits = Limits {
            max_groups: 2,
            max_series: 4,
        };
        let mut store = Store::new();
        let first = push("a", "x 1\ny 1\n", true);
        assert_eq!(store.check_limits(&first, limits), Ok(()));
        apply(&mut store, first);
        let to_four = push("b", "x 1\ny 1\n", true);
        assert_eq!(store.check_limits(&to_four, limits), Ok(()));
        apply(&mut store, to_four);
        let fifth = push("b", "z 1\n", false);
        assert_eq!(
            store.check_limits(&fifth, limits),
            Err(LimitError::Series { limit: 4, after: 5 })
        );
        // Replacing a group with no more than it had always passes.
        assert_eq!(
            store.check_limits(&push("b", "z 1\nw 1\n", true), limits),
            Ok(())
        );
        let third_group = push("c", "q 1\n", true);
        assert_eq!(
            store.check_limits(&third_group, limits),
            Err(LimitError::Groups { limit: 2 })
        );
        let e = LimitError::Groups { limit: 2 }.to_string();
        assert!(e.contains("--push.max-groups"), "{e}");
    }
}
