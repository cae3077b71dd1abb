"""Admission: a node's query reply decides whether, and as what, it joins the run."""

from __future__ import annotations

import logging

from flwr.app import RecordDict

from fedmoe_flwr.config import AppConfig
from fedmoe_flwr.contract import ROUTER_FILE
from fedmoe_flwr.lora import lora_signature
from fedmoe_flwr.merge.validation import UpdateRejected
from fedmoe_flwr.routing.centroids import CentroidBook
from fedmoe_flwr.server.federation import Federation
from fedmoe_flwr.server.intake import (
    Registration,
    check_initial_adapter,
    guarded,
    parse_registration,
)
from fedmoe_flwr.server.nodes import NodeInfo, NodeTable

log = logging.getLogger("fedmoe.server")


class Admission:
    """Registers compatible nodes, refuses the others with a reason, keeps their centroids."""

    def __init__(self, cfg: AppConfig, federation: Federation, nodes: NodeTable,
                 centroids: CentroidBook) -> None:
        self.cfg = cfg
        self.federation = federation
        self.nodes = nodes
        self.centroids = centroids
        self.known = frozenset(cfg.run.specialties)

    def receive(self, content: RecordDict, node_id: int) -> NodeInfo | None:
        """Admit the node that sent this query reply, or refuse it (None)."""
        try:
            reg = guarded(parse_registration, content, node_id)
            node = reg.node
            self._check(reg)
            if node.specialty not in self.federation.experts:
                like = next(iter(self.federation.experts.values()), None)
                init = guarded(check_initial_adapter, reg.adapter, self.cfg.model.lora_r,
                               like.weights if like else None)
                self.federation.add_expert(node.specialty, init)
                if node.specialty not in self.known:
                    self._announce(node)
        except UpdateRejected as err:
            self._refuse(node_id, f"{err.reason}: {err.detail}")
            return None
        self.nodes.add(node)
        if reg.centroid is not None or reg.ngrams is not None:
            self._keep_router_data(reg)
        log.info("node %s registered: %s, %d train / %d eval examples, %s", node_id,
                 node.specialty, node.num_train, node.num_eval, node.device)
        self.federation.run_dir.log_event("register", node=str(node_id),
                                          specialty=node.specialty, num_train=node.num_train,
                                          device=node.device)
        return node

    def _check(self, reg: Registration) -> None:
        expected = lora_signature(self.cfg.model)
        fingerprints = self.nodes.fingerprints()
        specialty, run = reg.node.specialty, self.cfg.run
        if specialty not in self.known and specialty not in self.federation.experts:
            if not run.allow_new_specialties:
                raise UpdateRejected("unknown-specialty", f"{specialty!r}; this run trains "
                                     f"{sorted(self.known)} (run.allow-new-specialties is off)")
            if len(self.federation.experts) >= run.max_experts:
                raise UpdateRejected("too-many-experts", f"{specialty!r} would be expert "
                                     f"{len(self.federation.experts) + 1}, over run.max-experts "
                                     f"= {run.max_experts}")
        if reg.signature != expected:
            raise UpdateRejected("lora-mismatch", f"LoRA signature {reg.signature} differs "
                                 f"from the server's {expected}")
        if fingerprints and reg.node.fingerprint not in fingerprints:
            raise UpdateRejected("base-mismatch", f"base model fingerprint {reg.node.fingerprint} "
                                 f"differs from {sorted(fingerprints)}")

    def _announce(self, node: NodeInfo) -> None:
        log.info("new specialty %s: node %s brought its initial adapter; expert %d of at most "
                 "%d, in the gateway from its next rebuild", node.specialty, node.node_id,
                 len(self.federation.experts), self.cfg.run.max_experts)
        self.federation.run_dir.log_event("new-expert", specialty=node.specialty,
                                          node=str(node.node_id),
                                          experts=sorted(self.federation.experts))

    def _refuse(self, node_id: int, reason: str) -> None:
        self.nodes.refuse(node_id, reason)
        log.warning("node %s refused: %s", node_id, reason)
        self.federation.run_dir.log_event("refused", node=str(node_id), reason=reason)

    def _keep_router_data(self, reg: Registration) -> None:
        book, node = self.centroids, reg.node
        problems = []
        if reg.centroid is not None:
            problems.append(book.add(node.node_id, node.specialty, reg.centroid,
                                     reg.centroid_count))
        if reg.ngrams is not None:
            problems.append(book.add_ngrams(node.node_id, node.specialty, reg.ngrams))
        for problem in filter(None, problems):
            log.warning("node %s: %s; the routers will not use it", node.node_id, problem)
        self.federation.run_dir.write_json(ROUTER_FILE, book.to_json())
