"""The streaming reader: Qualys' noise (CDATA, comments, DOCTYPE, broken start tags), its errors, its
continuation URL, hostile documents, and memory that does not grow with the hosts of a response."""

from __future__ import annotations

import io
import tracemalloc

import pytest
from lxml import etree

from seccollect.vendors.qualys.xml import QualysReturn, UnsafeXml, parse_simple_return, read_output

NOISY = b"""<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT SYSTEM
  "http://127.0.0.1:9/never-fetched/output.dtd">
<!-- This report was generated with an evaluation version of Qualys //-->
<HOST_LIST_VM_DETECTION_OUTPUT>
  <RESPONSE>
    <DATETIME>2026-03-01T01:00:00Z</DATETIME>
    <HOST_LIST>
      <HOST>
        <ID>101</ID>
        <ASSET_GROUP_LIST/>
        <OS>
            <![CDATA[Windows <Server> & 2019]]>
        </OS>
        <TAGS><TAG><NAME><![CDATA[Servers]]></NAME></TAG></TAGS>
        <DETECTION_LIST>
          <DETECTION>
            <QID>38170</QID>
            <RESULTS
            ><![CDATA[Certificate #0 doesn&apos;t
resolve]]></RESULTS>
            <QDS severity="HIGH">71</QDS>
            <QDS_FACTORS><QDS_FACTOR name="CVSS"><![CDATA[9.8]]></QDS_FACTOR></QDS_FACTORS>
          </DETECTION>
          <!-- keep-alive -->
          <DETECTION><QID>38173</QID></DETECTION>
        </DETECTION_LIST>
      </HOST>
      <!-- keep-alive -->
      <HOST><ID>105</ID><DETECTION_LIST><DETECTION><QID>1</QID></DETECTION></DETECTION_LIST></HOST>
    </HOST_LIST>
    <WARNING>
      <CODE>1980</CODE>
      <TEXT>2 record limit exceeded. Use URL to get next batch of results.</TEXT>
      <URL><![CDATA[
          https://qualysapi.qualys.com/api/4.0/fo/asset/host/vm/detection/?action=list&truncation_limit=2&id_min=107
      ]]></URL>
    </WARNING>
  </RESPONSE>
</HOST_LIST_VM_DETECTION_OUTPUT>
<!-- CONFIDENTIAL AND PROPRIETARY INFORMATION //-->
"""


def _read(body: bytes):
    hosts = []
    page = read_output(io.BytesIO(body), hosts.append)
    return hosts, page


def test_noise_is_read_as_qualys_means_it():
    hosts, page = _read(NOISY)
    assert [h["ID"] for h in hosts] == ["101", "105"]
    first = hosts[0]
    assert first["OS"] == "Windows <Server> & 2019"  # CDATA on an indented line, stripped
    assert first["ASSET_GROUP_LIST"] == [] and first["TAGS"] == [{"NAME": "Servers"}]
    detection = first["DETECTION_LIST"][0]
    assert detection["RESULTS"] == "Certificate #0 doesn&apos;t\nresolve"  # CDATA is literal
    assert detection["QDS"] == {"@severity": "HIGH", "#text": "71"}
    assert detection["QDS_FACTORS"] == [{"@name": "CVSS", "#text": "9.8"}]
    assert [d["QID"] for d in first["DETECTION_LIST"]] == ["38170", "38173"]
    # The continuation URL as given (another API version included), only trimmed of its padding.
    assert page.next_url == (
        "https://qualysapi.qualys.com/api/4.0/fo/asset/host/vm/detection/?action=list&truncation_limit=2&id_min=107"
    )
    assert (page.warning_code, page.hosts, page.response_time) == ("1980", 2, "2026-03-01T01:00:00Z")


def test_a_response_without_a_host_list_is_an_empty_last_page():
    hosts, page = _read(b"<HOST_LIST_OUTPUT><RESPONSE><DATETIME>2026-03-01T00:00:00Z</DATETIME></RESPONSE>"
                        b"</HOST_LIST_OUTPUT>")
    assert hosts == [] and page.next_url is None and page.hosts == 0


def test_simple_return_is_an_error_whatever_the_status():
    body = (b'<!DOCTYPE SIMPLE_RETURN SYSTEM "https://qualysapi.qualys.com/api/2.0/simple_return.dtd">\n'
            b"<SIMPLE_RETURN><RESPONSE><DATETIME>x</DATETIME><CODE>1965</CODE><TEXT>wait</TEXT>"
            b"<ITEM_LIST><ITEM><KEY>SECONDS_TO_WAIT</KEY><VALUE>852</VALUE></ITEM></ITEM_LIST></RESPONSE></SIMPLE_RETURN>")
    with pytest.raises(QualysReturn) as caught:
        _read(body)
    assert (caught.value.code, caught.value.text, caught.value.items) == ("1965", "wait", {"SECONDS_TO_WAIT": "852"})
    assert parse_simple_return(body).code == "1965"
    assert parse_simple_return(NOISY) is None


def test_a_cut_page_raises_a_syntax_error_for_the_http_layer_to_retry():
    with pytest.raises(etree.XMLSyntaxError):
        _read(NOISY[: len(NOISY) // 2])


def test_another_root_element_is_not_a_page():
    with pytest.raises(ValueError, match="root element is 'html'"):
        _read(b"<html><body>proxy login</body></html>")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE HOST_LIST_OUTPUT [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<HOST_LIST_OUTPUT><RESPONSE><HOST_LIST><HOST><ID>&lol9;</ID></HOST></HOST_LIST></RESPONSE></HOST_LIST_OUTPUT>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE HOST_LIST_OUTPUT [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<HOST_LIST_OUTPUT><RESPONSE><HOST_LIST><HOST><ID>&secret;</ID></HOST></HOST_LIST></RESPONSE></HOST_LIST_OUTPUT>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_documents_declaring_entities_are_refused(body):
    with pytest.raises(UnsafeXml):
        _read(body)
    assert parse_simple_return(body) is None


def test_the_external_dtd_is_never_fetched(monkeypatch):
    # The DOCTYPE names a DTD on a port where nothing listens: fetching it would fail or hang; it is not
    # fetched, and a document whose DTD is on the network parses as if it had none.
    hosts, _ = _read(NOISY)
    assert len(hosts) == 2


def _document(hosts: int, detections: int = 10) -> bytes:
    detection = b"<DETECTION><QID>1</QID><RESULTS><![CDATA[" + b"x" * 200 + b"]]></RESULTS></DETECTION>"
    host = b"<HOST><ID>%d</ID><DETECTION_LIST>" + detection * detections + b"</DETECTION_LIST></HOST>"
    body = b"".join(host % (i + 1) for i in range(hosts))
    return b"<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><HOST_LIST>" + body + b"</HOST_LIST></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>"


def _peak_while_reading(body: bytes) -> int:
    source = io.BytesIO(body)
    count = [0]
    tracemalloc.start()
    try:
        read_output(source, lambda host: count.__setitem__(0, count[0] + 1))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_hosts_of_a_response():
    small, large = _document(500), _document(10_000)  # ~1.2 MB and ~24 MB of XML
    small_peak, large_peak = _peak_while_reading(small), _peak_while_reading(large)
    # Twenty times the hosts: the reader's peak stays of the same order (a tree would be 20x larger).
    assert large_peak < 2 * small_peak + 256 * 1024, (small_peak, large_peak)
    assert large_peak < len(large) / 20


def test_each_detection_text_is_exactly_the_canonical_json_of_its_record_joined_with_its_host():
    from seccollect.records.envelope import canonical_json
    from seccollect.vendors.qualys.hook import _detection_records_and_texts

    # Keys that sort around HOST, quotes, non-ASCII, nesting.
    body = NOISY.replace(b"<QID>38173</QID>", "<QID>38173</QID><HOSTNAME>h\u00e9</HOSTNAME><HOST_X>\"HOST\":\"x\"</HOST_X>"
                         "<A_LIST><A>1</A></A_LIST><\u00c9T\u00c9>\U0001f600</\u00c9T\u00c9>".encode())
    hosts, _ = _read(body)
    joined = [_detection_records_and_texts(host) for host in hosts]
    records = [record for records, _ in joined for record in records]
    texts = [text for _, texts in joined for text in texts]
    assert len(records) == 3 and records[1]["HOST"] == {k: v for k, v in hosts[0].items() if k != "DETECTION_LIST"}
    assert records[1]["HOST_X"] == '"HOST":"x"' and "DETECTION_LIST" not in records[1]["HOST"]
    assert texts == [canonical_json(record) for record in records]


def test_the_fast_json_texts_equal_the_standard_librarys_for_every_character():
    from seccollect.records.envelope import canonical_json
    from seccollect.vendors.qualys.hook import _json_texts

    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)  # lone surrogates: below
    keys = {chr(c) + "k": [str(c), {"z": "", "#text": chr(c), "@a": "1"}] for c in range(0, 0x3000, 7)}
    records = [{"v": every, "e": [], "d": {}}, keys, {"\U0001f600": "x", "\uffff": "y", "\ue000": "z"}]
    assert _json_texts(records) == [canonical_json(record) for record in records]
    # What msgspec cannot encode is left to the intake, which quarantines it with its reason.
    assert _json_texts([{"v": "caf\udce9"}]) == [None]
