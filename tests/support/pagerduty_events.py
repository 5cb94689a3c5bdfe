#!/usr/bin/env python3
"""Sends Events API v2 events to IMAS with PagerDuty's official Python client.

Usage: pagerduty_events.py BASE_URL ROUTING_KEY CA_FILE

BASE_URL is IMAS's https:// address (the client refuses any other scheme) and
CA_FILE the PEM certificate of the CA that signed IMAS's certificate, handed to
the client as `verify`. The events, in order: a trigger, the same trigger again
(a repeat), an acknowledge, a resolve, and the trigger once more (after the
resolve: a new alert); then two events IMAS must refuse with PagerDuty's 400
(one missing payload fields, one with a key IMAS does not know). Prints one
JSON object: the dedup key the client returned for each accepted event, and the
status and body of each refusal.

Exit status: 0 when every step went as the client expects; 3 when the
`pagerduty` package is not installed; 1 otherwise (the client's error on stderr).
"""

import json
import sys
import warnings

try:
    import pagerduty
except ImportError as e:
    print(f"the pagerduty package is not installed: {e}", file=sys.stderr)
    sys.exit(3)


def refusal(client, **event):
    """The status and JSON body of an event the server must refuse."""
    try:
        client.send_event("trigger", **event)
    except pagerduty.HttpError as e:
        return {"status": e.response.status_code, "body": e.response.json()}
    raise SystemExit("an invalid event was accepted")


def main():
    base_url, routing_key, ca_file = sys.argv[1:4]
    # httpx2 calls `verify=<path>` deprecated; it is what the brief asks to use.
    warnings.simplefilter("ignore", DeprecationWarning)
    client = pagerduty.EventsApiV2Client(routing_key, base_url=base_url, verify=ca_file)
    # A refused event must fail the run, not be retried for minutes.
    client.max_http_attempts = 3

    trigger = dict(
        summary="Disk full on db-1",
        source="db-1.example.com",
        dedup_key="db-1/disk",
        severity="error",
        payload={"component": "postgres", "group": "storage", "class": "disk"},
        custom_details={"free": "0%", "mount": "/var/lib/postgresql"},
        links=[{"href": "https://runbooks.example.com/disk", "text": "Runbook"}],
    )
    out = {"version": pagerduty.__version__}
    out["trigger"] = client.trigger(**trigger)
    out["repeat"] = client.trigger(**trigger)
    out["acknowledge"] = client.acknowledge(out["trigger"])
    out["resolve"] = client.resolve(out["trigger"])
    out["trigger_again"] = client.trigger(**trigger)

    out["missing_fields"] = refusal(client, payload={"summary": "no source, no severity"})
    stranger = pagerduty.EventsApiV2Client(
        "0" * 32, base_url=base_url, verify=ca_file
    )
    out["unknown_key"] = refusal(
        stranger, payload={"summary": "s", "source": "s", "severity": "info"}
    )
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except pagerduty.Error as e:
        print(f"pagerduty client error: {e}", file=sys.stderr)
        sys.exit(1)
