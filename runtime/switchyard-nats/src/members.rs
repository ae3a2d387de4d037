//! Which instance ids the subscriber keeps state for.
//!
//! Anyone on the bus can publish under any id, and a bus may be shared with workers this
//! frontend never routes to (another deployment, another model's fleet). State per id (index
//! entries, a dump request, a load snapshot) is only worth keeping for the ids discovery knows:
//! the *members*. An id that is not a member — a *stranger* — is tracked for a grace period
//! from its first message (a worker may publish a moment before discovery lists it), then its
//! state is dropped and its messages are ignored until discovery lists it. At most
//! `max_strangers` strangers are remembered at a time; beyond that, new ones are ignored at
//! once. Until the frontend first says who the members are, everyone is one (standalone use).
//!
//! Pure bookkeeping: time is passed in, the subscriber does the forgetting.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Stranger {
    first_seen: Instant,
    last_seen: Instant,
    /// Its grace ran out and its state was dropped.
    expired: bool,
}

#[derive(Debug)]
pub(crate) struct Members {
    /// `None` until [`Members::set_members`] is first called: everyone is a member.
    members: Option<HashSet<String>>,
    strangers: HashMap<String, Stranger>,
    grace: Duration,
    max_strangers: usize,
}

impl Members {
    pub(crate) fn new(grace: Duration, max_strangers: usize) -> Self {
        Self {
            members: None,
            strangers: HashMap::new(),
            grace,
            max_strangers,
        }
    }

    /// Whether a message from `id` (arriving at `now`) may create or update state.
    pub(crate) fn admit(&mut self, id: &str, now: Instant) -> bool {
        let Some(members) = &self.members else {
            return true;
        };
        if members.contains(id) {
            return true;
        }
        if let Some(s) = self.strangers.get_mut(id) {
            s.last_seen = now;
            return !s.expired && now.saturating_duration_since(s.first_seen) < self.grace;
        }
        if self.strangers.len() >= self.max_strangers {
            return false;
        }
        self.strangers.insert(
            id.to_owned(),
            Stranger {
                first_seen: now,
                last_seen: now,
                expired: false,
            },
        );
        true
    }

    /// Discovery's current ids. Returns the ids whose state must go: former members that
    /// left, and (on the first call) tracked ids beyond the stranger cap. `tracked` is every
    /// id the subscriber holds state for; the untracked ones among them become strangers
    /// first seen now.
    pub(crate) fn set_members(
        &mut self,
        ids: HashSet<String>,
        tracked: impl IntoIterator<Item = String>,
        now: Instant,
    ) -> Vec<String> {
        let previous = self.members.replace(ids);
        self.strangers
            .retain(|id, _| !self.members.as_ref().is_some_and(|m| m.contains(id)));
        let mut forget: Vec<String> = match previous {
            // A member that left is forgotten at once (discovery says it is gone), and not
            // taken on again as a stranger while it keeps publishing on its way out.
            Some(prev) => prev.into_iter().filter(|id| !self.is_member(id)).collect(),
            None => Vec::new(),
        };
        for id in &forget {
            if self.strangers.len() < self.max_strangers {
                let gone = Stranger {
                    first_seen: now,
                    last_seen: now,
                    expired: true,
                };
                self.strangers.insert(id.clone(), gone);
            }
        }
        // State taken on before anyone said who the members are (or kept by a former member
        // still publishing) now counts as a stranger's, from now.
        for id in tracked {
            if self.is_member(&id) || self.strangers.contains_key(&id) || forget.contains(&id) {
                continue;
            }
            if !self.admit(&id, now) {
                forget.push(id);
            }
        }
        forget
    }

    /// Strangers whose grace ran out by `now` (their state must go; reported once). Records
    /// of expired strangers silent for a whole grace period since expiry or their last
    /// message are dropped, freeing their place.
    pub(crate) fn sweep(&mut self, now: Instant) -> Vec<String> {
        let grace = self.grace;
        let mut expired = Vec::new();
        for (id, s) in &mut self.strangers {
            if !s.expired && now.saturating_duration_since(s.first_seen) >= grace {
                s.expired = true;
                // Remembered (and ignored) for at least a grace period from here.
                s.last_seen = now;
                expired.push(id.clone());
            }
        }
        self.strangers
            .retain(|_, s| !s.expired || now.saturating_duration_since(s.last_seen) < grace);
        expired
    }

    #[cfg(test)]
    pub(crate) fn strangers(&self) -> usize {
        self.strangers.len()
    }

    fn is_member(&self, id: &str) -> bool {
        self.members.as_ref().is_none_or(|m| m.contains(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(30);

    fn ids(v: &[&str]) -> HashSet<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn everyone_is_a_member_until_discovery_says_otherwise() {
        let t0 = Instant::now();
        let mut m = Members::new(GRACE, 2);
        for i in 0..10 {
            assert!(m.admit(&format!("w{i}"), t0 + GRACE * 10));
        }
        assert!(m.sweep(t0 + GRACE * 20).is_empty());
    }

    #[test]
    fn a_stranger_is_tracked_for_the_grace_period_then_ignored() {
        let t0 = Instant::now();
        let mut m = Members::new(GRACE, 8);
        assert!(m.set_members(ids(&["a"]), [], t0).is_empty());
        assert!(m.admit("a", t0));
        assert!(m.admit("x", t0));
        assert!(m.admit("x", t0 + GRACE / 2));
        assert!(m.sweep(t0 + GRACE / 2).is_empty());
        assert_eq!(m.sweep(t0 + GRACE), vec!["x".to_owned()]);
        assert!(m.sweep(t0 + GRACE).is_empty(), "reported once");
        assert!(!m.admit("x", t0 + GRACE), "ignored after its grace");
        // Still publishing: the record stays, so it stays ignored.
        assert!(!m.admit("x", t0 + GRACE * 3 / 2));
        m.sweep(t0 + GRACE * 2);
        assert!(!m.admit("x", t0 + GRACE * 2));
        // Listed by discovery: a member from now on.
        assert!(m.set_members(ids(&["a", "x"]), [], t0).is_empty());
        assert!(m.admit("x", t0 + GRACE * 3));
        assert_eq!(m.strangers(), 0);
    }

    #[test]
    fn strangers_are_capped_and_silent_ones_free_their_place() {
        let t0 = Instant::now();
        let mut m = Members::new(GRACE, 2);
        m.set_members(ids(&["a"]), [], t0);
        assert!(m.admit("x", t0) && m.admit("y", t0));
        assert!(!m.admit("z", t0), "over the cap: ignored at once");
        assert!(m.admit("a", t0), "members are never capped");
        assert_eq!(m.strangers(), 2);
        assert_eq!(m.sweep(t0 + GRACE).len(), 2);
        assert!(
            !m.admit("x", t0 + GRACE),
            "silent since t0, still remembered"
        );
        assert!(m.sweep(t0 + GRACE * 3 / 2).is_empty());
        assert_eq!(m.strangers(), 2);
        // Silent for a further grace period: forgotten entirely, room for new ones.
        assert!(m.sweep(t0 + GRACE * 2).is_empty());
        assert_eq!(m.strangers(), 0);
        assert!(m.admit("z", t0 + GRACE * 2));
    }

    #[test]
    fn members_that_leave_are_forgotten_and_early_state_counts_as_a_strangers() {
        let t0 = Instant::now();
        let mut m = Members::new(GRACE, 1);
        // Before the first call everything was admitted; two ids hold state.
        let forget = m.set_members(ids(&["a", "b"]), ["a".into(), "p".into(), "q".into()], t0);
        assert_eq!(
            forget,
            vec!["q".to_owned()],
            "p takes the one stranger place"
        );
        assert_eq!(m.sweep(t0 + GRACE), vec!["p".to_owned()]);
        let forget = m.set_members(ids(&["a"]), [], t0 + GRACE);
        assert_eq!(forget, vec!["b".to_owned()]);
    }

    #[test]
    fn a_member_that_left_gets_no_new_grace() {
        let t0 = Instant::now();
        let mut m = Members::new(GRACE, 4);
        m.set_members(ids(&["a", "b"]), [], t0);
        assert_eq!(m.set_members(ids(&["a"]), [], t0), vec!["b".to_owned()]);
        assert!(!m.admit("b", t0 + Duration::from_secs(1)));
        assert!(m.sweep(t0 + GRACE).is_empty(), "already forgotten");
        m.set_members(ids(&["a", "b"]), [], t0 + GRACE);
        assert!(m.admit("b", t0 + GRACE), "back in discovery");
    }
}
