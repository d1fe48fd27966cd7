"""What the Qualys connector adds beside the shared indices: the current-status view over Scans."""

from __future__ import annotations

#: The latest version of every finding (per tenant, instance and detection identity): "what is the
#: current status of each finding". Scans keeps every version (one row per LAST_UPDATE_DATETIME); the
#: latest is the one with the newest update time.
FINDING_STATUS_VIEW = (
    "qualys_finding_status",
    """SELECT tenant, instance, vendor_id AS finding_id, asset_id, vulnerability_id, severity, status,
       event_time AS last_update, window_start, record_id, raw
FROM (
    SELECT s.*, row_number() OVER (
        PARTITION BY tenant, instance, vendor_id ORDER BY event_time DESC NULLS LAST, window_start DESC, record_id
    ) AS version_rank
    FROM scans s
    WHERE msg_class = 'qualys_vulnerabilities'
) ranked
WHERE version_rank = 1""",
)

VIEWS: tuple[tuple[str, str], ...] = (FINDING_STATUS_VIEW,)
