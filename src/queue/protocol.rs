//! The queue protocol, defined once: job state names, the Redis key layout, the idempotency key
//! and the delivery-rate spacing. Both stores and every Lua script take them from here.
//!
//! The Lua scripts never spell a state name or a key name themselves. They run behind a prelude
//! generated from this module ([`lua_prelude`]), committed as `redis/protocol.lua` so that tools
//! outside the gateway (the ingest benchmark loads the enqueue script into Redis itself) see the
//! same text; a unit test fails when the committed file and this module disagree, and another when
//! a script names a state or a key that is not defined here, spells one as a literal, or builds a
//! fixed key with a variable part (or a key family's without one).
//!
//! Redis runs a script's whole text on every call, prelude included, so the prelude builds
//! nothing: the names are plain locals (`STATE_queued`, `K_ready`, `K_job`) and a key is built
//! where a script uses it (`key(K_ready)`, `key(K_job, id)`). A table of keys and states, or a
//! function per key family, would cost every call (the enqueue script's most of all) more than
//! some of the commands it sends. A misspelt name is a global, and Redis refuses a script that
//! reads an undefined global, so it fails at run time instead of reading `nil`.
//!
//! The rate-limit rule ([`start_spacing_us`]) is computed in Rust and handed to the lease script as
//! arguments, so the embedded store and Redis space starts by the same formula.

use std::fmt::Write as _;

use super::JobState;

/// One Redis key family: its name in the prelude's `K` table (fixed keys) or key function, and the
/// segment that follows the prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyName {
    /// The name scripts use after `K_` (`key(K_ready)`, `key(K_job, id)`).
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
        lua: "job",
        segment: "job:",
    },
    KeyName {
        lua: "line",
        segment: "obj:",
    },
    KeyName {
        lua: "site",
        segment: "site:",
    },
    KeyName {
        lua: "delivered",
        segment: "delivered:",
    },
    KeyName {
        lua: "worker",
        segment: "worker:",
    },
    KeyName {
        lua: "newest",
        segment: "newest:",
    },
    // a single-leader task's lease, and its saved view (`JobStore::lead`, `save_state`)
    KeyName {
        lua: "leader",
        segment: "leader:",
    },
    KeyName {
        lua: "state",
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
         -- ARGV[1] is the key prefix. Plain locals, since Redis runs this on every call: a key is\n\
         -- built where it is used, key(K_ready) or key(K_job, id). A misspelt name is a global,\n\
         -- which Redis refuses.\n\
         local P = ARGV[1]\n",
    );
    for state in JobState::ALL {
        let _ = writeln!(s, "local STATE_{0} = '{0}'", state.as_str());
    }
    for k in FIXED_KEYS.iter().chain(&KEY_FAMILIES) {
        let _ = writeln!(s, "local K_{} = '{}'", k.lua, k.segment);
    }
    s.push_str(
        "-- The key of a fixed key's segment, or of a key family's segment and its variable part.\n\
         local function key(segment, x)\n  \
           if x then\n    \
             return P .. segment .. x\n  \
           end\n  \
           return P .. segment\n\
         end\n",
    );
    let _ = writeln!(
        s,
        "local function idem_key(site, k)\n  return P .. '{IDEM_SEGMENT}' .. #site .. ':' .. site .. ':' .. k\nend"
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

    /// Names following `marker` (`STATE_` or `K_`) in a script.
    fn references<'a>(script: &'a str, marker: &str) -> Vec<&'a str> {
        script
            .match_indices(marker)
            .filter(|(at, _)| {
                // `K_` must not be the end of another identifier
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
            for r in references(script, "STATE_") {
                assert!(states.contains(&r), "{name} names an unknown state `{r}`");
            }
            for r in references(script, "K_") {
                assert!(
                    FIXED_KEYS.iter().chain(&KEY_FAMILIES).any(|k| k.lua == r),
                    "{name} names an unknown key `{r}`"
                );
            }
        }
    }

    #[test]
    fn scripts_build_fixed_keys_alone_and_family_keys_with_their_part() {
        for (name, script) in SCRIPTS {
            for (at, _) in script.match_indices("key(K_") {
                let rest = &script[at + "key(K_".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let (key, after) = rest.split_at(end);
                if FIXED_KEYS.iter().any(|k| k.lua == key) {
                    assert!(after.starts_with(')'), "{name}: key(K_{key}) takes no part");
                } else {
                    assert!(
                        KEY_FAMILIES.iter().any(|k| k.lua == key),
                        "{name} names an unknown key `{key}`"
                    );
                    assert!(
                        after.starts_with(", "),
                        "{name}: key(K_{key}, ...) needs its part"
                    );
                }
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
            assert!(prelude.contains(&format!("\nlocal STATE_{0} = '{0}'\n", state.as_str())));
        }
        for k in FIXED_KEYS.iter().chain(&KEY_FAMILIES) {
            let line = format!("\nlocal K_{} = '{}'\n", k.lua, k.segment);
            assert!(prelude.contains(&line), "{}", k.lua);
        }
    }

    /// Redis runs the prelude on every call: it builds no table and no string (see the module
    /// doc). Its only concatenations are inside the key functions.
    #[test]
    fn prelude_builds_nothing_per_call() {
        let prelude = lua_prelude();
        let outside_functions: String = prelude
            .split("\nlocal function ")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("--"))
            .collect();
        assert!(!outside_functions.contains('{'), "{outside_functions}");
        assert!(!outside_functions.contains(".."), "{outside_functions}");
        assert!(!prelude.contains("setmetatable"));
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
