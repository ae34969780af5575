//! Shards: a run or backfill split across processes (Kubernetes Indexed Jobs) by date. Shard
//! `I/N` takes the dates whose day number (days since 1970-01-01) mod `N` is `I`: disjoint,
//! their union is every date, and stable under retries (a date's shard depends on nothing but the
//! date and `N`). Each shard holds its own shared lease on a table (see [`crate::lease`]).

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;

use crate::error::ConfigError;

/// The environment variable Kubernetes Indexed Jobs set to the pod's index.
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

/// One share of the dates: `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Shard `index` of `count`; `option` names the argument in the error.
    pub fn new(option: &str, index: u32, count: u32) -> Result<Shard, ConfigError> {
        if count == 0 || index >= count {
            return Err(ConfigError::Invalid {
                option: option.to_string(),
                message: format!(
                    "shard {index}/{count}: the count must be at least 1 and the index below it"
                ),
            });
        }
        Ok(Shard { index, count })
    }

    /// `--shards N` with the index from `JOB_COMPLETION_INDEX` in `env` (the process
    /// environment, read by the caller).
    pub fn from_job_index(
        count: u32,
        env: &std::collections::HashMap<String, String>,
    ) -> Result<Shard, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            option: "--shards".to_string(),
            message,
        };
        let text = env.get(JOB_COMPLETION_INDEX).ok_or_else(|| {
            invalid(format!(
                "{JOB_COMPLETION_INDEX} is not set (a Kubernetes Indexed Job sets it; use --shard I/N elsewhere)"
            ))
        })?;
        let index = text.trim().parse::<u32>().map_err(|_| {
            invalid(format!(
                "{JOB_COMPLETION_INDEX}={text:?} is not a shard index"
            ))
        })?;
        Shard::new("--shards", index, count)
    }

    /// The shard's index.
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(self) -> u32 {
        self.count
    }

    /// True when `date` belongs to this shard.
    pub fn includes(self, date: NaiveDate) -> bool {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        let day = (date - epoch).num_days();
        day.rem_euclid(i64::from(self.count)) == i64::from(self.index)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ConfigError;

    /// `I/N`, as `--shard` takes it.
    fn from_str(text: &str) -> Result<Shard, ConfigError> {
        let parsed = text
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) => Shard::new("--shard", index, count),
            None => Err(ConfigError::Invalid {
                option: "--shard".to_string(),
                message: format!("{text:?} is not I/N (e.g. 0/4)"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_i_of_n_and_refuses_the_rest() {
        let shard: Shard = "2/5".parse().unwrap();
        assert_eq!((shard.index(), shard.count()), (2, 5));
        assert_eq!(shard.to_string(), "2/5");
        for bad in ["5/5", "0/0", "1", "a/b", "-1/3", "1/3/4", ""] {
            let err = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(err.starts_with("option --shard: "), "{bad}: {err}");
        }
    }

    #[test]
    fn the_job_index_comes_from_the_environment_given() {
        let env = HashMap::from([(JOB_COMPLETION_INDEX.to_string(), "3".to_string())]);
        assert_eq!(
            Shard::from_job_index(4, &env).unwrap(),
            Shard::new("x", 3, 4).unwrap()
        );
        assert!(Shard::from_job_index(3, &env).is_err(), "index 3 of 3");
        let err = Shard::from_job_index(4, &HashMap::new()).unwrap_err();
        assert!(
            err.to_string().contains("JOB_COMPLETION_INDEX is not set"),
            "{err}"
        );
    }

    #[test]
    fn the_day_number_decides() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        assert!(Shard::new("x", 0, 3).unwrap().includes(epoch));
        assert!(Shard::new("x", 1, 3)
            .unwrap()
            .includes(epoch.succ_opt().unwrap()));
        let before = epoch.pred_opt().unwrap();
        assert!(Shard::new("x", 2, 3).unwrap().includes(before), "day -1");
    }

    proptest! {
        #[test]
        fn every_date_is_in_exactly_one_shard(days in -40_000i64..40_000, count in 1u32..40) {
            let date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days);
            let owners = (0..count)
                .filter(|i| Shard::new("x", *i, count).unwrap().includes(date))
                .count();
            prop_assert_eq!(owners, 1);
        }
    }
}
