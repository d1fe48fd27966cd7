"""Prefix validation and window expansion for the AWS CloudTrail connector (no Airflow, no boto3).

The connector is configured with a bucket, a *sub type* (``cloudtrail``, ``vpcflow``, ``waf``) and a
*prefix* written the way the connector guide describes it:

* ``optional_prefix/AWSLogs/<account>/<CloudTrail|vpcflowlogs>/<region>``
* ``optional_prefix/AWSLogs/<o-org>/<account>/<CloudTrail|vpcflowlogs>/<region>`` (organization trail)
* ``optional_prefix/<o-org>/AWSLogs/<o-org>/*/<CloudTrail|vpcflowlogs>/<region>`` (Control Tower; ``*``
  stands for every account, cloudtrail and vpcflow only; a folder named like an organisation id,
  ``o-…``, is never taken for an account)
* in the region position (the folder after ``CloudTrail``, ``vpcflowlogs`` or ``WAFLogs``) ``*`` stands
  for every region folder found, and a comma-separated list (``us-east-1,eu-west-1``) for those regions:
  one instance covers several regions, the object ledger and record ids deduplicating across them
* any custom prefix, in which a date is written with the variables ``//YYYY//``, ``//m//``, ``//mm//``,
  ``//d//``, ``//dd//``, ``//H//``, ``//HH//``, ``//M//``, ``//MM//``.  Each variable replaces the digits
  only, so ``CustomPrefix/year=/2020/month=/10/day=/27`` is written
  ``CustomPrefix/year=///YYYY///month=///mm///day=///dd//`` (literal ``year=/`` + ``//YYYY//`` + literal
  ``/month=/`` ...).

Why this module exists: listing a log bucket is the expensive and lossy part of collecting S3 logs.
Collectors that list a whole prefix grow in cost with the bucket's age (Logstash: 45 min for 2 M
CloudTrail objects), and collectors that put ``*`` into a LIST prefix end up listing everything before
the ``*`` (the Airflow S3 hook and sensor do exactly that).  Here every configured prefix is turned
into the exact, finite list of date folders that can hold objects of a collection window, so the
number of LIST calls depends only on accounts x regions x window length, never on history.

Conventions used throughout:

* Prefixes returned for listing always end with ``/``.  The configured prefix names a *folder* (the
  guide forbids a trailing ``/`` in the configuration, but the objects live below it), so the listing
  prefix is the rendered pattern plus ``/``.  This is also what makes 1-2 digit variables at the end of
  a pattern safe: ``.../d=//d//`` for the 1st renders ``.../d=1/`` which cannot match ``.../d=10/``
  .. ``.../d=19/`` (a plain ``.../d=1`` would).  Filtering keys afterwards would also be correct but
  would still pay for listing ten extra days.
* All times are timezone-aware UTC ``datetime`` objects; windows are half-open ``[start, end)``.
* The *key time* of an object (see :func:`key_time`) is the time AWS encodes in the key: the delivery
  time for CloudTrail, the start of the 5-minute window of flow *end* times for VPC flow logs, the
  5-minute folder for WAF.  Selecting objects by key time assigns every object to exactly one window.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

__all__ = [
    "DATE_VARIABLES",
    "DEFAULT_LOOKBACK",
    "SUB_TYPES",
    "PrefixError",
    "PrefixPattern",
    "check_layout",
    "expand",
    "expand_all",
    "is_organisation_id",
    "is_log_object",
    "key_time",
    "parse_prefix",
    "validate_prefix",
]

SUB_TYPES: tuple[str, ...] = ("cloudtrail", "vpcflow", "waf")

#: Service folder that follows the account folder in AWS's own layouts.
SERVICE_FOLDER: dict[str, str] = {"cloudtrail": "CloudTrail", "vpcflow": "vpcflowlogs", "waf": "WAFLogs"}

#: How far before the window start :func:`expand` lists by default.  The values are deliberately
#: generous because the doc gives no upper bound on lateness: CloudTrail keys carry the delivery time,
#: so only S3 visibility races matter (an object named 10:04 may become visible just after the 10:05
#: run); VPC flow log objects land ~10 min after their 5-minute window, "best effort" (A8); WAF
#: publishes every 5 min with the previous 5 min of records.  Callers that re-list with a ledger of
#: processed keys should pick a value that matches their settle policy.
DEFAULT_LOOKBACK: dict[str, timedelta] = {
    "cloudtrail": timedelta(hours=1),
    "vpcflow": timedelta(hours=1),
    "waf": timedelta(minutes=15),
}

# unit levels, coarse to fine
_YEAR, _MONTH, _DAY, _HOUR, _MINUTE = range(5)
_UNIT_NAMES = ("year", "month", "day", "hour", "minute")


@dataclass(frozen=True, slots=True)
class _VarSpec:
    level: int
    width: int | None  # fixed width (zero padded) or None for 1-2 digits
    meaning: str


#: The date variables of the connector guide, exactly as defined there.
DATE_VARIABLES: dict[str, _VarSpec] = {
    "YYYY": _VarSpec(_YEAR, 4, "4-digit year"),
    "m": _VarSpec(_MONTH, None, "1 or 2 digit month"),
    "mm": _VarSpec(_MONTH, 2, "2-digit month"),
    "d": _VarSpec(_DAY, None, "1 or 2 digit day"),
    "dd": _VarSpec(_DAY, 2, "2-digit day"),
    "H": _VarSpec(_HOUR, None, "1 or 2 digit hour"),
    "HH": _VarSpec(_HOUR, 2, "2-digit hour"),
    "M": _VarSpec(_MINUTE, None, "1 or 2 digit minute"),
    "MM": _VarSpec(_MINUTE, 2, "2-digit minute"),
}
_ALLOWED_VARS_TEXT = ", ".join(f"//{name}// ({spec.meaning})" for name, spec in DATE_VARIABLES.items())

_VAR_RE = re.compile(r"//(YYYY|mm|m|dd|d|HH|H|MM|M)//")
# Something that looks like a date variable but is not one of the nine (//DD//, //yyyy//, //hh//).
_BAD_VAR_RE = re.compile(r"//([YyMmDdHhSs]{1,4})//")
# A variable name touching "//" on one side only, e.g. "//YYYY///mm//" (one slash too few before mm).
_HALF_VAR_RE = re.compile(r"(?<![A-Za-z])(YYYY|mm|dd|HH|MM)//|//(YYYY|mm|dd|HH|MM)(?![A-Za-z])")

#: The date folders AWS writes below a standard prefix (appended when the prefix has no variable).
#: CloudTrail and VPC folders are zero padded (A1, A13); WAF adds 5-minute ``HH/mm`` folders (A11).
_STANDARD_TAIL: dict[str, tuple[tuple[str, str], ...]] = {
    # (literal before the variable, variable name)
    "cloudtrail": (("/", "YYYY"), ("/", "mm"), ("/", "dd")),
    "vpcflow": (("/", "YYYY"), ("/", "mm"), ("/", "dd")),
    "vpcflow-hive": (("/year=", "YYYY"), ("/month=", "mm"), ("/day=", "dd")),
    "waf": (("/", "YYYY"), ("/", "mm"), ("/", "dd"), ("/", "HH"), ("/", "MM")),
}

_NAME_TIME_RE = {
    # <acct>_CloudTrail_<region>_YYYYMMDDTHHmmZ[_]<unique>.json.gz  (the "_" before the unique part is
    # missing in one archived AWS example, hence "_?" / ".*")
    "cloudtrail": re.compile(r"^[^_/]+_CloudTrail_[^_/]+_(\d{8}T\d{4})Z_?[^/]*\.json(?:\.gz)?$"),
    # <acct>_vpcflowlogs_<region>_<flow-log-id>_YYYYMMDDTHHmmZ_<hash>.log.gz (or Parquet)
    "vpcflow": re.compile(
        r"^[^_/]+_vpcflowlogs_[^_/]+_[^_/]+_(\d{8}T\d{4})Z_?[^/]*\.(?:log(?:\.gz)?|log\.parquet|parquet)$"
    ),
    # <acct>_waflogs_<region>_<web-acl-name>_YYYYMMddTHHmmZ_<hash>.log[.gz]; ACL names may contain "_"
    "waf": re.compile(r"^[^_/]+_waflogs_.+_(\d{8}T\d{4})Z_?[^_/]*$"),
}
_WAF_FOLDER_TIME_RE = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")

# AWS organisation ids are "o-" and 10 to 32 lower-case letters or digits; account ids are 12 digits,
# so no folder starting "o-" is ever an account (tests use short ones like "o-x", hence "+").
_ORG_ID_RE = re.compile(r"^o-[a-z0-9]+$")


def is_organisation_id(name: str) -> bool:
    """Whether a folder name is an AWS organisation id (``o-…``), which is never an account."""
    return _ORG_ID_RE.match(name) is not None


def _segment_regex(segment: str) -> str:
    """A literal path segment as a key regex: ``*`` any folder name, ``a,b`` one of the listed names."""
    if "," in segment:
        return "(?:" + "|".join(re.escape(item) for item in segment.split(",")) + ")"
    return "[^/]+".join(re.escape(part) for part in segment.split("*"))


class PrefixError(ValueError):
    """A configured prefix is not valid for its sub type.

    The message always says what is wrong and what is allowed, because it is shown to the person who
    typed the prefix into the connector configuration.
    """


# --------------------------------------------------------------------------------------------------
# parsing and validation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Lit:
    text: str


@dataclass(frozen=True, slots=True)
class _Var:
    name: str

    @property
    def spec(self) -> _VarSpec:
        return DATE_VARIABLES[self.name]


_Token = _Lit | _Var


def _tokenize(prefix: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    for m in _VAR_RE.finditer(prefix):
        if m.start() > pos:
            tokens.append(_Lit(prefix[pos : m.start()]))
        tokens.append(_Var(m.group(1)))
        pos = m.end()
    if pos < len(prefix):
        tokens.append(_Lit(prefix[pos:]))
    return tokens


def _segments(text: str) -> list[str]:
    return [s for s in text.split("/") if s]


@dataclass(frozen=True)
class PrefixPattern:
    """A validated prefix pattern for one sub type.

    Build it with :func:`parse_prefix` (or :func:`validate_prefix`).  ``tokens`` is the complete
    pattern including the standard date folders appended when the configured prefix had no date
    variable, so expansion and key-time extraction work the same way for both.
    """

    prefix: str
    sub_type: str
    tokens: tuple[_Token, ...]
    appended_standard_folders: bool

    # ---- properties --------------------------------------------------------------------------------
    @property
    def has_wildcard(self) -> bool:
        """True when a ``*`` (every account, every region) must be resolved by a discovery LIST."""
        return any(isinstance(t, _Lit) and "*" in t.text for t in self.tokens)

    @property
    def region_list(self) -> tuple[str, ...]:
        """The regions of a comma-separated list in the region position (empty without one)."""
        first = self.tokens[0]
        if isinstance(first, _Lit):
            for segment in first.text.split("/"):
                if "," in segment:
                    return tuple(segment.split(","))
        return ()

    def variants(self) -> list[PrefixPattern]:
        """One pattern per region of a region list; ``[self]`` without a list."""
        regions = self.region_list
        if not regions:
            return [self]
        listed = ",".join(regions)

        def one(region: str) -> PrefixPattern:
            tokens = tuple(
                _Lit("/".join(region if seg == listed else seg for seg in t.text.split("/")))
                if i == 0 and isinstance(t, _Lit)
                else t
                for i, t in enumerate(self.tokens)
            )
            prefix = "/".join(region if seg == listed else seg for seg in self.prefix.split("/"))
            return PrefixPattern(prefix, self.sub_type, tokens, self.appended_standard_folders)

        return [one(region) for region in regions]

    @property
    def finest_level(self) -> int:
        return max(t.spec.level for t in self.tokens if isinstance(t, _Var))

    @property
    def granularity(self) -> str:
        """``year``, ``month``, ``day``, ``hour`` or ``minute``: the step of :meth:`expand`."""
        return _UNIT_NAMES[self.finest_level]

    @property
    def _hierarchical(self) -> bool:
        """Whether whole parent periods may be listed through one shorter prefix.

        True when every unit appears once, from year down to the finest unit in that order, and the
        pattern ends with the finest variable.  Then the pattern cut right after the variable of a
        coarser unit (plus the literal that follows it) is a prefix of exactly the keys of that
        period, so a fully covered day/hour can be listed with one call instead of 24/60.
        """
        levels = [t.spec.level for t in self.tokens if isinstance(t, _Var)]
        return levels == list(range(len(levels))) and isinstance(self.tokens[-1], _Var)

    # ---- rendering ---------------------------------------------------------------------------------
    def _render_tokens(self, tokens: Iterable[_Token], when: datetime) -> str:
        out = []
        for t in tokens:
            if isinstance(t, _Lit):
                out.append(t.text)
            else:
                value = (when.year, when.month, when.day, when.hour, when.minute)[t.spec.level]
                out.append(f"{value:0{t.spec.width}d}" if t.spec.width else str(value))
        return "".join(out)

    def render(self, when: datetime) -> str:
        """The listing prefix (ending in ``/``) of the finest-unit period that contains ``when``."""
        return self._render_tokens(self.tokens, when) + "/"

    def _render_level(self, level: int, when: datetime) -> str:
        """Listing prefix for the whole period of ``level`` containing ``when`` (hierarchical only)."""
        if level == self.finest_level:
            return self.render(when)
        cut = []
        for i, t in enumerate(self.tokens):
            cut.append(t)
            if isinstance(t, _Var) and t.spec.level == level:
                nxt = self.tokens[i + 1]
                if isinstance(nxt, _Lit):
                    # include the separator that follows: "…/d=1/" and not "…/d=1" (which would also
                    # match d=10..19); validation guarantees an unpadded variable is followed by a
                    # literal that does not start with a digit.
                    cut.append(nxt)
                break
        return self._render_tokens(cut, when)

    # ---- expansion -----------------------------------------------------------------------------------
    def expand(
        self, window_start: datetime, window_end: datetime, lookback: timedelta | None = None
    ) -> list[str]:
        """Exact, sorted, de-duplicated listing prefixes for key times in ``[start - lookback, end)``.

        The step is the finest date unit of the pattern (one prefix per day for ``YYYY/MM/DD``, per
        minute for WAF's ``…/HH/mm``).  For hierarchical patterns, a year/month/day/hour that lies
        entirely inside the range is listed through its own shorter prefix, so a backfill of a day of
        WAF logs is 1 LIST prefix and not 1,440, while a 5-minute window still lists only its minutes.
        The result is sorted lexicographically, i.e. in S3 listing order.
        """
        if self.has_wildcard:
            raise PrefixError(
                f"prefix {self.prefix!r} contains '*': use expand_all(), which discovers the folders first"
            )
        if self.region_list:
            return sorted({p for v in self.variants() for p in v.expand(window_start, window_end, lookback)})
        lo, hi = _window(
            window_start, window_end, DEFAULT_LOOKBACK[self.sub_type] if lookback is None else lookback
        )
        if lo >= hi:
            return []
        finest = self.finest_level
        out: set[str] = set()
        if self._hierarchical:

            def cover(level: int, start: datetime) -> None:
                end = _add(start, level)
                if end <= lo or start >= hi:
                    return
                if level == finest or (lo <= start and end <= hi):
                    out.add(self._render_level(level, start))
                    return
                child = start
                while child < end:
                    cover(level + 1, child)
                    child = _add(child, level + 1)

            for year in range(lo.year, (hi - timedelta(microseconds=1)).year + 1):
                cover(_YEAR, datetime(year, 1, 1, tzinfo=UTC))
        else:
            t = _floor(lo, finest)
            while t < hi:
                out.add(self.render(t))
                t = _add(t, finest)
        return sorted(out)

    # ---- key times -------------------------------------------------------------------------------------
    def folder_time(self, key: str) -> datetime | None:
        """The time the pattern's date folders give for ``key`` (start of the finest unit), or None.

        Returns None when the key is not below this pattern (or, for a ``*`` pattern, below any account).
        """
        m = self._key_regex.match(key)
        if not m:
            return None
        parts: dict[int, int] = {}
        for var, value in zip((t for t in self.tokens if isinstance(t, _Var)), m.groups(), strict=True):
            v = int(value)
            if parts.setdefault(var.spec.level, v) != v:
                return None  # the same unit written twice with different values
        try:
            return datetime(
                parts.get(_YEAR, 1970),
                parts.get(_MONTH, 1),
                parts.get(_DAY, 1),
                parts.get(_HOUR, 0),
                parts.get(_MINUTE, 0),
                tzinfo=UTC,
            )
        except ValueError:
            return None

    @cached_property
    def _key_regex(self) -> re.Pattern[str]:
        pieces = ["^"]
        for t in self.tokens:
            if isinstance(t, _Lit):
                pieces.append("/".join(_segment_regex(segment) for segment in t.text.split("/")))
            elif t.spec.width:
                pieces.append(rf"(\d{{{t.spec.width}}})")
            else:
                pieces.append(r"([1-9]\d?|0)")
        pieces.append("/")
        return re.compile("".join(pieces))

    def key_time(self, key: str) -> datetime | None:
        """The time used to assign ``key`` to a window (see module docstring).

        The time written in AWS's file name wins because it is the most precise (to the minute); when
        the file name has none (e.g. a custom WAF layout), the date folders of the pattern are used.
        """
        return key_time(key, self.sub_type) or self.folder_time(key)

    def with_account(self, account: str) -> PrefixPattern:
        """This pattern with its first ``*`` replaced by one folder name (an account, or a region)."""
        if not self.has_wildcard:
            raise PrefixError(f"prefix {self.prefix!r} has no '*' to replace")
        if not account or "/" in account or "*" in account:
            raise PrefixError(f"invalid account folder name {account!r}")
        tokens = tuple(
            _Lit(t.text.replace("*", account, 1)) if i == 0 and isinstance(t, _Lit) else t
            for i, t in enumerate(self.tokens)
        )
        return PrefixPattern(
            self.prefix.replace("*", account, 1), self.sub_type, tokens, self.appended_standard_folders
        )

    @property
    def discovery_prefix(self) -> str:
        """The folder to LIST with ``Delimiter='/'`` to find what the first ``*`` stands for."""
        first = self.tokens[0]
        if not self.has_wildcard or not isinstance(first, _Lit):
            raise PrefixError(f"prefix {self.prefix!r} has no '*' to discover")
        return first.text.split("*", 1)[0]

    @property
    def wildcard_is_account(self) -> bool:
        """Whether the first ``*`` stands for accounts (it is followed by the service folder)."""
        after = self.tokens[0].text.split("*", 1)[1] if self.has_wildcard else ""  # type: ignore[union-attr]
        service = SERVICE_FOLDER[self.sub_type]
        return after.startswith(f"/{service}/") or after == f"/{service}"


def parse_prefix(prefix: str, sub_type: str) -> PrefixPattern:
    """Validate ``prefix`` for ``sub_type`` and return the compiled pattern.

    Raises :class:`PrefixError` (a ``ValueError``) naming the problem and what is allowed.
    """
    if sub_type not in SUB_TYPES:
        raise PrefixError(f"unknown sub type {sub_type!r}; allowed: {', '.join(SUB_TYPES)}")
    if not isinstance(prefix, str) or not prefix.strip():
        raise PrefixError(
            "the prefix is empty; enter the path from the bucket root to the log folder, e.g. "
            "AWSLogs/<account id>/CloudTrail/<region>"
        )
    if prefix != prefix.strip():
        raise PrefixError(f"prefix {prefix!r} has leading or trailing spaces; remove them")
    if prefix.lower().startswith("s3://"):
        raise PrefixError(
            f"prefix {prefix!r} is an S3 URI; enter the bucket in the Bucket field and only the path "
            "after the bucket name as the prefix"
        )
    tokens = _tokenize(prefix)
    literals = [t.text for t in tokens if isinstance(t, _Lit)]
    variables = [t for t in tokens if isinstance(t, _Var)]

    for text in literals:
        bad = _BAD_VAR_RE.search(text)
        if bad:
            raise PrefixError(
                f"prefix {prefix!r}: {bad.group(0)} is not a date variable; allowed: {_ALLOWED_VARS_TEXT}"
            )
        half = _HALF_VAR_RE.search(text)
        if half:
            raise PrefixError(
                f"prefix {prefix!r}: {half.group(0)!r} looks like a malformed date variable; a variable is "
                "written with two slashes on each side (e.g. //YYYY//), so '2020/10' becomes "
                "'//YYYY/////mm//' (variable, '/', variable)"
            )
    if isinstance(tokens[-1], _Lit) and tokens[-1].text.endswith("/"):
        raise PrefixError(
            f"prefix {prefix!r} ends with '/'; enter it without the trailing '/' "
            f"(e.g. {prefix.rstrip('/')!r})"
        )
    if isinstance(tokens[0], _Lit) and tokens[0].text.startswith("/"):
        raise PrefixError(
            f"prefix {prefix!r} starts with '/'; S3 keys written by AWS never do - remove the leading '/'"
        )

    # date variables: every coarser unit must be present, otherwise a listing prefix would match the
    # same hour/day in every month or year and the LIST cost would grow with the bucket's history.
    levels = {v.spec.level for v in variables}
    if levels and levels != set(range(max(levels) + 1)):
        missing = [_UNIT_NAMES[i] for i in range(max(levels)) if i not in levels]
        raise PrefixError(
            f"prefix {prefix!r} has a {_UNIT_NAMES[max(levels)]} variable but no {', '.join(missing)} "
            "variable; a date pattern must contain every coarser unit (year, then month, day, hour, "
            f"minute). Allowed variables: {_ALLOWED_VARS_TEXT}"
        )
    # a 1-2 digit variable must be delimited by non-digits, otherwise e.g. //m////d// renders "111" for
    # both Jan 11 and Nov 1, and neither listing nor key parsing could tell them apart.
    for i, t in enumerate(tokens):
        if isinstance(t, _Var) and t.spec.width is None:
            for j in (i - 1, i + 1):
                if 0 <= j < len(tokens):
                    nb = tokens[j]
                    if isinstance(nb, _Var) or (
                        isinstance(nb, _Lit) and (nb.text[-1] if j < i else nb.text[0]).isdigit()
                    ):
                        raise PrefixError(
                            f"prefix {prefix!r}: the 1-2 digit variable //{t.name}// touches another "
                            "number, which makes dates ambiguous; put a separator next to it or use the "
                            "2-digit form (//mm//, //dd//, //HH//, //MM//)"
                        )

    _check_service_folders(prefix, sub_type, literals)
    if "*" in prefix or "," in prefix:
        _check_wildcard(prefix, sub_type, tokens)

    appended = False
    if not variables:
        tail_kind = sub_type
        if sub_type == "vpcflow" and _segments(prefix)[-1].startswith("aws-region="):
            tail_kind = "vpcflow-hive"  # Hive-compatible S3 layout of VPC flow logs (A8)
        extra: list[_Token] = []
        for lit, var in _STANDARD_TAIL[tail_kind]:
            extra += [_Lit(lit), _Var(var)]
        tokens = _merge_literals(tokens + extra)
        appended = True
    return PrefixPattern(prefix, sub_type, tuple(tokens), appended)


def validate_prefix(prefix: str, sub_type: str) -> PrefixPattern:
    """Alias of :func:`parse_prefix` for configuration checks (raises :class:`PrefixError`)."""
    return parse_prefix(prefix, sub_type)


def _merge_literals(tokens: list[_Token]) -> list[_Token]:
    out: list[_Token] = []
    for t in tokens:
        if out and isinstance(t, _Lit) and isinstance(out[-1], _Lit):
            out[-1] = _Lit(out[-1].text + t.text)
        else:
            out.append(t)
    return out


def _check_service_folders(prefix: str, sub_type: str, literals: list[str]) -> None:
    segs = [s for text in literals for s in text.split("/") if s]
    for seg in segs:
        if seg.startswith("CloudTrail-"):
            raise PrefixError(
                f"prefix {prefix!r} points into {seg}/, which holds {seg.split('-', 1)[1]} files and not "
                "log records; use the CloudTrail/ folder (…/CloudTrail/<region>)"
            )
        if seg == "Config":
            raise PrefixError(
                f"prefix {prefix!r} points into Config/, which holds AWS Config snapshots, not logs of "
                f"sub type {sub_type}"
            )
    others = {st: folder for st, folder in SERVICE_FOLDER.items() if st != sub_type}
    for st, folder in others.items():
        if folder in segs or f"aws-service={folder}" in segs:
            raise PrefixError(
                f"prefix {prefix!r} is a {folder} path but the sub type is {sub_type!r}; choose sub type "
                f"{st!r} or correct the prefix"
            )
    all_segs = _segments(prefix)
    if all_segs and all_segs[-1] in (SERVICE_FOLDER[sub_type], f"aws-service={SERVICE_FOLDER[sub_type]}"):
        raise PrefixError(
            f"prefix {prefix!r} stops at the {all_segs[-1]} folder; it must end with the region "
            f"(…/{all_segs[-1]}/<region>{'/<web acl name>' if sub_type == 'waf' else ''})"
        )


_WILDCARD_HELP = (
    "'*' is only allowed as the whole account folder of the AWS Control Tower form "
    "optional_prefix/<OU id>/AWSLogs/<OU id>/*/<CloudTrail or vpcflowlogs>/<region> "
    "(also accepted: …/AWSLogs/*/… and …/AWSLogs/<OU id>/*/…), and as the whole region folder "
    "(…/<CloudTrail, vpcflowlogs or WAFLogs>/*), where a comma-separated list of regions may stand as well"
)


def _check_wildcard(prefix: str, sub_type: str, tokens: list[_Token]) -> None:
    """``*`` in the account position and/or the region position, nowhere else; a region list only in
    the region position."""
    first = tokens[0]
    if not isinstance(first, _Lit) or ("*" not in first.text and "," not in first.text) or any(
        "*" in t.text or "," in t.text for t in tokens[1:] if isinstance(t, _Lit)
    ):
        raise PrefixError(f"prefix {prefix!r}: a date variable may not come before '*' or ','; {_WILDCARD_HELP}")
    service = SERVICE_FOLDER[sub_type]
    segments = first.text.split("/")
    accounts = regions = 0
    for i, segment in enumerate(segments):
        if "*" not in segment and "," not in segment:
            continue
        after_service = i >= 1 and segments[i - 1] == service and (i + 1 == len(segments) or sub_type == "waf"
                                                                    or segments[i + 1] == "")
        if "," in segment:
            items = segment.split(",")
            if not after_service or "*" in segment or any(not item.strip() or item != item.strip() for item in items):
                raise PrefixError(
                    f"prefix {prefix!r}: {segment!r} - a comma-separated list is only allowed as the region "
                    f"folder (…/{service}/us-east-1,eu-west-1), without spaces or empty items; {_WILDCARD_HELP}"
                )
            regions += 1
            continue
        if segment != "*":
            raise PrefixError(f"prefix {prefix!r}: '*' must be a whole folder name; {_WILDCARD_HELP}")
        if after_service:
            regions += 1
            continue
        parents = segments[:i]
        in_account_position = (len(parents) >= 1 and parents[-1] == "AWSLogs") or (
            len(parents) >= 2 and parents[-2] == "AWSLogs" and parents[-1].startswith("o-")
        )
        if not in_account_position:
            raise PrefixError(f"prefix {prefix!r}: '*' is not in the account position; {_WILDCARD_HELP}")
        if sub_type == "waf":
            raise PrefixError(f"prefix {prefix!r}: '*' is not supported for sub type 'waf'; {_WILDCARD_HELP}")
        rest = segments[i + 1 :]
        if len(rest) < 2 or rest[0] != service or not rest[1]:
            raise PrefixError(
                f"prefix {prefix!r}: '*' must be followed by /{service}/<region> for sub type {sub_type!r}; "
                f"{_WILDCARD_HELP}"
            )
        accounts += 1
    if accounts > 1 or regions > 1:
        raise PrefixError(f"prefix {prefix!r} has more than one '*' or list in one position; {_WILDCARD_HELP}")


# --------------------------------------------------------------------------------------------------
# time helpers
# --------------------------------------------------------------------------------------------------


def _utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC); got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _window(start: datetime, end: datetime, lookback: timedelta) -> tuple[datetime, datetime]:
    s, e = _utc(start, "window_start"), _utc(end, "window_end")
    if e < s:
        raise ValueError(f"window_end {e.isoformat()} is before window_start {s.isoformat()}")
    if lookback < timedelta(0):
        raise ValueError(f"lookback must not be negative, got {lookback}")
    return s - lookback, e


def _floor(t: datetime, level: int) -> datetime:
    if level == _YEAR:
        return t.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if level == _MONTH:
        return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if level == _DAY:
        return t.replace(hour=0, minute=0, second=0, microsecond=0)
    if level == _HOUR:
        return t.replace(minute=0, second=0, microsecond=0)
    return t.replace(second=0, microsecond=0)


def _add(t: datetime, level: int) -> datetime:
    """``t`` (the start of a period of ``level``) plus one such period."""
    if level == _YEAR:
        return t.replace(year=t.year + 1)
    if level == _MONTH:
        return t.replace(year=t.year + 1, month=1) if t.month == 12 else t.replace(month=t.month + 1)
    if level == _DAY:
        return t + timedelta(days=1)
    if level == _HOUR:
        return t + timedelta(hours=1)
    return t + timedelta(minutes=1)


# --------------------------------------------------------------------------------------------------
# module-level API
# --------------------------------------------------------------------------------------------------


def expand(
    prefix: str,
    sub_type: str,
    window_start: datetime,
    window_end: datetime,
    lookback: timedelta | None = None,
) -> list[str]:
    """Listing prefixes (each ending in ``/``) for the key times of ``[window_start - lookback, window_end)``.

    ``lookback`` defaults to :data:`DEFAULT_LOOKBACK` for the sub type; pass ``timedelta(0)`` for the
    window alone.  A Control Tower prefix (``*``) must go through :func:`expand_all`.  See
    :meth:`PrefixPattern.expand`.
    """
    return parse_prefix(prefix, sub_type).expand(window_start, window_end, lookback)


ListCommonPrefixes = Callable[[str], list[str]]


def _discover(
    pattern: PrefixPattern, list_common_prefixes: ListCommonPrefixes, skipped: list[str] | None = None
) -> list[PrefixPattern]:
    """``pattern`` with every ``*`` replaced by each folder found there (one delimiter LIST per ``*``
    and per folder above it), for each region of a region list; ``skipped`` collects the folders not
    taken (organisation ids in the account position)."""
    out: list[PrefixPattern] = []
    for variant in pattern.variants():
        if not variant.has_wildcard:
            out.append(variant)
            continue
        folder = variant.discovery_prefix
        names: set[str] = set()
        for entry in list_common_prefixes(folder):
            name = (entry[len(folder) :] if entry.startswith(folder) else entry).strip("/")
            if not name or "/" in name or "*" in name:
                continue
            if variant.wildcard_is_account and is_organisation_id(name):
                # The organisation folder of an organisation trail (…/AWSLogs/<o-id>/<account>/…) seen
                # through a prefix written for another layout: never an account (check_layout says so).
                if skipped is not None:
                    skipped.append(folder + name + "/")
                continue
            names.add(name)
        for name in sorted(names):
            out += _discover(variant.with_account(name), list_common_prefixes, skipped)
    return out


def expand_all(
    prefix: str,
    sub_type: str,
    window_start: datetime,
    window_end: datetime,
    list_common_prefixes: ListCommonPrefixes | None = None,
    lookback: timedelta | None = None,
    skipped: list[str] | None = None,
) -> list[str]:
    """:func:`expand` for any prefix form, resolving each ``*`` (accounts, regions) through discovery.

    Total LIST calls = 1 per ``*`` and folder above it (discovery: 1 for accounts, + accounts for a
    region ``*``) + accounts x regions x prefixes-per-window.  An empty result for a ``*`` prefix means
    no folder exists yet; callers should warn (:func:`check_layout` says why), not fail.  ``skipped``
    collects organisation-id folders found where accounts were expected.
    """
    pattern = parse_prefix(prefix, sub_type)
    patterns = pattern.variants()
    if pattern.has_wildcard:
        if list_common_prefixes is None:
            raise PrefixError(
                f"prefix {prefix!r} contains '*'; pass list_common_prefixes to discover accounts"
            )
        patterns = _discover(pattern, list_common_prefixes, skipped)
    out: set[str] = set()
    for p in patterns:
        out.update(p.expand(window_start, window_end, lookback))
    return sorted(out)


#: How many folder names a layout message quotes.
_QUOTED = 8


def _quote(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = ", ".join(names[:_QUOTED]) + (f" and {len(names) - _QUOTED} more" if len(names) > _QUOTED else "")
    return shown or "nothing"


@dataclass
class _LayoutWalk:
    """One walk of :func:`check_layout` down a prefix's fixed folders; ``found_orgs`` and ``missing``
    collect the organisation folders seen in the account position and what was not found."""

    sub_type: str
    list_common_prefixes: ListCommonPrefixes
    where: str
    found_orgs: list[str]
    missing: list[str]

    def walk(self, done: str, rest: list[str]) -> bool:
        """Whether the folders ``rest`` exist below ``done``; records the first that does not."""
        if not rest:
            return True
        children = sorted(
            {(e[len(done) :] if e.startswith(done) else e).strip("/") for e in self.list_common_prefixes(done)} - {""}
        )
        segment, tail = rest[0], rest[1:]
        if segment != "*":
            if segment not in children:
                self.missing.append(
                    f"{self.where}{done} has no {segment}/ folder (found: {_quote(c + '/' for c in children)})"
                )
                return False
            return self.walk(done + segment + "/", tail)
        account_position = bool(tail) and tail[0] == SERVICE_FOLDER[self.sub_type]
        kind = "account" if account_position else "region"
        orgs = [c for c in children if account_position and is_organisation_id(c)]
        self.found_orgs.extend(done + c + "/" for c in orgs)
        names = [c for c in children if c not in orgs]
        if not names:
            found = f"found: {_quote(c + '/' for c in children)}" if children else "it is empty"
            self.missing.append(f"{self.where}{done} holds no {kind} folder ({found})")
            return False
        before = len(self.missing)
        # One match is enough: accounts without this region's folder are normal (not every account
        # logs every region), so the walk stops at the first that has it.
        if any(self.walk(done + name + "/", tail) for name in names):
            del self.missing[before:]
            return True
        first_miss = self.missing[before] if len(self.missing) > before else ""
        del self.missing[before:]
        self.missing.append(
            f"none of the {kind} folders under {self.where}{done} ({_quote(n + '/' for n in names)}) has "
            f"{'/'.join(tail)}/" + (f" - e.g. {first_miss}" if first_miss else "")
        )
        return False


def check_layout(
    prefix: str, sub_type: str, list_common_prefixes: ListCommonPrefixes, bucket: str = ""
) -> list[str]:
    """Why ``prefix`` cannot match the bucket's layout (empty: it can), naming what was found instead.

    Walks the prefix's fixed folders (up to its first date folder) one delimiter LIST per level, each
    ``*`` through every folder found there (organisation ids in the account position are reported, never
    taken for accounts), and stops at the first folder that is missing, quoting what its parent holds.
    When an organisation folder stands where accounts were expected - the Control Tower organisation
    trail layout ``<o-id>/AWSLogs/<o-id>/<account>/…`` read with the older form ``<o-id>/AWSLogs/*/…`` -
    the message gives the prefix that matches, once it has checked that it does.  A date folder that
    does not exist yet is not a layout problem (a quiet window), so date folders are not walked.
    """
    pattern = parse_prefix(prefix, sub_type)
    where = f"s3://{bucket}/" if bucket else ""
    problems: list[str] = []
    for variant in pattern.variants():
        first = variant.tokens[0]
        fixed = first.text if isinstance(first, _Lit) else ""
        if variant.appended_standard_folders or len(variant.tokens) > 1:
            fixed = fixed.rsplit("/", 1)[0] + "/" if "/" in fixed else ""
        found_orgs: list[str] = []
        missing: list[str] = []
        walker = _LayoutWalk(sub_type, list_common_prefixes, where, found_orgs, missing)
        if "*" not in fixed and fixed and list_common_prefixes(fixed):
            continue  # the usual case, a quiet window: the prefix's folder exists and holds date folders
        if walker.walk("", [seg for seg in fixed.split("/") if seg]):
            continue
        message = f"prefix {variant.prefix!r} cannot match the layout of the bucket: " + "; ".join(missing[:3])
        if found_orgs:
            message += (
                f". {_quote(where + f for f in found_orgs)} is an organisation id, never an account: the bucket has the "
                "organisation trail layout …/AWSLogs/<o-id>/<account>/…"
            )
            for org_folder in found_orgs:
                org = org_folder.rstrip("/").rsplit("/", 1)[-1]
                head, _, tail = variant.prefix.partition("/*/")
                suggestion = f"{head}/{org}/*/{tail}"
                try:
                    if not check_layout(suggestion, sub_type, list_common_prefixes):
                        message += f"; use the prefix {suggestion!r}"
                        break
                except PrefixError:
                    continue
        problems.append(message)
    return problems


def key_time(key: str, sub_type: str) -> datetime | None:
    """Time AWS encodes in an object key, or None when the key has none.

    * cloudtrail: the UTC *delivery* time in the file name (``…_20200911T1930Z_…``), to the minute;
      the file may hold events from any earlier time.
    * vpcflow: the file-name time, which is the start of the 5-minute window of flow *end* times
      (``…T1620Z`` holds end times 16:20:00-16:24:59, A8).
    * waf: the 5-minute folder (``…/YYYY/MM/dd/HH/mm/``), which equals the time in the file name in
      AWS's example; the file name is used when the folder layout is custom.

    Use :meth:`PrefixPattern.key_time` to also fall back to the date folders of a custom pattern.
    """
    if sub_type not in SUB_TYPES:
        raise ValueError(f"unknown sub type {sub_type!r}; allowed: {', '.join(SUB_TYPES)}")
    if sub_type == "waf":
        m = _WAF_FOLDER_TIME_RE.search(key)
        if m:
            try:
                return datetime(*(int(g) for g in m.groups()), tzinfo=UTC)  # type: ignore[misc]
            except ValueError:
                pass
    m = _NAME_TIME_RE[sub_type].match(key.rsplit("/", 1)[-1])
    if not m:
        return None
    try:
        return datetime.strptime(m.group(1), "%Y%m%dT%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None


def is_log_object(key: str, sub_type: str) -> bool:
    """Whether a listed key is a log file of ``sub_type`` that should be read.

    Skipped: folder markers (keys ending in ``/``, empty names); everything below a ``CloudTrail-*``
    sibling folder (``CloudTrail-Digest``, ``CloudTrail-Insight``, ``CloudTrail-NetworkActivity``,
    ``CloudTrail-Aggregated``) - note that a prefix ``…/CloudTrail`` without ``/`` would match them,
    which is why folders are compared as whole segments; AWS Config objects that share Control Tower
    buckets (``…/Config/…``, ``ConfigWritabilityCheckFile``).  CloudTrail and VPC flow log files must
    also have AWS's file-name shape, so stray files are not parsed as logs.  WAF is lenient about names
    because custom (e.g. Firehose-fed) layouts use other names.
    """
    if sub_type not in SUB_TYPES:
        raise ValueError(f"unknown sub type {sub_type!r}; allowed: {', '.join(SUB_TYPES)}")
    if not key or key.endswith("/"):
        return False
    *folders, name = key.split("/")
    if not name or name.startswith(".") or name == "ConfigWritabilityCheckFile":
        return False
    for seg in folders:
        if seg.startswith("CloudTrail-") or seg == "Config" or seg == "aws-service=config":
            return False
    if sub_type == "waf":
        return not any(f"_{other}_" in name for other in ("CloudTrail", "vpcflowlogs", "Config"))
    return _NAME_TIME_RE[sub_type].match(name) is not None
