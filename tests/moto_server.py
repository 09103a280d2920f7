"""moto's server, with one fix the tests need: executing a change set updates the stack's parameters.

moto 5.2 applies a change set's parameters to the resources but keeps the stack's `parameters` from its creation,
and a later change set is "no changes" when its parameters equal those: a stack created with 1.1.0, rolled back to
1.0.0, then deployed with 1.1.0 again would stay at 1.0.0 while CloudFormation would update it. Run as
`python tests/moto_server.py -H 127.0.0.1 -p PORT`, the arguments of moto_server.
"""

from __future__ import annotations

import sys
from typing import Any

from moto.cloudformation import models
from moto.server import main

_execute = models.CloudFormationBackend.execute_change_set


def _execute_and_keep_parameters(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
    change_set = self.change_sets.get(change_set_name) or next(
        (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None)
    _execute(self, change_set_name, stack_name)
    if change_set is not None and change_set.change_set_type == "UPDATE":
        self.stacks[change_set.stack_id].parameters = change_set.parameters


models.CloudFormationBackend.execute_change_set = _execute_and_keep_parameters  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
