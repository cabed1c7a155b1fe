import pytest

from bot.parse import UsageError, parse, specs

KNOWN = specs({"backup": ["host", "dir"]})


def test_empty_text_is_help() -> None:
    assert parse("").command == "help"


def test_backup_with_options() -> None:
    parsed = parse("backup prod-east host=master-1 dir=/home/core/b", KNOWN)
    assert parsed.command == "backup"
    assert parsed.args == {"cluster": "prod-east"}
    assert parsed.options == {"host": "master-1", "dir": "/home/core/b"}


def test_note_keeps_the_whole_text() -> None:
    assert parse("note etcd on master-2 looks  slow = bad").args == {
        "text": "etcd on master-2 looks  slow = bad"
    }


@pytest.mark.parametrize(
    ("text", "problem", "usage"),
    [
        ("restor prod", "usage.unknown_command", "/dr help"),
        ("backup", "usage.missing", "/dr backup CLUSTER [host=HOST] [dir=DIR]"),
        ("backup prod extra", "usage.extra", "/dr backup CLUSTER [host=HOST] [dir=DIR]"),
        ("backup prod hots=m1", "usage.unknown_option", "/dr backup CLUSTER [host=HOST] [dir=DIR]"),
        ("backup prod host=", "usage.empty_option", "/dr backup CLUSTER [host=HOST] [dir=DIR]"),
        ('backup "prod', "usage.bad_quotes", "/dr backup CLUSTER [host=HOST] [dir=DIR]"),
        ("note", "usage.missing", "/dr note TEXT"),
    ],
)
def test_mistakes_say_what_is_wrong_and_the_right_form(text: str, problem: str, usage: str) -> None:
    with pytest.raises(UsageError) as error:
        parse(text, KNOWN)
    assert error.value.problem.key == problem
    assert error.value.usage == usage


def test_unknown_option_names_the_allowed_ones() -> None:
    with pytest.raises(UsageError) as error:
        parse("backup prod hots=m1", KNOWN)
    assert error.value.problem.args == {"option": "hots", "allowed": "host, dir"}
