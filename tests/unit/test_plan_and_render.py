from bot.render import SECTION_LIMIT, progress_bar, shown, status_message
from procedures.clusters import parse_clusters
from procedures.i18n import msg
from procedures.plan import plan, render_text
from procedures.registry import PROCEDURES
from workers.runs import FAILED, Run

CLUSTERS = parse_clusters(
    {
        "clusters": [
            {
                "name": "prod",
                "ssh": {"key": "/k", "known_hosts": "/kh"},
                "hosts": [
                    {"name": "master-0", "address": "10.0.0.10"},
                    {"name": "master-1", "address": "10.0.0.11"},
                ],
            }
        ]
    }
)


def test_every_step_names_its_runbook_section_and_has_a_unique_id() -> None:
    for procedure in PROCEDURES.values():
        ids = [step.id for step in procedure.steps]
        assert len(ids) == len(set(ids)), procedure.name
        assert all(step.section for step in procedure.steps)


def test_backup_plan_in_both_languages() -> None:
    lines = plan(PROCEDURES["backup"])
    assert [line.id for line in lines] == [
        "probe-hosts",
        "read-cluster",
        "pick-host",
        "run-backup",
        "verify-backup",
    ]
    english = render_text(PROCEDURES["backup"], CLUSTERS.get("prod"))
    assert "Run cluster-backup.sh [run-backup] — the host chosen as backup_host, in parallel" in english
    assert "master-0 (10.0.0.10), master-1 (10.0.0.11)" in english
    chinese = render_text(PROCEDURES["backup"], CLUSTERS.get("prod"), "zh-CN")
    assert "运行 cluster-backup.sh [run-backup]" in chinese


def test_progress_bar() -> None:
    assert progress_bar(0, 4) == "▱" * 12 + " 0/4"
    assert progress_bar(2, 4) == "▰" * 6 + "▱" * 6 + " 2/4"


def test_status_message_of_a_failed_run_stays_within_slack_limits() -> None:
    run = Run(
        id="r1",
        procedure="backup",
        cluster="prod",
        channel="C1",
        requester="U1",
        status=FAILED,
        step_index=3,
        created_at=1000.0,
        finished_at=1075.0,
        result={
            "step": "run-backup",
            "summary": {"key": "backup.script_failed", "args": {"host": "master-0", "reason": "x" * 5000}},
        },
    )
    text, blocks = status_message(run, PROCEDURES["backup"], None, "en")
    assert "prod" in text and "Failed" in text
    assert len(blocks) <= 50
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(s) <= SECTION_LIMIT for s in sections)
    assert any("Stopped at step `run-backup`: cluster-backup.sh failed on master-0" in s for s in sections)
    assert any("1m15s" in s for s in sections)


def test_values_from_hosts_never_ping_while_the_catalogs_markup_stays() -> None:
    hostile = msg("step.failed_on_hosts", hosts="master-0 <!channel> & <@U0BOSS>")
    assert shown(hostile, "en") == "failed on master-0 &lt;!channel&gt; &amp; &lt;@U0BOSS&gt;"
    nested = msg("step.wait_timed_out", seconds=5, last=msg("step.skipped_by", user="U0ALICE").to_json())
    assert shown(nested, "en") == "still not done after 5 s; last check: skipped by <@U0ALICE>"
