//! Usernames of the people on the teams of a site's resources (queued writes); the people
//! themselves are read in [`super::people`].
//!
//! **Whose user is it?** A user is the site's when they hold an active role in a project that has
//! a live (not terminated) resource in one of the site's offerings, i.e. they are on the team of
//! one of its resources ([`super::people::on_team_of`]: two calls). For
//! `POST /v1/offering-users` the resource must be in that very offering.
//!
//! **`PUT /v1/users/{uuid}/username`** is Waldur's `set_offerings_username`: it sets the username
//! on *every* offering of the service provider where the user has a resource. So it is allowed
//! only to a site bound to every one of the provider's offerings; a site bound to fewer gets 403
//! (it would rename the user on other sites' offerings) and uses `POST /v1/offering-users`, which
//! touches one offering of the site only.
//!
//! **Usernames** follow [`crate::domain::username`]: by default the POSIX portable rule,
//! otherwise `limits.username_pattern`.

use crate::api::body::JsonBody;
use actix_web::{HttpRequest, HttpResponse, post, put, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::people::on_team_of;
use super::reads::{MAX_UPSTREAM_PAGES, service_provider_uuid, uuid_in_path};
use super::responses::{PathlessWriteErrors, Queued, WriteErrors, WriteHeaders};
use super::submit::{lookup_failed, submit};
use crate::auth::SiteIdentity;
use crate::auth::scoped::{Authorized, UsersWrite};
use crate::domain::operations::{OfferingUsername, Operation, UserUsername};
use crate::domain::{Username, WaldurUuid};
use crate::error::{ApiError, FieldError};
use crate::upstream::Uuid;

fn username(state: &AppState, name: &str) -> Result<Username, FieldError> {
    Username::parse(name, &state.username_rule).map_err(|m| FieldError::new("username", m))
}

fn not_yours() -> ApiError {
    ApiError::Forbidden(
        "the user is not on the team of a resource of this site's offerings, or does not exist"
            .into(),
    )
}

/// 403 unless the user holds a role in a project with a live resource in `offerings`.
async fn check_user(
    state: &AppState,
    identity: &SiteIdentity,
    user: &WaldurUuid,
    offerings: &[String],
) -> Result<(), ApiError> {
    let sp = service_provider_uuid(state, identity, true).await?;
    if on_team_of(state, &sp, user.as_str(), offerings)
        .await
        .map_err(lookup_failed)?
    {
        Ok(())
    } else {
        Err(not_yours())
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"offering_uuid": "0f000000000040008000000000000001", "user_uuid": "a0000000000040008000000000000012", "username": "bob_lumi"}))]
pub struct OfferingUserRequest {
    /// One of the site's offerings.
    #[schema(
        pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    pub offering_uuid: String,
    /// A user on the team of a resource of that offering.
    #[schema(
        pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    pub user_uuid: String,
    /// By default 1-32 of `A-Z a-z 0-9 . _ -`, not starting with `-` or `.`; the operator may
    /// set another rule (`limits.username_pattern`).
    #[schema(example = "bob_lumi")]
    pub username: String,
}

/// Create or update a user's account name on one of the site's offerings.
///
/// Delivered idempotently: the offering user is looked up first and its username changed only if
/// it differs; it is created when absent (a create that meets an existing one is an update).
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(WriteHeaders),
    request_body = OfferingUserRequest,
    responses(
        Queued,
        PathlessWriteErrors<UsersWrite>,
    )
)]
#[post("/offering-users")]
pub async fn set_offering_username(
    identity: Authorized<UsersWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<OfferingUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = Vec::new();
    let offering = WaldurUuid::parse(&body.offering_uuid)
        .map_err(|m| errors.push(FieldError::new("offering_uuid", m)))
        .ok();
    let user = WaldurUuid::parse(&body.user_uuid)
        .map_err(|m| errors.push(FieldError::new("user_uuid", m)))
        .ok();
    let username = username(&state, &body.username)
        .map_err(|e| errors.push(e))
        .ok();
    let (Some(offering), Some(user), Some(username), true) =
        (offering, user, username, errors.is_empty())
    else {
        return Err(ApiError::validation(errors));
    };
    if !identity.owns_offering(offering.as_str()) {
        return Err(ApiError::Forbidden(
            "the offering is not one of this site's".into(),
        ));
    }
    check_user(&state, &identity, &user, &[offering.to_string()]).await?;
    let sent = serde_json::json!({
        "offering_uuid": offering, "user_uuid": user, "username": username
    });
    let op = Operation::OfferingUsername(OfferingUsername {
        offering_uuid: offering,
        user_uuid: user,
        username,
    });
    submit(&state, &identity, &req, op, sent).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "bob_lumi"}))]
pub struct UsernameRequest {
    /// By default 1-32 of `A-Z a-z 0-9 . _ -`, not starting with `-` or `.`; the operator may
    /// set another rule (`limits.username_pattern`).
    #[schema(example = "bob_lumi")]
    pub username: String,
}

/// Set a user's username on every offering of the service provider where they have a resource
/// (`set_offerings_username`).
///
/// Only for a site bound to every offering of its service provider (Waldur applies the name to
/// all of them); any other site gets 403 and sets usernames per offering with
/// `POST /v1/offering-users`. The user must be on the team of a resource of one of the site's
/// offerings.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The user's uuid", example = "a0000000000040008000000000000012"), WriteHeaders),
    request_body = UsernameRequest,
    responses(
        Queued,
        WriteErrors<UsersWrite>,
    )
)]
#[put("/users/{uuid}/username")]
pub async fn set_username(
    identity: Authorized<UsersWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody<UsernameRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = uuid_in_path(&path, "user")?;
    let username = username(&state, &body.username).map_err(|e| ApiError::validation(vec![e]))?;
    check_bound_to_every_offering(&state, &identity).await?;
    let offerings: Vec<String> = identity.site.offerings.iter().cloned().collect();
    check_user(&state, &identity, &user, &offerings).await?;
    let sp = service_provider_uuid(&state, &identity, true).await?;
    let sp = WaldurUuid::parse(&sp)
        .map_err(|m| ApiError::internal(format!("the service provider's uuid `{sp}` {m}")))?;
    // The service provider is found at arrival: not part of the request as sent.
    let sent = serde_json::json!({ "username": username });
    let op = Operation::UserUsername(UserUsername {
        service_provider_uuid: sp,
        user_uuid: user,
        username,
    });
    submit(&state, &identity, &req, op, sent).await
}

/// 403 unless the site is bound to every offering of its service provider: Waldur's
/// `set_offerings_username` renames the user on all of them, so a site bound to fewer would
/// reach offerings of other sites. The provider's offerings are those of the customer that owns
/// the site's offerings, as Puhuri's provider view lists them (every state, archived included).
async fn check_bound_to_every_offering(
    state: &AppState,
    identity: &SiteIdentity,
) -> Result<(), ApiError> {
    let Some(first) = identity.site.offerings.iter().next() else {
        return Err(ApiError::Forbidden("the site has no offerings".into()));
    };
    let customer = state
        .directory
        .offering(first)
        .await
        .map_err(lookup_failed)?
        .customer_uuid
        .clone();
    let offerings: Vec<Uuid> = state
        .directory
        .client()
        .get_all(
            "marketplace-provider-offerings/",
            &[("customer_uuid", customer), ("field", "uuid".into())],
            MAX_UPSTREAM_PAGES,
        )
        .await
        .map_err(lookup_failed)?;
    let others = offerings
        .iter()
        .filter(|o| !identity.owns_offering(&o.uuid))
        .count();
    if others == 0 {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this sets the username on every offering of the service provider, and {others} of \
             them are not this site's; set it per offering with POST /v1/offering-users"
        )))
    }
}
