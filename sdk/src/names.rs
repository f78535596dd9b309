//! The hangar's naming rules, so a discovery source can check a name before it answers with
//! it (the hangar would quarantine a provider with an invalid name, far from its cause).

/// Whether `name` is a valid provider id: `^[a-zA-Z][a-zA-Z0-9_-]{0,63}$`.
///
/// ```
/// use hangar_plugin_sdk::is_provider_name;
///
/// assert!(is_provider_name("github-mcp_2"));
/// assert!(!is_provider_name("2fast"));
/// assert!(!is_provider_name("web.default"));
/// ```
pub fn is_provider_name(name: &str) -> bool {
    provider_name_problem(name).is_none()
}

/// Why `name` is not a valid provider id, as a phrase to put in a report (`it must start with
/// a letter`); `None` when it is one.
///
/// ```
/// use hangar_plugin_sdk::provider_name_problem;
///
/// assert_eq!(provider_name_problem("a.b"), Some("only letters, digits, `_` and `-` are allowed"));
/// assert_eq!(provider_name_problem("files"), None);
/// ```
pub fn provider_name_problem(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => Some("it is empty"),
        Some(c) if !c.is_ascii_alphabetic() => Some("it must start with a letter"),
        Some(_) if name.len() > 64 => Some("it is longer than 64 characters"),
        Some(_) if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {
            Some("only letters, digits, `_` and `-` are allowed")
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_hangars_provider_id_rule() {
        assert!(is_provider_name("a"));
        assert!(is_provider_name(&format!("a{}", "b".repeat(63))));
        assert!(!is_provider_name(&format!("a{}", "b".repeat(64))));
        for bad in ["", "1a", "-a", "a b", "a.b", "ü"] {
            assert!(!is_provider_name(bad), "{bad:?}");
        }
    }
}
