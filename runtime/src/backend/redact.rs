//! Cuts a provider's secrets out of text about it before a person sees it: its stderr lines
//! and the errors of its start. A provider may well print the token it was given; the hangar
//! must not pass that on to logs, events or clients.

use std::borrow::Cow;
use std::sync::Arc;

use crate::config::{ProviderSpec, REDACTED};

/// Values shorter than this are not searched for: a one- or two-character "secret" would turn
/// every line into asterisks and hides nothing worth hiding.
const MIN_SECRET_LEN: usize = 4;

/// The secret values of one provider, longest first (so a secret containing another is cut
/// whole).
#[derive(Clone, Debug, Default)]
pub struct Redactor(Arc<[String]>);

impl Redactor {
    pub fn for_spec(spec: &ProviderSpec) -> Self {
        let mut secrets: Vec<String> = spec
            .secrets()
            .into_iter()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .map(str::to_owned)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self(secrets.into())
    }

    /// `text` with every secret replaced by `***`.
    pub fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in self.0.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        out
    }

    /// `text` without a trailing beginning of a secret (at least [`MIN_SECRET_LEN`] bytes of
    /// it): for a line cut at a length limit, where a secret may have been cut in two.
    pub fn cut_partial_tail<'a>(&self, text: &'a str) -> Cow<'a, str> {
        for secret in self.0.iter() {
            for len in (MIN_SECRET_LEN..secret.len()).rev() {
                if let Some(start) = secret.get(..len)
                    && let Some(kept) = text.strip_suffix(start)
                {
                    return Cow::Owned(format!("{kept}{REDACTED}"));
                }
            }
        }
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MaybeSecret;

    #[test]
    fn every_secret_of_the_spec_is_cut_and_plain_values_are_kept() {
        let mut spec = ProviderSpec::subprocess("p", &["server"]);
        spec.args.push(MaybeSecret::secret("--token=tok-123456"));
        spec.env
            .insert("API_KEY".into(), MaybeSecret::secret("k-abcdef"));
        spec.env.insert("SHORT".into(), MaybeSecret::secret("ab"));
        spec.env
            .insert("MODE".into(), MaybeSecret::plain("fast-mode"));
        let r = Redactor::for_spec(&spec);
        assert_eq!(
            r.apply("auth with k-abcdef from --token=tok-123456 in fast-mode (ab)"),
            "auth with *** from *** in fast-mode (ab)"
        );
        assert!(matches!(r.apply("nothing here"), Cow::Borrowed(_)));
        assert_eq!(r.cut_partial_tail("cut at k-abc"), "cut at ***");
        assert_eq!(
            r.cut_partial_tail("cut at k-a"),
            "cut at k-a",
            "too short to tell"
        );
    }

    #[test]
    fn a_secret_substituted_into_a_longer_value_is_cut_on_its_own() {
        let mut spec = ProviderSpec::subprocess("p", &["server"]);
        spec.args.push(
            MaybeSecret::secret("--token=tok-123456").with_secret_parts(vec!["tok-123456".into()]),
        );
        let r = Redactor::for_spec(&spec);
        assert_eq!(
            r.apply("bad token tok-123456; given --token=tok-123456"),
            "bad token ***; given ***"
        );
    }
}
