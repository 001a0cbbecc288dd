"""Each registry version is an immutable commit to Hugging Face clients.

A version's commit id is ``sha1("mlgate-version\\0" name "\\0" number "\\0" content digest)``:
40 hex characters like a git commit, so clients cache snapshots under it, derived from what
never changes about a version. Kept apart from the routes (no web framework imported), for
the CLI's remote mode.
"""

from __future__ import annotations

import hashlib

from mlgate.registry.records import Version


def commit_id(version: Version) -> str:
    """The immutable commit id of a version."""
    text = f"mlgate-version\0{version.model}\0{version.number}\0{version.content_digest}"
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
