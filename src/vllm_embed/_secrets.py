"""Keeping API keys out of URLs, `repr`, logs and error messages."""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

REDACTED = "***"


def split_user_info(url: str) -> tuple[str, str | None]:
    """Separates the credentials written into a URL (`http://user:KEY@host/v1`) from the URL.

    Returns:
        The URL without its user-info, and the secret it carried: the password, or the user name when there
        is no password (`http://KEY@host`), percent-decoded; `None` when the URL has no user-info.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    user_info, _, host = parts.netloc.rpartition("@")
    user, has_password, password = user_info.partition(":")
    secret = unquote(password if has_password and password else user)
    return urlunsplit(parts._replace(netloc=host)), secret or None


class Redactor:
    """Replaces secrets in any text built from server content or errors; the one place this is done.

    A secret is also found percent-encoded or JSON-escaped, as a server or an HTTP library may echo it.
    """

    def __init__(self, secrets: Iterable[str | None]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms.update((secret, quote(secret, safe=""), json.dumps(secret)[1:-1]))
        self._forms = sorted(forms, key=len, reverse=True)  # longest first: no partial leftovers

    def __call__(self, text: str) -> str:
        """Returns `text` with every known secret replaced by `***`."""
        for form in self._forms:
            text = text.replace(form, REDACTED)
        return text
