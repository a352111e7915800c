"""What may not leave the process, as rules: the words that make a key secret, the shapes that
give a secret away inside any text, and the pass that applies them to a serialised Sentry event.

scrub_event runs on every serialised event, log, metric and span, whichever SDK generation
sent it: any key that *contains* a sensitive word (or is one of the SDK's exact names), query
strings, messages, exception values, tags, contexts, attributes, and secrets that show
themselves by their shape (bearer tokens, JWTs, card numbers, e-mail and IP addresses, URL
credentials).

Standard library only, so the rules are read and tested without the SDK;
app/sentry_integration.py applies them. docs/adr/0002-optional-sentry.md lists every place of
an envelope and its rule.
"""

import ipaddress
import re
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

Event = dict[str, Any]
FILTERED = "[Filtered]"

# Words that make a key sensitive; `_` stands for an optional separator, so "api_key" also
# matches apiKey, api-key, "api key" and api.key. One list serves keys and key=value text alike.
_SENSITIVE_WORDS = (
    *("pass_w", "pass_phrase", "pass_code", "pwd", "secret", "token"),
    *("api_key", "access_key", "private_key", "authoriz", "auth(?!or)", "cookie", "session"),
    *("csrf", "xsrf", "credential", "signature", "dsn", "ssn", "social_security", "baggage"),
    "jwt",
    *("card_number", "credit_card", "cc_number", "cvv", "cvc", "iban", "totp", "mfa", "pin_code"),
)
_SENSITIVE_WORD = "|".join(word.replace("_", r"[\s_.\-]?") for word in _SENSITIVE_WORDS)
# Keys that name personal data or a session exactly: the SDK's own denylists (2.x applied them
# before our pass; 3.x has none), and e-mail, which only the user's own field may carry, and
# only when the operator opts in (scrub_event).
_EXACT_KEYS = (
    *("email", "ipaddress", "remoteaddr", "xforwardedfor", "xrealip"),
    *("connectsid", "phpsessid", "symfony"),
)
# A key is sensitive when, lower-cased and without separators, it contains one of the words
# or is one of a few names too short to look for inside others, or one of the exact keys.
_SENSITIVE_KEY = re.compile(
    rf"{_SENSITIVE_WORD}|^pass$|^otp|otp$|^pin$|^(?:{'|'.join(_EXACT_KEYS)})$"
)
_KEY_SEPARATORS = re.compile(r"[\s_.\-]")

# key=value or key: value inside free text (query strings, reprs, log messages, JSON text).
# Every key has this shape, up to its separator: a token, or two around the one white space a
# sensitive word may hold ("api key"). Looked ahead for before the words are tried: a token not
# followed by a separator is passed over without trying thirty words at each of its characters,
# which cost tens of microseconds per string.
_KEY_SHAPE = r"[\w.-]*(?:\s[\w.-]+)?[\"']?\s*[=:]"
_SECRET_PAIR = re.compile(
    # (?<!…): a key starts a token; without it every position inside a word is retried.
    rf"(?i)(?<![\w.-])(?={_KEY_SHAPE})(?P<key>[\w.-]*(?:{_SENSITIVE_WORD})[\w.-]*)"
    r"(?P<sep>[\"']?\s*[=:]\s*)"
    # The value, after any chained keys ("dsn: password: x", 'note: {"token": "…"}'): masked
    # alone, such a key would leave its own value behind, past the end of the match. No
    # f-string holds a literal brace: doubled, it would read as Jinja.
    r"(?P<value>(?:(?=[\"'{\[]*"
    rf"{_KEY_SHAPE})"
    r"[\"'{\[]*"
    rf"[\w.-]*(?:{_SENSITIVE_WORD})[\w.-]*[\"']?\s*[=:]\s*)*"
    r"(?:\[Filtered\]|(?:bearer|basic|token|digest|apikey|api-key)\s+\S+"
    r"|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|[^\s&,;)}\]]+))"
)
# Credentials in a URL: with a password, everything from :// to the URL's last @, since a
# password written unencoded may hold / ? # : or @; a bare user name (often a token) up to @.
_URL_CREDENTIALS = re.compile(r"(?<=://)(?:[^\s/?#@:]*:\S*|[^\s/?#@:]+)@")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")
# \w: internationalised domains too. The last label starts with a letter, as every top-level
# domain does, so a release such as "acme_backend@0.1.0" is not taken for an address.
_EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_][\w-]*")
# A card number stands alone: inside a longer token (a UUID, a hex id) a run of digits such as
# "22962468-1422-4" passes the Luhn check one time in ten, and the id would be garbled.
# Each digit pattern starts with \d, its lookbehinds placed after that first digit: the regex
# engine then jumps from digit to digit instead of trying the lookbehinds at every position.
_CARD_CANDIDATE = re.compile(
    r"\d(?<![0-9A-Za-z]\d)(?<![0-9A-Za-z]-\d)(?:[ -]?\d){12,18}(?![0-9A-Za-z]|-[0-9A-Za-z])"
)
# Candidates only: each is confirmed by the ipaddress module before it is masked.
_IPV4_CANDIDATE = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?![\w.])")
_IPV6_CANDIDATE = re.compile(r"(?<![\w.:])[0-9A-Fa-f]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(?![\w.:])")
# What every IPv6 candidate holds; it starts with a literal, which the engine finds fast.
_IPV6_TELLTALE = re.compile(r":[0-9A-Fa-f.]*:")

# Parts of an event that hold no user data: left alone so the scrubber cannot garble them.
_STRUCTURAL_KEYS = frozenset(
    {
        *("sdk", "modules", "debug_meta", "release", "environment"),
        *("event_id", "trace_id", "span_id", "parent_span_id", "timestamp", "start_timestamp"),
        # A stack frame's code identifiers: where the code is, not what a user sent.
        *("filename", "abs_path", "module", "function", "lineno", "colno", "in_app"),
    }
)


def is_sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(_KEY_SEPARATORS.sub("", key.lower())))


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return FILTERED if _luhn_valid(digits) else match.group()


def _mask_ip(match: re.Match[str]) -> str:
    candidate = match.group()
    for address, port in ((candidate, ""), candidate.rpartition(":")[::2]):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            continue
        return FILTERED + (f":{port}" if port else "")
    return candidate  # a time of day, a version: not an address


def _mask_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match.group('key')}{match.group('sep')}{quote}{FILTERED}{quote}"


# The cheap tests that decide which passes a string needs. A pass runs only on a string that
# holds what its pattern cannot match without (a digit, an @, a sensitive word, eyJ, ...):
# most strings of an event hold none, and the regex engine never sees them.
#
# Sensitive words are looked for with `in` on a folded copy of the string, never with one
# case-insensitive regex of thirty alternatives tried at every position (40 % of the cost of
# an event). The fold makes that test a superset of what the patterns' (?i) words match: it
# lower-cases, maps the four non-ASCII letters that (?i) takes for ASCII ones (U+0130, U+0131,
# U+017F, U+212A), and deletes every character the words' optional separators stand for.
_FOLD = str.maketrans(
    {
        **{chr(code): chr(code + 32) for code in range(ord("A"), ord("Z") + 1)},
        **{"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"},
        **dict.fromkeys("_.-"),
        # \s, as the regex engine reads it in a str pattern (no white space lies past U+3000).
        **dict.fromkeys(char for char in map(chr, range(0x3001)) if char.isspace()),
    }
)
_FOLDED_WORDS = tuple(re.sub(r"\(\?!\w+\)", "", word).replace("_", "") for word in _SENSITIVE_WORDS)
_DIGIT = re.compile(r"\d")


def _has_sensitive_word(folded: str) -> bool:
    return any(word in folded for word in _FOLDED_WORDS)


# Strings known to hold nothing any pass would change (SQL statements, source lines, header
# values, keys): they recur in every event, and are skipped whole. Only such strings are kept,
# never one that held a secret; bounded, and emptied when full.
_CLEAN: dict[str, None] = {}
_CLEAN_MAX_ENTRIES = 4096
_CLEAN_MAX_LENGTH = 512


def scrub_text(text: str) -> str:
    """Remove secrets that show themselves by their shape, wherever they appear in a string,
    percent-encoded ones included."""
    if text in _CLEAN:
        return text
    scrubbed = _scrub_shapes(text)
    if "%" in scrubbed:
        decoded = unquote(scrubbed)
        rescrubbed = _scrub_shapes(decoded)
        if rescrubbed != decoded:  # something was hiding behind the encoding
            return rescrubbed
    if scrubbed == text and len(text) <= _CLEAN_MAX_LENGTH:
        if len(_CLEAN) >= _CLEAN_MAX_ENTRIES:
            _CLEAN.clear()
        _CLEAN[text] = None
    return scrubbed


def _scrub_shapes(text: str) -> str:
    # Each pass only where its telltale is; a replacement brings no new telltale ([Filtered]
    # holds no word, digit, @ or :), so words found once in the original stay a valid test.
    folded = text.translate(_FOLD)
    sensitive = _has_sensitive_word(folded)
    if "@" in text:
        text = _URL_CREDENTIALS.sub(f"{FILTERED}@", text)
    if "bearer" in folded or "basic" in folded:
        text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {FILTERED}", text)
    if "eyJ" in text:
        text = _JWT.sub(FILTERED, text)
    if sensitive and ("=" in text or ":" in text):
        text = _SECRET_PAIR.sub(_mask_pair, text)
    if _DIGIT.search(text):
        text = _CARD_CANDIDATE.sub(_mask_card, text)
        text = _IPV4_CANDIDATE.sub(_mask_ip, text)
    if ":" in text and _IPV6_TELLTALE.search(text):
        text = _IPV6_CANDIDATE.sub(_mask_ip, text)
    if "@" in text:
        text = _EMAIL.sub(FILTERED, text)
    return text


def scrub_query_string(query: str) -> str:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        return scrub_text(query)
    return urlencode(
        [(key, FILTERED if is_sensitive_key(key) else scrub_text(value)) for key, value in pairs],
        safe="[]",
    )


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return _scrub_dict(value)
    if isinstance(value, list):
        if len(value) == 2 and isinstance(value[0], str) and _key_rule(value[0])[1]:
            # A (name, value) pair, as in raw ASGI headers. The "name" may also be the SDK's
            # repr of a dict nested too deep to serialise, secrets and all: scrub it as text.
            return [scrub_text(value[0]), FILTERED]
        return [_scrub(item) for item in value]
    return value


# Query strings wherever the SDK puts them (the request's, an outgoing call's query and
# fragment): parsed as such, so that "+" is a space and an encoded "&" stays inside its value.
_QUERY_KEYS = frozenset({"query_string", "http.query", "http.fragment"})


def _scrub_dict(value: dict[Any, Any]) -> dict[Any, Any]:
    """Keys too: a JSON body or a context may use an e-mail address or a token as a key. One
    loop over the items, since an event is mostly small dicts (frames, breadcrumbs, spans)."""
    scrubbed = {}
    for key, item in value.items():
        if key in _STRUCTURAL_KEYS:
            scrubbed[key] = item
            continue
        sent_key, sensitive = _key_rule(key) if isinstance(key, str) else (key, False)
        if key == "_meta":
            item = _scrub_meta(item)
        elif isinstance(item, str):
            if key in _QUERY_KEYS:
                item = scrub_query_string(item)
            else:
                item = FILTERED if sensitive else scrub_text(item)
        elif item is not None:
            item = FILTERED if sensitive else _scrub(item)
        scrubbed[sent_key] = item
    return scrubbed


# What a key is sent as, and whether its value is masked: keys recur in every event (the
# same few dozen names), so the answer for a key that holds nothing to scrub is kept.
_KEY_RULES: dict[str, tuple[str, bool]] = {}


def _key_rule(key: str) -> tuple[str, bool]:
    if (rule := _KEY_RULES.get(key)) is not None:
        return rule
    rule = (scrub_text(key), is_sensitive_key(key))
    if rule[0] == key and len(key) <= _CLEAN_MAX_LENGTH:
        if len(_KEY_RULES) >= _CLEAN_MAX_ENTRIES:
            _KEY_RULES.clear()
        _KEY_RULES[key] = rule
    return rule


def _scrub_key(key: object) -> object:
    return scrub_text(key) if isinstance(key, str) and key not in _STRUCTURAL_KEYS else key


def _scrub_meta(meta: Any) -> Any:
    """`_meta` mirrors the event's own keys down to what the SDK trimmed or filtered: its
    keys are scrubbed as the event's are, its annotations (under "") kept."""
    if not isinstance(meta, dict):
        return meta
    return {
        key: item if key == "" else _scrub_meta(item)
        for key, item in ((_scrub_key(key), item) for key, item in meta.items())
    }


_LOG_PARAMETER = "sentry.message.parameter."
_DSC = "dynamic_sampling_context"


def scrub_event(event: Event, *, keep_user_email: bool = False) -> Event:
    """Our pass over a serialised event, log, metric or span."""
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        # A log record's arguments, sent beside its formatted message: the secret that
        # "password=%s" shows as password=[Filtered] would sit here raw, with no key or shape
        # to tell. The template (`message`) and `formatted` say all a developer needs.
        logentry.pop("params", None)
    attributes = event.get("attributes")
    if isinstance(attributes, dict):  # a Sentry log's template arguments, likewise
        for key in [key for key in attributes if str(key).startswith(_LOG_PARAMETER)]:
            del attributes[key]
    trace = (event.get("contexts") or {}).get("trace")
    if isinstance(trace, dict) and isinstance(trace.get(_DSC), dict):
        # Becomes the envelope's `trace` header: the sampling fields only, whoever started
        # the trace (SentryRequestContext already trims a caller's baggage).
        trace[_DSC] = {k: v for k, v in trace[_DSC].items() if k in DSC_FIELDS}
    user = event.get("user")
    email = None
    if isinstance(user, dict):
        # Who, not what they are called: the id alone (and the e-mail, when the operator
        # opted in). A username, name or address that app code sets goes no further.
        email = user.get("email") if keep_user_email else None
        event["user"] = {"id": user["id"]} if "id" in user else {}
    scrubbed: Event = _scrub(event)
    if email is not None:
        scrubbed["user"] = {**scrubbed["user"], "email": email}  # the operator opted in
    return scrubbed


# The fields of Sentry's dynamic sampling context. A caller's `baggage` header becomes the
# `trace` header of every envelope of the trace, which no before_send hook sees: any other
# sentry-* member, and the text of these, would reach Sentry as the caller wrote it.
DSC_FIELDS = frozenset(
    {"trace_id", "public_key", "org_id", "release", "environment", "transaction"}
    | {"sample_rate", "sample_rand", "sampled"}
)


def scrub_baggage(baggage: str) -> str:
    """A caller's baggage reduced to the sampling-context fields, scrubbed. Other vendors'
    members are kept for propagation onward; the SDK never sends them to Sentry."""
    return ",".join(filter(None, map(_trusted_member, baggage.split(","))))


def _trusted_member(member: str) -> str:
    key, _, value = member.strip().partition("=")
    if not key.startswith("sentry-"):
        return member.strip()
    if key.removeprefix("sentry-") not in DSC_FIELDS:
        return ""
    return f"{key}={quote(scrub_text(unquote(value)), safe='')}"
