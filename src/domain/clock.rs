//! The clock the API derives values from (the default billing month of a report).
//!
//! The system clock in a running gateway. A test can hold it at an instant and move it, so that
//! a request and its retry can be made on either side of a month boundary without waiting for
//! one.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// "Now" for the API: the system clock, or an instant set by hand ([`Clock::manual`]).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<Mutex<DateTime<Utc>>>>,
}

impl Clock {
    /// The system clock (UTC).
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that stands at `at` until [`Clock::set`] moves it.
    pub fn manual(at: DateTime<Utc>) -> Clock {
        Clock {
            manual: Some(Arc::new(Mutex::new(at))),
        }
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            Some(at) => *at.lock().unwrap_or_else(|e| e.into_inner()),
            None => Utc::now(),
        }
    }

    /// Moves a manual clock to `at` (every copy of it sees the new instant). A system clock
    /// ignores it.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(manual) = &self.manual {
            *manual.lock().unwrap_or_else(|e| e.into_inner()) = at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_set_and_copies_share_it() {
        let start = DateTime::parse_from_rfc3339("2026-11-30T23:59:55Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::manual(start);
        let copy = clock.clone();
        assert_eq!(copy.now(), start);
        let later = start + chrono::Duration::seconds(6);
        clock.set(later);
        assert_eq!(copy.now(), later);
    }

    #[test]
    fn the_system_clock_follows_utc_now() {
        let before = Utc::now();
        let now = Clock::system().now();
        assert!(now >= before && now <= Utc::now());
    }
}
