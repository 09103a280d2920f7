"""What a CloudFormation template makes in one stack: its conditions evaluated as CloudFormation evaluates them,
with the stack's parameter values and pseudo parameters (`Fn::Equals`, `Fn::And`, `Fn::Or`, `Fn::Not`, `Condition`,
`Ref`). A condition that cannot be evaluated here (an account not known, a function not listed) counts as holding:
who reads this (the diff's administrator lines, a deploy's bootstrap check) then asks for too much, never too
little. Templates are read in their long form (render.parse)."""

from __future__ import annotations

import json
from typing import Any

from pipec.validate.facts import PARTITION


class Stack:
    """One template with one stack's parameter values, in a region (and an account, where it is known)."""

    def __init__(self, template: dict[str, Any], values: dict[str, str], region: str,
                 account: str | None = None) -> None:
        self.refs = {key: str(declared["Default"]) for key, declared in (template.get("Parameters") or {}).items()
                     if isinstance(declared, dict) and "Default" in declared}
        self.refs |= values | {"AWS::Region": region, "AWS::Partition": PARTITION}
        if account is not None:
            self.refs["AWS::AccountId"] = account
        self.conditions: dict[str, Any] = template.get("Conditions") or {}
        self.template = template

    def resources(self) -> dict[str, Any]:
        """The resources the stack makes: those without a condition and those whose condition holds."""
        return {name: resource for name, resource in (self.template.get("Resources") or {}).items()
                if not isinstance(resource, dict) or "Condition" not in resource
                or self.holds(str(resource["Condition"])) is not False}

    def holds(self, name: str, depth: int = 0) -> bool | None:
        """Whether a named condition holds; None where this cannot tell."""
        if name not in self.conditions or depth > len(self.conditions):
            return None
        result = self._value(self.conditions[name], depth)
        return result if isinstance(result, bool) else None

    def statements(self, node: Any) -> set[str]:
        """The Sids of the policy statements in a resource's properties (only the branch of an `Fn::If` that
        holds, both where it cannot be told), also in a policy given as JSON text."""
        if isinstance(node, list):
            return set().union(*map(self.statements, node))
        if isinstance(node, dict):
            branches = node.get("Fn::If")
            if len(node) == 1 and isinstance(branches, list) and len(branches) == 3:
                holds = self.holds(str(branches[0]))
                return self.statements(branches[1:] if holds is None else branches[1 if holds else 2])
            found = {str(node["Sid"])} if isinstance(node.get("Sid"), str) and "Effect" in node else set()
            return found.union(*map(self.statements, node.values()))
        if isinstance(node, str) and node.lstrip().startswith("{"):
            try:
                return self.statements(json.loads(node))
            except ValueError:
                return set()
        return set()

    def _value(self, node: Any, depth: int) -> Any:
        if isinstance(node, (str, bool)):
            return node
        if not isinstance(node, dict) or len(node) != 1:
            return None
        [(function, argument)] = node.items()
        if function == "Ref":
            return self.refs.get(str(argument))
        if function == "Condition":
            return self.holds(str(argument), depth + 1)
        parts = [self._value(a, depth) for a in argument] if isinstance(argument, list) else []
        if function == "Fn::And" and parts:  # one that is false decides, even beside one this cannot tell
            return False if False in parts else None if None in parts else True
        if function == "Fn::Or" and parts:
            return True if True in parts else None if None in parts else False
        if None in parts:
            return None
        if function == "Fn::Equals" and len(parts) == 2:
            return str(parts[0]) == str(parts[1])
        if function == "Fn::Not" and len(parts) == 1:
            return not parts[0]
        return None
