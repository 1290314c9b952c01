//! The queue protocol, defined once: job state names, the Redis key layout, the idempotency key
//! and the delivery-rate spacing. Both stores and every Lua script take them from here.
//!
//! The Lua scripts never spell a state name or a key name themselves. They run behind a prelude
//! generated from this module ([`lua_prelude`]), committed as `redis/protocol.lua` so that tools
//! outside the gateway (the ingest benchmark loads the enqueue script into Redis itself) see the
//! same text; a unit test fails when the committed file and this module disagree, and another when
//! a script names a state or a key that is not defined here or spells one as a literal. The
//! prelude's tables raise an error on an unknown name, so a misspelt reference fails the script at
//! run time instead of reading `nil`.
//!
//! The rate-limit rule ([`start_spacing_us`]) is computed in Rust and handed to the lease script as
//! arguments, so the embedded store and Redis space starts by the same formula.

use std::fmt::Write as _;

use super::JobState;

/// One Redis key family: its name in the prelude's `K` table (fixed keys) or key function, and the
/// segment that follows the prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyName {
    /// The name scripts use (`K.ready`, `job_key(id)`).
    pub lua: &'static str,
    /// The key text after the prefix (fixed keys) or before the variable part (key families).
    pub segment: &'static str,
}

/// Keys without a variable part (see the table in the Redis backend's module doc).
pub const FIXED_KEYS: [KeyName; 8] = [
    KeyName {
        lua: "ready",
        segment: "ready",
    },
    KeyName {
        lua: "leases",
        segment: "leases",
    },
    KeyName {
        lua: "finished",
        segment: "finished",
    },
    KeyName {
        lua: "sites",
        segment: "sites",
    },
    KeyName {
        lua: "counts",
        segment: "counts",
    },
    KeyName {
        lua: "rate_next",
        segment: "rate:next",
    },
    // the layout before `finished` and `sites` existed; purge moves them over
    KeyName {
        lua: "legacy_terminal",
        segment: "terminal",
    },
    KeyName {
        lua: "legacy_all",
        segment: "all",
    },
];

/// Key families: a segment followed by one variable part.
pub const KEY_FAMILIES: [KeyName; 8] = [
    KeyName {
        lua: "job_key",
        segment: "job:",
    },
    KeyName {
        lua: "line_key",
        segment: "obj:",
    },
    KeyName {
        lua: "site_key",
        segment: "site:",
    },
    KeyName {
        lua: "delivered_key",
        segment: "delivered:",
    },
    KeyName {
        lua: "worker_key",
        segment: "worker:",
    },
    KeyName {
        lua: "newest_key",
        segment: "newest:",
    },
    // a single-leader task's lease, and its saved view (`JobStore::lead`, `save_state`)
    KeyName {
        lua: "leader_key",
        segment: "leader:",
    },
    KeyName {
        lua: "state_key",
        segment: "state:",
    },
];

/// The idempotency key family: `idem:<length of site>:<site>:<key>` (the length keeps a site id
/// that contains `:` from meeting another site's key).
pub const IDEM_SEGMENT: &str = "idem:";

/// The key of a job record.
pub fn job_key(prefix: &str, id: &str) -> String {
    format!("{prefix}{}{id}", KEY_FAMILIES[0].segment)
}

/// The key of a coalesce key's delivered map.
pub fn delivered_key(prefix: &str, coalesce_key: &str) -> String {
    format!("{prefix}{}{coalesce_key}", KEY_FAMILIES[3].segment)
}

/// The key of a saved state (`JobStore::state`).
pub fn state_key(prefix: &str, key: &str) -> String {
    format!("{prefix}{}{key}", KEY_FAMILIES[7].segment)
}

/// The key of the per-state counts hash.
pub fn counts_key(prefix: &str) -> String {
    format!("{prefix}{}", FIXED_KEYS[4].segment)
}

/// The key that remembers a site's idempotency key.
pub fn idempotency_key(prefix: &str, site: &str, key: &str) -> String {
    format!("{prefix}{IDEM_SEGMENT}{}:{site}:{key}", site.len())
}

/// Whether `rest` (a Redis key with the prefix removed) is a key of this layout.
pub fn is_layout_key(rest: &str) -> bool {
    FIXED_KEYS.iter().any(|k| k.segment == rest)
        || KEY_FAMILIES
            .iter()
            .any(|k| rest.len() > k.segment.len() && rest.starts_with(k.segment))
        || rest.starts_with(IDEM_SEGMENT)
}

/// The share of each second the rate limiter leaves for the calls' arrival at Puhuri to jitter
/// (a start and its call's arrival are not the same instant), in microseconds per second.
pub const DEFAULT_JITTER_ALLOWANCE_US: u32 = 25_000;

/// The spacing in microseconds of delivery starts for `max_per_second = rate`, and whether a late
/// start keeps the grid. Below 20 per second, starts are `1/rate` apart and the grid restarts at
/// each start; from 20 on, a late start keeps the grid (a worker waking a millisecond after its
/// slot would otherwise lose that millisecond on every start) and the spacing is `1/(rate - 1)`,
/// since a start may fall anywhere in its slot. Both are stretched by `jitter_us` per second.
/// Starts spaced like this put at most `rate` starts in any one-second window.
pub fn start_spacing_us(rate: u32, jitter_us: u32) -> (i64, bool) {
    let keep_grid = rate >= 20;
    let per_second = if keep_grid { rate - 1 } else { rate }.max(1);
    let second = 1_000_000_u64 + u64::from(jitter_us);
    (second.div_ceil(u64::from(per_second)) as i64, keep_grid)
}

/// The Lua prelude of every script: the key prefix, the state names and the key layout, generated
/// from this module. `redis/protocol.lua` holds a copy (see the module doc).
pub fn lua_prelude() -> String {
    let mut s = String::from(
        "-- Generated from src/queue/protocol.rs (lua_prelude): do not edit by hand.\n\
         -- ARGV[1] is the key prefix. STATE and K raise an error on a name they do not define.\n\
         local P = ARGV[1]\n\
         local function strict(t, what)\n  \
           return setmetatable(t, { __index = function(_, k) error('unknown ' .. what .. ' ' .. tostring(k)) end })\n\
         end\n\
         local STATE = strict({\n",
    );
    for state in JobState::ALL {
        let _ = writeln!(s, "  {0} = '{0}',", state.as_str());
    }
    s.push_str("}, 'job state')\nlocal K = strict({\n");
    for k in FIXED_KEYS {
        let _ = writeln!(s, "  {} = P .. '{}',", k.lua, k.segment);
    }
    s.push_str("}, 'key')\n");
    for k in KEY_FAMILIES {
        let _ = writeln!(
            s,
            "local function {}(x)\n  return P .. '{}' .. x\nend",
            k.lua, k.segment
        );
    }
    let _ = writeln!(
        s,
        "local function idem_key(site, key)\n  return P .. '{IDEM_SEGMENT}' .. #site .. ':' .. site .. ':' .. key\nend"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRELUDE: &str = include_str!("redis/protocol.lua");
    const SCRIPTS: [(&str, &str); 14] = [
        ("common.lua", include_str!("redis/common.lua")),
        ("enqueue.lua", include_str!("redis/enqueue.lua")),
        ("lease.lua", include_str!("redis/lease.lua")),
        ("heartbeat.lua", include_str!("redis/heartbeat.lua")),
        ("complete.lua", include_str!("redis/complete.lua")),
        ("release.lua", include_str!("redis/release.lua")),
        ("reclaim.lua", include_str!("redis/reclaim.lua")),
        ("retry.lua", include_str!("redis/retry.lua")),
        ("cancel.lua", include_str!("redis/cancel.lua")),
        ("purge.lua", include_str!("redis/purge.lua")),
        ("list.lua", include_str!("redis/list.lua")),
        ("lead.lua", include_str!("redis/lead.lua")),
        ("save_state.lua", include_str!("redis/save_state.lua")),
        ("rate_slot.lua", include_str!("redis/rate_slot.lua")),
    ];

    #[test]
    fn committed_prelude_is_the_generated_one() {
        let generated = lua_prelude();
        if generated != PRELUDE && std::env::var_os("PUHURI_GATEWAY_BLESS").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/queue/redis/protocol.lua");
            std::fs::write(path, &generated).expect("write protocol.lua");
            return;
        }
        assert_eq!(
            generated, PRELUDE,
            "src/queue/redis/protocol.lua differs from lua_prelude(); \
             regenerate it: PUHURI_GATEWAY_BLESS=1 cargo test --lib protocol"
        );
    }

    /// Names following `marker` (`STATE.` or `K.`) in a script.
    fn references<'a>(script: &'a str, marker: &str) -> Vec<&'a str> {
        script
            .match_indices(marker)
            .filter(|(at, _)| {
                // `K.` must not be the end of another identifier
                *at == 0
                    || !script.as_bytes()[at - 1].is_ascii_alphanumeric()
                        && script.as_bytes()[at - 1] != b'_'
            })
            .map(|(at, _)| {
                let rest = &script[at + marker.len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect()
    }

    /// The single-quoted string literals of a script (comments left out).
    fn literals(script: &str) -> Vec<String> {
        let mut out = Vec::new();
        for line in script.lines() {
            let code = line.split("--").next().unwrap_or("");
            let mut parts = code.split('\'');
            parts.next();
            while let Some(lit) = parts.next() {
                out.push(lit.to_owned());
                parts.next();
            }
        }
        out
    }

    #[test]
    fn scripts_name_only_states_and_keys_the_protocol_defines() {
        let states: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
        for (name, script) in SCRIPTS {
            for r in references(script, "STATE.") {
                assert!(states.contains(&r), "{name} names an unknown state `{r}`");
            }
            for r in references(script, "K.") {
                assert!(
                    FIXED_KEYS.iter().any(|k| k.lua == r),
                    "{name} names an unknown key `{r}`"
                );
            }
        }
    }

    #[test]
    fn scripts_spell_no_state_or_key_themselves() {
        let mut forbidden: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
        forbidden.extend(FIXED_KEYS.iter().map(|k| k.segment));
        forbidden.extend(KEY_FAMILIES.iter().map(|k| k.segment));
        forbidden.push(IDEM_SEGMENT);
        for (name, script) in SCRIPTS {
            for lit in literals(script) {
                assert!(
                    !forbidden.contains(&lit.as_str()),
                    "{name} spells '{lit}' itself; take it from the protocol prelude"
                );
            }
            assert!(
                !script.contains("ARGV[1]"),
                "{name} reads the prefix itself; the prelude holds it as P"
            );
        }
    }

    #[test]
    fn prelude_defines_every_state_and_key() {
        let prelude = lua_prelude();
        for state in JobState::ALL {
            assert!(prelude.contains(&format!("  {0} = '{0}',", state.as_str())));
        }
        for k in FIXED_KEYS.iter().chain(&KEY_FAMILIES) {
            assert!(prelude.contains(k.lua), "{}", k.lua);
        }
    }

    #[test]
    fn keys_built_in_rust_are_layout_keys() {
        assert_eq!(idempotency_key("p:", "a:b", "k"), "p:idem:3:a:b:k");
        for key in [
            job_key("p:", "1"),
            delivered_key("p:", "usage:r:2026-11"),
            counts_key("p:"),
            idempotency_key("p:", "s", "k"),
        ] {
            assert!(is_layout_key(key.strip_prefix("p:").unwrap()), "{key}");
        }
        assert!(!is_layout_key("job:"));
        assert!(!is_layout_key("other"));
    }

    #[test]
    fn spacing_puts_at_most_the_rate_in_a_second() {
        for rate in [1, 2, 19, 20, 50, 300, 1000] {
            let (spacing, keep_grid) = start_spacing_us(rate, DEFAULT_JITTER_ALLOWANCE_US);
            let slots = if keep_grid { rate - 1 } else { rate };
            assert!(i64::from(slots) * spacing >= 1_000_000, "{rate}");
        }
        assert_eq!(start_spacing_us(50, 10_000), (20_613, true));
        assert_eq!(start_spacing_us(10, 10_000), (101_000, false));
        assert_eq!(start_spacing_us(20, 200_000), (63_158, true));
    }
}
