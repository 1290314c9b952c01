//! puhuri-gateway: a site's gateway to Puhuri Core (Waldur MasterMind).
//!
//! Site systems call a small local REST API (`api`), authenticated per site with a JWT (`auth`);
//! writes become durable jobs (`queue`) that workers (`worker`) deliver upstream (`upstream`) with
//! the Puhuri identity the site is bound to: the service provider's token for a provider's sites,
//! an allocator's own token for an allocator's sites (`config::sites`). `sim` is a faithful stand-in for Puhuri Core used by the tests and
//! the zero-configuration sandbox.
//!
//! # Which module may use which
//!
//! Dependencies between the top-level modules point one way, downwards: a module uses only
//! modules on a lower layer, so there is no cycle to untangle when one of them changes. The
//! `layering` test below reads `src/` and fails on a use that points up or sideways.
//!
//! | layer | modules | what they are |
//! | --- | --- | --- |
//! | 7 | `startup`, `admin` | wiring a running gateway; offline store commands |
//! | 6 | `api`, `sandbox`, `watcher` | the HTTP surface; sandbox-mode wiring; the leader's polls of Puhuri |
//! | 5 | `events` | events for the sites: their endpoints' delivery lanes |
//! | 4 | `auth`, `worker` | site tokens; delivery |
//! | 3 | `telemetry` | logs and metrics, recorded where the work happens |
//! | 2 | `queue` | the job store |
//! | 1 | `error`, `config`, `upstream`, `sim` | API errors; configuration; the Waldur client; the simulator |
//! | 0 | `domain`, `tls` | validated values, operations, scopes, the retry policy; the listener's certificates |
//!
//! - `domain` is the floor: it imports no other module of the crate.
//! - `config` knows the file and the environment, and parses key material once at load; `auth`
//!   builds its registry from it and is never called back.
//! - `error` is the API's error vocabulary (problem documents, and why a token was refused);
//!   `auth` answers with it, `api` handlers return it.
//! - `auth` finds the site registry in the app data by its own type, so it does not know the
//!   API's `AppState`.
//! - `upstream` is the one place that knows Waldur's API. `sim` (behind the default-on cargo
//!   feature `sim`) uses nothing of the gateway and runs alone (`puhuri-gateway sim`); the gateway
//!   reaches it only through `sandbox`, which says why a feature and not a workspace crate.

pub mod admin;
pub mod api;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod queue;
pub mod sandbox;
#[cfg(feature = "sim")]
pub mod sim;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod watcher;
pub mod worker;

#[cfg(test)]
mod layering {
    //! The module table in the crate's doc, checked against the source.

    use std::path::Path;

    /// Layer of each top-level module; `main.rs` and `lib.rs` sit above them all.
    const LAYERS: &[(&str, u8)] = &[
        ("startup", 7),
        ("admin", 7),
        ("api", 6),
        ("sandbox", 6),
        ("watcher", 6),
        ("events", 5),
        ("auth", 4),
        ("worker", 4),
        ("telemetry", 3),
        ("queue", 2),
        ("error", 1),
        ("config", 1),
        ("upstream", 1),
        ("sim", 1),
        ("domain", 0),
        ("tls", 0),
    ];

    fn layer(module: &str) -> Option<u8> {
        LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
    }

    fn sources(path: &Path, out: &mut Vec<std::path::PathBuf>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).expect("src/ is readable") {
                sources(&entry.expect("a directory entry").path(), out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.to_path_buf());
        }
    }

    /// The top-level modules a file names as `crate::<module>`.
    fn uses(text: &str) -> Vec<&str> {
        text.match_indices("crate::")
            .map(|(i, m)| {
                let rest = &text[i + m.len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect()
    }

    #[test]
    fn every_module_uses_only_lower_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut unknown = Vec::new();
        let mut upward = Vec::new();
        for entry in std::fs::read_dir(&src).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            if name == "main" || name == "lib" {
                continue;
            }
            let Some(own) = layer(name) else {
                unknown.push(name.to_string());
                continue;
            };
            let mut files = Vec::new();
            sources(&path, &mut files);
            for file in files {
                let text = std::fs::read_to_string(&file).expect("a source file is readable");
                for used in uses(&text) {
                    match layer(used) {
                        Some(l) if used != name && l >= own => upward.push(format!(
                            "{} (layer {own}) uses crate::{used} (layer {l})",
                            file.strip_prefix(&src).unwrap_or(&file).display()
                        )),
                        _ => {}
                    }
                }
            }
        }
        assert!(
            unknown.is_empty(),
            "modules missing from LAYERS: {unknown:?}"
        );
        assert!(
            upward.is_empty(),
            "uses that do not point down:\n{}",
            upward.join("\n")
        );
    }

    #[test]
    fn the_check_sees_a_use() {
        assert_eq!(
            uses("use crate::domain::Month; crate::queue::X"),
            ["domain", "queue"]
        );
    }
}
