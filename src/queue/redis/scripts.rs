//! The Lua scripts, each run behind the protocol prelude generated from
//! [`protocol`](crate::queue::protocol) (committed as `protocol.lua`) and the shared helpers of
//! `common.lua`.

use std::sync::LazyLock;

use redis::Script;

const PROTOCOL: &str = include_str!("protocol.lua");
const COMMON: &str = include_str!("common.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{PROTOCOL}\n{COMMON}\n{body}"))
}

pub(super) static ENQUEUE: LazyLock<Script> = LazyLock::new(|| script(include_str!("enqueue.lua")));
pub(super) static LEASE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lease.lua")));
pub(super) static HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("heartbeat.lua")));
pub(super) static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("complete.lua")));
pub(super) static RELEASE: LazyLock<Script> = LazyLock::new(|| script(include_str!("release.lua")));
pub(super) static RECLAIM: LazyLock<Script> = LazyLock::new(|| script(include_str!("reclaim.lua")));
pub(super) static RETRY: LazyLock<Script> = LazyLock::new(|| script(include_str!("retry.lua")));
pub(super) static CANCEL: LazyLock<Script> = LazyLock::new(|| script(include_str!("cancel.lua")));
pub(super) static PURGE: LazyLock<Script> = LazyLock::new(|| script(include_str!("purge.lua")));
pub(super) static LIST: LazyLock<Script> = LazyLock::new(|| script(include_str!("list.lua")));
pub(super) static LEAD: LazyLock<Script> = LazyLock::new(|| script(include_str!("lead.lua")));
pub(super) static SAVE_STATE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("save_state.lua")));
pub(super) static RATE_SLOT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("rate_slot.lua")));
