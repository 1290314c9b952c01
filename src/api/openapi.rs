//! The OpenAPI document, generated from the handlers' annotations. `openapi/openapi.json` in the
//! repository is this document; a test fails when they differ.
//!
//! [`ApiDoc`] holds what is not a route: the info, tags, the schemas only query parameters name,
//! and the bearer scheme. The paths are the routes [`super::routes`] registers, collected by the
//! same calls that route them ([`document`]); the modifiers that edit operations
//! ([`OptionalBodies`], [`AcceptedExamples`]) run on the collected paths.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

/// The document's parts that are not routes; [`document`] is the whole document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "puhuri-gateway",
        description = "A site's gateway to Puhuri Core. Writes are accepted at once (202), stored \
                       durably and delivered to Puhuri with retries; reads are forwarded, scoped to \
                       the calling site's offerings. Authenticate with `Authorization: Bearer <site JWT>` \
                       (`puhuri-gateway token issue` makes one). Errors are RFC 9457 problem documents \
                       with a stable `code`.\n\nEvery operation may also answer 400 for a request \
                       HTTP itself calls malformed (`malformed_request`: no Host, a duplicated \
                       header; `ambiguous_framing`) or a query parameter it does not document \
                       (`invalid_query`); a method a path does not document answers 405 with \
                       `Allow`, and `HEAD` is answered wherever `GET` is.",
    ),
    components(schemas(
        crate::error::Problem,
        crate::error::FieldError,
        // Referenced from query parameters, which utoipa does not collect by itself.
        super::names::OrderStateFilter,
        super::names::OrderType,
        super::names::ResourceState,
        super::names::OperationName,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "site", description = "Who am I"),
        (name = "usage", description = "Usage reports, delivered as Waldur's set_usage"),
        (name = "jobs", description = "Every accepted write is a job: see where it stands, retry or cancel it"),
        (name = "events", description = "Events sent to the site's endpoints (signed, Standard Webhooks): list them with their deliveries, replay them"),
        (name = "health", description = "Liveness and readiness"),
        (name = "orders", description = "Orders of the site's offerings: read them, approve, reject, mark done or erred"),
        (name = "resources", description = "Resources of the site's offerings (by uuid or `backend_id:<id>`): backend id, state, report, limits; reads of resources, teams, usage and offerings"),
        (name = "allocations", description = "An allocator's site: allocations ordered in the offerings it may order from, for the customers and projects it is bound to, followed until Puhuri has finished them"),
        (name = "users", description = "Usernames on the site's offerings; the provider's users, SSH keys, projects and roles, narrowed to the site"),
    )
)]
pub struct ApiDoc;

/// The whole document: [`ApiDoc`] with every route [`super::routes`] registers (collected from a
/// throwaway app, which is never served), then the modifiers that edit those operations.
pub fn document() -> utoipa::openapi::OpenApi {
    use utoipa_actix_web::AppExt;
    let (_, mut doc) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(super::routes)
        .split_for_parts();
    OptionalBodies.modify(&mut doc);
    AcceptedExamples.modify(&mut doc);
    doc
}

struct BearerAuth;

/// A 202 answers with the job just stored: its example is a `queued` job (the schema's own
/// example shows a finished one, which is what `GET /v1/jobs/{id}` and `Prefer: wait` give).
struct AcceptedExamples;

impl Modify for AcceptedExamples {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let queued = serde_json::json!({
            "job_id": "019a3c1e-7f0c-7cc1-9a35-2f1e7f6b0b1a",
            "state": "queued",
            "operation": "usage.report",
            "site": "lumi-accounting",
            "attempts": 0,
            "created_at": "2026-11-23T10:00:00Z",
            "updated_at": "2026-11-23T10:00:00Z",
            "payload": {"resource_uuid": "5f0c6b7e0b3b4a43b0f8d9a1c2e3f4a5", "month": "2026-11", "usages": {"cpu_k_hours": "12.50"}}
        });
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.post, &mut item.put].into_iter().flatten() {
                let Some(utoipa::openapi::RefOr::T(accepted)) =
                    operation.responses.responses.get_mut("202")
                else {
                    continue;
                };
                if let Some(content) = accepted.content.get_mut("application/json") {
                    content.example = Some(queued.clone());
                }
            }
        }
    }
}

/// Approve and reject take no body, or an object: their request body is not required (utoipa
/// would say so only for an `Option`, which it documents as `null`, a body the server refuses).
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for path in ["/v1/orders/{uuid}/approve", "/v1/orders/{uuid}/reject"] {
            if let Some(body) = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.post.as_mut())
                .and_then(|op| op.request_body.as_mut())
            {
                body.required = Some(utoipa::openapi::Required::False);
            }
        }
    }
}

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A site token: a JWT signed with one of the site's configured keys",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON with a trailing newline (the committed file's form).
pub fn document_json() -> String {
    let mut json = document()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    json.push('\n');
    json
}

/// Swagger UI at `/docs/`, reading `/openapi.json`. In sandbox mode the document's title and
/// description say so, so nobody mistakes the sandbox for a gateway connected to Puhuri.
///
/// The page makes requests to the gateway's own origin only: its assets are served from the
/// binary, and Swagger UI's online validator (which it calls by default whenever the page is
/// opened by a host name other than `localhost`) is switched off with `validatorUrl: "none"`,
/// so the docs work offline and never tell an outside service which API a site runs.
pub fn swagger_ui(sandbox: bool) -> SwaggerUi {
    let mut doc = document();
    if sandbox {
        doc.info.title = format!("{} (SANDBOX MODE)", doc.info.title);
        doc.info.description = Some(format!(
            "**SANDBOX MODE**: this gateway runs against its built-in Waldur simulator; nothing \
             reaches Puhuri Core. Authorize with the token in `<data_dir>/demo.token`.\n\n{}",
            doc.info.description.unwrap_or_default()
        ));
    }
    SwaggerUi::new("/docs/{_:.*}")
        .url("/openapi.json", doc)
        .config(utoipa_swagger_ui::Config::default().validator_url("none"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn annotations(path: &Path) -> usize {
        if path.is_dir() {
            std::fs::read_dir(path)
                .expect("src/api is readable")
                .map(|entry| annotations(&entry.expect("a directory entry").path()))
                .sum()
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(path).expect("a source file is readable");
            text.lines()
                .filter(|line| line.trim_start().starts_with("#[utoipa::path("))
                .count()
        } else {
            0
        }
    }

    /// A handler annotated for the document but left out of `api::routes` would be neither
    /// served nor documented: each annotation (one method each) is one operation of the document.
    #[test]
    fn every_annotated_handler_is_registered() {
        let annotated = annotations(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api"));
        let document = serde_json::to_value(super::document()).expect("the document serializes");
        let operations = document["paths"]
            .as_object()
            .expect("the document has paths")
            .values()
            .filter_map(|item| item.as_object())
            .flat_map(|item| item.keys())
            .filter(|key| {
                [
                    "get", "put", "post", "delete", "options", "head", "patch", "trace",
                ]
                .contains(&key.as_str())
            })
            .count();
        assert_eq!(
            annotated, operations,
            "every `#[utoipa::path]` handler is registered in `api::routes`"
        );
    }
}
