"""``eqbench.declare``: annotate a module with the actions of the group on its input and output.

    layer = eqbench.declare(EquivariantLayer(), in_action=Points(), out_action=Vectors())

The annotation lives on the module (attribute :data:`ATTRIBUTE`), so copies of the model (the
checker's float64 twin is a deep copy) keep it. :func:`eqbench.check.explain` treats a declared
module as one unit: it measures that module's own equivariance error between the declared
actions and does not look inside it. The value of a module call is the single positional
argument, a tuple of the positional arguments, or a dict of keyword arguments (the checker's
calling convention in reverse); the declared ``in_action`` describes that value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from eqbench.actions.base import Action

#: The module attribute holding a :class:`DeclaredActions`.
ATTRIBUTE = "eqbench_actions"
ModuleT = TypeVar("ModuleT")


@dataclass(frozen=True)
class DeclaredActions:
    """The declared actions on a module's input value and output value."""

    in_action: Action
    out_action: Action


def declare(module: ModuleT, *, in_action: Action, out_action: Action) -> ModuleT:
    """Declare how the group acts on ``module``'s input and output; returns ``module`` (for chaining).

    Raises ``TypeError`` when ``module`` is not an ``nn.Module`` or an action is not an eqbench action.
    """
    from torch import nn

    from eqbench.actions.base import Action

    if not isinstance(module, nn.Module):
        raise TypeError(f"declare annotates an nn.Module, got {type(module).__name__}")
    for label, action in (("in_action", in_action), ("out_action", out_action)):
        if not isinstance(action, Action):
            raise TypeError(f"declare: {label} must be an eqbench action (e.g. eqbench.actions.Points()), got {action!r}")
    setattr(module, ATTRIBUTE, DeclaredActions(in_action, out_action))
    return module


def declared_actions(module: object) -> DeclaredActions | None:
    """The module's declared actions, or ``None``."""
    found = getattr(module, ATTRIBUTE, None)
    return found if isinstance(found, DeclaredActions) else None
