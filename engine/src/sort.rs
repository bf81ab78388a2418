//! The engine's one sort: a stable merge sort of `u32` ids through a trait object.
//!
//! The standard library's sorts are generic over the element type and the comparison: every list
//! type and closure the engine sorted put another 5–8 KB copy of driftsort or ipnsort into the Wasm
//! module (`docs/benchmarks.md`, *The lean Wasm path*). Everything the engine orders goes through
//! [`sort_ids`], directly (candidate ids) or through the positions of its items
//! ([`sort_through_positions`]). Most candidate lists hold one id; longer ones (a hostname bucket
//! can hold every route of that hostname) get insertion-sorted runs of 16 merged bottom-up, which
//! is O(n log n) like the standard sorts and compiles to well under 1 KB.

use std::cmp::Ordering;

/// How ids are ordered (greatest precedence first, for candidates).
pub(crate) type IdOrder<'o> = dyn Fn(u32, u32) -> Ordering + 'o;

/// Runs up to this long are insertion-sorted before merging.
const RUN: usize = 16;

/// Sorts ids by `order`, stably, and drops repeated ids.
pub(crate) fn sort_ids(ids: &mut Vec<u32>, order: &IdOrder<'_>) {
    merge_sort(ids, order);
    ids.dedup();
}

/// Sorts a list of another type (stably, by `compare`) through [`sort_ids`] on its positions: a
/// few hundred bytes of module for the type instead of another copy of a sort.
pub(crate) fn sort_through_positions<T>(items: &mut Vec<T>, compare: &dyn Fn(&T, &T) -> Ordering) {
    if items.len() < 2 {
        return;
    }
    let Ok(len) = u32::try_from(items.len()) else {
        return; // more items than ids exist; cannot happen, and leaving the order is safe
    };
    let mut positions: Vec<u32> = (0..len).collect();
    sort_ids(
        &mut positions,
        &|a, b| match (items.get(a as usize), items.get(b as usize)) {
            (Some(x), Some(y)) => compare(x, y),
            _ => Ordering::Equal,
        },
    );
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(
        positions
            .iter()
            .filter_map(|&p| slots.get_mut(p as usize).and_then(Option::take)),
    );
}

// One copy in the module: inlined, it was copied into each caller (about 1–2 KB each).
#[inline(never)]
fn merge_sort(ids: &mut [u32], order: &IdOrder<'_>) {
    for run in ids.chunks_mut(RUN) {
        insertion_sort(run, order);
    }
    if ids.len() <= RUN {
        return;
    }
    let mut scratch = vec![0; ids.len()];
    let mut width = RUN;
    let mut sorted_in_scratch = false;
    while width < ids.len() {
        if sorted_in_scratch {
            merge_pass(&scratch, ids, width, order);
        } else {
            merge_pass(ids, &mut scratch, width, order);
        }
        sorted_in_scratch = !sorted_in_scratch;
        width = width.saturating_mul(2);
    }
    if sorted_in_scratch {
        ids.copy_from_slice(&scratch);
    }
}

/// Shifts each id left past the ids that `order` puts strictly after it (so equal ids keep their
/// order).
fn insertion_sort(run: &mut [u32], order: &IdOrder<'_>) {
    for end in 1..run.len() {
        let mut at = end;
        while at > 0 {
            match (run.get(at - 1), run.get(at)) {
                (Some(&before), Some(&id)) if order(id, before) == Ordering::Less => {
                    run.swap(at - 1, at);
                    at -= 1;
                }
                _ => break,
            }
        }
    }
}

/// Merges each pair of neighbouring sorted runs of `width` ids from `from` into `to`.
fn merge_pass(from: &[u32], to: &mut [u32], width: usize, order: &IdOrder<'_>) {
    let pair = width.saturating_mul(2);
    for (source, target) in from.chunks(pair).zip(to.chunks_mut(pair)) {
        let (left, right) = source.split_at(width.min(source.len()));
        let (mut left, mut right) = (left.iter().peekable(), right.iter().peekable());
        for slot in target {
            // The left run's id goes first unless the right one is strictly before it: stable.
            let take_right = match (left.peek(), right.peek()) {
                (Some(&&l), Some(&&r)) => order(r, l) == Ordering::Less,
                (None, _) => true,
                (Some(_), None) => false,
            };
            let next = if take_right {
                right.next()
            } else {
                left.next()
            };
            if let Some(&id) = next {
                *slot = id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Ids compared by `id / 4` only: a quarter of the ids tie, so stability shows.
    fn coarse(a: u32, b: u32) -> Ordering {
        (a / 4).cmp(&(b / 4))
    }

    proptest! {
        #[test]
        fn sorts_stably_as_the_standard_sort_does(ids in proptest::collection::vec(0u32..200, 0..300)) {
            let mut ours = ids.clone();
            merge_sort(&mut ours, &coarse);
            let mut theirs = ids;
            theirs.sort_by(|a, b| coarse(*a, *b));
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn sorts_items_through_their_positions(items in proptest::collection::vec((0u8..8, any::<u16>()), 0..100)) {
            let mut ours = items.clone();
            sort_through_positions(&mut ours, &|a, b| a.0.cmp(&b.0));
            let mut theirs = items;
            theirs.sort_by_key(|item| item.0);
            prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn every_length_around_the_run_and_merge_boundaries_sorts_in_reverse_order() {
        for len in 0..(RUN * 5) {
            let mut ids: Vec<u32> = (0..len as u32).rev().collect();
            merge_sort(&mut ids, &|a, b| a.cmp(&b));
            assert_eq!(ids, (0..len as u32).collect::<Vec<_>>(), "length {len}");
        }
    }

    #[test]
    fn repeated_ids_are_dropped_after_sorting() {
        let mut ids = vec![5, 1, 5, 3, 1, 9];
        sort_ids(&mut ids, &|a, b| b.cmp(&a));
        assert_eq!(ids, [9, 5, 3, 1]);
    }
}
