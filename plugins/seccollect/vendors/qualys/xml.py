"""Reading Qualys FO API XML as a stream: hosts (with their detections) one at a time, in constant memory.

Why a stream: a detection page holds up to ``truncation_limit`` hosts times their detections (peers that
build the whole document need gigabytes). :func:`read_output` walks the body with
``lxml.etree.iterparse`` and hands every finished ``HOST`` to a callback, then drops it from the tree,
so memory holds one host at a time whatever the page's size.

Why so careful with the document: Qualys bodies start with a DOCTYPE naming an external DTD (its URL
changed over the years), carry comments (evaluation banners, keep-alive comments in the middle of
``RESPONSE``), CDATA on indented lines and start tags broken across lines. The DTD is never fetched
(``no_network``, ``load_dtd=False``), entities are never expanded, and a document that declares
entities of its own (a "billion laughs") is refused before lxml sees it: a real Qualys body declares
none.

Errors come as ``SIMPLE_RETURN`` whatever the HTTP status (code 2001 arrives with HTTP 200), so the
root element decides: :class:`QualysReturn` carries its code, text and items.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from lxml import etree

#: Root elements of the outputs this connector reads.
OUTPUT_ROOTS = frozenset({"HOST_LIST_OUTPUT", "HOST_LIST_VM_DETECTION_OUTPUT"})
#: Children that are always lists, however many entries they hold (one tag never flips between a
#: value and a list from one record to the next).
LIST_ELEMENTS = frozenset({"TAGS", "QDS_FACTORS", "CLOUD_PROVIDER_TAGS", "ID_SET", "TRURISK_SCORE_FACTORS"})
#: The most bytes read before the root element: a real prologue is an XML declaration, a DOCTYPE line
#: and a comment or two.
MAX_PROLOGUE = 64 * 1024


class QualysReturn(Exception):  # noqa: N818 - named after the vendor's SIMPLE_RETURN
    """A ``SIMPLE_RETURN`` body: the vendor's error (or notice), whatever the HTTP status was."""

    def __init__(self, code: str | None, text: str | None, items: dict[str, str]) -> None:
        super().__init__(f"code {code}: {text}" if code else (text or "SIMPLE_RETURN without a code"))
        self.code = code
        self.text = text
        self.items = items


class UnsafeXml(Exception):  # noqa: N818 - a refusal, not a parse failure: never retried
    """A document this reader refuses (it declares entities): retrying cannot make it safe."""


@dataclass
class PageEnd:
    """What a page says about itself after its hosts: the response time and the continuation."""

    response_time: str | None = None
    warning_code: str | None = None
    warning_text: str | None = None
    #: The ``WARNING`` URL, trimmed of the whitespace around its CDATA; ``None`` on the last page.
    next_url: str | None = None
    hosts: int = 0
    id_set: list[str] = field(default_factory=list)


class _GuardedSource:
    """A file-like wrapper that checks the prologue (everything before the root element) before lxml
    reads it: entity declarations are refused, and so is a prologue longer than any real one."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._checked = False
        self._pending = b""

    def _check(self) -> None:
        buffer = b""
        while True:
            chunk = self._raw.read(8192)
            buffer += chunk or b""
            root = _root_start(buffer)
            if root is not None or not chunk or len(buffer) > MAX_PROLOGUE:
                break
        prologue = buffer if root is None else buffer[:root]
        if b"<!ENTITY" in prologue.upper():
            raise UnsafeXml("the response declares XML entities (e.g. a 'billion laughs' document); refused")
        if root is None and len(buffer) > MAX_PROLOGUE:
            raise UnsafeXml(f"no root element in the first {MAX_PROLOGUE} bytes of the response; refused")
        self._pending = buffer
        self._checked = True

    def read(self, size: int = -1) -> bytes:
        if not self._checked:
            self._check()
        if self._pending:
            out, self._pending = (self._pending, b"") if size < 0 or size >= len(self._pending) else (
                self._pending[:size], self._pending[size:])
            return out
        return self._raw.read(size) if size >= 0 else self._raw.read()


def _root_start(data: bytes) -> int | None:
    """The offset of the root element's ``<`` (the first ``<`` not opening ``<?``, ``<!``), if seen."""
    position = 0
    while True:
        position = data.find(b"<", position)
        if position < 0 or position + 1 >= len(data):
            return None
        following = data[position + 1 : position + 2]
        if following not in (b"?", b"!"):
            return position
        if data[position + 1 : position + 4] == b"!--":  # a comment may hold any text: skip it whole
            end = data.find(b"-->", position + 4)
            if end < 0:
                return None
            position = end + 3
            continue
        if data[position + 1 : position + 9].upper() == b"!DOCTYPE":
            # A DOCTYPE with an internal subset ends at "]>"; without one at the first ">".
            bracket, close = data.find(b"[", position), data.find(b">", position)
            if close < 0:
                return None
            if 0 <= bracket < close:
                end = data.find(b"]", bracket)
                close = data.find(b">", end) if end >= 0 else -1
                if close < 0:
                    return None
            position = close + 1
            continue
        position += 2


def _is_list(tag: str) -> bool:
    """Whether the children of ``tag`` are always a list (memoised: a document repeats a few dozen tags)."""
    listy = _LISTY.get(tag)
    if listy is None:
        listy = tag in LIST_ELEMENTS or tag.endswith("_LIST")
        if len(_LISTY) < 4096:  # a document of ever new tag names does not grow it without end
            _LISTY[tag] = listy
    return listy


_LISTY: dict[str, bool] = {}
#: Element children only (comments are removed by the parser; an entity reference is not an element).
_ELEMENTS = etree.Element


def value_of(element: etree._Element) -> Any:
    """An element as plain data: text (stripped, CDATA included) for a leaf; a dict of its children
    otherwise (a repeated child becomes a list; the children of ``*_LIST`` and :data:`LIST_ELEMENTS`
    always do); attributes as ``@name`` beside the text in ``#text``. Comments are skipped."""
    if len(element):  # children, though maybe none that is an element (an entity reference)
        value = _children(element)
        if value is not None:
            return value
    if _is_list(element.tag) and not (element.text or "").strip():
        return []  # <ASSET_GROUP_LIST/>: an empty list, like a full one's type
    return _leaf(element)


def _children(element: etree._Element) -> list[Any] | dict[str, Any] | None:
    """The list or dict of :func:`value_of` for an element with children; ``None`` when none of them is
    an element (it is read as a leaf then)."""
    if _is_list(element.tag):
        return [value_of(child) if len(child) else _leaf(child) for child in element.iterchildren(_ELEMENTS)] or None
    attrib = element.attrib
    out: dict[str, Any] = {f"@{k}": v for k, v in attrib.items()} if attrib else {}
    repeated: set[str] | None = None  # keys that became lists by repetition (a list value is not appended to)
    listy = _LISTY
    children = 0
    # Run for every field of every record: the leaf case (no children, no attributes) is inlined.
    for child in element.iterchildren(_ELEMENTS):  # element children only: comments are skipped in C
        children += 1
        name = child.tag
        is_list_child = listy.get(name)
        if is_list_child is None:
            is_list_child = _is_list(name)
        if len(child) or is_list_child:
            value = value_of(child)
        elif child.attrib:
            value = _leaf(child)
        else:
            text = child.text
            value = text.strip() if text else ""
        if name not in out:
            out[name] = value
        elif repeated is not None and name in repeated:
            out[name].append(value)
        else:
            out[name] = [out[name], value]
            repeated = (repeated or set()) | {name}
    return out if children else None


def _leaf(element: etree._Element) -> Any:
    text = element.text
    text = text.strip() if text else ""
    if element.attrib:
        return {**{f"@{k}": v for k, v in element.attrib.items()}, "#text": text}
    return text


def _drop(element: etree._Element) -> None:
    """Free a handled element and the siblings before it (iterparse keeps the tree otherwise)."""
    element.clear()
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def simple_return(element: etree._Element) -> QualysReturn:
    """The :class:`QualysReturn` of a parsed ``SIMPLE_RETURN`` element."""
    response = element.find("RESPONSE")
    response = response if response is not None else element
    items = {}
    for item in response.iterfind("ITEM_LIST/ITEM"):
        key, value = item.findtext("KEY"), item.findtext("VALUE")
        if key:
            items[key.strip()] = (value or "").strip()
    code, text = response.findtext("CODE"), response.findtext("TEXT")
    return QualysReturn(code.strip() if code else None, text.strip() if text else None, items)


def read_output(source: IO[bytes], on_host: Callable[[dict[str, Any]], None]) -> PageEnd:
    """Read one Qualys host list or host detection output from ``source`` (a file-like of bytes).

    Every ``HOST`` is handed to ``on_host`` as plain data (:func:`value_of`, its ``DETECTION_LIST`` a
    list of detections) as soon as its end tag is read, then dropped. ``ID_SET`` ids (``details=None``)
    are collected in :attr:`PageEnd.id_set`. A response without ``HOST_LIST`` is an empty page.

    :raises QualysReturn: the body is a ``SIMPLE_RETURN``.
    :raises UnsafeXml: the body declares entities.
    :raises etree.XMLSyntaxError: the body is cut or malformed (the HTTP layer retries it).
    :raises ValueError: the root element is not a host output.
    """
    page = PageEnd()
    parser_events = etree.iterparse(
        _GuardedSource(source),
        events=("end",),
        tag=("HOST", "WARNING", "ID", "DATETIME", "SIMPLE_RETURN"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        # Whitespace-only text between elements is not kept (every value read is stripped, and a leaf's
        # own whitespace is kept by libxml2): fewer nodes to build and to walk past.
        remove_blank_text=True,
        strip_cdata=True,
    )
    for _event, element in parser_events:
        tag = element.tag
        parent = element.getparent()
        parent_tag = parent.tag if parent is not None else None
        if tag == "HOST" and parent_tag == "HOST_LIST":
            on_host(value_of(element))
            page.hosts += 1
            _drop(element)
        elif tag == "ID" and parent_tag == "ID_SET":
            page.id_set.append((element.text or "").strip())
            _drop(element)
        elif tag == "WARNING" and parent_tag == "RESPONSE":
            code, text, url = element.findtext("CODE"), element.findtext("TEXT"), element.findtext("URL")
            page.warning_code = code.strip() if code else None
            page.warning_text = text.strip() if text else None
            page.next_url = url.strip() or None if url else None
        elif tag == "DATETIME" and parent_tag == "RESPONSE" and page.response_time is None:
            page.response_time = (element.text or "").strip()
        elif tag == "SIMPLE_RETURN":
            raise simple_return(element)
    root = parser_events.root
    if root is None or root.tag not in OUTPUT_ROOTS:
        raise ValueError(f"expected a Qualys host output, the body's root element is {getattr(root, 'tag', None)!r}")
    return page


def parse_simple_return(body: bytes) -> QualysReturn | None:
    """The ``SIMPLE_RETURN`` of a small (error) body read whole, or ``None`` when it is not one."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        head = body[:MAX_PROLOGUE]
        root_at = _root_start(head)
        if b"<!ENTITY" in (head if root_at is None else head[:root_at]).upper():
            return None
        root = etree.fromstring(body, parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    return simple_return(root) if root.tag == "SIMPLE_RETURN" else None
