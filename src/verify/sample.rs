//! A reservoir sample of a partition's distinct keys (deterministic for a seed), each with the
//! value of its **last** row: within a partition the last row of a key wins, as in a load.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Up to `capacity` distinct keys of a stream, chosen uniformly (reservoir sampling), each
/// with the value of the last row offered for it.
pub struct Reservoir<T> {
    capacity: usize,
    /// Distinct keys offered that were not in the sample when offered.
    seen: u64,
    slots: Vec<Vec<u8>>,
    values: HashMap<Vec<u8>, T>,
    rng: StdRng,
}

impl<T> Reservoir<T> {
    /// An empty sample of at most `capacity` keys (`usize::MAX`: every key), drawn with `seed`.
    pub fn new(capacity: usize, seed: u64) -> Self {
        Reservoir {
            capacity,
            seen: 0,
            slots: Vec::new(),
            values: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Offers a row: a key in the sample takes the row's value (the last row wins); another key
    /// enters the sample with the reservoir's odds.
    pub fn offer(&mut self, key: &[u8], value: impl FnOnce() -> T) {
        if let Some(held) = self.values.get_mut(key) {
            *held = value();
            return;
        }
        self.seen += 1;
        if self.slots.len() < self.capacity {
            self.slots.push(key.to_vec());
            self.values.insert(key.to_vec(), value());
            return;
        }
        let slot = self.rng.random_range(0..self.seen);
        if let Ok(slot) = usize::try_from(slot) {
            if slot < self.capacity {
                let old = std::mem::replace(&mut self.slots[slot], key.to_vec());
                self.values.remove(&old);
                self.values.insert(key.to_vec(), value());
            }
        }
    }

    /// The sampled keys and their values, in slot order.
    pub fn into_sample(mut self) -> Vec<(Vec<u8>, T)> {
        self.slots
            .into_iter()
            .map(|key| {
                let value = self.values.remove(&key).expect("every slot has a value");
                (key, value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(capacity: usize, seed: u64, keys: &[(&str, u32)]) -> Vec<(String, u32)> {
        let mut reservoir = Reservoir::new(capacity, seed);
        for (key, value) in keys {
            reservoir.offer(key.as_bytes(), || *value);
        }
        reservoir
            .into_sample()
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), v))
            .collect()
    }

    #[test]
    fn a_large_capacity_keeps_every_key_with_its_last_value() {
        let got = sample(usize::MAX, 1, &[("a", 1), ("b", 2), ("a", 3)]);
        assert_eq!(got, [("a".to_string(), 3), ("b".to_string(), 2)]);
    }

    #[test]
    fn a_sample_has_capacity_distinct_keys_and_is_deterministic_for_a_seed() {
        let keys: Vec<(String, u32)> = (0..1000).map(|i| (format!("k{i}"), i)).collect();
        let refs: Vec<(&str, u32)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let first = sample(10, 42, &refs);
        assert_eq!(first.len(), 10);
        assert_eq!(first, sample(10, 42, &refs), "same seed, same sample");
        assert_ne!(first, sample(10, 43, &refs), "another seed, another sample");
        for (key, value) in &first {
            assert_eq!(key, &format!("k{value}"));
        }
        // Uniform enough: the sample is not just the first keys.
        assert!(first.iter().any(|(_, v)| *v >= 10), "{first:?}");
    }

    #[test]
    fn a_key_sampled_late_still_takes_its_last_value() {
        let mut keys: Vec<(String, u32)> = (0..100).map(|i| (format!("k{i}"), i)).collect();
        keys.extend((0..100).map(|i| (format!("k{i}"), 1000 + i)));
        let refs: Vec<(&str, u32)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let got = sample(5, 7, &refs);
        assert_eq!(got.len(), 5);
        for (key, value) in got {
            assert_eq!(
                key,
                format!("k{}", value - 1000),
                "the last row of each key"
            );
        }
    }
}
