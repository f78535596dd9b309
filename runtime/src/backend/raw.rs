//! `tools/call` to a provider without rmcp's service loop: the hangar writes the request line
//! itself, under an id of its own (`"hangar-N"`), and the [`RawTap`] on the provider's output
//! takes the answer off the pipe before rmcp sees it. When the client's answer can be the
//! provider's result as it is, the tap writes it to the client at once ([`Reply`]); the caller
//! then gets the decoded result for its bookkeeping, off the client's critical path.
//!
//! A call with a progress sink asks the provider for progress under the call's own id as token,
//! and the tap hands those notifications to the sink in the order they arrive, before the
//! answer; once a call has had progress, its answer goes back through the caller (after the
//! progress) rather than straight to the client. Everything else on the connection (handshake,
//! tools/list, pings, other notifications) stays with rmcp.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use futures::FutureExt;
use memchr::memmem::Finder;
use rmcp::model::{CallToolResult, JsonObject, RequestId, ServerResult};
use rmcp::service::{Peer, RoleClient, ServiceError};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::ProgressSink;
use crate::observe::trace::OutgoingMeta;
use crate::wire::{Reply, SharedWriter, Tap, Tapped, from_json};

const ID_PREFIX: &str = "hangar-";

// Searchers built once: building one costs more than searching a short line.
static OUR_ID: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(ID_PREFIX));
static RESULT_TYPE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("\"resultType\""));

/// A call's arguments, and their JSON text when it is already at hand (validators got it):
/// a request reuses the text rather than encoding the arguments again.
pub struct CallArguments {
    pub object: JsonObject,
    pub encoded: Option<String>,
    /// The request's `_meta` (empty: none is sent).
    pub meta: OutgoingMeta,
}

/// The calls sent on one connection and not answered yet.
pub struct RawCalls {
    out: Arc<SharedWriter>,
    table: Arc<Mutex<Table>>,
    next: AtomicU64,
}

struct Table {
    open: bool,
    pending: BTreeMap<u64, Pending>,
}

struct Pending {
    reply: Option<Arc<Reply>>,
    done: oneshot::Sender<Answer>,
    progress: Option<ProgressSink>,
}

/// The provider's answer line and, if the tap already relayed its result to the client, where
/// that result lies in the line.
struct Answer {
    line: Vec<u8>,
    relayed: Option<Range<usize>>,
}

impl RawCalls {
    /// The calls on a connection whose input is `out`, and the tap for its output.
    pub fn new(out: Arc<SharedWriter>) -> (Arc<Self>, RawTap) {
        let table = Arc::new(Mutex::new(Table {
            open: true,
            pending: BTreeMap::new(),
        }));
        let calls = Arc::new(Self {
            out,
            table: table.clone(),
            next: AtomicU64::new(1),
        });
        (calls, RawTap { table })
    }

    /// Sends `tools/call`, runs `sent` with the arguments' JSON text once the request is
    /// written, and waits for the answer.
    /// If `reply` is given and the provider's result can go to the client unchanged, it goes
    /// at once, and the result returned is only its summary: `is_error`, with no content (the
    /// content went to the client, and decoding it again would be work for nobody). If this
    /// future is dropped before the answer, the provider is sent `notifications/cancelled`
    /// with `reason`. With `progress`, the provider's progress for this call goes there.
    #[allow(clippy::too_many_arguments)]
    pub async fn call(
        &self,
        peer: &Peer<RoleClient>,
        tool: &str,
        arguments: &CallArguments,
        progress: Option<ProgressSink>,
        reply: Option<Arc<Reply>>,
        sent: impl FnOnce(&[u8]),
        reason: impl FnOnce() -> String,
    ) -> Result<CallToolResult, ServiceError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // Room for a `_meta` with a traceparent, so a traced call does not grow the line.
        let mut line = Vec::with_capacity(256);
        line.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":\"");
        line.extend_from_slice(ID_PREFIX.as_bytes());
        line.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        line.extend_from_slice(b"\",\"method\":\"tools/call\",\"params\":{\"name\":");
        serde_json::to_writer(&mut line, tool).map_err(encode_error)?;
        line.extend_from_slice(b",\"arguments\":");
        let arguments_start = line.len();
        match &arguments.encoded {
            Some(json) => line.extend_from_slice(json.as_bytes()),
            None => serde_json::to_writer(&mut line, &arguments.object).map_err(encode_error)?,
        }
        let arguments_end = line.len();
        if progress.is_some() {
            // `"_meta":{"progressToken":"hangar-N"` and the other keys, if any.
            line.extend_from_slice(b",\"_meta\":{\"progressToken\":\"");
            line.extend_from_slice(ID_PREFIX.as_bytes());
            line.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            line.push(b'"');
            arguments
                .meta
                .write_members(&mut line, false)
                .map_err(encode_error)?;
            line.push(b'}');
        } else if !arguments.meta.is_empty() {
            line.extend_from_slice(b",\"_meta\":");
            arguments.meta.write_json(&mut line).map_err(encode_error)?;
        }
        line.extend_from_slice(b"}}\n");

        let (done, answer) = oneshot::channel();
        {
            let mut table = lock(&self.table);
            if !table.open {
                return Err(ServiceError::TransportClosed);
            }
            table.pending.insert(
                n,
                Pending {
                    reply,
                    done,
                    progress,
                },
            );
        }
        let mut guard = CancelOnDrop {
            table: &self.table,
            n,
            peer: Some(peer.clone()),
            reason: Some(reason),
        };
        if self.out.write_line(&line).await.is_err() {
            guard.peer = None; // the provider never got it
            return Err(ServiceError::TransportClosed);
        }
        sent(&line[arguments_start..arguments_end]);
        let answer = answer.await.map_err(|_| ServiceError::TransportClosed)?;
        guard.peer = None;
        match answer.relayed {
            Some(result) => summary(&answer.line[result]),
            None => decode(&answer.line),
        }
    }
}

/// A call abandoned before its answer (deadline, client gone) is forgotten, and the provider
/// told so.
struct CancelOnDrop<'a, F: FnOnce() -> String> {
    table: &'a Mutex<Table>,
    n: u64,
    peer: Option<Peer<RoleClient>>,
    reason: Option<F>,
}

impl<F: FnOnce() -> String> Drop for CancelOnDrop<'_, F> {
    fn drop(&mut self) {
        let waiting = lock(self.table).pending.remove(&self.n).is_some();
        if let (true, Some(peer), Some(reason)) = (waiting, self.peer.take(), self.reason.take()) {
            let params = rmcp::model::CancelledNotificationParam::new(
                Some(RequestId::String(format!("{ID_PREFIX}{}", self.n).into())),
                Some(reason()),
            );
            tokio::spawn(async move {
                let _ = peer.notify_cancelled(params).await;
            });
        }
    }
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(|e| e.into_inner())
}

fn encode_error(e: serde_json::Error) -> ServiceError {
    ServiceError::McpError(rmcp::ErrorData::invalid_params(
        format!("the arguments could not be encoded: {e}"),
        None,
    ))
}

/// The parts of an answer line the tap looks at.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// Takes the answers to the connection's raw calls off the provider's output.
pub struct RawTap {
    table: Arc<Mutex<Table>>,
}

/// A `notifications/progress` for one of the raw calls.
#[derive(Deserialize)]
struct ProgressParams<'a> {
    #[serde(rename = "progressToken", borrow)]
    token: &'a RawValue,
    progress: f64,
    total: Option<f64>,
    message: Option<String>,
}

/// A line from the provider the tap takes.
enum Ours {
    /// The answer to call N and, when the result may go to the client as it is, where it lies
    /// in the line.
    Answer(u64, Option<Range<usize>>),
    /// Progress of call N.
    Progress(u64, f64, Option<f64>, Option<String>),
}

/// The call number in `"hangar-N"`.
fn call_number(id: &RawValue) -> Option<u64> {
    id.get()
        .strip_prefix('"')?
        .strip_suffix('"')?
        .strip_prefix(ID_PREFIX)?
        .parse()
        .ok()
}

impl RawTap {
    fn classify(line: &[u8]) -> Option<Ours> {
        // Most lines that are not ours never get parsed.
        OUR_ID.find(line)?;
        let env: Envelope = from_json(line).ok()?;
        if let Some(method) = env.method {
            if method.get() != "\"notifications/progress\"" {
                return None;
            }
            let p: ProgressParams = serde_json::from_str(env.params?.get()).ok()?;
            let n = call_number(p.token)?;
            return Some(Ours::Progress(n, p.progress, p.total, p.message));
        }
        if env.result.is_none() && env.error.is_none() {
            return None;
        }
        let n = call_number(env.id?)?;
        // A result with a `resultType` is left for the typed path, which knows what each
        // client version expects of it.
        let early = env
            .result
            .filter(|r| RESULT_TYPE.find(r.get().as_bytes()).is_none())
            .map(|r| {
                let start = r.get().as_ptr() as usize - line.as_ptr() as usize;
                start..start + r.get().len()
            });
        Some(Ours::Answer(n, early))
    }
}

impl Tap for RawTap {
    fn intercept(&mut self, line: Vec<u8>) -> Tapped {
        let (n, early) = match Self::classify(&line) {
            None => return Tapped::Pass(line),
            Some(Ours::Answer(n, early)) => (n, early),
            Some(Ours::Progress(n, progress, total, message)) => {
                let sink = {
                    let mut table = lock(&self.table);
                    table.pending.get_mut(&n).and_then(|pending| {
                        // The answer must not overtake this progress on its way to the client.
                        pending.reply = None;
                        pending.progress.clone()
                    })
                };
                if let Some(sink) = sink {
                    sink(progress, total, message);
                }
                return Tapped::Taken(None);
            }
        };
        let Some(pending) = lock(&self.table).pending.remove(&n) else {
            tracing::debug!("an answer to call {ID_PREFIX}{n} arrived after it was abandoned");
            return Tapped::Taken(None);
        };
        match (pending.reply, early) {
            (Some(reply), Some(range)) => Tapped::Taken(Some(
                async move {
                    let relayed = reply.result(&line[range.clone()]).await.then_some(range);
                    let _ = pending.done.send(Answer { line, relayed });
                }
                .boxed(),
            )),
            _ => {
                let _ = pending.done.send(Answer {
                    line,
                    relayed: None,
                });
                Tapped::Taken(None)
            }
        }
    }

    fn closed(&mut self) {
        let mut table = lock(&self.table);
        table.open = false;
        table.pending.clear();
    }
}

/// The answer as the call's result, with the same errors as the rmcp path.
fn decode(answer: &[u8]) -> Result<CallToolResult, ServiceError> {
    let env: Envelope = from_json(answer).map_err(|e| undecodable(&e))?;
    if let Some(error) = env.error {
        let error: rmcp::ErrorData =
            serde_json::from_str(error.get()).map_err(|e| undecodable(&e))?;
        return Err(ServiceError::McpError(error));
    }
    let result = env.result.ok_or(ServiceError::UnexpectedResponse)?;
    match serde_json::from_str::<CallToolResult>(result.get()) {
        Ok(r) if r.result_type.as_ref().is_none_or(|t| t.is_complete()) => Ok(r),
        _ => {
            let typed: ServerResult =
                serde_json::from_str(result.get()).map_err(|e| undecodable(&e))?;
            into_call_result(typed)
        }
    }
}

/// A result the client already has (the JSON text of the result object), as what the
/// provider's bookkeeping needs of it: whether it is a tool error.
fn summary(relayed: &[u8]) -> Result<CallToolResult, ServiceError> {
    #[derive(Deserialize)]
    struct Summary {
        #[serde(rename = "isError")]
        is_error: Option<bool>,
    }
    let summary: Summary = from_json(relayed).map_err(|e| undecodable(&e))?;
    let mut result = CallToolResult::success(Vec::new());
    result.is_error = summary.is_error;
    Ok(result)
}

fn undecodable(e: &serde_json::Error) -> ServiceError {
    ServiceError::McpError(rmcp::ErrorData::internal_error(
        format!("the provider's answer to tools/call could not be decoded: {e}"),
        None,
    ))
}

/// A provider's answer to tools/call as a result the hangar can relay.
pub fn into_call_result(result: ServerResult) -> Result<CallToolResult, ServiceError> {
    match result {
        ServerResult::CallToolResult(r) => Ok(r),
        other => Err(ServiceError::McpError(rmcp::ErrorData::internal_error(
            format!(
                "the provider answered tools/call with an unsupported result ({}); the hangar relays complete results only",
                match other {
                    ServerResult::InputRequiredResult(_) => "input_required",
                    ServerResult::CreateTaskResult(_) => "task",
                    _ => "unexpected type",
                }
            ),
            None,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_result_is_summarised_by_its_tool_error_flag() {
        let line = br#"{"jsonrpc":"2.0","id":"hangar-7","result":{"content":[{"type":"text","text":"{\"isError\":false}"}],"isError":true}}"#;
        let Some(Ours::Answer(n, relayed)) = RawTap::classify(line) else {
            panic!("an answer to a raw call");
        };
        assert_eq!(n, 7);
        let relayed = relayed.expect("a plain result goes to the client as it is");
        assert!(line[relayed.clone()].starts_with(b"{\"content\""));
        let failed = summary(&line[relayed]).expect("a result object");
        assert_eq!(failed.is_error, Some(true));
        assert!(failed.content.is_empty(), "the content is the client's");

        let ok = summary(br#"{"content":[]}"#).expect("a result object");
        assert_eq!(ok.is_error, None);
        assert!(summary(b"[1]").is_err(), "not a result object");
    }

    #[test]
    fn only_answers_to_the_hangars_own_ids_are_taken() {
        for line in [
            &br#"{"jsonrpc":"2.0","id":7,"result":{}}"#[..],
            br#"{"jsonrpc":"2.0","id":"other-7","result":{}}"#,
            br#"{"jsonrpc":"2.0","id":"hangar-7","method":"ping"}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"id":"hangar-7"}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":1}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"x-hangar-7","progress":1}}"#,
        ] {
            assert!(
                RawTap::classify(line).is_none(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let typed = br#"{"jsonrpc":"2.0","id":"hangar-3","result":{"resultType":"task"}}"#;
        assert!(
            matches!(RawTap::classify(typed), Some(Ours::Answer(3, None))),
            "left for the typed path"
        );
    }

    #[test]
    fn progress_under_a_raw_calls_id_is_taken_for_that_call() {
        let line = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"hangar-9","progress":2,"total":5,"message":"two"}}"#;
        let Some(Ours::Progress(n, progress, total, message)) = RawTap::classify(line) else {
            panic!("progress of a raw call");
        };
        assert_eq!(
            (n, progress, total, message.as_deref()),
            (9, 2.0, Some(5.0), Some("two"))
        );
    }

    #[tokio::test]
    async fn progress_arrives_in_order_before_the_answer_which_then_is_not_relayed_at_once() {
        let (calls, mut tap) = RawCalls::new(SharedWriter::new(tokio::io::sink()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (done, answer) = oneshot::channel();
        let sink: ProgressSink = {
            let seen = seen.clone();
            Arc::new(move |p, _, _| seen.lock().unwrap().push(p))
        };
        let (reply_out, _reply_in) = tokio::io::duplex(1024);
        let reply = Reply::new(
            SharedWriter::new(reply_out),
            RawValue::from_string("1".into()).unwrap(),
        );
        lock(&calls.table).pending.insert(
            4,
            Pending {
                reply: Some(reply),
                done,
                progress: Some(sink),
            },
        );
        for p in 1..=2 {
            let line = format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":"hangar-4","progress":{p}}}}}"#
            );
            assert!(matches!(
                tap.intercept(line.into_bytes()),
                Tapped::Taken(None)
            ));
        }
        assert_eq!(*seen.lock().unwrap(), vec![1.0, 2.0]);
        let answer_line = br#"{"jsonrpc":"2.0","id":"hangar-4","result":{"content":[]}}"#.to_vec();
        assert!(matches!(tap.intercept(answer_line), Tapped::Taken(None)));
        let answer = answer.await.expect("answered");
        assert!(
            answer.relayed.is_none(),
            "after progress the caller sends the answer"
        );
    }
}
