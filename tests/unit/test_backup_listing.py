import pytest

from procedures.backup import backup_report, parse_backup_listing
from procedures.i18n import t
from procedures.steps import StepFailed

LISTING = """snapshot_2026-11-29_104501.db 5275680
static_kuberesources_2026-11-29_104501.tar.gz 71424
{"hash":3264961329,"revision":9821,"totalKey":1442,"totalSize":5275648}
"""


def test_parse_listing() -> None:
    backup = parse_backup_listing(LISTING)
    assert backup == {
        "snapshot": "snapshot_2026-11-29_104501.db",
        "snapshot_size": 5275680,
        "resources": "static_kuberesources_2026-11-29_104501.tar.gz",
        "resources_size": 71424,
        "timestamp": "2026-11-29_104501",
        "revision": 9821,
        "total_keys": 1442,
    }


def test_files_from_different_backups_are_refused() -> None:
    mixed = LISTING.replace(
        "static_kuberesources_2026-11-29_104501", "static_kuberesources_2026-11-28_090000"
    )
    with pytest.raises(StepFailed) as error:
        parse_backup_listing(mixed)
    assert error.value.summary.key == "backup.mismatched_files"


def test_unreadable_listing() -> None:
    with pytest.raises(StepFailed) as error:
        parse_backup_listing("ls: cannot access 'snapshot_*.db': No such file or directory\n")
    assert error.value.summary.key == "backup.listing_unreadable"


def test_report_names_files_sizes_and_version() -> None:
    backup = {
        **parse_backup_listing(LISTING),
        "host": "master-0",
        "dir": "/home/core/assets/backup",
        "cluster_version": "4.14.38",
    }
    text = t(backup_report(backup))
    assert "snapshot_2026-11-29_104501.db (5.0 MiB, revision 9821, 1442 keys)" in text
    assert "static_kuberesources_2026-11-29_104501.tar.gz (69.8 KiB)" in text
    assert "Cluster version: 4.14.38" in text
