//! The call a validator or a policy is asked about, as a lazy view of the host's `call`
//! resource: each part crosses into the plugin when the plugin first reads it, and at most once.
//!
//! Crossing is what a plugin call costs (one allocation in the plugin per string the host
//! copies in), so nothing is read ahead: a policy that hashes the session pays for the session,
//! a validator that only looks at the tool never copies the arguments.

use std::cell::{Cell, OnceCell};
use std::fmt;

use serde_json::Value;

use crate::bindings::Call;

/// One tool call about to be made, read from the hangar part by part.
///
/// Every accessor asks the hangar the first time and answers from the copy after, so reading a
/// part twice costs nothing more; parts never read are never copied. An `Invocation` lives for
/// one `validate` or `pick`: the hangar lends the call for that long only, and the borrow
/// (`'a`) makes keeping it longer a compile error.
///
/// [`Invocation::new`] and the `with_*` methods build one from plain values, for tests and the
/// [`testing`](crate::testing) harness.
pub struct Invocation<'a> {
    source: Source<'a>,
    provider: OnceCell<String>,
    tool: OnceCell<String>,
    arguments_json: OnceCell<String>,
    session: OnceCell<Option<String>>,
    meta: OnceCell<Vec<(String, String)>>,
    /// How many members the `pick` was given (0 in a `validate`): an index past them is `None`
    /// without asking the host.
    members: usize,
    /// One cell per member, allocated at the first `member_id`: most policies never read one.
    member_ids: OnceCell<Box<[OnceCell<Option<String>>]>>,
}

/// Where the parts come from.
enum Source<'a> {
    /// The hangar's `call`, lent for this `validate` or `pick`.
    Host(&'a Call),
    /// Plain values (tests, the harness).
    Owned(Box<Parts>),
}

/// The parts of a call built from plain values.
struct Parts {
    provider: String,
    tool: String,
    arguments_json: String,
    session: Option<String>,
    meta: Vec<(String, String)>,
    member_ids: Vec<String>,
    /// How many parts were read from here, so the SDK's tests can check that a part is read
    /// once however often the plugin asks for it.
    fetches: Cell<usize>,
}

impl Parts {
    fn fetch<T>(&self, part: impl FnOnce(&Self) -> T) -> T {
        self.fetches.set(self.fetches.get() + 1);
        part(self)
    }
}

impl<'a> Invocation<'a> {
    /// The hangar's `call`, in a `validate` (`members` 0) or a `pick` among `members`.
    pub(crate) fn from_host(call: &'a Call, members: usize) -> Self {
        Self::with_source(Source::Host(call), members)
    }

    fn with_source(source: Source<'a>, members: usize) -> Self {
        Self {
            source,
            provider: OnceCell::new(),
            tool: OnceCell::new(),
            arguments_json: OnceCell::new(),
            session: OnceCell::new(),
            meta: OnceCell::new(),
            members,
            member_ids: OnceCell::new(),
        }
    }

    /// Provider (or group) id the call is addressed to.
    pub fn provider(&self) -> &str {
        self.provider.get_or_init(|| match &self.source {
            Source::Host(call) => call.provider(),
            Source::Owned(parts) => parts.fetch(|p| p.provider.clone()),
        })
    }

    /// Tool name as the provider calls it.
    pub fn tool(&self) -> &str {
        self.tool.get_or_init(|| match &self.source {
            Source::Host(call) => call.tool(),
            Source::Owned(parts) => parts.fetch(|p| p.tool.clone()),
        })
    }

    /// The arguments object, serialized as JSON (by the hangar, with serde_json: compact, no
    /// whitespace, non-ASCII characters as they are).
    pub fn arguments_json(&self) -> &str {
        self.arguments_json.get_or_init(|| match &self.source {
            Source::Host(call) => call.arguments_json(),
            Source::Owned(parts) => parts.fetch(|p| p.arguments_json.clone()),
        })
    }

    /// The client's session id, when the transport has one.
    pub fn session(&self) -> Option<&str> {
        self.session
            .get_or_init(|| match &self.source {
                Source::Host(call) => call.session(),
                Source::Owned(parts) => parts.fetch(|p| p.session.clone()),
            })
            .as_deref()
    }

    /// Call metadata: `correlation-id`, the client's name and version, …
    pub fn meta(&self) -> &[(String, String)] {
        self.meta.get_or_init(|| match &self.source {
            Source::Host(call) => call.meta(),
            Source::Owned(parts) => parts.fetch(|p| p.meta.clone()),
        })
    }

    /// The first metadata value under `key`.
    pub fn meta_value(&self, key: &str) -> Option<&str> {
        self.meta()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The arguments parsed as JSON.
    pub fn arguments(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.arguments_json())
    }

    /// In a `pick`, the id of `members[index]` (whose [`key`](crate::Member::key) is
    /// [`member_key`](crate::member_key) of it); `None` when `index` is out of range, and
    /// always in a `validate`. Policies that only need a stable hash of the member should use
    /// `key`, which costs nothing to read.
    pub fn member_id(&self, index: usize) -> Option<&str> {
        if index >= self.members {
            return None;
        }
        let ids = self.member_ids.get_or_init(|| {
            (0..self.members)
                .map(|_| OnceCell::new())
                .collect::<Vec<_>>()
                .into_boxed_slice()
        });
        ids.get(index)?
            .get_or_init(|| match &self.source {
                Source::Host(call) => u32::try_from(index).ok().and_then(|i| call.member_id(i)),
                Source::Owned(parts) => parts.fetch(|p| p.member_ids.get(index).cloned()),
            })
            .as_deref()
    }

    /// How many parts were copied from the source so far (plain-value calls only; the SDK's
    /// tests use it to check that nothing is read twice or ahead).
    #[cfg(test)]
    pub(crate) fn fetches(&self) -> usize {
        match &self.source {
            Source::Host(_) => 0,
            Source::Owned(parts) => parts.fetches.get(),
        }
    }

    /// This call's parts as plain values, with `member_ids` for a pick among that many
    /// members: what the harness hands the plugin, so the plugin reads it through the same lazy
    /// accessors as in the hangar.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn for_pick(&self, member_ids: Vec<String>) -> Invocation<'static> {
        let members = member_ids.len();
        Invocation::with_source(
            Source::Owned(Box::new(Parts {
                provider: self.provider().to_owned(),
                tool: self.tool().to_owned(),
                arguments_json: self.arguments_json().to_owned(),
                session: self.session().map(str::to_owned),
                meta: self.meta().to_vec(),
                member_ids,
                fetches: Cell::new(0),
            })),
            members,
        )
    }
}

impl Invocation<'static> {
    /// A call of `tool` on `provider` with no arguments (`{}`), no session and no metadata.
    /// Chain the `with_*` methods to fill in the rest (mostly useful in tests).
    pub fn new(provider: impl Into<String>, tool: impl Into<String>) -> Self {
        Self::with_source(
            Source::Owned(Box::new(Parts {
                provider: provider.into(),
                tool: tool.into(),
                arguments_json: "{}".to_owned(),
                session: None,
                meta: Vec::new(),
                member_ids: Vec::new(),
                fetches: Cell::new(0),
            })),
            0,
        )
    }

    /// These arguments (normally a JSON object), serialized as the hangar does.
    pub fn with_arguments(self, arguments: Value) -> Self {
        self.with_arguments_json(arguments.to_string())
    }

    /// These arguments as JSON text, taken as they are: to see what a plugin makes of text the
    /// hangar would never send (malformed JSON, odd escapes).
    pub fn with_arguments_json(self, json: impl Into<String>) -> Self {
        let json = json.into();
        self.edit(|parts| parts.arguments_json = json)
    }

    /// In this client session.
    pub fn with_session(self, session: impl Into<String>) -> Self {
        let session = session.into();
        self.edit(|parts| parts.session = Some(session))
    }

    /// With one more metadata pair.
    pub fn with_meta(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let pair = (key.into(), value.into());
        self.edit(|parts| parts.meta.push(pair))
    }

    /// Changes the plain values, and forgets what was read of them before.
    fn edit(mut self, edit: impl FnOnce(&mut Parts)) -> Self {
        // A `'static` call is always built from plain values: the hangar's is only lent.
        if let Source::Owned(parts) = &mut self.source {
            edit(parts);
        }
        let members = self.members;
        Self::with_source(self.source, members)
    }
}

/// Shows every part, reading those not read yet (from the hangar, inside a plugin).
impl fmt::Debug for Invocation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invocation")
            .field("provider", &self.provider())
            .field("tool", &self.tool())
            .field("arguments_json", &self.arguments_json())
            .field("session", &self.session())
            .field("meta", &self.meta())
            .field("members", &self.members)
            .finish()
    }
}
