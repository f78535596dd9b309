//! OTLP receivers for the tracing tests and the core bench: a gRPC (tonic) and an HTTP/protobuf
//! server on free loopback ports, each decoding the real `ExportTraceServiceRequest`.
//!
//! A receiver keeps the requests as they were decoded and flattens them into [`Seen`] spans only
//! when asked: in the core bench it runs in the process that also times the calls, and
//! flattening a batch there (maps, hex strings) would be charged to the traced hangar.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use axum::body::Bytes;
use axum::http::HeaderMap;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;

use crate::wait_until_async;

/// One exported span, flattened: what the tests look at.
#[derive(Debug, Clone)]
pub struct Seen {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub kind: i32,
    pub status: i32,
    pub attributes: HashMap<String, String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn flatten(request: &ExportTraceServiceRequest) -> Vec<Seen> {
    let mut out = Vec::new();
    for rs in &request.resource_spans {
        let attrs = |kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
            kvs.iter()
                .map(|kv| {
                    let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(AnyValue::StringValue(s)) => s.clone(),
                        Some(AnyValue::IntValue(i)) => i.to_string(),
                        Some(AnyValue::BoolValue(b)) => b.to_string(),
                        Some(AnyValue::DoubleValue(d)) => d.to_string(),
                        other => format!("{other:?}"),
                    };
                    (kv.key.clone(), v)
                })
                .collect::<HashMap<_, _>>()
        };
        let service = rs
            .resource
            .as_ref()
            .map(|r| attrs(&r.attributes))
            .and_then(|a| a.get("service.name").cloned())
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                out.push(Seen {
                    service: service.clone(),
                    name: span.name.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    kind: span.kind,
                    status: span.status.as_ref().map_or(0, |s| s.code),
                    attributes: attrs(&span.attributes),
                });
            }
        }
    }
    out
}

/// What a receiver got: the requests, and the Authorization header of each.
#[derive(Default, Clone)]
pub struct Received {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    pub auth: Arc<Mutex<Vec<String>>>,
}

impl Received {
    pub fn spans(&self) -> Vec<Seen> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(flatten)
            .collect()
    }

    /// How many spans arrived, without flattening them.
    pub fn span_count(&self) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum()
    }

    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Seen) -> bool) -> Result<Seen> {
        wait_until_async(Duration::from_secs(20), || {
            let found = self.spans().into_iter().find(|s| pred(s));
            async move { found }
        })
        .await
        .ok_or_else(|| anyhow!("no span {what} arrived; got {:#?}", self.spans()))
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if let Some(auth) = request.metadata().get("authorization") {
            self.auth
                .lock()
                .unwrap()
                .push(auth.to_str().unwrap_or_default().to_string());
        }
        self.requests.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver on a free loopback port.
pub async fn grpc_receiver() -> Result<(SocketAddr, Received)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let received = Received::default();
    let service = TraceServiceServer::new(received.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Ok((addr, received))
}

/// An OTLP/HTTP receiver (protobuf bodies) on a free loopback port, at `path`.
pub async fn http_receiver(path: &'static str) -> Result<(SocketAddr, Received)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let received = Received::default();
    let state = received.clone();
    let app = axum::Router::new().route(
        path,
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                if let Some(auth) = headers.get("authorization") {
                    state
                        .auth
                        .lock()
                        .unwrap()
                        .push(auth.to_str().unwrap_or_default().to_string());
                }
                match ExportTraceServiceRequest::decode(body) {
                    Ok(request) => {
                        state.requests.lock().unwrap().push(request);
                        (
                            axum::http::StatusCode::OK,
                            ExportTraceServiceResponse::default().encode_to_vec(),
                        )
                    }
                    Err(e) => (
                        axum::http::StatusCode::BAD_REQUEST,
                        format!("not an ExportTraceServiceRequest: {e}").into_bytes(),
                    ),
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, received))
}
