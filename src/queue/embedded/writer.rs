//! The writer thread of the embedded store: group commit of state changes.

use super::index::Index;
use super::{DELIVERED, DELIVERED_AT, Inner, JOBS, PROBE, STATE, Tx, now_ms, storage};
use crate::queue::{StoreError, StoreResult};

/// The most changes one group transaction takes.
pub(super) const MAX_GROUP: usize = 1024;

/// One state change, type-erased: it runs against the index and the open transaction and says
/// how to answer its caller once the transaction's fate is known.
pub(super) type PendingWrite = Box<dyn FnOnce(&mut Index, &mut Tx<'_>, i64) -> Applied + Send>;

/// What a state change did inside a group transaction.
pub(super) enum Applied {
    /// It wrote: answer after the commit, with the commit's outcome.
    Wrote(Box<dyn FnOnce(StoreResult<()>) + Send>),
    /// It wrote nothing (a refusal or a no-op): answer whatever happens to the transaction.
    Untouched(Box<dyn FnOnce() + Send>),
    /// It failed part way (storage error): the transaction and the index can no longer be trusted.
    Broken(Box<dyn FnOnce() + Send>),
}

impl Inner {
    /// Runs a group of changes in one write transaction and commits once. Returns the answers
    /// to give, which the writer gives only after letting go of the store (see [`write_loop`]).
    pub(super) fn commit(&self, batch: Vec<PendingWrite>) -> Vec<Answer> {
        let mut idx = self.index.lock();
        if let Err(e) = self.reopen_if_closed(&mut idx) {
            *self.failing.lock() = Some(e.to_string());
            // Dropping an unrun change drops its answer channel: its caller gets an
            // `Unavailable` error and nothing was changed.
            drop(batch);
            return Vec::new();
        }
        let db_slot = self.db.read();
        let Some(db) = db_slot.as_ref() else {
            drop(batch);
            return Vec::new();
        };
        let txn = match db.begin_write() {
            Ok(t) => t,
            Err(e) => {
                drop(db_slot);
                self.failed(format!("cannot begin a transaction: {e}"));
                drop(batch);
                return Vec::new();
            }
        };
        let mut wrote = Vec::new();
        let mut answers: Vec<Answer> = Vec::new();
        let mut broken = false;
        let opened = (|| -> StoreResult<()> {
            let mut tx = Tx {
                jobs: txn.open_table(JOBS).map_err(storage)?,
                delivered: txn.open_table(DELIVERED).map_err(storage)?,
                delivered_at: txn.open_table(DELIVERED_AT).map_err(storage)?,
                probe: txn.open_table(PROBE).map_err(storage)?,
                state: txn.open_table(STATE).map_err(storage)?,
            };
            for change in batch {
                match change(&mut idx, &mut tx, now_ms()) {
                    Applied::Wrote(answer) => wrote.push(answer),
                    Applied::Untouched(answer) => answers.push(answer),
                    Applied::Broken(answer) => {
                        broken = true;
                        answers.push(answer);
                    }
                }
            }
            Ok(())
        })();
        // A failed commit may still have reached the disk (redb's last step is writing and
        // syncing the commit slot): its changes' outcome is unknown, not "nothing stored".
        let mut commit_failed = false;
        let committed = match opened {
            Err(e) => Err(e.to_string()),
            Ok(()) if broken => Err("a change failed part way".to_string()),
            Ok(()) if wrote.is_empty() => txn.abort().map_err(|e| e.to_string()),
            Ok(()) => txn.commit().map_err(|e| {
                commit_failed = true;
                format!("commit failed: {e}")
            }),
        };
        match &committed {
            Ok(()) if !wrote.is_empty() => *self.failing.lock() = None,
            Ok(()) => {}
            Err(why) => {
                // The index may hold changes the file does not, and after an I/O error redb
                // refuses every later operation: close the database; the next write reopens it
                // and rebuilds the index from the file.
                drop(db_slot);
                self.failed(why.clone());
                if let Err(e) = self.reopen_if_closed(&mut idx) {
                    *self.failing.lock() = Some(format!("{why}; reopening: {e}"));
                }
            }
        }
        for answer in wrote {
            let outcome = committed.clone().map_err(|why| {
                if commit_failed {
                    StoreError::OutcomeUnknown(format!("embedded store: {why}"))
                } else {
                    storage(why)
                }
            });
            answers.push(Box::new(move || answer(outcome)));
        }
        answers
    }
}

/// A caller's answer, ready to be sent.
pub(super) type Answer = Box<dyn FnOnce() + Send>;

/// The writer thread: takes the first waiting change, everything else already waiting (up to
/// [`MAX_GROUP`]), and commits them together. It ends when the store is dropped (the channel
/// closes), holding the store only while it commits so the file is released on drop.
pub(super) fn write_loop(
    store: std::sync::Weak<Inner>,
    changes: std::sync::mpsc::Receiver<PendingWrite>,
) {
    while let Ok(first) = changes.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match changes.try_recv() {
                Ok(change) => batch.push(change),
                Err(_) => break,
            }
        }
        let Some(inner) = store.upgrade() else {
            return;
        };
        let answers = inner.commit(batch);
        // Let go of the store before answering: a caller that drops the store after its answer
        // must find the file released.
        drop(inner);
        for answer in answers {
            answer();
        }
    }
}
