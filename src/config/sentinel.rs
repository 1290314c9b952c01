//! `redis+sentinel://` URLs (`redis.url` through Redis Sentinel).

/// A `redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]` URL: the
/// sentinels to ask, the monitored service's name, and the database and credentials for the
/// master they name. `None` for any other URL; `Err` says what is wrong with a sentinel URL
/// (never quoting it: it may hold a password).
pub struct SentinelUrl {
    pub sentinels: Vec<(String, u16)>,
    pub service: String,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl SentinelUrl {
    pub fn parse(url: &str) -> Option<Result<SentinelUrl, String>> {
        let rest = url.strip_prefix("redis+sentinel://")?;
        Some(Self::parse_rest(rest))
    }

    fn parse_rest(rest: &str) -> Result<SentinelUrl, String> {
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
        })
    }
}
