"""Which expert(s) answer a prompt: the routers, one file each, and the registry (numpy only).

Adding a router: a :class:`~fedmoe_flwr.routing.router.Scorer` in a file of its
own, and one ``register_router`` line below.
"""

from fedmoe_flwr.routing.arrow import ArrowScorer
from fedmoe_flwr.routing.centroids import CentroidScorer
from fedmoe_flwr.routing.keywords import KeywordScorer
from fedmoe_flwr.routing.loss import LossScorer
from fedmoe_flwr.routing.ngrams import NgramScorer
from fedmoe_flwr.routing.router import register_router, router_names

register_router(NgramScorer)
register_router(CentroidScorer)
register_router(LossScorer)
register_router(KeywordScorer)
register_router(ArrowScorer)

__all__ = ["router_names"]
