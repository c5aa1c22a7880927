"""What text the store accepts: limits, sanitising, and free text reduced to safe search terms."""

from __future__ import annotations

import re
import unicodedata

MAX_QUERY_CHARS = 4000
MAX_QUERY_TERMS = 32
MAX_ID_CHARS = 256

STOPWORDS = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "had", "has", "have",
    "he", "her", "his", "how", "i", "in", "is", "it", "its", "of", "on", "or", "she", "that", "the", "their",
    "them", "then", "there", "they", "this", "to", "was", "were", "what", "when", "where", "which", "who",
    "whom", "why", "will", "with", "you",
])

# C0/C1 control characters except tab and newline, and the bidirectional overrides that make text
# display differently from what it says.
_UNSAFE_CHARS = re.compile("[\x01-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class StoreError(ValueError):
    """A record or query the store refuses; the message says why."""


def decode_utf8(data: bytes, what: str) -> str:
    """Strict UTF-8 decoding with an error that says where the bad bytes are."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise StoreError(f"{what} is not valid UTF-8 (byte {err.start}: {err.reason})") from None


def clean_text(name: str, value: str, max_chars: int) -> str:
    """`value` checked and sanitised: NFC-normalised, control and bidi-override characters replaced by a
    space, carriage returns made newlines. Refused (StoreError) when it is not text, holds a NUL or a
    lone surrogate, or is longer than `max_chars`."""
    if not isinstance(value, str):
        raise StoreError(f"{name} must be text, got {type(value).__name__}")
    if len(value) > max_chars:
        raise StoreError(f"{name} has {len(value)} characters, more than {max_chars}")
    if "\x00" in value:
        raise StoreError(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise StoreError(f"{name} is not valid Unicode text: {err.reason}") from None
    value = unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))
    return _UNSAFE_CHARS.sub(" ", value)


def query_terms(text: str) -> list[str]:
    """Lower-case word terms of free text, stop words removed: safe to hand to FTS5 quoted."""
    words = re.findall(r"\w+", text.lower())
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS))[:MAX_QUERY_TERMS]
