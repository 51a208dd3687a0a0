"""Privacy you can prove: erasure, retention, the audit trail's entries, the processing register.

- :mod:`.erasure`: the right to erasure (forget a client, a file or a folder);
- :mod:`.retention`: data kept no longer than the firm decided;
- :mod:`.audit_trail`: what each user-facing action writes to the audit log, and reading it back;
- :mod:`.register`: the processing register (GDPR art. 30), as data;
- :mod:`.register_markdown`: the register rendered as Markdown, in French or English.

Imports :mod:`huisclos.pipeline.models` and :mod:`huisclos.pipeline.indexing`.
"""
