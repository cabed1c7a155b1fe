"""Parsing `/dr` command text into a subcommand, its arguments and `key=value` options.

Pure functions; a mistake raises UsageError with a catalog message that says what is wrong and shows
the right form.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from procedures.i18n import Msg, msg


@dataclass(frozen=True)
class Spec:
    usage: str
    args: tuple[str, ...] = ()
    """Names of required positional arguments."""
    optional: tuple[str, ...] = ()
    """Names of optional positional arguments, after the required ones."""
    options: tuple[str, ...] = ()
    """Allowed `key=value` options."""
    rest: bool = False
    """The remaining text is one free-form argument (for notes)."""


BUILTIN: dict[str, Spec] = {
    "help": Spec("/dr help"),
    "plan": Spec("/dr plan PROCEDURE [CLUSTER]", args=("procedure",), optional=("cluster",)),
    "status": Spec("/dr status [CLUSTER]", optional=("cluster",)),
    "abort": Spec("/dr abort RUN-ID|CLUSTER", args=("target",)),
    "retry": Spec("/dr retry RUN-ID", args=("run",)),
    "unlock": Spec("/dr unlock CLUSTER", args=("cluster",)),
    "timeline": Spec("/dr timeline"),
    "note": Spec("/dr note TEXT", args=("text",), rest=True),
    "language": Spec("/dr language en|zh-CN", args=("language",)),
}


def procedure_spec(name: str, parameters: Iterable[str]) -> Spec:
    """Every procedure is started the same way: `/dr NAME CLUSTER [key=VALUE]…`."""
    options = tuple(parameters)
    usage = f"/dr {name} CLUSTER" + "".join(f" [{key}={key.upper()}]" for key in options)
    return Spec(usage, args=("cluster",), options=options)


def specs(procedures: Mapping[str, Iterable[str]]) -> dict[str, Spec]:
    """The built-in subcommands plus one per procedure (procedure name → its parameter names)."""
    return {**BUILTIN, **{name: procedure_spec(name, params) for name, params in procedures.items()}}


class UsageError(ValueError):
    def __init__(self, problem: Msg, usage: str) -> None:
        super().__init__(problem.key)
        self.problem = problem
        self.usage = usage


@dataclass(frozen=True)
class Parsed:
    command: str
    args: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)


def parse(text: str, known: Mapping[str, Spec] = BUILTIN) -> Parsed:
    text = text.strip()
    if not text:
        return Parsed("help")
    command, _, rest = text.partition(" ")
    command = command.lower()
    spec = known.get(command)
    if spec is None:
        raise UsageError(msg("usage.unknown_command", command=command, commands=", ".join(known)), "/dr help")
    if spec.rest:
        if not rest.strip():
            raise UsageError(msg("usage.missing", name=spec.args[0]), spec.usage)
        return Parsed(command, {spec.args[0]: rest.strip()})
    try:
        words = shlex.split(rest)
    except ValueError as error:
        raise UsageError(msg("usage.bad_quotes", error=str(error)), spec.usage) from None
    positional = [w for w in words if "=" not in w]
    options = dict(w.split("=", 1) for w in words if "=" in w)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise UsageError(
            msg("usage.unknown_option", option=unknown[0], allowed=", ".join(spec.options) or "-"), spec.usage
        )
    empty = sorted(k for k, v in options.items() if not v)
    if empty:
        raise UsageError(msg("usage.empty_option", option=empty[0]), spec.usage)
    if len(positional) < len(spec.args):
        raise UsageError(msg("usage.missing", name=spec.args[len(positional)]), spec.usage)
    names = spec.args + spec.optional
    if len(positional) > len(names):
        raise UsageError(msg("usage.extra", extra=" ".join(positional[len(names) :])), spec.usage)
    return Parsed(command, dict(zip(names, positional, strict=False)), options)
