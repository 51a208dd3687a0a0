"""The processing register as a Markdown document, in French or English."""

from __future__ import annotations

from typing import Any

from huisclos.index.language import Language

__all__ = ["render_markdown"]

_TEXT: dict[str, dict[str, str]] = {
    "title": {
        "fr": "Registre des activités de traitement — huisclos",
        "en": "Record of processing activities — huisclos",
    },
    "generated": {"fr": "Établi le", "en": "Generated on"},
    "controller": {"fr": "Responsable du traitement", "en": "Controller"},
    "contact": {"fr": "Contact protection des données", "en": "Data-protection contact"},
    "unset": {
        "fr": "non renseigné (réglages `controller_name`, `controller_contact`)",
        "en": "not set (settings `controller_name`, `controller_contact`)",
    },
    "purpose_h": {"fr": "Finalité", "en": "Purpose"},
    "purpose": {
        "fr": "Recherche et réponse aux questions des collaborateurs sur les dossiers des "
        "clients du cabinet, avec citation des sources, au moyen d'un modèle de langage "
        "exécuté localement.",
        "en": "Searching the firm's client files and answering staff questions over them, "
        "with cited sources, using a language model that runs locally.",
    },
    "subjects": {
        "fr": "Personnes concernées : les clients du cabinet et les personnes citées dans "
        "leurs documents.",
        "en": "Data subjects: the firm's clients and the people named in their documents.",
    },
    "recipients": {
        "fr": "Destinataires : aucun en dehors du cabinet. Transferts hors UE : aucun.",
        "en": "Recipients: none outside the firm. Transfers outside the EU: none.",
    },
    "recipients_net": {
        "fr": "Destinataires : les serveurs du cabinet configurés (voir Modèles et Stockage). "
        "Transferts hors UE : à vérifier selon l'emplacement de ces serveurs.",
        "en": "Recipients: the firm's configured servers (see Models and Storage). Transfers "
        "outside the EU: to be checked according to where those servers are.",
    },
    "local_yes": {
        "fr": "Aucune donnée ne quitte cette machine : pas de service en nuage, pas de "
        "télémétrie, pas de téléchargement de modèle ; un garde-fou refuse toute connexion "
        "sortante hors de la boucle locale et des hôtes configurés.",
        "en": "No data leaves this machine: no cloud service, no telemetry, no model "
        "download; a guard refuses every outbound connection beyond loopback and the "
        "configured hosts.",
    },
    "local_no": {
        "fr": "Attention : un service configuré est sur une autre machine du réseau "
        "(voir Modèles et Stockage) ; les données y transitent, sans sortir du réseau du "
        "cabinet.",
        "en": "Warning: a configured service is on another machine of the network (see "
        "Models and Storage); data goes there, without leaving the firm's network.",
    },
    "allowed": {"fr": "Hôtes autorisés", "en": "Allowed hosts"},
    "roots_h": {"fr": "Dossiers indexés", "en": "Indexed folders"},
    "clients_h": {"fr": "Clients", "en": "Clients"},
    "client": {"fr": "Client", "en": "Client"},
    "files": {"fr": "Fichiers", "en": "Files"},
    "chunks": {"fr": "Passages", "en": "Passages"},
    "types": {"fr": "Types de documents", "en": "Document types"},
    "personal": {"fr": "Données personnelles repérées", "en": "Personal identifiers found"},
    "modified": {"fr": "Dernière modification", "en": "Last modified"},
    "shared": {"fr": "(fichiers communs)", "en": "(shared files)"},
    "none": {"fr": "aucune", "en": "none"},
    "totals": {"fr": "Total", "en": "Total"},
    "storage_h": {"fr": "Stockage et protection", "en": "Storage and protection"},
    "vault": {"fr": "Coffre", "en": "Vault"},
    "store": {"fr": "Index vectoriel", "en": "Vector index"},
    "encryption": {
        "fr": "Chiffrement : AES-256-GCM, une clé par client, chaque clé protégée par la "
        "clé maîtresse",
        "en": "Encryption: AES-256-GCM, one key per client, each wrapped by the master key",
    },
    "master": {"fr": "Clé maîtresse", "en": "Master key"},
    "in_clear": {
        "fr": "En clair : les vecteurs d'embeddings (ils permettent la recherche et peuvent "
        "laisser deviner le sens approximatif des textes), les fréquences des termes de "
        "l'index par mots-clés (les termes eux-mêmes sont des empreintes à clé, par client), "
        "tailles, dates, types et comptages. Textes, noms de fichiers et noms de clients "
        "sont chiffrés.",
        "en": "In clear: the embedding vectors (needed for search; they can leak the "
        "approximate meaning of the text), the term frequencies of the keyword index (the "
        "terms themselves are keyed hashes, per client), sizes, dates, types and counts. "
        "Text, file names and client names are encrypted.",
    },
    "mode": {"fr": "Droits du répertoire", "en": "Directory permissions"},
    "models_h": {"fr": "Modèles", "en": "Models"},
    "embedding": {"fr": "Plongements (recherche)", "en": "Embeddings (search)"},
    "answers": {"fr": "Réponses", "en": "Answers"},
    "local": {"fr": "sur cette machine", "en": "on this machine"},
    "remote": {"fr": "sur une autre machine du réseau", "en": "on another machine of the network"},
    "retention_h": {"fr": "Conservation", "en": "Retention"},
    "deleted_days": {
        "fr": "Fichiers dont la source a disparu : oubliés après {} jours",
        "en": "Files whose source is gone: forgotten after {} days",
    },
    "inactive_years": {
        "fr": "Clients inactifs : oubliés après {} ans sans modification",
        "en": "Inactive clients: forgotten after {} years without change",
    },
    "no_retention": {
        "fr": "Aucune durée configurée : les données suivent les dossiers (un fichier "
        "supprimé est retiré de l'index à la prochaine mise à jour).",
        "en": "No period configured: data follows the folders (a deleted file leaves the "
        "index at the next update).",
    },
    "per_client": {"fr": "Règles par client", "en": "Per-client rules"},
    "masking": {
        "fr": "Masquage des identifiants dans les réponses : {}",
        "en": "Masking of identifiers in answers: {}",
    },
    "questions": {
        "fr": "Questions conservées dans le journal (chiffrées) : {}",
        "en": "Questions kept in the audit trail (encrypted): {}",
    },
    "on": {"fr": "activé", "en": "on"},
    "off": {"fr": "désactivé", "en": "off"},
    "erasures_h": {"fr": "Derniers effacements", "en": "Last erasures"},
    "when": {"fr": "Date", "en": "Date"},
    "user": {"fr": "Utilisateur", "en": "User"},
    "trigger": {"fr": "Origine", "en": "Trigger"},
    "request": {"fr": "demande", "en": "request"},
    "retention": {"fr": "conservation", "en": "retention"},
    "target": {"fr": "Objet", "en": "Target"},
    "key": {"fr": "Clé détruite", "en": "Key destroyed"},
    "yes": {"fr": "oui", "en": "yes"},
    "no": {"fr": "non", "en": "no"},
    "no_erasure": {"fr": "Aucun effacement enregistré.", "en": "No erasure recorded."},
    "audit_h": {"fr": "Journal d'audit", "en": "Audit trail"},
    "audit_ok": {
        "fr": "{} enregistrements, chaîne d'intégrité vérifiée : intacte.",
        "en": "{} records, integrity chain verified: intact.",
    },
    "audit_bad": {
        "fr": "{} enregistrements, chaîne d'intégrité vérifiée : {} anomalie(s) — voir "
        "`huisclos audit verify`.",
        "en": "{} records, integrity chain verified: {} problem(s) — see `huisclos audit verify`.",
    },
    "duties_h": {"fr": "Droits des personnes", "en": "Data-subject rights"},
    "duties": {
        "fr": "Accès et journal : `huisclos audit show --client C`. Effacement : "
        "`huisclos forget --client C` ou `--path P` (la clé du client est détruite). "
        "Registre : `huisclos register`.",
        "en": "Access and log: `huisclos audit show --client C`. Erasure: "
        "`huisclos forget --client C` or `--path P` (the client's key is destroyed). "
        "Register: `huisclos register`.",
    },
}

_KINDS: dict[str, dict[str, str]] = {
    "email": {"fr": "e-mails", "en": "e-mails"},
    "phone": {"fr": "téléphones", "en": "phones"},
    "iban": {"fr": "IBAN", "en": "IBANs"},
    "nir": {"fr": "n° de sécurité sociale", "en": "social security nos."},
    "siret": {"fr": "SIRET", "en": "SIRET"},
    "siren": {"fr": "SIREN", "en": "SIREN"},
    "card": {"fr": "cartes bancaires", "en": "payment cards"},
    "person": {"fr": "noms de personnes", "en": "person names"},
}


def _counts(counts: dict[str, int], lang: Language, labels: dict[str, dict[str, str]]) -> str:
    if not counts:
        return _TEXT["none"][lang]
    return ", ".join(
        f"{n} {labels.get(kind, {}).get(lang, kind)}" for kind, n in sorted(counts.items())
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(register: dict[str, Any], lang: Language = "fr") -> str:
    """The register as Markdown, in French (``fr``) or English (``en``)."""

    def t(key: str) -> str:
        return _TEXT[key][lang]

    colon = " :" if lang == "fr" else ":"  # French typography: a space before the colon

    lines = [f"# {t('title')}", "", f"{t('generated')} {register['generated_at']}.", ""]
    controller = register["controller"]
    lines += [
        f"- **{t('controller')}**{colon} {controller['name'] or t('unset')}",
        f"- **{t('contact')}**{colon} {controller['contact'] or t('unset')}",
        "",
        f"## {t('purpose_h')}",
        "",
        t("purpose"),
        "",
        t("subjects"),
        "",
        t("recipients") if not register["processing"]["leaves_machine"] else t("recipients_net"),
        "",
        t("local_no") if register["processing"]["leaves_machine"] else t("local_yes"),
        f"{t('allowed')}{colon} {', '.join(register['network']['allowed_hosts'])}.",
        "",
        f"## {t('roots_h')}",
        "",
    ]
    lines += [f"- `{root['path']}`" for root in register["roots"]] or [f"- {t('none')}"]
    lines += ["", f"## {t('clients_h')}", ""]
    lines += [
        f"| {t('client')} | {t('files')} | {t('chunks')} | {t('types')} | {t('personal')} "
        f"| {t('modified')} |",
        "|---|---:|---:|---|---|---|",
    ]
    for client in register["clients"]:
        name = t("shared") if client["shared"] else client["name"]
        types = ", ".join(f"{n} {kind}" for kind, n in client["documents_by_type"].items())
        lines.append(
            f"| {_cell(name)} | {client['files']} | {client['chunks']} | {types} "
            f"| {_counts(client['personal_data'], lang, _KINDS)} "
            f"| {(client['last_modified'] or '-')[:10]} |"
        )
    totals = register["totals"]
    types = ", ".join(f"{n} {kind}" for kind, n in totals["documents_by_type"].items())
    lines.append(
        f"| **{t('totals')}** ({totals['clients']}) | {totals['files']} | {totals['chunks']} "
        f"| {types} | {_counts(totals['personal_data'], lang, _KINDS)} | |"
    )
    storage = register["storage"]
    master = storage["master_key_source"]
    if storage["key_file"]:
        master += f" (`{storage['key_file']}`)"
    lines += [
        "",
        f"## {t('storage_h')}",
        "",
        f"- {t('vault')}{colon} `{storage['vault']}` ({t('mode')} {storage['directory_mode']})",
        f"- {t('store')}{colon} {storage['store']}",
        f"- {t('encryption')}",
        f"- {t('master')}{colon} {master}",
        f"- {t('in_clear')}",
        "",
        f"## {t('models_h')}",
        "",
    ]
    for model in register["models"]:
        role = t("embedding") if model["role"] == "embedding" else t("answers")
        where = t("local") if model["local"] else t("remote")
        lines.append(
            f"- {role}{colon} {model['name']} ({model['backend']}), `{model['location']}`, {where}"
        )
    retention = register["retention"]
    lines += ["", f"## {t('retention_h')}", ""]
    if retention["deleted_days"] is not None:
        lines.append(f"- {t('deleted_days').format(retention['deleted_days'])}")
    if retention["inactive_years"] is not None:
        lines.append(f"- {t('inactive_years').format(retention['inactive_years'])}")
    if retention["deleted_days"] is None and retention["inactive_years"] is None:
        lines.append(f"- {t('no_retention')}")
    for client, rule in retention["by_client"].items():
        rules = ", ".join(f"{k} = {v}" for k, v in rule.items())
        lines.append(f"- {t('per_client')} — {_cell(client)}{colon} {rules}")
    lines += [
        f"- {t('masking').format(t('on') if register['masking_in_answers'] else t('off'))}",
        f"- {t('questions').format(t('on') if register['questions_kept'] else t('off'))}",
        "",
        f"## {t('erasures_h')}",
        "",
    ]
    if register["erasures"]:
        lines += [
            f"| {t('when')} | {t('user')} | {t('trigger')} | {t('target')} | {t('files')} "
            f"| {t('chunks')} | {t('key')} |",
            "|---|---|---|---|---:|---:|---|",
        ]
        for erasure in register["erasures"]:
            lines.append(
                f"| {erasure['time']} | {_cell(erasure['user'])} | {t(erasure['trigger'])} "
                f"| {erasure['target']} | {erasure['files']} | {erasure['chunks']} "
                f"| {t('yes') if erasure['key_destroyed'] else t('no')} |"
            )
    else:
        lines.append(t("no_erasure"))
    audit = register["audit"]
    state = (
        t("audit_ok").format(audit["records"])
        if audit["intact"]
        else t("audit_bad").format(audit["records"], audit["problems"])
    )
    lines += ["", f"## {t('audit_h')}", "", f"`{audit['path']}`{colon} {state}", ""]
    lines += [f"## {t('duties_h')}", "", t("duties"), ""]
    return "\n".join(lines)
