"""Plan stage: every explicit AWS name the plan makes stays within AWS's limit for its kind (PC211).

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
