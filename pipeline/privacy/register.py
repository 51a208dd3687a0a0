"""The processing register (GDPR art. 30 style): what an inspector asks to see.

:func:`build_register` gathers, from the vault itself, the roots and clients
indexed, document counts by type, personal identifiers found, where the data
is stored and how it is protected, the models and where they run, the
retention settings, the last erasures and the state of the audit trail.
:func:`render_markdown` writes it in French or English; the JSON form follows
``register.schema.json``, shipped beside this module.

Example::

    with Huisclos() as hc:
        register = hc.register()
        print(render_markdown(register, "fr"))
"""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from huisclos.config import Settings, TamperedError
from huisclos.connectors.scan import SHARED_CLIENT
from huisclos.index.vault import Vault
from huisclos.pipeline.models.embedding import PACKAGED_MODELS
from huisclos.pipeline.models.llm_weights import CATALOG
from huisclos.pipeline.privacy.register_markdown import render_markdown

__all__ = ["SCHEMA_VERSION", "build_register", "register_schema", "render_markdown"]

SCHEMA_VERSION = "huisclos-register/1"
_LAST_ERASURES = 20


def register_schema() -> dict[str, Any]:
    """The JSON Schema of the register (draft 2020-12)."""
    text = resources.files("huisclos.pipeline.privacy").joinpath("register.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _iso(timestamp: float | None) -> str | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _embedding_location(spec: str) -> str:
    if spec in PACKAGED_MODELS:
        module = PACKAGED_MODELS[spec]
        found = importlib.util.find_spec(module)
        if found is not None and found.origin:
            return str(Path(found.origin).parent)
        return f"Python package {module} (not installed)"
    return str(Path(spec).expanduser())


def _models(settings: Settings) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = [
        {
            "role": "embedding",
            "backend": "embedded",
            "name": spec,
            "location": _embedding_location(spec),
            "local": True,
        }
        for spec in (settings.embedding_model, settings.embedding_model_en)
        if spec
    ]
    if settings.generator == "ollama":
        models.append(
            {
                "role": "answers",
                "backend": "ollama",
                "name": settings.ollama_model,
                "location": settings.ollama_url,
                "local": settings.answers_stay_local,
            }
        )
    else:
        spec = settings.llm_model
        path = (
            settings.resolved_models_dir / CATALOG[spec].filename
            if spec in CATALOG
            else Path(spec).expanduser()
        )
        models.append(
            {
                "role": "answers",
                "backend": "llamacpp",
                "name": spec,
                "location": str(path),
                "local": True,
            }
        )
    return models


def _clients(vault: Vault) -> list[dict[str, Any]]:
    names = vault.client_names()
    settings = vault.settings
    by_client: dict[str, dict[str, Any]] = {}
    for row in vault.manifest.all_files():
        if row.state != "indexed":
            continue
        entry = by_client.setdefault(
            row.client_id,
            {"types": Counter(), "personal": Counter(), "files": 0, "chunks": 0, "m": 0, "u": 0.0},
        )
        entry["types"][row.kind or "other"] += 1
        entry["files"] += 1
        entry["chunks"] += row.chunks
        entry["personal"].update(json.loads(row.personal) if row.personal else {})
        entry["m"] = max(entry["m"], row.mtime_ns)
        entry["u"] = max(entry["u"], row.updated)
    failed = {cid: f for cid, _, _, f in vault.manifest.counts_by_client()}
    clients = []
    for client_id, entry in by_client.items():
        name = names.get(client_id, "")
        clients.append(
            {
                "name": name,
                "shared": name == SHARED_CLIENT,
                "files": entry["files"],
                "chunks": entry["chunks"],
                "failed": failed.get(client_id, 0),
                "documents_by_type": dict(sorted(entry["types"].items())),
                "personal_data": dict(sorted(entry["personal"].items())),
                "last_modified": _iso(entry["m"] / 1e9),
                "last_indexed": _iso(entry["u"]),
                "retention": settings.retention_by_client.get(name, {}),
            }
        )
    clients.sort(key=lambda c: (c["shared"], c["name"].lower()))
    return clients


def _erasures(vault: Vault) -> list[dict[str, Any]]:
    try:
        records = vault.audit.select(actions=["forget", "retention"])[-_LAST_ERASURES:]
    except TamperedError:  # a damaged trail: the register says so in "audit"
        return []
    return [
        {
            "time": record.time,
            "user": record.user,
            "trigger": "retention" if record.action == "retention" else "request",
            "target": str(record.details.get("target", "")),
            "files": int(record.details.get("files") or 0),
            "chunks": int(record.details.get("chunks") or 0),
            "key_destroyed": bool(record.details.get("key_destroyed")),
        }
        for record in reversed(records)
    ]


def build_register(vault: Vault) -> dict[str, Any]:
    """The register as a JSON-ready dict (see ``register.schema.json``)."""
    settings = vault.settings
    clients = _clients(vault)
    types: Counter[str] = Counter()
    personal: Counter[str] = Counter()
    for client in clients:
        types.update(client["documents_by_type"])
        personal.update(client["personal_data"])
    roots = vault.roots()
    report = vault.audit.verify()
    leaves = not (settings.answers_stay_local and settings.store_is_local)
    vault_file = json.loads((settings.home / "vault.json").read_text())
    key_source = str(vault_file.get("key_source", settings.key_source))
    return {
        "schema": SCHEMA_VERSION,
        "generated_at": _iso(datetime.now(UTC).timestamp()),
        "controller": {"name": settings.controller_name, "contact": settings.controller_contact},
        "processing": {
            "leaves_machine": leaves,
            "telemetry": False,
            "recipients": [f"configured host {host}" for host in settings.network_hosts()]
            if leaves
            else [],
            # huisclos sends nothing abroad; where a configured host is, the firm knows
            "transfers_outside_eu": None if leaves else False,
        },
        "roots": [{"path": str(path)} for path in sorted(roots.values())],
        "clients": clients,
        "totals": {
            "clients": len(clients),
            "files": sum(c["files"] for c in clients),
            "chunks": sum(c["chunks"] for c in clients),
            "documents_by_type": dict(sorted(types.items())),
            "personal_data": dict(sorted(personal.items())),
        },
        "storage": {
            "vault": str(settings.home),
            "store": (
                f"chroma server {settings.chroma_host}:{settings.chroma_port}"
                if settings.chroma_host
                else f"embedded chroma in {settings.home / 'chroma'}"
            ),
            "encryption": "AES-256-GCM, one data key per client, wrapped by the master key",
            "master_key_source": key_source,
            "key_file": str(settings.resolved_key_file) if key_source == "file" else None,
            "in_clear": [
                "embeddings",
                "keyword-index statistics (term counts under keyed hashes)",
                "sizes",
                "dates",
                "file types",
                "counts",
            ],
            "directory_mode": "0700",
        },
        "models": _models(settings),
        "network": {
            "guard": True,
            "allowed_hosts": ["loopback", *settings.network_hosts()],
        },
        "retention": {
            "deleted_days": settings.retention_deleted_days,
            "inactive_years": settings.retention_inactive_years,
            "by_client": settings.retention_by_client,
        },
        "masking_in_answers": settings.mask_personal_data,
        "questions_kept": settings.audit_questions,
        "erasures": _erasures(vault),
        "audit": {
            "path": str(settings.home / "audit.jsonl"),
            "records": report.records,
            "intact": report.ok,
            "problems": len(report.problems),
        },
    }
