"""Streaming parsers for CloudTrail, VPC flow log and WAF objects read from S3 (no Airflow, no boto3).

Every parser is an iterator over :class:`ParsedRecord` and reads its input in fixed-size chunks, so
memory is bounded by the largest single record, not by the object: a CloudTrail object is one JSON
document ``{"Records": [...]}`` that can hold hundreds of thousands of records, and it is split record
by record with :meth:`json.JSONDecoder.raw_decode` over a sliding text buffer (the C scanner of the
standard library; no extra dependency).

All-or-nothing objects
----------------------
A corrupt object (truncated or damaged gzip, invalid or truncated JSON, a VPC row that does not match
its header, a record without a usable time) raises :class:`CorruptObjectError` *while iterating*, after
the records before the damage have already been yielded.  A generator cannot take those back, so the
contract is: **the caller discards every record it received from an object whose iteration raised
CorruptObjectError**, quarantines the key and goes on with the rest of the window.  (Keeping the
prefix of a damaged object would load a partial object once and then, after the object is repaired
or re-delivered, load it again in full under the same identities - harmless for the warehouse but it
would make "what was loaded from this object" impossible to state.)  The error carries
``records_yielded`` so the caller can log how many records were dropped.  Network errors of the
underlying stream are *not* translated: they propagate unchanged so the task is retried instead of
the object being quarantined.

Empty objects (0 bytes, or a gzip member that decompresses to nothing) yield no records and are not
errors: AWS does not write them, an empty object has nothing to lose, and quarantining it would only
create noise.

Record identity (``vendor_id``)
-------------------------------
* CloudTrail: ``eventID`` (AWS: rare duplicate deliveries share it).  Records without one (event
  version 1.0) use the SHA-256 of the record's canonical JSON, so a re-delivered copy gets the same id.
* VPC flow logs and WAF have no record id (WAF's ``httpRequest.requestId`` is not unique in practice:
  the published samples carry ``"rid"`` and ``"null"``), so the id is the SHA-256 of the object key,
  the record's ordinal in the object and its exact text.  Objects are immutable, so re-reading an
  object reproduces the same ids (idempotent loads) while two identical lines are still two records.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from typing import IO, TYPE_CHECKING, Any

from seccollect.vendors.aws.prefix_pattern import SUB_TYPES, key_time

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "DEFAULT_VPC_COLUMNS",
    "MSG_CLASS",
    "MSG_ORIGIN",
    "CloudTrailRun",
    "CorruptObjectError",
    "ParsedRecord",
    "UnsupportedFormatError",
    "open_object_stream",
    "parse_cloudtrail",
    "parse_object",
    "parse_vpcflow",
    "parse_waf",
    "record_identity",
]

#: msg_class per sub type (CONNECTORS.md).
MSG_CLASS: dict[str, str] = {"cloudtrail": "cloudtrail", "vpcflow": "vpcflow", "waf": "aws_waf"}
#: msg_origin per sub type (CONNECTORS.md): category ``waf`` for aws_waf, ``paas`` otherwise.
MSG_ORIGIN: dict[str, dict[str, str]] = {
    "cloudtrail": {"source": "cloudtrail", "vendor": "aws", "category": "paas"},
    "vpcflow": {"source": "cloudtrail", "vendor": "aws", "category": "paas"},
    "waf": {"source": "cloudtrail", "vendor": "aws", "category": "waf"},
}

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
CHUNK_BYTES = 64 * 1024
#: Read size when CloudTrail records are decoded in runs (``runs=True``): a run is at most one buffer,
#: so a larger buffer means fewer, longer runs (~700 records of 1.5 KB per MiB); memory stays a few
#: MiB (the buffer, the run's copy and its bytes), whatever the object size.
RUN_CHUNK_BYTES = 1024 * 1024
#: A single record larger than this is treated as corruption (it would otherwise make a damaged
#: object - e.g. a missing closing quote - pull the rest of the object into memory).  CloudTrail
#: records are at most a few hundred KiB.
MAX_RECORD_CHARS = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    """One vendor record: the raw dict, its UTC event time, a stable identity and, when the parser has
    it, ``text``: the record's JSON text as it is in the object (a CloudTrail record's exact source
    text; canonical JSON for the rare records that had to be decoded as part of a whole document)."""

    raw: dict[str, Any]
    event_time: datetime
    vendor_id: str
    text: str | None = None


@dataclass(frozen=True, slots=True)
class ElementRun:
    """Consecutive array elements decoded in one call: ``projected`` (see :class:`CloudTrailFields`),
    ``raws`` (each element's JSON as ``msgspec.Raw``), their UTF-8 ``lengths`` and ``data``, the bytes
    ``[e0,e1,...]`` they were decoded from (single commas between them)."""

    projected: list[Any]
    raws: list[Any]
    lengths: list[int]
    data: bytes

    def texts(self) -> pa.StringArray:
        """Every element's exact JSON text, cut from :attr:`data` by Arrow (one copy, no Python
        string per element): element ``i`` plus its following comma (or the closing bracket) is a
        value of the uncut array, and the last byte of each value is dropped."""
        import pyarrow as pa
        import pyarrow.compute as pc

        offsets = pa.array(accumulate((n + 1 for n in self.lengths), initial=1), pa.int32())
        with_separator = pa.BinaryArray.from_buffers(
            pa.binary(), len(self.lengths), [None, offsets.buffers()[1], pa.py_buffer(self.data)]
        )
        return pc.binary_slice(with_separator, 0, -1).cast(pa.string())


@dataclass(frozen=True, slots=True)
class CloudTrailRun:
    """Consecutive CloudTrail records of one object, decoded only as far as the pipeline needs.

    ``fields[i]`` (a :class:`CloudTrailFields`), ``event_times[i]``, ``vendor_ids[i]`` and ``texts[i]``
    (the record's exact JSON text; an Arrow array) describe record ``i``; they equal what
    :class:`ParsedRecord` gives for the same record (``raw`` aside, which is not built).
    """

    fields: list[Any]
    event_times: list[datetime]
    vendor_ids: list[str]
    texts: pa.StringArray


class CorruptObjectError(ValueError):
    """The object cannot be parsed completely; the caller must quarantine it (see module docstring).

    ``reason`` says what is wrong; ``key`` is the object key when the parser was given one;
    ``records_yielded`` counts the records already yielded from the object, which must be discarded.
    """

    def __init__(self, reason: str, *, key: str = "", records_yielded: int = 0) -> None:
        self.reason = reason
        self.key = key
        self.records_yielded = records_yielded
        super().__init__(reason)

    def __str__(self) -> str:
        where = f" in {self.key}" if self.key else ""
        dropped = (
            f" ({self.records_yielded} records read before it must be discarded)"
            if self.records_yielded
            else ""
        )
        return f"corrupt object{where}: {self.reason}{dropped}"


class UnsupportedFormatError(CorruptObjectError):
    """A well-formed object in a format this parser does not read (e.g. Parquet flow logs)."""


# --------------------------------------------------------------------------------------------------
# byte streams
# --------------------------------------------------------------------------------------------------


class _HeadThenRest(io.RawIOBase):
    """Raw stream that returns already-consumed head bytes, then the rest of ``source``.

    Needed because S3 response bodies cannot seek or peek, yet the format is decided from the first
    bytes.
    """

    def __init__(self, head: bytes, source: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head.nbytes:
            n = min(len(view), self._head.nbytes)
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._source.read(len(view))
        if not data:
            return 0
        view[: len(data)] = data
        return len(data)


class _Guarded(io.BufferedIOBase):
    """Translates decompression failures into :class:`CorruptObjectError`; everything else passes.

    ``head`` holds the first bytes of the *stored* object and ``compression`` is ``"gzip"`` or
    ``None``, so callers can tell formats apart without reading.
    """

    def __init__(self, inner: IO[bytes], what: str, head: bytes, compression: str | None) -> None:
        self._inner = inner
        self._what = what
        self.head = head
        self.compression = compression

    def readable(self) -> bool:
        return True

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except EOFError as exc:  # gzip: "Compressed file ended before the end-of-stream marker"
            raise CorruptObjectError(f"truncated {self._what}: {exc}") from exc
        except gzip.BadGzipFile as exc:  # bad header, CRC or length check
            raise CorruptObjectError(f"damaged {self._what}: {exc}") from exc
        except _INFLATE_ERRORS as exc:  # damaged deflate data
            raise CorruptObjectError(f"damaged {self._what}: {exc}") from exc

    def read(self, size: int | None = -1) -> bytes:
        return self._call(self._inner.read, -1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        read1 = getattr(self._inner, "read1", self._inner.read)
        return self._call(read1, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._call(self._inner.readline, -1 if size is None else size)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


try:  # ISA-L's inflate: the same gzip reader API and errors as the standard library, ~3x faster
    from isal import igzip, isal_zlib

    _GzipReader: Any = igzip.IGzipFile
    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, isal_zlib.error)
except ImportError:  # pragma: no cover - isal is pinned in requirements.txt; without it, zlib
    _GzipReader = gzip.GzipFile
    _INFLATE_ERRORS = (zlib.error,)


def _read_head(fileobj: IO[bytes], n: int) -> bytes:
    head = b""
    while len(head) < n:
        data = fileobj.read(n - len(head))
        if not data:
            break
        head += data
    return head


def open_object_stream(fileobj: IO[bytes]) -> IO[bytes]:
    """Return a binary stream of the object's *content*, gunzipping when the data is gzip.

    The decision is made from the magic bytes ``1f 8b``, never from the key suffix, the configured
    File Type or ``Content-Encoding``: some clients transparently gunzip (then a ``.gz`` key delivers
    plain JSON), and mislabelled objects are a known cause of "gzip: invalid header" failures.
    Multi-member gzip is read to the end.  Damaged or truncated gzip raises
    :class:`CorruptObjectError` on read.  ``fileobj`` only needs ``read(n)`` (a botocore
    ``StreamingBody`` works) and is closed when the returned stream is closed.
    """
    head = _read_head(fileobj, 4)
    raw = io.BufferedReader(_HeadThenRest(head, fileobj), buffer_size=CHUNK_BYTES)
    if head[:2] == GZIP_MAGIC:
        return _Guarded(_GzipReader(fileobj=raw, mode="rb"), "gzip data", head, "gzip")  # type: ignore[return-value]
    return _Guarded(raw, "object", head, None)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# JSON value stream
# --------------------------------------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_RECORDS_OPEN = re.compile(r'\{[ \t\n\r]*"Records"[ \t\n\r]*:[ \t\n\r]*\[')
_WS_CHARS = " \t\n\r"
_SCAN = json.JSONDecoder().scan_once  # the C scanner behind raw_decode, minus one Python frame
#: Between two elements of a compact array of objects (AWS writes ``[{...},{...}]``, no whitespace).
_ELEMENT_SEP = "},{"
#: The first member name of an object: records of one producer all start with the same one (CloudTrail:
#: ``eventVersion``), nested objects rarely do, so ``},{"<it>":`` is a far better cut than ``},{``.
_FIRST_MEMBER = re.compile(r'\{"[A-Za-z0-9_@$.:-]{1,64}":')

try:  # msgspec comes with Airflow (core and task SDK); without it only the exact path is used
    import msgspec

    _DECODE_ELEMENTS: Any = msgspec.json.Decoder(list[msgspec.Raw]).decode
    _DECODE_VALUE: Any = msgspec.json.Decoder().decode
    _FAST_ERRORS: tuple[type[Exception], ...] = (msgspec.DecodeError,)

    class CloudTrailIdentity(msgspec.Struct, gc=False):
        """The two ``userIdentity`` members the AWS Events index keeps."""

        accountId: str | None = None  # noqa: N815 - AWS's member names
        arn: str | None = None

    class CloudTrailFields(msgspec.Struct, gc=False):
        """What the pipeline needs of a CloudTrail record: identity, time and the index's typed columns.

        Decoding a record into this struct skips every other member in C instead of building a dict
        of the whole record (~1.5 KB, dozens of nested members), which is most of what parsing cost.
        A member of another JSON type than declared here (a numeric account id, a ``userIdentity``
        that is not an object) fails the decoding of its run, which is then read by the exact path;
        so both paths give the same values.  ``gc=False``: these never hold reference cycles.
        """

        eventTime: str | None = None  # noqa: N815
        eventID: str | None = None  # noqa: N815
        recipientAccountId: str | None = None  # noqa: N815
        awsRegion: str | None = None  # noqa: N815
        eventSource: str | None = None  # noqa: N815
        eventName: str | None = None  # noqa: N815
        sourceIPAddress: str | None = None  # noqa: N815
        errorCode: str | None = None  # noqa: N815
        userIdentity: CloudTrailIdentity | None = None  # noqa: N815

    _DECODE_CLOUDTRAIL_RUN: Any = msgspec.json.Decoder(list[CloudTrailFields]).decode
except ImportError:  # pragma: no cover - msgspec is an Airflow dependency
    _DECODE_ELEMENTS = _DECODE_VALUE = _DECODE_CLOUDTRAIL_RUN = None
    _FAST_ERRORS = ()


class _JsonValues:
    """Top-level JSON values of a text stream, decoded one at a time from a sliding buffer.

    ``records()`` yields ``(value, raw_text)`` for: every element of a ``{"Records": [...]}`` document
    (streamed element by element), every element of a bare top-level array, and every other top-level
    value (one-JSON-per-line files, concatenated JSON).  Only the unconsumed tail of the buffer is
    kept, so memory is one chunk plus the record being decoded.

    With ``project`` (a decoder of a JSON array into a list of structs, e.g. of
    :class:`CloudTrailFields`), a run of array elements that the fast path reads is yielded as ONE
    :class:`ElementRun` of projected elements instead of one ``(dict, text)`` per element; elements
    read by the exact path are still yielded as ``(value, raw_text)``.

    Arrays are read by a fast path first (:meth:`_run_of_elements`: a whole buffer of elements per C
    call, about 3x faster than one ``scan_once`` per element, and the element's text comes for free)
    and element by element by the exact path otherwise; both give the same values, texts and errors.
    """

    def __init__(
        self,
        stream: IO[bytes],
        chunk: int = CHUNK_BYTES,
        max_chars: int = MAX_RECORD_CHARS,
        want_raw: bool = True,
        project: Any = None,
    ) -> None:
        self._stream = stream
        self.want_raw = want_raw
        self._project = project
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
        self._chunk = chunk
        self._max = max_chars
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.consumed = 0  # characters dropped from the front of buf (for error offsets)
        self._exact_until = 0  # absolute offset up to which arrays are read by the exact path only

    def _fill(self, want: int) -> bool:
        """Append at least ``want`` more bytes of text (unless EOF); False when nothing was added."""
        if self.eof:
            return False
        data = self._stream.read(max(want, self._chunk))
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise CorruptObjectError(f"not UTF-8 text: {exc}") from exc
        if not data:
            self.eof = True
        if self.pos:
            self.consumed += self.pos
            self.buf = self.buf[self.pos :]
            self.pos = 0
        self.buf += text
        return bool(text) or not self.eof

    def _where(self) -> str:
        return f"character {self.consumed + self.pos}"

    def peek(self) -> str | None:
        """Skip whitespace and return the next character without consuming it (None at EOF)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill(self._chunk):
                return None

    def expect(self, char: str, context: str) -> None:
        c = self.peek()
        if c != char:
            found = "end of data" if c is None else repr(c)
            raise CorruptObjectError(
                f"truncated or invalid JSON: expected {char!r} {context}, found {found} at {self._where()}"
            )
        self.pos += 1

    def value(self, want_raw: bool = True) -> tuple[Any, str]:
        """Decode the next JSON value (after whitespace), reading more data as needed.

        Returns the value and, if ``want_raw``, its exact source text.
        """
        pos = self.pos
        if pos >= len(self.buf) or self.buf[pos] in _WS_CHARS:
            if self.peek() is None:
                raise CorruptObjectError(f"truncated JSON: expected a value at {self._where()}")
        want = self._chunk
        while True:
            try:
                val, end = _SCAN(self.buf, self.pos)
            except StopIteration as exc:  # what JSONDecoder.raw_decode turns into "Expecting value"
                err_pos, msg = exc.value, "Expecting value"
            except json.JSONDecodeError as exc:
                err_pos, msg = exc.pos, exc.msg
            else:
                if end == len(self.buf) and not self.eof and not isinstance(val, dict | list | str):
                    self._fill(self._chunk)  # a bare number/literal may continue in the next chunk
                    continue
                raw = self.buf[self.pos : end] if want_raw else ""
                self.pos = end
                return val, raw
            if self.eof:
                raise CorruptObjectError(
                    f"truncated or invalid JSON at character {self.consumed + err_pos}: {msg}"
                )
            if len(self.buf) - self.pos > self._max:
                raise CorruptObjectError(
                    f"invalid JSON or a record larger than {self._max} characters at {self._where()}: {msg}"
                )
            # Probably the value continues beyond the buffer.  Grow geometrically so a large record
            # costs O(size) and not O(size^2) re-scans.
            want = max(want, len(self.buf) - self.pos)
            self._fill(want)

    def _ensure(self, chars: int) -> None:
        while len(self.buf) - self.pos < chars and self._fill(self._chunk):
            pass

    def records(self) -> Iterator[tuple[Any, str]]:
        while True:
            c = self.peek()
            if c is None:
                return
            if c == "{":
                self._ensure(256)
                m = _RECORDS_OPEN.match(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    yield from self._array_items("in the Records array")
                    self._rest_of_object()
                    continue
                val, raw = self.value(self.want_raw)
                records = val.get("Records") if isinstance(val, dict) else None
                if isinstance(records, list):  # Records not the first key: already fully decoded
                    for item in records:
                        yield (
                            item,
                            json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
                        )
                else:
                    yield val, raw
            elif c == "[":
                self.pos += 1
                yield from self._array_items("in the top-level array")
            else:
                raise CorruptObjectError(f"expected a JSON object at {self._where()}, found {c!r}")

    def _array_items(self, context: str) -> Iterator[tuple[Any, str]]:
        if self.peek() == "]":
            self.pos += 1
            return
        want_raw = self.want_raw
        fast = _DECODE_ELEMENTS is not None
        while True:
            if fast and self.consumed + self.pos >= self._exact_until:
                if (yield from self._run_of_elements()):
                    continue  # consumed whole elements and the comma after each: an element is next
            yield self.value(want_raw)
            # fast path: CloudTrail writes "},{" with no whitespace
            pos = self.pos
            c = self.buf[pos] if pos < len(self.buf) else None
            if c is None or c in _WS_CHARS:
                c = self.peek()
            if c == ",":
                self.pos += 1
            elif c == "]":
                self.pos += 1
                return
            else:
                found = "end of data (truncated)" if c is None else repr(c)
                raise CorruptObjectError(f"expected ',' or ']' {context} at {self._where()}, found {found}")

    def _run_of_elements(self) -> Iterator[tuple[Any, str]]:
        """Fast path: decode the run of whole elements starting at ``pos`` with msgspec; return how many.

        The buffer is cut after the ``}`` of its last ``},{"<m>":``, where ``m`` is the first member
        name of the element at ``pos`` (records of one producer start alike), and ``[<run>]`` is
        decoded into the elements' texts in one call.  A cut that falls inside a string or a nested
        array leaves the run unbalanced, so it cannot decode; an earlier cut is tried instead.  The run must be
        elements separated by single commas (AWS's compact output): then each element's text is
        exactly its source text and its position is known.  Anything else - whitespace between
        elements, no ``},{`` in the buffer, data msgspec rejects (corruption, but also ``NaN``,
        ``1e500`` or a lone surrogate that the ``json`` module accepts) - is left to the exact path
        (:meth:`value`) up to the first cut tried, so values, texts and errors are those of the exact
        path.  Every element consumed here is followed by a comma, which is consumed too.
        """
        if len(self.buf) - self.pos < self._chunk:
            self._fill(self._chunk)
        buf, start = self.buf, self.pos
        if start >= len(buf) or buf[start] != "{":
            return 0
        first = _FIRST_MEMBER.match(buf, start)
        sep = "}," + first.group() if first else _ELEMENT_SEP
        first_cut = cut = buf.rfind(sep, start)
        elements = None
        run = ""
        for _ in range(4):
            if cut < start:
                break
            run = "[" + buf[start : cut + 1] + "]"
            try:
                elements = _DECODE_ELEMENTS(run)
                break
            except _FAST_ERRORS:
                cut = buf.rfind(sep, start, cut)
        if elements is None:
            self._exact_until = self.consumed + (first_cut + 1 if first_cut >= start else len(buf))
            return 0
        if self._project is not None:
            # The run's UTF-8 bytes hold every element's exact text: ``[e0,e1,...]`` when the elements
            # are separated by single commas, which their byte lengths prove. The texts are then
            # cut from these bytes in Arrow, without a Python string per element.
            data = run.encode()
            lengths = [len(element) for element in elements]
            if sum(lengths) + len(lengths) + 1 == len(data):
                try:
                    projected = self._project(data)
                except _FAST_ERRORS:
                    projected = None  # e.g. a member of another type than declared: element by element
                if projected is not None:
                    self.pos = cut + 2
                    yield ElementRun(projected, elements, lengths, data)
                    return len(lengths)
        texts = [bytes(element).decode() for element in elements]
        if sum(map(len, texts)) + len(texts) != cut + 2 - start:  # not single commas between them
            self._exact_until = self.consumed + cut + 1
            return 0
        done = 0
        for element, text in zip(elements, texts, strict=True):
            try:
                value = _DECODE_VALUE(element)
            except _FAST_ERRORS:
                return done  # the exact path reads this element (and decides whether it is valid)
            self.pos += len(text) + 1
            done += 1
            yield value, text
        return done

    def _rest_of_object(self) -> None:
        """After the Records array: skip any further members and the closing brace."""
        while self.peek() == ",":
            self.pos += 1
            name, _ = self.value()
            if not isinstance(name, str):
                raise CorruptObjectError(f"expected a member name at {self._where()}")
            self.expect(":", "after a member name")
            self.value()
        self.expect("}", "to close the Records document")


# --------------------------------------------------------------------------------------------------
# identities and times
# --------------------------------------------------------------------------------------------------


def record_identity(key: str, ordinal: int, text: str) -> str:
    """SHA-256 hex of object key + record ordinal + record text: the id of VPC flow and WAF records."""
    h = hashlib.sha256()
    h.update(key.encode("utf-8"))
    h.update(b"\n%d\n" % ordinal)
    h.update(text.encode("utf-8"))
    return h.hexdigest()


def _content_hash(record: dict[str, Any]) -> str:
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _iso_utc(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _epoch_utc(seconds: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _epoch_ms_utc(ms: Any) -> datetime | None:
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        return None
    if isinstance(ms, float):
        if not ms.is_integer():
            return _epoch_utc(ms / 1000)
        ms = int(ms)
    # integer arithmetic: 1576280412771 -> .771000 exactly (a float division can give .770999)
    whole = _epoch_utc(ms // 1000)
    return None if whole is None else whole.replace(microsecond=(ms % 1000) * 1000)


# --------------------------------------------------------------------------------------------------
# CloudTrail
# --------------------------------------------------------------------------------------------------


def parse_cloudtrail(
    stream: IO[bytes], *, key: str = "", runs: bool = False
) -> Iterator[ParsedRecord | CloudTrailRun]:
    """Records of a CloudTrail log object (content stream, see :func:`open_object_stream`).

    Accepts the S3 shape ``{"Records": [...]}`` (streamed record by record), a bare array, and one
    record per line (``*-json.log`` fixtures).  Each record must be an object with a valid
    ``eventTime``; otherwise the object is corrupt (a digest body, for instance, is not a log file).

    With ``runs=True`` the records the fast path reads come as :class:`CloudTrailRun` batches, the
    others as :class:`ParsedRecord`, in object order: no dict and no Python string per record, only
    the members the index needs (bench/RESULTS.md, "CloudTrail end to end", has the effect). The
    larger read size of that mode lets a run span hundreds of records.
    """
    n = 0
    project = _DECODE_CLOUDTRAIL_RUN if runs else None
    values = _JsonValues(stream, chunk=RUN_CHUNK_BYTES if project else CHUNK_BYTES, project=project)
    times: dict[str, datetime | None] = {}  # an object's records share a few hundred distinct seconds
    try:
        for item in values.records():
            if isinstance(item, ElementRun):
                fields = item.projected
                event_times = []
                for i, record in enumerate(fields):
                    text_time = record.eventTime
                    event_time = times.get(text_time) if text_time else None
                    if event_time is None:
                        event_time = times[text_time] = _iso_utc(text_time)  # type: ignore[index]
                        if event_time is None:
                            raise CorruptObjectError(
                                f"record {n + i + 1} has no valid eventTime ({text_time!r}); "
                                "not a CloudTrail log record"
                            )
                    event_times.append(event_time)
                vendor_ids = [record.eventID for record in fields]
                if not all(vendor_ids):  # event version 1.0 records have no eventID: content hash
                    vendor_ids = [
                        vendor_id or _content_hash(_DECODE_VALUE(raw))
                        for vendor_id, raw in zip(vendor_ids, item.raws, strict=True)
                    ]
                yield CloudTrailRun(fields, event_times, vendor_ids, item.texts())
                n += len(fields)
                continue
            value, text = item
            if not isinstance(value, dict):
                raise CorruptObjectError(f"record {n + 1} is a {type(value).__name__}, not a JSON object")
            event_time = _iso_utc(value.get("eventTime"))
            if event_time is None and "Records" in value and not isinstance(value["Records"], list):
                # {"Records": {...}} or {"Records": null}: the S3 shape with the wrong member type
                raise CorruptObjectError(
                    f"'Records' is a {type(value['Records']).__name__}, not a list of records"
                )
            if event_time is None:
                raise CorruptObjectError(
                    f"record {n + 1} has no valid eventTime ({value.get('eventTime')!r}); not a CloudTrail log record"
                )
            event_id = value.get("eventID")
            vendor_id = event_id if isinstance(event_id, str) and event_id else _content_hash(value)
            yield ParsedRecord(value, event_time, vendor_id, text)
            n += 1
    except CorruptObjectError as exc:
        exc.key, exc.records_yielded = key, n
        raise


# --------------------------------------------------------------------------------------------------
# VPC flow logs
# --------------------------------------------------------------------------------------------------

#: The default (version 2) format; it cannot be changed, only replaced by a custom format (A9).
DEFAULT_VPC_COLUMNS: tuple[str, ...] = (
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
)
#: Every field name AWS documents (v2-v8, incl. ECS); used to recognise the header line.
KNOWN_VPC_FIELDS: frozenset[str] = frozenset(
    DEFAULT_VPC_COLUMNS
    + (
        "vpc-id",
        "subnet-id",
        "instance-id",
        "tcp-flags",
        "type",
        "pkt-srcaddr",
        "pkt-dstaddr",
        "region",
        "az-id",
        "sublocation-type",
        "sublocation-id",
        "pkt-src-aws-service",
        "pkt-dst-aws-service",
        "flow-direction",
        "traffic-path",
        "ecs-cluster-arn",
        "ecs-cluster-name",
        "ecs-container-instance-arn",
        "ecs-container-instance-id",
        "ecs-container-id",
        "ecs-second-container-id",
        "ecs-service-name",
        "ecs-task-definition-arn",
        "ecs-task-arn",
        "ecs-task-id",
        "reject-reason",
        "resource-id",
        "encryption-status",
    )
)
#: Fields that are integers (Parquet types INT_32/INT_64 in A9); all others stay strings
#: (``account-id`` keeps leading zeros and can be ``unknown``).
VPC_INT_FIELDS: frozenset[str] = frozenset(
    {
        "version",
        "srcport",
        "dstport",
        "protocol",
        "packets",
        "bytes",
        "start",
        "end",
        "tcp-flags",
        "traffic-path",
        "encryption-status",
    }
)
_HEADER_TOKEN = re.compile(r"^[a-z][a-z0-9-]*$")


def _looks_like_header(fields: list[str]) -> bool:
    return all(_HEADER_TOKEN.match(f) for f in fields) and sum(
        f in KNOWN_VPC_FIELDS for f in fields
    ) * 2 >= len(fields)


def _vpc_value(name: str, text: str) -> Any:
    if text == "-":
        return None
    if name in VPC_INT_FIELDS and (text.isdigit() or (text[:1] == "-" and text[1:].isdigit())):
        return int(text)
    return text


def parse_vpcflow(
    stream: IO[bytes], *, key: str = "", columns: Sequence[str] | None = None
) -> Iterator[ParsedRecord]:
    """Records of a VPC flow log text object (content stream).

    The first line of an S3 object is the header naming the columns (``version account-id …`` for the
    default format, any order/subset for custom formats), so the column order is learned per object.
    A headerless input (the published fixtures) uses ``columns`` or, failing that, the 14 default
    columns - and is corrupt if the field count differs.  ``-`` becomes None, known numeric fields
    become ints, NODATA/SKIPDATA rows are kept (their ``log-status`` says why they carry no traffic).
    The event time is ``end`` (files are cut by flow end time), else ``start``, else the key time.
    """
    n = 0
    header: list[str] | None = None
    fallback_time = key_time(key, "vpcflow") if key else None
    try:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline=None)
        line_no = 0
        while True:
            try:
                line = text.readline()
            except UnicodeDecodeError as exc:
                raise CorruptObjectError(f"not UTF-8 text after line {line_no}: {exc}") from exc
            if not line:
                break
            line_no += 1
            line = line.rstrip("\n")
            fields = line.split()
            if not fields:
                continue
            if header is None:
                if _looks_like_header(fields):
                    header = fields
                    continue
                header = list(columns) if columns else list(DEFAULT_VPC_COLUMNS)
            if len(fields) != len(header):
                hint = "" if columns else " (no header line: pass columns= for a custom format)"
                raise CorruptObjectError(
                    f"line {line_no} has {len(fields)} fields but the format has {len(header)}{hint}"
                )
            raw = {name: _vpc_value(name, value) for name, value in zip(header, fields, strict=True)}
            end, start = raw.get("end"), raw.get("start")
            event_time = None
            for candidate in (end, start):
                if isinstance(candidate, int):
                    event_time = _epoch_utc(candidate)
                    break
            event_time = event_time or fallback_time
            if event_time is None:
                raise CorruptObjectError(f"line {line_no} has no usable end/start time")
            yield ParsedRecord(raw, event_time, record_identity(key, line_no, line))
            n += 1
    except CorruptObjectError as exc:
        exc.key, exc.records_yielded = key, n
        raise


# --------------------------------------------------------------------------------------------------
# WAF
# --------------------------------------------------------------------------------------------------


def parse_waf(stream: IO[bytes], *, key: str = "") -> Iterator[ParsedRecord]:
    """Records of an AWS WAF log object (content stream): one JSON object per line.

    Concatenated objects without newlines (as Firehose writes them) are read too.  ``timestamp`` is
    epoch milliseconds; a record without it is corrupt.
    """
    n = 0
    try:
        for value, raw in _JsonValues(stream).records():
            if not isinstance(value, dict):
                raise CorruptObjectError(f"record {n + 1} is a {type(value).__name__}, not a JSON object")
            ts = value.get("timestamp")
            event_time = _epoch_ms_utc(ts)
            if event_time is None:
                raise CorruptObjectError(f"record {n + 1} has no valid millisecond timestamp ({ts!r})")
            n += 1
            yield ParsedRecord(value, event_time, record_identity(key, n, raw))
    except CorruptObjectError as exc:
        exc.key, exc.records_yielded = key, n
        raise


# --------------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------------


def parse_object(
    fileobj: IO[bytes],
    sub_type: str,
    *,
    key: str = "",
    vpc_columns: Sequence[str] | None = None,
    runs: bool = False,
) -> Iterator[ParsedRecord | CloudTrailRun]:
    """Sniff compression and parse an S3 object body of ``sub_type`` (see the module docstring).

    ``runs=True``: CloudTrail records may come as :class:`CloudTrailRun` batches (see
    :func:`parse_cloudtrail`); the other sub types always yield :class:`ParsedRecord`.
    """
    if sub_type not in SUB_TYPES:
        raise ValueError(f"unknown sub type {sub_type!r}; allowed: {', '.join(SUB_TYPES)}")
    stream = open_object_stream(fileobj)
    try:
        if getattr(stream, "head", b"") == PARQUET_MAGIC:
            raise UnsupportedFormatError("Parquet objects are not supported yet", key=key)
        if sub_type == "cloudtrail":
            yield from parse_cloudtrail(stream, key=key, runs=runs)
        elif sub_type == "vpcflow":
            yield from parse_vpcflow(stream, key=key, columns=vpc_columns)
        else:
            yield from parse_waf(stream, key=key)
    finally:
        stream.close()
