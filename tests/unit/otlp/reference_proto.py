"""The otlp_proto span walk as it was before the native scan (commit a8c7349).

The oracle of the equivalence tests: every span the pipeline decodes, through
``pipeline/otlp/_heads.c`` or its Python paths, must equal what this builds,
errors included. Not used by the pipeline. Only the walk is kept here: the
parse and the value renderings it calls (``parse_request``, ``attributes``,
events, links) are unchanged in :mod:`pipeline.otlp.otlp_proto` and imported.
"""

from __future__ import annotations

from pipeline.enrich import Enricher
from pipeline.model import Span
from pipeline.otlp.ids import KINDS, STATUSES, check_ids, check_times
from pipeline.otlp.otlp_proto import _events, _links, attributes, parse_request


def spans_from_proto(value: bytes, enricher: Enricher) -> list[Span]:
    """Decode one ``otlp_proto`` record into enriched spans (may be empty)."""
    request = parse_request(value)
    spans: list[Span] = []
    append = spans.append
    derive = enricher.derive
    for resource_spans in request.resource_spans:
        resource_attributes = attributes(resource_spans.resource.attributes)
        service = resource_attributes.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_name = scope.name
            scope_version = scope.version
            for span in scope_spans.spans:
                trace_id, span_id, parent_id = check_ids(
                    span.trace_id, span.span_id, span.parent_span_id
                )
                # Added after a8c7349 (issue #12): times the store cannot hold are bad_span.
                check_times(span.start_time_unix_nano, span.end_time_unix_nano)
                events = span.events
                links = span.links
                name = span.name
                kind = KINDS.get(span.kind, "")
                status = span.status
                status_code = STATUSES.get(status.code, "")
                start = span.start_time_unix_nano
                span_attributes = attributes(span.attributes)
                operation, is_error, span_attributes = derive(
                    service, name, kind, status_code, span_attributes
                )
                append(
                    Span(
                        start,
                        trace_id,
                        span_id,
                        parent_id,
                        span.trace_state,
                        name,
                        kind,
                        service,
                        resource_attributes,
                        scope_name,
                        scope_version,
                        span_attributes,
                        max(0, span.end_time_unix_nano - start),
                        status_code,
                        status.message,
                        _events(events) if events else (),
                        _links(links) if links else (),
                        operation,
                        is_error,
                        "otlp_proto",
                    )
                )
    return spans
