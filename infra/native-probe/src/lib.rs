//! Decode-only probe: what `pipeline/otlp/_heads.c`'s `scan` does on the hot path,
//! in safe Rust with the maintained `opentelemetry-proto` (prost) message types.
//!
//! Not part of the package: it exists to measure speed and behaviour on hostile
//! bytes against the C scanner and upb. No `unsafe` here; prost checks lengths,
//! wire types, UTF-8 of every string and a recursion limit, and returns errors.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

mod subset;

const STATUS_ERROR: i32 = 2;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// One span as the probe returns it (plain Rust values, built without the GIL).
struct Head {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    start_ns: u64,
    duration_ns: i64,
    service: String,
    name: String,
    is_error: bool,
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

fn service_name(attributes: &[KeyValue]) -> &str {
    for kv in attributes {
        if kv.key == "service.name" {
            if let Some(Value::StringValue(s)) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                return s;
            }
        }
    }
    ""
}

fn decode(value: &[u8]) -> Result<ExportTraceServiceRequest, prost::DecodeError> {
    ExportTraceServiceRequest::decode(value)
}

fn heads(request: ExportTraceServiceRequest) -> Vec<Head> {
    let mut out = Vec::new();
    for rs in request.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .map_or("", |r| service_name(&r.attributes));
        for ss in rs.scope_spans {
            for span in ss.spans {
                out.push(Head {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    start_ns: span.start_time_unix_nano,
                    duration_ns: span
                        .end_time_unix_nano
                        .wrapping_sub(span.start_time_unix_nano)
                        as i64,
                    service: service.to_owned(),
                    name: span.name,
                    is_error: span.status.as_ref().is_some_and(|s| s.code == STATUS_ERROR),
                });
            }
        }
    }
    out
}

fn subset_heads(request: subset::Request) -> Vec<Head> {
    let mut out = Vec::new();
    for rs in request.resource_spans {
        let service = rs.resource.as_ref().map_or("", |r| {
            r.attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.string_value.as_deref())
                .unwrap_or("")
        });
        for ss in rs.scope_spans {
            for span in ss.spans {
                out.push(Head {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    start_ns: span.start_time_unix_nano,
                    duration_ns: span
                        .end_time_unix_nano
                        .wrapping_sub(span.start_time_unix_nano)
                        as i64,
                    service: service.to_owned(),
                    name: span.name,
                    is_error: span.status.as_ref().is_some_and(|s| s.code == STATUS_ERROR),
                });
            }
        }
    }
    out
}

fn to_list(py: Python<'_>, decoded: Vec<Head>) -> PyResult<Bound<'_, PyList>> {
    let items = decoded
        .into_iter()
        .map(|h| {
            (
                h.trace_id,
                h.span_id,
                h.parent_span_id,
                h.start_ns,
                h.duration_ns,
                h.service,
                h.name,
                h.is_error,
            )
                .into_pyobject(py)
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// scan_subset(value) -> the same as scan, decoding only the fields it returns.
#[pyfunction]
fn scan_subset<'py>(py: Python<'py>, value: &Bound<'py, PyBytes>) -> PyResult<Bound<'py, PyList>> {
    let raw: &[u8] = value.as_bytes();
    let decoded = py
        .allow_threads(|| subset::Request::decode(raw).map(subset_heads))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    to_list(py, decoded)
}

/// scan(value) -> list[(trace_id, span_id, parent_span_id, start_ns, duration_ns,
/// service_name, span_name, is_error)]; ValueError on bytes prost rejects.
/// Decoding runs without the GIL.
#[pyfunction]
fn scan<'py>(py: Python<'py>, value: &Bound<'py, PyBytes>) -> PyResult<Bound<'py, PyList>> {
    let raw: &[u8] = value.as_bytes();
    let decoded = py
        .allow_threads(|| decode(raw).map(heads))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    to_list(py, decoded)
}

/// decode_count(value) -> number of spans: the decode alone, no Python objects.
#[pyfunction]
fn decode_count(py: Python<'_>, value: &Bound<'_, PyBytes>) -> PyResult<usize> {
    let raw: &[u8] = value.as_bytes();
    let request = py
        .allow_threads(|| decode(raw))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(request
        .resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| ss.spans.len())
        .sum())
}

#[pymodule]
fn otlp_probe(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    m.add_function(wrap_pyfunction!(decode_count, m)?)?;
    m.add_function(wrap_pyfunction!(scan_subset, m)?)?;
    Ok(())
}
