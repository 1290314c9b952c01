//! The Lua scripts, each run behind the protocol prelude generated from
//! [`protocol`](crate::queue::protocol) (committed as `protocol.lua`) and the shared helpers of
//! `common.lua`.
//!
//! Redis runs a script's top level on every call, so each script carries only the part of the
//! prelude and helpers it uses ([`assemble`]): a `local` it never names is neither defined nor,
//! for a helper, made into a closure on each call. What a script uses is read from its text.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use redis::Script;

const PROTOCOL: &str = include_str!("protocol.lua");
const COMMON: &str = include_str!("common.lua");

fn script(body: &str) -> Script {
    Script::new(&assemble(body))
}

/// One top-level definition of the prelude or the helpers: a `local` statement at the start of
/// a line (with what follows it up to the next one, a function's body or a `do` block) and the
/// comment lines before it. `names` are the locals it defines; a part without any (the header
/// comments) is always kept.
struct Definition<'a> {
    names: Vec<&'a str>,
    lines: Vec<&'a str>,
}

/// The definitions of `text`, in order.
fn definitions(text: &str) -> Vec<Definition<'_>> {
    let mut out: Vec<Definition> = vec![Definition {
        names: vec![],
        lines: vec![],
    }];
    let mut comments: Vec<&str> = vec![];
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("local ") {
            let names = match rest.strip_prefix("function ") {
                Some(f) => vec![f.split('(').next().unwrap_or("").trim()],
                None => (rest.split('=').next().unwrap_or("").split(','))
                    .map(str::trim)
                    .collect(),
            };
            let mut lines = std::mem::take(&mut comments);
            lines.push(line);
            out.push(Definition { names, lines });
        } else if line.starts_with("--") || line.trim().is_empty() {
            comments.push(line);
        } else {
            let last = out.last_mut().expect("starts with the header part");
            last.lines.append(&mut comments);
            last.lines.push(line);
        }
    }
    out
}

/// The names `text` may refer to: every identifier-like word outside its comments (from `--`
/// to the end of a line; the scripts hold no `--` inside a string).
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|line| line.split("--").next().unwrap_or(""))
        .flat_map(|code| code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|w| !w.is_empty())
}

/// `body` behind the definitions of the prelude and helpers it uses, directly or through another
/// definition it uses. A definition only uses ones before it (Lua's locals), so one pass from the
/// last to the first finds them all.
fn assemble(body: &str) -> String {
    let all = format!("{PROTOCOL}\n{COMMON}");
    let defs = definitions(&all);
    let mut used: BTreeSet<&str> = words(body).collect();
    let mut keep = vec![false; defs.len()];
    for (i, def) in defs.iter().enumerate().rev() {
        if def.names.is_empty() || def.names.iter().any(|n| used.contains(n)) {
            keep[i] = true;
            for line in &def.lines {
                used.extend(words(line));
            }
        }
    }
    let mut out = String::new();
    for def in defs.iter().zip(keep).filter(|(_, k)| *k).map(|(d, _)| d) {
        for line in &def.lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(body);
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The locals `text` defines at its top level.
    fn defined(text: &str) -> BTreeSet<String> {
        definitions(text)
            .iter()
            .flat_map(|d| d.names.iter().map(|n| n.to_string()))
            .collect()
    }

    #[test]
    fn a_script_carries_the_definitions_it_uses_and_no_other() {
        let prelude = defined(&format!("{PROTOCOL}\n{COMMON}"));
        let enqueue = assemble(include_str!("enqueue.lua"));
        let kept = defined(&enqueue);
        // everything enqueue.lua names from the prelude is defined, and the helpers those use
        for name in words(include_str!("enqueue.lua")).filter(|w| prelude.contains(*w)) {
            assert!(kept.contains(name), "{name} is used but not defined");
        }
        for name in [
            "key",
            "P",
            "NOW",
            "ms",
            "promote_head",
            "is_pending",
            "K_job",
        ] {
            assert!(kept.contains(name), "{name}");
        }
        // and what it never uses is left out
        for name in [
            "note_newest",
            "leave_line",
            "set_state",
            "K_leader",
            "STATE_dead",
        ] {
            assert!(!kept.contains(name), "{name} is carried but unused");
        }
        assert!(enqueue.ends_with(include_str!("enqueue.lua")));
        // no script holds `--` inside a string, which `words` would take for a comment
        for (name, text) in [
            ("common.lua", COMMON),
            ("enqueue.lua", include_str!("enqueue.lua")),
            ("lease.lua", include_str!("lease.lua")),
            ("complete.lua", include_str!("complete.lua")),
            ("reclaim.lua", include_str!("reclaim.lua")),
            ("retry.lua", include_str!("retry.lua")),
            ("cancel.lua", include_str!("cancel.lua")),
            ("purge.lua", include_str!("purge.lua")),
            ("list.lua", include_str!("list.lua")),
            ("heartbeat.lua", include_str!("heartbeat.lua")),
            ("release.lua", include_str!("release.lua")),
            ("lead.lua", include_str!("lead.lua")),
            ("save_state.lua", include_str!("save_state.lua")),
            ("rate_slot.lua", include_str!("rate_slot.lua")),
        ] {
            for line in text.lines() {
                let code = line.split("--").next().unwrap_or("");
                let quotes = code.matches(['\'', '"']).count();
                assert!(quotes % 2 == 0, "{name}: a string holds `--`: {line}");
            }
        }
        // a function's body and the clock's `do` block come whole
        assert!(enqueue.contains("local NOW, NOW_US\ndo\n"), "{enqueue}");
        assert_eq!(
            enqueue.matches("local function promote_head").count(),
            1,
            "{enqueue}"
        );
    }
}
