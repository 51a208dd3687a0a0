"""What the vault holds, and its privacy duties, under ``/api``.

Its status (documents, last update, failed files and why) and its clients
with their counts; forgetting a client (its key destroyed) or the files at or
under a path; the audit trail, read only (questions stay encrypted: only
``question_kept`` says one is kept); the processing register, as JSON or
Markdown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from huisclos.config import ConfigError, VaultBusyError
from huisclos.pipeline.privacy.register import render_markdown
from huisclos.pipeline.server.core import ApiError, Vault, error_responses, printable
from huisclos.pipeline.server.schemas import (
    AuditOut,
    ClientOut,
    ClientsOut,
    ForgetOut,
    ForgetRequest,
    StatusOut,
)

__all__ = ["AUDIT_MAX", "router"]

AUDIT_MAX = 1000
"""The most audit records one request returns."""

router = APIRouter(prefix="/api")


@router.get(
    "/status",
    response_model=StatusOut,
    responses=error_responses(401, 403),
    summary="What the vault holds: documents, last update, failed files and why",
)
def status(hc: Vault) -> StatusOut:
    return StatusOut.model_validate(printable(hc.status().to_dict()))


@router.get(
    "/clients",
    response_model=ClientsOut,
    responses=error_responses(401, 403),
    summary="Indexed clients with their counts",
)
def clients(hc: Vault) -> ClientsOut:
    found = hc.status().clients
    return ClientsOut(clients=[ClientOut.model_validate(c, from_attributes=True) for c in found])


@router.post(
    "/forget",
    response_model=ForgetOut,
    responses=error_responses(401, 403, 404, 409, 422),
    summary="Erase a client (destroying its key) or the files at or under a path",
)
def forget(body: ForgetRequest, hc: Vault) -> ForgetOut:
    try:
        report = hc.forget(client=body.client, path=body.path)
    except VaultBusyError:
        raise
    except ConfigError as exc:  # no such client or path, or already forgotten
        raise ApiError(404, "not_indexed", str(exc)) from exc
    return ForgetOut.model_validate(report.to_dict())


@router.get(
    "/audit",
    response_model=AuditOut,
    responses=error_responses(401, 403, 422),
    summary="The audit trail (read only; questions stay encrypted)",
)
def audit(
    hc: Vault,
    client: Annotated[str | None, Query(description="Records concerning this client.")] = None,
    since: Annotated[datetime | None, Query(description="From this date or time.")] = None,
    action: Annotated[list[str] | None, Query(description="Only these actions.")] = None,
    limit: Annotated[int, Query(ge=1, le=AUDIT_MAX, description="The last N.")] = 100,
) -> AuditOut:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    entries = hc.audit(client=client, since=since, actions=action)
    rows = []
    for entry in entries[-limit:]:
        row = entry.to_dict()
        row["question_kept"] = bool(row.pop("question", None) or entry.record.question)
        rows.append(row)
    return AuditOut.model_validate({"entries": rows, "total": len(entries)})


@router.get(
    "/register",
    responses={
        200: {
            "description": "The register (register.schema.json), or Markdown with format=md",
            "content": {"application/json": {}, "text/markdown": {}},
        },
        **error_responses(401, 403, 422),
    },
    summary="The processing register (GDPR art. 30)",
)
def register(
    hc: Vault,
    format: Annotated[str, Query(pattern="^(json|md)$")] = "json",
    lang: Annotated[str, Query(pattern="^(fr|en)$")] = "fr",
) -> Response:
    built = hc.register()
    if format == "md":
        text = render_markdown(built, "en" if lang == "en" else "fr")
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
    return JSONResponse(built)
