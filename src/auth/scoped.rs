//! A handler's required scope, written in its signature.
//!
//! `identity: Authorized<UsageWrite>` is a [`SiteIdentity`] whose token grants `usage:write`: the
//! handler cannot run for a caller without a valid token (401) or without that scope (403
//! `insufficient_scope`), and a reader sees what it needs without reading its body. Handlers that
//! any authenticated site may call (its own jobs, `whoami`) take [`SiteIdentity`] itself. The one
//! scope no signature can name is a job's: retrying or canceling a job needs the scope that queues
//! its operation, known once the job is read (`api::jobs`, documented by
//! `api::responses::JobChangeErrors`).

use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::ops::Deref;

use actix_web::{FromRequest, HttpRequest, dev::Payload};

use super::{Scope, SiteIdentity, authenticate};
use crate::error::ApiError;

/// A scope as a type, for [`Authorized`].
pub trait RequiredScope {
    const SCOPE: Scope;
}

macro_rules! scope_types {
    ($($(#[$doc:meta])* $name:ident => $scope:ident;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl RequiredScope for $name {
            const SCOPE: Scope = Scope::$scope;
        }
    )*};
}

scope_types! {
    /// `usage:write`: usage reports.
    UsageWrite => UsageWrite;
    /// `orders:write`: approve, reject, finish or fail orders.
    OrdersWrite => OrdersWrite;
    /// `resources:write`: backend ids, resource state, reports, limits.
    ResourcesWrite => ResourcesWrite;
    /// `users:write`: offering-user usernames.
    UsersWrite => UsersWrite;
    /// `read`: the reads of orders, resources, offerings, users, keys and projects.
    Read => Read;
    /// `events:read`: the site's events and their deliveries; replaying them to its endpoints.
    EventsRead => EventsRead;
    /// `allocations:read`: an allocator's reads (public offerings, its projects, orders,
    /// resources).
    AllocationsRead => AllocationsRead;
    /// `allocations:write`: an allocator's writes (allocations, their options, limits, names and
    /// termination; consumer reviews and cancellation of its orders).
    AllocationsWrite => AllocationsWrite;
}

/// An authenticated caller whose token grants the scope `S`.
pub struct Authorized<S: RequiredScope> {
    identity: SiteIdentity,
    scope: PhantomData<S>,
}

impl<S: RequiredScope> Authorized<S> {
    pub fn identity(&self) -> &SiteIdentity {
        &self.identity
    }
}

impl<S: RequiredScope> Deref for Authorized<S> {
    type Target = SiteIdentity;

    fn deref(&self) -> &SiteIdentity {
        &self.identity
    }
}

impl<S: RequiredScope> FromRequest for Authorized<S> {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|identity| {
            identity.require(S::SCOPE)?;
            Ok(Authorized {
                identity,
                scope: PhantomData,
            })
        }))
    }
}
