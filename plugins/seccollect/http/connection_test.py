"""The connection Test button's behaviour, shared by every vendor hook: fast, and said briefly.

A person pressing Test waits for the answer in the UI (the api-server runs the hook in its request), so
the test does not run the retry schedule of a collection (six attempts with backoff, per content type:
nearly two minutes against an unreachable tenant). It makes one attempt per request with short
timeouts (:data:`TEST_RETRY`, :data:`TEST_TIMEOUT`), stops trying further checks once the host did not
answer at all (they would fail the same way), and gives up on what is left after
:data:`TEST_TIME_BUDGET` seconds, so a refusing or silent host answers within about 15 seconds.

The answer has one line per checked item (a vendor's content types), and an error repeated across items
is written out once, the other items pointing to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from seccollect.http.client import RetryPolicy
from seccollect.http.errors import VendorApiError, explain_status

#: One attempt per request: a failure is reported, not retried.
TEST_RETRY = RetryPolicy(max_attempts=1)
#: (connect, read) timeout of a test request, in seconds.
TEST_TIMEOUT: tuple[float, float] = (3.0, 8.0)
#: After this many seconds the remaining checks are not started.
TEST_TIME_BUDGET = 12.0
#: Starts each line: the UI's message toast joins lines with a space, a bullet keeps them apart there.
BULLET = "• "

@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``ok``, and the reason when it failed (short, no endpoint)."""

    ok: bool
    reason: str = ""


def short_reason(exc: BaseException) -> str:
    """What went wrong, without the endpoint, attempt count or connection id (the person is looking at
    the connection; the endpoint differs per item and would hide that the cause is the same)."""
    if isinstance(exc, VendorApiError):
        parts: list[str] = []
        if exc.status is not None:
            parts.append(explain_status(exc.status))
        if exc.detail:
            parts.append(_transport_reason(exc.detail) if exc.status is None else exc.detail)
        if exc.vendor_message:
            parts.append(f"{exc.vendor} said: {exc.vendor_message}")
        return " — ".join(parts) or str(exc)
    return str(exc) or type(exc).__name__


def _transport_reason(detail: str) -> str:
    """``ConnectionError: [Errno 111] Connection refused`` out of ``ConnectionError: no complete
    response ([Errno 111] Connection refused)``, with what to check."""
    kind, _, rest = detail.partition(":")
    cause = rest.strip().removeprefix("no complete response").strip().removeprefix("(").removesuffix(")")
    return f"{kind.strip()}: {cause or rest.strip()} (no answer from the host: check the host/URL, port and proxy)"


def run_checks(
    checks: Mapping[str, Callable[[], object]],
    *,
    budget: float = TEST_TIME_BUDGET,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, CheckResult]:
    """Run each check in order; a check passes when it returns and fails with the reason it raised.

    Once a check got no answer from the host at all (a :class:`VendorApiError` without HTTP status:
    refused, unreachable, timed out), the rest are not tried and carry the same reason; once ``budget``
    seconds have passed, the rest are reported as not tested.
    """
    results: dict[str, CheckResult] = {}
    started = clock()
    unreachable: str | None = None
    for name, check in checks.items():
        if unreachable is not None:
            results[name] = CheckResult(False, unreachable)
            continue
        if clock() - started > budget:
            results[name] = CheckResult(False, f"not tested: the test stops after {budget:.0f} s")
            continue
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a line of the answer
            results[name] = CheckResult(False, short_reason(exc))
            if isinstance(exc, VendorApiError) and exc.status is None:
                unreachable = results[name].reason
        else:
            results[name] = CheckResult(True)
    return results


def summarize(title: str, results: Mapping[str, CheckResult]) -> tuple[bool, str]:
    """``(all passed, message)``: ``title``, then one line per check (``• alert: OK``); a reason already
    given is not repeated (``• event: FAILED — same as alert``)."""
    lines = [title]
    first_with: dict[str, str] = {}
    for name, result in results.items():
        if result.ok:
            lines.append(f"{BULLET}{name}: OK")
        elif result.reason in first_with:
            lines.append(f"{BULLET}{name}: FAILED — same as {first_with[result.reason]}")
        else:
            first_with[result.reason] = name
            lines.append(f"{BULLET}{name}: FAILED — {result.reason}")
    return all(r.ok for r in results.values()), "\n".join(lines)
