//! Reading Waldur's `Link` pagination header.

/// The target of the link with relation `rel` in one `Link` header value (RFC 8288 §3): links
/// are separated by commas outside `<...>`, each `<target>` followed by `;`-separated
/// parameters; `rel` may be quoted or not and may hold several space-separated relations, in any
/// case. `None` when there is no such link.
pub fn link_target(header: &str, rel: &str) -> Option<String> {
    let mut rest = header;
    loop {
        let start = rest.find('<')?;
        let end = start + rest[start..].find('>')?;
        let target = &rest[start + 1..end];
        let after = &rest[end + 1..];
        // The parameters run to the next link (a `<` after a comma) or the end.
        let params_end = after.find('<').unwrap_or(after.len());
        let params = &after[..params_end];
        let matches = params.split(';').any(|p| {
            let Some((name, value)) = p.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_end_matches(',')
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case(rel))
        });
        if matches {
            return Some(target.trim().to_string());
        }
        rest = &after[params_end..];
    }
}

#[cfg(test)]
mod tests {
    use super::link_target;

    #[test]
    fn link_target_reads_waldurs_form_and_others() {
        // Waldur's form: first and last always, page 1 without `page=`, the query sorted.
        let waldur = "<https://puhuri.example/api/marketplace-orders/?page_size=2>; rel=\"first\", \
                      <https://puhuri.example/api/marketplace-orders/?page_size=2>; rel=\"prev\", \
                      <https://puhuri.example/api/marketplace-orders/?page=3&page_size=2>; rel=\"next\", \
                      <https://puhuri.example/api/marketplace-orders/?page=3&page_size=2>; rel=\"last\"";
        assert_eq!(
            link_target(waldur, "next").as_deref(),
            Some("https://puhuri.example/api/marketplace-orders/?page=3&page_size=2")
        );
        assert_eq!(
            link_target(waldur, "prev").as_deref(),
            Some("https://puhuri.example/api/marketplace-orders/?page_size=2")
        );
        // A single page in Waldur's form: no next.
        let single = "<http://h/api/x/>; rel=\"first\", <http://h/api/x/?page=1>; rel=\"last\"";
        assert_eq!(link_target(single, "next"), None);
        // Page-number form, unquoted and multi-valued relations, other parameters, odd spacing.
        let other = "<x/?page=2>;rel=next , <x/?page=9>; title=\"a, b\"; rel=\"LAST alternate\"";
        assert_eq!(link_target(other, "next").as_deref(), Some("x/?page=2"));
        assert_eq!(link_target(other, "last").as_deref(), Some("x/?page=9"));
        assert_eq!(link_target("", "next"), None);
        assert_eq!(link_target("<broken", "next"), None);
    }
}
