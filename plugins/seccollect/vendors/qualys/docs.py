"""The Qualys connector's part of its DAGs' docs."""

NOTES = """## How windows are read

Both content types are read by **processing time**: the time Qualys finished processing the scan results
behind a record, which is when a record becomes (or changes) what the API returns. Each run asks for the
records processed in its data interval shifted back by the settle lag (`settle_lag_seconds`, time for
Qualys to finish processing scans stamped inside the window); the range actually queried is kept with
the window in `collection_ledger.cursor`, and consecutive windows tile it.

* **Hosts** (host list API → Syslog, Assets): `vm_processed_after` / `vm_processed_before`, the host-level
  filter on when a host's scan results were processed (the one Microsoft Sentinel uses for incremental
  pulls). `vm_scan_since` would miss hosts whose results are processed long after the scan.
  A host's version is its content: a host seen again unchanged adds nothing.
* **Vulnerabilities** (host detection list API → Syslog, Scans): `detection_processed_after` /
  `detection_processed_before`, the detection-level filter on `LAST_PROCESSED_DATETIME`, so a window
  returns only the detections that changed in it (a host-level filter would return every detection of
  every rescanned host). The status set is sent explicitly (`New,Active,Fixed,Re-Opened`): fixed
  findings are collected too. One record per detection, with its host's identity under `HOST`.
  A detection is identified by its `UNIQUE_VULN_ID` where present, else (host ID, QID, port, protocol,
  SSL); its version is `LAST_UPDATE_DATETIME`: the same state collected twice adds nothing, a changed
  state adds a new row. The view `qualys_finding_status` holds the latest row of each finding.

Whether `*_after` includes its boundary is undocumented: it is sent one second early, and a record read
twice collapses on its identity. Pages follow Qualys' own `WARNING` URL as given. A record that cannot
be handled (no host ID or QID, a time that does not parse …) is set aside in `quarantine` with its
reason; the rest of the window loads.
"""
