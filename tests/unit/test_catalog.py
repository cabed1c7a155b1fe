"""Every catalog key used in the code exists in English and Chinese, with the same placeholders."""

import re
import string
from pathlib import Path

from procedures.i18n import catalog, msg, t

ROOT = Path(__file__).resolve().parents[2]
LITERAL_KEY = re.compile(r'\b(?:msg|t)\(\s*"([a-z_]+(?:\.[a-z_]+)+)"')
DYNAMIC = {
    "status.": ["running", "waiting", "succeeded", "failed", "aborted"],
    "click.": ["stale", "taken", "not_approver", "requester"],
    "thread.gate.": ["approval", "choice", "unknown_outcome"],
    "thread.run_": ["succeeded", "failed", "aborted"],
    "timeline.gate_opened.": ["approval", "choice", "unknown_outcome"],
    "timeline.run_": ["succeeded", "failed", "aborted"],
    "help.": ["help", "plan", "status", "abort", "retry", "timeline", "note", "language"],
    "retry.": ["unknown", "not_allowed", "retried", "not_failed", "rejected", "busy"],
}


def used_keys() -> set[str]:
    keys: set[str] = set()
    for package in ("bot", "workers", "procedures", "drbot"):
        for path in (ROOT / package).rglob("*.py"):
            keys.update(LITERAL_KEY.findall(path.read_text()))
    for prefix, tails in DYNAMIC.items():
        keys.update(prefix + tail for tail in tails)
    return keys


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_used_key_is_in_both_languages() -> None:
    missing = {lang: sorted(k for k in used_keys() if k not in catalog(lang)) for lang in ("en", "zh-CN")}
    assert missing == {"en": [], "zh-CN": []}


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    en, zh = catalog("en"), catalog("zh-CN")
    assert set(en) == set(zh)
    different = [k for k in en if placeholders(en[k]) != placeholders(zh[k])]
    assert different == []


def test_nested_messages_render_in_the_same_language() -> None:
    reason = msg("kube.no_kubeconfig", cluster="prod").to_json()
    assert t("backup.version_unknown", "zh-CN", reason=reason) == (
        "集群版本未知（集群 prod 在集群配置文件中没有 kubeconfig）；备份将继续进行"
    )
