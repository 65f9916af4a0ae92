"""The plan stage: which deployments may serve a request, in the order to try them.

Issue-2 policy: the alias's configured order, deployments known to be unhealthy moved to the
end (tried only as a last resort, so a stale health mark never fails a request by itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fulcrum.api.errors import model_not_found
from fulcrum.auth.principal import Principal
from fulcrum.routing.health import HealthRegistry
from fulcrum.schema.openai import InferenceRequest


class Planner:
    """Resolves a public model alias to an ordered list of deployment names."""

    def __init__(self, models: Mapping[str, Sequence[str]], health: HealthRegistry) -> None:
        self._models = {alias: tuple(targets) for alias, targets in models.items()}
        self._health = health

    @property
    def aliases(self) -> list[str]:
        return list(self._models)

    def knows(self, alias: str) -> bool:
        return alias in self._models

    def plan(self, principal: Principal, request: InferenceRequest) -> list[str]:
        targets = self._models.get(request.model)
        if targets is None:
            raise model_not_found(request.model)
        usable = [name for name in targets if self._health.usable(name)]
        if len(usable) == len(targets):
            return list(targets)
        return usable + [name for name in targets if name not in usable]
