"""Admission: a node's query reply decides whether, and as what, it joins the run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flwr.app import RecordDict

from fedmoe_flwr.config import ConfigError, check_name
from fedmoe_flwr.contract import LoraSignature, Registration
from fedmoe_flwr.events import EventLog, NewExpert, Refused, Register
from fedmoe_flwr.merge.validation import UpdateRejected
from fedmoe_flwr.routing.centroids import CentroidBook
from fedmoe_flwr.server.federation import Federation
from fedmoe_flwr.server.intake import check_initial_adapter, guarded
from fedmoe_flwr.server.nodes import NodeInfo, NodeTable

log = logging.getLogger("fedmoe.server")


@dataclass(frozen=True)
class AdmissionRules:
    """Who may join: the LoRA shape every node must use, and which specialties."""

    lora: LoraSignature
    specialties: frozenset[str]  # run.specialties
    allow_new: bool  # run.allow-new-specialties
    max_experts: int  # run.max-experts


class Admission:
    """Registers compatible nodes, refuses the others with a reason, keeps routing statistics.

    ``adapter_for`` (the strategy's) says which adapter a node of a specialty
    trains; ``write_router`` saves the routers' statistics (``router.json``).
    """

    def __init__(self, rules: AdmissionRules, federation: Federation, nodes: NodeTable,
                 book: CentroidBook, adapter_for: Callable[[str], str], events: EventLog,
                 write_router: Callable[[dict[str, Any]], Any]) -> None:
        self.rules = rules
        self.federation = federation
        self.nodes = nodes
        self.book = book
        self.adapter_for = adapter_for
        self.events = events
        self.write_router = write_router

    def receive(self, content: RecordDict, node_id: int) -> NodeInfo | None:
        """Admit the node that sent this query reply, or refuse it (None)."""
        try:
            reg = guarded(Registration.from_content, content)
            self._check(reg)
            adapter = self.adapter_for(reg.specialty)
            if adapter not in self.federation.experts:
                like = next(iter(self.federation.experts.values()), None)
                init = guarded(check_initial_adapter, reg.adapter, self.rules.lora.r,
                               like.weights if like else None)
                self.federation.add_expert(adapter, init)
                if reg.specialty not in self.rules.specialties:
                    self._announce(reg.specialty, node_id)
        except UpdateRejected as err:
            self._refuse(node_id, f"{err.reason}: {err.detail}")
            return None
        node = NodeInfo(node_id, reg.specialty, adapter, reg.num_train, reg.num_eval,
                        reg.device, reg.fingerprint)
        self.nodes.add(node)
        if reg.centroid is not None or reg.ngrams is not None:
            self._keep_router_data(reg, node_id)
        log.info("node %s registered: %s, %d train / %d eval examples, %s", node_id,
                 node.specialty, node.num_train, node.num_eval, node.device)
        self.events.write(Register(node=str(node_id), specialty=node.specialty, adapter=adapter,
                                   num_train=node.num_train, device=node.device))
        return node

    def _check(self, reg: Registration) -> None:
        try:
            check_name(reg.specialty, "the node's specialty")
        except ConfigError as err:
            raise UpdateRejected("bad-specialty", str(err)) from None
        rules, experts = self.rules, self.federation.experts
        if reg.specialty not in rules.specialties and reg.specialty not in experts:
            if not rules.allow_new:
                raise UpdateRejected("unknown-specialty", f"{reg.specialty!r}; this run trains "
                                     f"{sorted(rules.specialties)} (run.allow-new-specialties "
                                     f"is off)")
            if len(experts) >= rules.max_experts:
                raise UpdateRejected("too-many-experts", f"{reg.specialty!r} would be expert "
                                     f"{len(experts) + 1}, over run.max-experts = "
                                     f"{rules.max_experts}")
        if reg.lora != rules.lora:
            raise UpdateRejected("lora-mismatch", f"LoRA signature {reg.lora} differs from the "
                                 f"server's {rules.lora}")
        fingerprints = self.nodes.fingerprints()
        if fingerprints and reg.fingerprint not in fingerprints:
            raise UpdateRejected("base-mismatch", f"base model fingerprint {reg.fingerprint} "
                                 f"differs from {sorted(fingerprints)}")

    def _announce(self, specialty: str, node_id: int) -> None:
        experts = self.federation.experts
        log.info("new specialty %s: node %s brought its initial adapter; expert %d of at most "
                 "%d, in the gateway from its next rebuild", specialty, node_id, len(experts),
                 self.rules.max_experts)
        self.events.write(NewExpert(specialty=specialty, node=str(node_id),
                                    experts=sorted(experts)))

    def _refuse(self, node_id: int, reason: str) -> None:
        self.nodes.refuse(node_id, reason)
        log.warning("node %s refused: %s", node_id, reason)
        self.events.write(Refused(node=str(node_id), reason=reason))

    def _keep_router_data(self, reg: Registration, node_id: int) -> None:
        problems = []
        if reg.centroid is not None:
            problems.append(self.book.add(node_id, reg.specialty, reg.centroid,
                                          reg.centroid_count))
        if reg.ngrams is not None:
            problems.append(self.book.add_ngrams(node_id, reg.specialty, reg.ngrams))
        for problem in filter(None, problems):
            log.warning("node %s: %s; the routers will not use it", node_id, problem)
        self.write_router(self.book.to_json())
