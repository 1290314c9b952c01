//! Upstream identities: several Puhuri tokens, each site bound to exactly one, allocator sites
//! bound to customers and/or projects, and each kind of site limited to its own scopes.

use puhuri_gateway::domain::Scope;

use crate::helpers::*;

const CUSTOMER: &str = "c0000000000040008000000000000005";
const PROJECT: &str = "b0000000000040008000000000000006";

/// The base configuration plus an `alloc` identity whose token is in a file, and `site`.
fn with_allocator(
    dir: &std::path::Path,
    site: &str,
) -> Result<puhuri_gateway::config::Config, String> {
    let token = dir.join("alloc.token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef01234567\n").unwrap();
    let toml = format!(
        "{}\n[upstream.identities.alloc]\ntoken_file = \"{}\"\n{site}",
        base_config_toml(dir),
        token.display()
    );
    load_config(&toml, dir)
}

fn allocator_site(extra: &str) -> String {
    format!(
        "[[sites]]\nid = \"portal\"\nidentity = \"alloc\"\nofferings = [\"{ALPHA_OFFERING}\"]\n{extra}\n\
         [[sites.keys]]\nkid = \"portal-hs\"\nalgorithm = \"HS256\"\nsecret_file = \"{}\"\n",
        fixture("hs256.secret").display()
    )
}

#[test]
fn an_allocator_site_is_bound_to_its_identity_customers_and_projects() {
    let dir = tempfile::tempdir().unwrap();
    let site = allocator_site(&format!(
        "customers = [\"{CUSTOMER}\"]\nprojects = [\"{PROJECT}\"]"
    ))
    .replace("portal-hs", "portal-key");
    let config = with_allocator(dir.path(), &site).unwrap();
    let portal = config.site("portal").unwrap();
    assert!(portal.is_allocator());
    assert_eq!(portal.identity, "alloc");
    assert!(portal.customers.contains(CUSTOMER));
    assert!(portal.projects.contains(PROJECT));
    // Default scopes: the allocator's, with its own events.
    assert_eq!(
        portal.scopes.iter().copied().collect::<Vec<_>>(),
        [
            Scope::AllocationsRead,
            Scope::AllocationsWrite,
            Scope::EventsRead
        ]
    );
    // Existing sites stay the service provider's, with the scopes they had.
    let alpha = config.site("alpha").unwrap();
    assert!(!alpha.is_allocator());
    assert_eq!(alpha.identity, "sp");
    assert_eq!(alpha.scopes.len(), Scope::ALL.len());
    // events:read too, by default: a site's own events are the site's to read.
    assert!(alpha.scopes.contains(&Scope::EventsRead));
    assert!(config.identities.contains_key("alloc"));
}

#[test]
fn a_site_cannot_name_an_identity_that_is_not_configured() {
    let dir = tempfile::tempdir().unwrap();
    let site = allocator_site(&format!("customers = [\"{CUSTOMER}\"]"))
        .replace("identity = \"alloc\"", "identity = \"nobody\"");
    let message = with_allocator(dir.path(), &site).unwrap_err();
    assert!(message.contains("sites[3].identity"), "{message}");
}

#[test]
fn an_allocator_site_needs_customers_or_projects() {
    let dir = tempfile::tempdir().unwrap();
    let message = with_allocator(dir.path(), &allocator_site("")).unwrap_err();
    assert!(message.contains("sites[3].customers"), "{message}");
}

#[test]
fn each_kind_of_site_holds_only_its_own_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let site = allocator_site(&format!(
        "customers = [\"{CUSTOMER}\"]\nscopes = [\"allocations:read\", \"usage:write\"]"
    ));
    let message = with_allocator(dir.path(), &site).unwrap_err();
    assert!(message.contains("sites[3].scopes"), "{message}");
    assert!(message.contains("usage:write"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let toml = base_config_toml(dir.path()).replacen(
        "scopes = [\"read\", \"users:write\"]",
        "scopes = [\"read\", \"allocations:write\"]",
        1,
    );
    let message = load_config(&toml, dir.path()).unwrap_err();
    assert!(message.contains("sites[2].scopes"), "{message}");
}

#[test]
fn the_service_providers_identity_name_is_reserved_and_tokens_are_required() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}\n[upstream.identities.sp]\ntoken = \"abc\"\n",
        base_config_toml(dir.path())
    );
    let message = load_config(&toml, dir.path()).unwrap_err();
    assert!(message.contains("upstream.identities.sp"), "{message}");

    let toml = format!(
        "{}\n[upstream.identities.alloc]\n",
        base_config_toml(dir.path())
    );
    let message = load_config(&toml, dir.path()).unwrap_err();
    assert!(message.contains("upstream.identities.alloc"), "{message}");
    assert!(
        !message.contains("0123456789"),
        "no secret in errors: {message}"
    );
}
