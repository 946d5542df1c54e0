//! Small-cell suppression of counts on nested units (grids in communities in streets…, H3
//! cells in their parents), for the aggregates of level-3 layers ("usable but invisible",
//! Auth art. 14).
//!
//! A count with 0 < count < k is shown as "< k" (primary suppression). That alone is not
//! enough: a unit's total minus its visible children gives away a lone suppressed child. So
//! more counts are withheld (secondary, or complementary, suppression) until, in every family
//! whose total is shown, no small count can be pinned down from the total, the shown
//! children, and what is known of the hidden ones ("< k" is 1 to k−1, withheld is k or more,
//! and each is the sum of its own children). A small count so exposed is protected by
//! withholding its smallest visible sibling (or, when there is none, its parent); a withheld
//! count whose children are all shown gets one of them withheld as well, or it could be added
//! up from below. The check is per family, one level down: a reader chaining bounds across
//! many levels of sparse data could narrow some counts further, which the tables accept in
//! exchange for not suppressing whole districts.

/// How a unit's count is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// the count as it is (0, or k and more)
    Count(u64),
    /// 0 < count < k: shown as "< k"
    Small,
    /// withheld so that a small count cannot be worked out from its family's total; the
    /// count is k or more
    Withheld,
}

impl Shown {
    /// The count, when shown.
    #[must_use]
    pub fn count(self) -> Option<u64> {
        match self {
            Self::Count(c) => Some(c),
            Self::Small | Self::Withheld => None,
        }
    }

    /// The bounds a reader knows of the count.
    #[must_use]
    pub fn bounds(self, k: u64) -> (u64, u64) {
        match self {
            Self::Count(c) => (c, c),
            Self::Small => (1, k - 1),
            Self::Withheld => (k, u64::MAX),
        }
    }
}

/// Decides how each count is shown. `parent[i]` is the unit containing unit `i` (whose count
/// is the sum of its children's); `k` ≥ 2.
///
/// ```
/// use citytwin_city::suppress::{Shown, suppress};
/// // a district of 23 with three streets of 20, 2 and 1: the 2 and the 1 are both "< 5",
/// // and 23 - 20 = 3 does not tell which is which
/// let shown = suppress(&[23, 20, 2, 1], &[None, Some(0), Some(0), Some(0)], 5);
/// assert_eq!(shown, [Shown::Count(23), Shown::Count(20), Shown::Small, Shown::Small]);
/// // with streets of 20, 8 and 2, the 2 would be 30 - 20 - 8: the 8 is withheld too
/// let shown = suppress(&[30, 20, 8, 2], &[None, Some(0), Some(0), Some(0)], 5);
/// assert_eq!(shown, [Shown::Count(30), Shown::Count(20), Shown::Withheld, Shown::Small]);
/// ```
#[must_use]
pub fn suppress(counts: &[u64], parent: &[Option<usize>], k: u64) -> Vec<Shown> {
    let k = k.max(2);
    let n = counts.len();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, p) in parent.iter().enumerate() {
        if let Some(p) = *p {
            children[p].push(i);
        }
    }
    let mut shown: Vec<Shown> = counts
        .iter()
        .map(|&c| {
            if c > 0 && c < k {
                Shown::Small
            } else {
                Shown::Count(c)
            }
        })
        .collect();
    // each round withholds at least one more count, so this ends
    for _ in 0..=n {
        let exposed = exposed(&shown, &children, k);
        if exposed.is_empty() {
            break;
        }
        let mut touched = std::collections::HashSet::new();
        let mut changed = false;
        for x in exposed {
            // one more withheld count per family and round; the next round looks again
            if touched.insert(parent[x]) {
                changed |= protect(x, counts, parent, &children, &mut shown);
            }
        }
        if !changed {
            break;
        }
    }
    shown
}

/// Withholds the smallest visible non-zero sibling of `x`, else its parent, else goes up a
/// level; whether anything changed.
fn protect(
    x: usize,
    counts: &[u64],
    parent: &[Option<usize>],
    children: &[Vec<usize>],
    shown: &mut [Shown],
) -> bool {
    let mut node = x;
    while let Some(p) = parent[node] {
        let sibling = children[p]
            .iter()
            .copied()
            .filter(|&c| c != node && matches!(shown[c], Shown::Count(v) if v > 0))
            .min_by_key(|&c| (counts[c], c));
        if let Some(s) = sibling {
            withhold(s, counts, children, shown);
            return true;
        }
        if let Shown::Count(_) = shown[p] {
            shown[p] = Shown::Withheld;
            return true;
        }
        node = p;
    }
    false
}

/// Withholds a count so that it cannot be worked out from its own children either: when
/// every child is shown, the smallest non-zero one is withheld too, and so on down.
fn withhold(u: usize, counts: &[u64], children: &[Vec<usize>], shown: &mut [Shown]) {
    shown[u] = Shown::Withheld;
    let kids = &children[u];
    if kids.is_empty() || kids.iter().any(|&c| shown[c].count().is_none()) {
        return;
    }
    if let Some(c) = kids
        .iter()
        .copied()
        .filter(|&c| counts[c] > 0)
        .min_by_key(|&c| (counts[c], c))
    {
        withhold(c, counts, children, shown);
    }
}

/// The small counts a reader can pin down within a family whose total is shown: the total
/// minus the shown children leaves the hidden ones' sum, and each hidden child is bounded by
/// what is shown of it ("< k": 1 to k−1; withheld: k or more) and by its own children (their
/// sum's bounds). A small count whose bounds meet is exposed.
fn exposed(shown: &[Shown], children: &[Vec<usize>], k: u64) -> Vec<usize> {
    // what each count is known to be from itself and its children
    let bound = |u: usize| -> (u64, u64) {
        let (lo, hi) = shown[u].bounds(k);
        if children[u].is_empty() {
            return (lo, hi);
        }
        let (clo, chi) = children[u]
            .iter()
            .map(|&c| shown[c].bounds(k))
            .fold((0u64, 0u64), |(a, b), (l, h)| (a + l, b.saturating_add(h)));
        (lo.max(clo), hi.min(chi))
    };
    let mut out = Vec::new();
    for (p, kids) in children.iter().enumerate() {
        let Shown::Count(total) = shown[p] else {
            continue;
        };
        let hidden: Vec<(usize, (u64, u64))> = kids
            .iter()
            .filter(|&&c| shown[c].count().is_none())
            .map(|&c| (c, bound(c)))
            .collect();
        if hidden.is_empty() {
            continue;
        }
        let visible: u64 = kids.iter().filter_map(|&c| shown[c].count()).sum();
        let rest = total.saturating_sub(visible);
        let sum_lo: u64 = hidden.iter().map(|(_, b)| b.0).sum();
        let sum_hi: u64 = hidden.iter().map(|(_, b)| b.1).fold(0, u64::saturating_add);
        for &(c, (lo, hi)) in &hidden {
            if shown[c] != Shown::Small {
                continue;
            }
            let others_lo = sum_lo - lo;
            let others_hi = if hi == u64::MAX || sum_hi == u64::MAX {
                // unbounded others (or this one): only a finite sum of the others bounds it
                let finite = hidden
                    .iter()
                    .filter(|(o, _)| *o != c)
                    .all(|(_, b)| b.1 != u64::MAX);
                if finite {
                    hidden
                        .iter()
                        .filter(|(o, _)| *o != c)
                        .map(|(_, b)| b.1)
                        .sum()
                } else {
                    u64::MAX
                }
            } else {
                sum_hi - hi
            };
            let new_lo = lo.max(rest.saturating_sub(others_hi));
            let new_hi = hi.min(rest.saturating_sub(others_lo));
            if new_lo >= new_hi {
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A random tree of `depth` levels below one root; leaf counts mostly 0 and small.
    fn random_tree(
        rng: &mut rand_chacha::ChaCha8Rng,
        depth: usize,
    ) -> (Vec<u64>, Vec<Option<usize>>) {
        let mut parent = vec![None];
        let mut level = vec![0usize];
        for _ in 0..depth {
            let mut next = Vec::new();
            for &p in &level {
                for _ in 0..rng.random_range(1..=7) {
                    parent.push(Some(p));
                    next.push(parent.len() - 1);
                }
            }
            level = next;
        }
        let mut counts = vec![0u64; parent.len()];
        for &leaf in &level {
            counts[leaf] = match rng.random_range(0..10) {
                0..=3 => 0,
                4..=7 => rng.random_range(1..8),
                _ => rng.random_range(5..40),
            };
        }
        // sums, children after parents
        for i in (1..parent.len()).rev() {
            if let Some(p) = parent[i] {
                counts[p] += counts[i];
            }
        }
        (counts, parent)
    }

    /// How many values of child `j` of a family with a shown parent agree with the parent
    /// minus its visible children and the other suppressed children's bounds.
    fn candidates(total: u64, kids: &[(u64, u64)], j: usize) -> u64 {
        let (lo_o, hi_o) = kids
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != j)
            .fold((0u64, 0u64), |(a, b), (_, (l, h))| {
                (a + l, b.saturating_add(*h))
            });
        let (lo, hi) = kids[j];
        (lo..=hi.min(total))
            .filter(|v| total >= *v && total - v >= lo_o && total - v <= hi_o)
            .count() as u64
    }

    #[test]
    fn no_small_count_is_shown_and_none_is_recovered_from_its_family() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
        for case in 0..600 {
            let depth = rng.random_range(1..=4);
            let k = rng.random_range(2..=6);
            let (counts, parent) = random_tree(&mut rng, depth);
            let shown = suppress(&counts, &parent, k);
            for (i, s) in shown.iter().enumerate() {
                // what is shown is true
                match *s {
                    Shown::Count(c) => {
                        assert_eq!(c, counts[i]);
                        assert!(c == 0 || c >= k, "case {case}: count {c} < {k} shown");
                    }
                    Shown::Small => assert!(counts[i] > 0 && counts[i] < k),
                    Shown::Withheld => assert!(counts[i] >= k, "case {case}"),
                }
            }
            // parent minus visible children never pins down a small count
            for p in 0..counts.len() {
                let Shown::Count(total) = shown[p] else {
                    continue;
                };
                let kids: Vec<usize> = (0..counts.len())
                    .filter(|&c| parent[c] == Some(p))
                    .collect();
                let visible: u64 = kids.iter().filter_map(|&c| shown[c].count()).sum();
                let hidden: Vec<usize> = kids
                    .iter()
                    .copied()
                    .filter(|&c| shown[c].count().is_none())
                    .collect();
                let bounds: Vec<(u64, u64)> = hidden.iter().map(|&c| shown[c].bounds(k)).collect();
                for (j, &c) in hidden.iter().enumerate() {
                    if shown[c] == Shown::Small {
                        assert!(
                            candidates(total - visible, &bounds, j) >= 2,
                            "case {case}: unit {c} ({}) recovered from its parent {p} ({total})",
                            counts[c]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sparse_data_keeps_its_larger_totals() {
        // city → 11 districts → 9 streets → 12 communities → 8 grids, 70 % of grids empty,
        // most of the rest under k: districts and the city keep their counts
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut parent = vec![None];
        let mut level = vec![0usize];
        let mut districts = Vec::new();
        for (d, fan) in [11, 9, 12, 8].iter().enumerate() {
            let mut next = vec![];
            for &p in &level {
                for _ in 0..*fan {
                    parent.push(Some(p));
                    next.push(parent.len() - 1);
                }
            }
            if d == 0 {
                districts.clone_from(&next);
            }
            level = next;
        }
        let mut counts = vec![0u64; parent.len()];
        for &l in &level {
            counts[l] = match rng.random_range(0..100) {
                0..=69 => 0,
                70..=98 => rng.random_range(1..4),
                _ => rng.random_range(5..9),
            };
        }
        for i in (1..parent.len()).rev() {
            if let Some(p) = parent[i] {
                counts[p] += counts[i];
            }
        }
        let shown = suppress(&counts, &parent, 5);
        assert_eq!(shown[0], Shown::Count(counts[0]));
        assert!(districts.iter().all(|&d| shown[d].count().is_some()));
    }

    #[test]
    fn a_lone_small_child_is_hidden_behind_a_sibling_or_its_parent() {
        // 12 = 10 + 2: the 10 is withheld
        let s = suppress(&[12, 10, 2], &[None, Some(0), Some(0)], 5);
        assert_eq!(s, [Shown::Count(12), Shown::Withheld, Shown::Small]);
        // 2 = 2 + 0: no sibling to hide behind, the parent is withheld... and as it is the
        // root and < k, it is small itself
        let s = suppress(&[2, 2, 0], &[None, Some(0), Some(0)], 5);
        assert_eq!(s, [Shown::Small, Shown::Small, Shown::Count(0)]);
        // 6 = 5 + 1: the 5 is withheld, but then 6 - 1..=4 ≥ 5 pins 1 down: the parent goes
        let s = suppress(&[6, 5, 1], &[None, Some(0), Some(0)], 5);
        assert_eq!(s[2], Shown::Small);
        assert_eq!(s[0], Shown::Withheld);
        // nothing small, nothing hidden
        let s = suppress(&[30, 10, 20, 0], &[None, Some(0), Some(0), Some(0)], 5);
        assert!(s.iter().all(|s| s.count().is_some()));
    }
}
