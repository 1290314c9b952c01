//! Offering users and usernames (`marketplace-offering-users/`, the service provider's
//! `set_offerings_username`), as the username operations deliver them.

use reqwest::Method;
use serde_json::json;

use super::{OfferingUserInfo, UpstreamError, WaldurClient};

impl WaldurClient {
    /// The offering users of one user on one offering (at most one, by Waldur's uniqueness rule).
    pub async fn offering_users(
        &self,
        offering_uuid: &str,
        user_uuid: &str,
    ) -> Result<Vec<OfferingUserInfo>, UpstreamError> {
        let query = [
            ("offering_uuid", offering_uuid.to_string()),
            ("user_uuid", user_uuid.to_string()),
        ];
        Ok(self
            .get_page("marketplace-offering-users/", &query)
            .await?
            .items)
    }

    pub async fn create_offering_user(
        &self,
        offering_uuid: &str,
        user_uuid: &str,
        username: &str,
    ) -> Result<OfferingUserInfo, UpstreamError> {
        let body =
            json!({"offering_uuid": offering_uuid, "user_uuid": user_uuid, "username": username});
        self.post("marketplace-offering-users/", &body).await
    }

    /// Renames an offering user (`PATCH marketplace-offering-users/{uuid}/`); Waldur's answer
    /// is not read.
    pub async fn set_offering_user_username(
        &self,
        uuid: &str,
        username: &str,
    ) -> Result<(), UpstreamError> {
        self.call(
            Method::PATCH,
            &format!("marketplace-offering-users/{uuid}/"),
            &[],
            Some(&json!({"username": username})),
        )
        .await
        .map(|_| ())
    }

    /// Sets a user's username on every offering of the provider where the user has a resource.
    pub async fn set_offerings_username(
        &self,
        sp_uuid: &str,
        user_uuid: &str,
        username: &str,
    ) -> Result<u16, UpstreamError> {
        self.call(
            Method::POST,
            &format!("marketplace-service-providers/{sp_uuid}/set_offerings_username/"),
            &[],
            Some(&json!({"user_uuid": user_uuid, "username": username})),
        )
        .await
        .map(|(status, _, _)| status.as_u16())
    }
}
