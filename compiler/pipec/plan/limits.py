"""Plan stage: every explicit AWS name the plan makes stays within AWS's limit for its kind (PC211) and belongs to
one thing only (PC219).

Checked on the names themselves, as the templates will print them, and reported at the spec key they come from.
"""

from __future__ import annotations

from collections.abc import Iterable

from pipec.diagnostics import Diagnostic, PipecError
from pipec.load.load import Document, SpecPath
from pipec.plan.names import LIMITS

Named = tuple[str, str, str, SpecPath]  # (environment, kind, name, where in the spec)


def check(named: Iterable[Named], document: Document) -> None:
    """Raise PipecError naming each kind of name that is too long, once per environment (and a name that serves
    two kinds, such as a function and its schedule, once)."""
    found: list[Diagnostic] = []
    reported: set[tuple[str, str]] = set()
    for env, kind, name, where in named:
        if len(name) > LIMITS[kind] and (env, kind) not in reported and (env, name) not in reported:
            reported |= {(env, kind), (env, name)}
            found.append(document.diagnostic("PC211", where, f'the {kind} name "{name}" would have {len(name)} '
                                             f"characters; AWS allows {LIMITS[kind]}",
                                             f'shorten the project, the environment "{env}" or the service name',
                                             key=True))
    if found:
        raise PipecError(found)


def unique(named: Iterable[Named], document: Document) -> None:
    """Raise PipecError for each name that two things would share: names are project-environment-unit, so
    environment `prod` with service `eu-api` and environment `prod-eu` with service `api` meet, and so does a
    service named like a shared stack (`network`, `bootstrap`). Reported once per pair, at the later one."""
    owners: dict[tuple[str, str], tuple[str, SpecPath]] = {}
    found: list[Diagnostic] = []
    reported: set[tuple[str, SpecPath, str, SpecPath]] = set()
    for env, kind, name, where in named:
        first = owners.setdefault((kind, name), (env, where))
        pair = (*first, env, where)
        if first != (env, where) and pair not in reported:
            reported.add(pair)
            found.append(document.diagnostic("PC219", where, f'the {kind} name "{name}" of {_owner(env, where, kind)} '
                                             f"is already that of {_owner(*first, kind)}",
                                             "rename one of them: AWS names are project-environment-service, "
                                             "and bootstrap and network name the shared stacks", key=True))
    if found:
        raise PipecError(found)


def _owner(env: str, where: SpecPath, kind: str) -> str:
    if where[0] == "services":
        return f'service "{where[1]}" in environment "{env}"'
    return f'the shared {kind} of environment "{env}"'
