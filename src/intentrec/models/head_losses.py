"""The losses of prior heads: each head's cross-entropy on its own targets, and the merged loss.

What they train and why (in-group candidates, the horizon discount, frequency weights, the merged loss
that puts every head's scores on one scale) is told in :mod:`intentrec.models.heads`, with the heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from intentrec.models.heads import PriorHeads


def prior_heads_loss(
    heads: PriorHeads,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    items: torch.Tensor,
    target_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Every head's cross-entropy on the targets that carry its values, averaged as configured.

    ``hidden (P, D)`` one row per position, ``targets (P, K)`` model indices of the items 1..K ahead
    (``PAD`` = none), ``items (n_items + 1, D)`` the model's item table, ``target_rows (P, K)`` the
    targets' rows in the interactions table (the events prior reads them).
    """
    config = heads.config
    items = heads.items(items)
    trains = heads.trains(targets, target_rows)  # (P, K, H)
    discount = config.discount ** torch.arange(targets.shape[1], dtype=hidden.dtype, device=hidden.device)
    # the merged loss needs every head's query at every position: computed once, for both losses
    every_query = heads(hidden) if config.merged_weight else None  # (P, H, D)
    # unbound once: a slice per head would cost its backward a zeroed (P, H, D) gradient for each head
    head_queries = every_query.unbind(1) if every_query is not None else None
    losses, totals, log_partitions = [], [], []
    for head in range(trains.shape[2]):
        positions, ahead = trains[:, :, head].nonzero(as_tuple=True)
        group_log_probs = None
        if head_queries is not None:  # the merged loss scores every position against the head's group
            group_log_probs, log_partition = _group_log_softmax(heads, head_queries[head], head, items)
            log_partitions.append(log_partition)
        if len(positions) == 0:
            continue
        target, weight = targets[positions, ahead], discount[ahead]
        if config.objective == "softmax" and config.in_group_negatives:
            # only the items the head may give are scored: its group, not the whole catalogue
            assert heads.allowed[target, head].all(), "a head trains only on targets it may give"
            rows = positions  # of group_log_probs
            if group_log_probs is None:  # no merged loss: score only the positions this head trains on
                unique, rows = torch.unique(positions, return_inverse=True)
                group_log_probs, _ = _group_log_softmax(heads, heads.query(hidden[unique], head), head, items)
            nll = -group_log_probs[rows, torch.searchsorted(heads.group(head), target)]
        else:
            # a position with several targets for this head (horizon) needs its query and softmax once
            unique, pair = torch.unique(positions, return_inverse=True)
            if head_queries is None:
                queries = heads.query(hidden[unique], head)
            else:
                queries = head_queries[head][unique]
            if config.objective == "softmax":
                log_probs = F.log_softmax(heads.scale() * queries @ items[1:].T, dim=1)  # (U, n_items)
                nll = -log_probs[pair, target - 1]
            else:
                pool = heads.group(head) if config.in_group_negatives else None
                nll = _info_nce(queries[pair], target, items, pool, config.negatives, heads)
        losses.append((nll * weight).sum() / weight.sum())
        totals.append(weight.sum())
    weights = torch.stack(totals) if config.frequency_weights else hidden.new_ones(len(totals))
    loss = (torch.stack(losses) * weights).sum() / weights.sum()
    if every_query is not None:
        merged = merged_softmax_loss(heads, every_query, targets[:, 0], items, torch.stack(log_partitions, 1))
        loss = loss + config.merged_weight * merged
    return loss


def merged_softmax_loss(
    heads: PriorHeads,
    queries: torch.Tensor,
    next_items: torch.Tensor,
    items: torch.Tensor,
    log_partitions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of ``next_items (P,)`` over the catalogue, each item scored by all its heads,
    given the heads' ``queries (P, H, D)`` (``heads(hidden)``).

    ``P(i | u) ∝ sum_c exp(s_c(i))`` over the heads ``c`` that may give ``i``: a softmax over every
    (head, item) pair whose positives are the target's pairs. In-group losses are blind to a shift of one
    head's scores; this one is not, so it sets the scale on which the heads' scores meet at inference.
    ``items`` is the table as the heads compare against it (:meth:`PriorHeads.items`);
    ``log_partitions (P, H)``, each head's log-sum-exp over its own items, when the caller has them.
    """
    if log_partitions is None:
        log_partitions = torch.stack(
            [_group_log_softmax(heads, q, head, items)[1] for head, q in enumerate(queries.unbind(1))], dim=1
        )
    # only the items a head may give count: the pairs are a few times n_items, not H times
    log_partition = torch.logsumexp(log_partitions, dim=1)
    target_logits = heads.scale() * torch.einsum("phd,pd->ph", queries, items[next_items])
    target_logits = target_logits.masked_fill(~heads.allowed[next_items], float("-inf"))
    return (log_partition - torch.logsumexp(target_logits, dim=1)).mean()


def _group_log_softmax(
    heads: PriorHeads, queries: torch.Tensor, head: int, items: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``queries (P, D)`` of ``head`` -> log-probabilities ``(P, group size)`` of the items it may give
    (in :meth:`PriorHeads.group` order) and their log-partition ``(P,)``."""
    logits = heads.scale() * queries @ items[heads.group(head)].T
    if logits.shape[1] == 0:  # a head no item belongs to (an empty "(other)") adds nothing
        return logits, logits.new_full((len(logits),), float("-inf"))
    log_probs = F.log_softmax(logits, dim=1)
    # log Z = logit - log p for any item: read off the first one, since log_softmax has a fused backward
    # and a logsumexp over this (P, group size) table costs several passes over it each way
    return log_probs, logits[:, 0] - log_probs[:, 0]


def _info_nce(
    queries: torch.Tensor,
    targets: torch.Tensor,
    items: torch.Tensor,
    pool: torch.Tensor | None,
    n_negatives: int,
    heads: PriorHeads,
) -> torch.Tensor:
    """InfoNCE ``(P,)`` of ``queries (P, D)`` against their ``targets (P,)`` and shared negatives from
    ``pool`` (model item indices; None: the whole catalogue)."""
    if pool is None:
        negatives = torch.randint(1, items.shape[0], (n_negatives,), device=queries.device)
    else:
        negatives = pool[torch.randint(len(pool), (n_negatives,), device=queries.device)]
    positive = (queries * items[targets]).sum(-1, keepdim=True)  # (P, 1)
    negative = queries @ items[negatives].T  # (P, M)
    logits = heads.scale() * torch.cat([positive, negative], dim=1)
    # masked after scaling: -inf times the scale would give the scale a NaN gradient
    accidental_hit = F.pad(negatives[None, :] == targets[:, None], (1, 0))
    logits = logits.masked_fill(accidental_hit, float("-inf"))
    return F.cross_entropy(logits, torch.zeros_like(targets), reduction="none")
