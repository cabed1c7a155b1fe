"""The chaos suite: drbot's drills run under faults through the real processes (Slack simulator →
signed HTTP → `drbot serve` → Redis → `drbot worker` → SSH/API → twin), measured from the journal, the
timeline, the Slack simulator and the twin's hosts. `make chaos` runs it (chaos/runner.py); tests/chaos
runs a quick subset with the same code.
"""
