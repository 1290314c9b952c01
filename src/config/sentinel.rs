//! `redis+sentinel://` and `rediss+sentinel://` URLs (`redis.url` through Redis Sentinel).
//!
//! `redis+sentinel://[user:password@]host:port[,host:port...]/service[/db][?sentinel_username=U&sentinel_password=P]`:
//! the sentinels to ask, the monitored service's name, the database and the credentials of the
//! data nodes (the master the sentinels name), and, in the query, the sentinels' own credentials
//! when they are protected (`requirepass` / an ACL user in `sentinel.conf`, Redis 6.2+), which
//! are usually not the data nodes'. The names follow the convention of Redis clients that take
//! sentinel credentials apart from the data nodes' (`SentinelUsername` / `SentinelPassword`).
//! `rediss+sentinel://` speaks TLS to the sentinels and to the master, verifying their
//! certificates against the system's trust store, as `rediss://` does.

/// A parsed sentinel URL (see the module documentation for its grammar).
pub struct SentinelUrl {
    pub sentinels: Vec<(String, u16)>,
    pub service: String,
    pub db: i64,
    /// The data nodes' credentials.
    pub username: Option<String>,
    pub password: Option<String>,
    /// The sentinels' own credentials (`sentinel_username`, `sentinel_password`).
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
    /// `rediss+sentinel://`: TLS to the sentinels and the master, certificates verified.
    pub tls: bool,
}

impl SentinelUrl {
    /// `None` for a URL that is not a sentinel URL; `Err` says what is wrong with a sentinel URL
    /// (never quoting it: it may hold a password).
    pub fn parse(url: &str) -> Option<Result<SentinelUrl, String>> {
        if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            return Some(Self::parse_rest(rest, false));
        }
        let rest = url.strip_prefix("rediss+sentinel://")?;
        Some(Self::parse_rest(rest, true))
    }

    /// The secrets the URL holds (passwords), to keep out of messages.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        [&self.password, &self.sentinel_password]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|p| !p.is_empty())
    }

    fn parse_rest(rest: &str, tls: bool) -> Result<SentinelUrl, String> {
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (mut sentinel_username, mut sentinel_password) = (None, None);
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "sentinel_username" => sentinel_username = Some(value.into_owned()),
                "sentinel_password" => sentinel_password = Some(value.into_owned()),
                other => {
                    return Err(format!(
                        "unknown query parameter `{other}` (a sentinel URL takes \
                         sentinel_username and sentinel_password)"
                    ));
                }
            }
        }
        let (authority, path) = rest.split_once('/').ok_or(
            "a sentinel URL names the service after the hosts: redis+sentinel://host:port/service",
        )?;
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => {
                    ((!user.is_empty()).then(|| decode(user)), Some(decode(pass)))
                }
                None => (Some(decode(u)), None),
            },
        };
        let mut sentinels = Vec::new();
        for host in hosts.split(',') {
            let (name, port) = host.rsplit_once(':').ok_or("each sentinel is host:port")?;
            let port: u16 = port
                .parse()
                .map_err(|_| "a sentinel's port is not a number")?;
            if name.is_empty() {
                return Err("a sentinel's host is empty".into());
            }
            sentinels.push((name.trim_matches(['[', ']']).to_string(), port));
        }
        let mut parts = path.trim_end_matches('/').splitn(2, '/');
        let service = parts.next().unwrap_or_default().to_string();
        if service.is_empty() {
            return Err("the service name after the hosts is empty".into());
        }
        let db = match parts.next() {
            None | Some("") => 0,
            Some(d) => d
                .parse()
                .map_err(|_| "the database after the service is not a number")?,
        };
        Ok(SentinelUrl {
            sentinels,
            service,
            db,
            username,
            password,
            sentinel_username,
            sentinel_password,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::SentinelUrl;

    #[test]
    fn sentinel_credentials_and_tls_are_read_apart_from_the_data_nodes() {
        let url = "rediss+sentinel://app:data%40pw@s1:26379,[::1]:26380/gw/2\
                   ?sentinel_username=watch&sentinel_password=s%26pw";
        let p = SentinelUrl::parse(url).unwrap().unwrap();
        assert!(p.tls);
        assert_eq!(
            p.sentinels,
            [("s1".to_string(), 26379), ("::1".to_string(), 26380)]
        );
        assert_eq!((p.service.as_str(), p.db), ("gw", 2));
        assert_eq!(
            (p.username.as_deref(), p.password.as_deref()),
            (Some("app"), Some("data@pw"))
        );
        assert_eq!(
            (
                p.sentinel_username.as_deref(),
                p.sentinel_password.as_deref()
            ),
            (Some("watch"), Some("s&pw"))
        );
        assert_eq!(p.secrets().collect::<Vec<_>>(), ["data@pw", "s&pw"]);

        let plain = SentinelUrl::parse("redis+sentinel://s1:26379/gw")
            .unwrap()
            .unwrap();
        assert!(!plain.tls && plain.sentinel_password.is_none() && plain.password.is_none());
        assert!(SentinelUrl::parse("rediss://h:6379/0").is_none());
    }

    #[test]
    fn an_unknown_query_parameter_is_refused_without_quoting_the_url() {
        let Some(Err(message)) = SentinelUrl::parse("redis+sentinel://:pw@s1:1/gw?password=x")
        else {
            panic!("accepted");
        };
        assert!(message.contains("`password`"), "{message}");
        assert!(!message.contains("pw@"), "{message}");
    }
}
