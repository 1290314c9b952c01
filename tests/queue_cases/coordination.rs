//! Conformance of what a single-leader task needs from the store: a lease on a name, a saved
//! view that only the lease's holder can overwrite, and slots of the shared rate limit.

use std::time::Duration;

use puhuri_gateway::queue::{DeliveryLimits, JobStore};

pub async fn coordination(store: &dyn JobStore) {
    let ttl = Duration::from_secs(5);
    assert!(store.lead("watcher", "a", ttl).await.unwrap());
    assert!(store.lead("watcher", "a", ttl).await.unwrap(), "renewed");
    // Redis: another holder is refused while the lease runs; the embedded store belongs to one
    // process, whose caller always leads.
    let b_leads = store.lead("watcher", "b", ttl).await.unwrap();

    assert_eq!(store.state("view").await.unwrap(), None);
    assert!(
        store
            .save_state("watcher", "a", "view", "v1")
            .await
            .unwrap()
    );
    assert_eq!(store.state("view").await.unwrap().as_deref(), Some("v1"));
    if !b_leads {
        assert!(
            !store
                .save_state("watcher", "b", "view", "v2")
                .await
                .unwrap(),
            "only the holder saves"
        );
        assert_eq!(store.state("view").await.unwrap().as_deref(), Some("v1"));
        // an expired lease is free for the next holder
        assert!(
            store
                .lead("short", "c", Duration::from_millis(50))
                .await
                .unwrap()
        );
        assert!(!store.lead("short", "d", ttl).await.unwrap());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(store.lead("short", "d", ttl).await.unwrap());
    }

    let limits = |rate| DeliveryLimits {
        max_in_flight: 0,
        max_per_second: rate,
        jitter_allowance_us: 0,
    };
    assert_eq!(
        store.take_rate_slot(limits(0)).await.unwrap(),
        None,
        "no limit"
    );
    assert_eq!(store.take_rate_slot(limits(2)).await.unwrap(), None);
    let wait = store.take_rate_slot(limits(2)).await.unwrap();
    assert!(
        wait.is_some_and(|w| w > Duration::ZERO && w <= Duration::from_millis(500)),
        "{wait:?}"
    );
}
