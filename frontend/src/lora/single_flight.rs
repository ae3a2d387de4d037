//! One adapter load per (instance, adapter) at a time: concurrent requests that need the
//! same load wait for the one in flight and share its outcome.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;

type Key = (u32, String);
type Flight = Arc<OnceCell<Result<(), String>>>;

#[derive(Debug, Default)]
pub struct SingleFlight {
    flights: Mutex<HashMap<Key, Flight>>,
}

impl SingleFlight {
    /// Runs `load` unless a load for `key` is in flight, in which case waits for that one.
    /// A finished flight is forgotten, so a later miss (after a failure or an unload) loads
    /// again. If the caller running the load goes away, a waiting caller takes it over.
    pub async fn run<F, Fut>(&self, key: Key, load: F) -> Result<(), String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let flight = Arc::clone(self.flights.lock().entry(key.clone()).or_default());
        let result = flight.get_or_init(load).await.clone();
        let mut flights = self.flights.lock();
        if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(&key);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_load_and_a_later_miss_loads_again() {
        let flights = Arc::new(SingleFlight::default());
        let loads = Arc::new(AtomicU32::new(0));
        let call = |fail: bool| {
            let (flights, loads) = (Arc::clone(&flights), Arc::clone(&loads));
            async move {
                flights
                    .run((1, "sql".into()), || async move {
                        loads.fetch_add(1, Relaxed);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if fail {
                            Err("no adapter".to_owned())
                        } else {
                            Ok(())
                        }
                    })
                    .await
            }
        };
        let results = futures_util::future::join_all((0..20).map(|_| call(true))).await;
        assert_eq!(loads.load(Relaxed), 1, "one load for 20 callers");
        assert!(results.iter().all(|r| r == &Err("no adapter".to_owned())));
        assert!(call(false).await.is_ok());
        assert_eq!(loads.load(Relaxed), 2, "a finished flight is not reused");
        // Another adapter, or another instance, is its own flight.
        let other = flights.run((2, "sql".into()), || async { Ok(()) });
        assert!(other.await.is_ok());
    }
}
