//! Small building blocks of feature rows: one-hot blocks with an "unknown" slot.

/// Set the one-hot slot of `value` among `choices` in `block`, whose last slot
/// (one past the choices, when present) is "unknown"; `block.len()` decides.
/// A value not among the choices goes to the last slot of `block`, which
/// without an unknown slot is the last choice — the reference featurizers'
/// `vec[lst.index(v) if v in lst else -1] = 1`.
pub(super) fn one_hot<T: PartialEq>(block: &mut [f32], value: T, choices: &[T]) {
    let slot = choices
        .iter()
        .position(|c| *c == value)
        .unwrap_or(block.len().saturating_sub(1));
    if let Some(cell) = block.get_mut(slot) {
        *cell = 1.0;
    }
}

/// A boolean as 0/1.
pub(super) fn flag(value: bool) -> f32 {
    if value { 1.0 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::one_hot;

    #[test]
    fn unknown_values_land_in_the_last_slot() {
        let mut block = [0.0; 4];
        one_hot(&mut block, 7, &[1, 2, 3]);
        assert_eq!(block, [0.0, 0.0, 0.0, 1.0]);
        let mut block = [0.0; 3];
        one_hot(&mut block, 2, &[1, 2, 3]);
        assert_eq!(block, [0.0, 1.0, 0.0]);
    }
}
