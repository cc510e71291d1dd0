"""The pure planner: decisions + health + current weights -> gradual, safe weight changes (a Plan)."""

from pfepo.planner.plan import Plan
from pfepo.planner.planner import Planner

__all__ = ["Plan", "Planner"]
