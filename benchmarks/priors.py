"""Benchmark of prior heads: a backbone with and without them, over seeds, accuracy next to diversity.

    python benchmarks/priors.py --data ../shared/data/ml-100k/raw --out runs/priors-ml100k \\
        --variants none taxonomy horizon --seeds 0 1 2 --set train.threads=1

Each (variant, seed) is one `Recommender.fit` into ``OUT/<variant>-s<seed>`` (a finished run is reused,
so an interrupted benchmark resumes); the table gives test mean ± std over the seeds. Variants:

    none             the backbone's own next-item head
    taxonomy         one head per item category
    events           one head per event type (rating bands on a ratings-only log)
    horizon          short- and long-term heads over the next pred_len items
    clusters         one head per community of the item co-occurrence graph
    taxonomy+horizon the two composed hierarchically

``--steer RUN [RUN ...]`` instead sweeps the head weights of trained runs with prior heads (one run per
seed) and prints each run's accuracy / diversity trade-off on validation and test (and writes
``RUN/steering.png``, and ``RUN/steering.json``, which the next call reuses): with weights
``w_h = share_h^-alpha``, where ``share_h`` is the share of the validation users' top-10 slots head ``h``
fills unsteered, alpha > 0 lifts the heads the model uses least. Each run's operating point is chosen on
validation alone: the alpha with the highest validation entropy@10 among those whose validation NDCG@10
is at least the unsteered one's ("keep accuracy, add variety"); the test metrics at that alpha are then
tabulated over the runs, next to ``--against RUN ...`` (the same backbone without heads, evaluated here
on test so that older runs get every column).

``--blend RUN [RUN ...]`` sweeps the weight ``w`` of the backbone's own head ("next") in the same way:
the list is ``log(P_heads + w P_backbone)``, from the heads' alone (w = 0) to the backbone's alone
(w = 1e6); the operating point is the w with the most validation entropy@10 among those whose validation
NDCG@10 is at least the backbone's alone (``RUN/blend.json``, ``RUN/blend.png``).

``--explore RUN [RUN ...]`` sweeps the weight ``u`` of the heads of categories new to each user
(``Steering.unexplored``) together with the backbone's weight ``w``; the operating point is the (w, u) with
the most validation explore_recall@10 among those whose validation NDCG@10 is at least the backbone's alone
(``RUN/explore.json``). ``--against`` runs (no heads) get the same boost without heads, as a control:
their logits plus ``log u`` on every item none of whose categories the user's whole history has met, u
chosen likewise; their u = 1 row is the backbone without heads.

``--by-prior RUN [RUN ...] --against RUN [RUN ...]`` reads the beyond-accuracy metrics over the item
prior each heads run learned (its clusters, say) instead of the data's categories: each heads run and the
run without heads paired with it (in the order given) are evaluated on test over that run's groups, every
group (and "(other)") one category. The metrics' categories are then the heads' own partition.

``--merges RUN [RUN ...]`` tabulates the test metrics of trained runs with prior heads under each merge
rule (max, sum, mix) and under the backbone's own next-item scores with the heads switched off: does the
merged list beat the backbone that the heads were trained on?

``--queries RUN [RUN ...]`` measures how personal the vectors that rank the catalogue are: over the test
users of each run, the mean pairwise cosine similarity of the backbone's states and, with prior heads,
of each head's queries (1: every user gets the same query, so the same list), and the mean length of what
each head's block adds to the state, ``|SiLU(W h + b)| / |h|``. A head whose queries are much more alike
than the states it reads has turned towards a list for everyone.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path
from typing import get_args

import numpy as np
import torch
import torch.nn.functional as F
from grid import fit_seeds, print_table

from intentrec.data.sequences import PaddedBatch, Sequences, pad_left
from intentrec.evaluation.beyond_accuracy import ItemFeatures
from intentrec.evaluation.evaluator import evaluate
from intentrec.models.heads import NEXT_ITEM_HEAD, Merge, Steering
from intentrec.ranking import ScoreFn
from intentrec.recommender import Recommender
from intentrec.storage import write_json

VARIANTS = {
    "none": [],
    "taxonomy": ["taxonomy"],
    "events": ["events"],
    "horizon": ["horizon"],
    "clusters": ["clusters"],
    "taxonomy+horizon": ["taxonomy", "horizon"],
}
COLUMNS = ("ndcg@10", "recall@10", "entropy@10", "coverage@10", "explore_recall@10", "novelty@10")
ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
#: Weights of the backbone's own head; the last ranks as the backbone alone.
BACKBONE_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 1e6)
#: Weights of the heads (or, in the control, the items) of categories new to the user.
UNEXPLORED_WEIGHTS = (1.0, 1.5, 2.0, 3.0, 5.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="dataset path or public name")
    parser.add_argument("--out", help="folder of the runs")
    parser.add_argument("--variants", nargs="+", default=["none", "taxonomy"], choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], help="config override section.key=value")
    parser.add_argument("--steer", nargs="+", type=Path, help="runs with prior heads: steer them instead")
    parser.add_argument("--blend", nargs="+", type=Path, help="runs with prior heads: weigh the backbone in")
    parser.add_argument(
        "--explore", nargs="+", type=Path, help="runs with prior heads: lean to new categories"
    )
    parser.add_argument(
        "--against",
        nargs="+",
        type=Path,
        default=[],
        help="with --steer/--blend/--explore/--by-prior: runs without heads",
    )
    parser.add_argument(
        "--by-prior", nargs="+", type=Path, help="runs with item prior heads: metrics over their groups"
    )
    parser.add_argument("--merges", nargs="+", type=Path, help="runs with prior heads: compare merges")
    parser.add_argument("--queries", nargs="+", type=Path, help="runs: how alike users' queries are")
    args = parser.parse_args()
    swept = args.steer or args.blend or args.explore or args.by_prior
    if swept and args.against and len(args.against) != len(swept):  # a table of seeds against seeds
        raise SystemExit(f"--against gives {len(args.against)} runs for {len(swept)} runs with heads")
    if args.by_prior:
        by_prior(args.by_prior, args.against)
        return
    if args.steer:
        sweep_runs(args.steer, args.against, "steering")
        return
    if args.blend:
        sweep_runs(args.blend, args.against, "blend")
        return
    if args.explore:
        explore_runs(args.explore, args.against)
        return
    if args.merges:
        compare_merges(args.merges)
        return
    if args.queries:
        compare_queries(args.queries)
        return
    if not args.data or not args.out:
        parser.error("--data and --out are required (or --steer RUN, or --merges RUN)")

    variants = {name: [f"heads.priors={json.dumps(VARIANTS[name])}"] for name in args.variants}
    results = fit_seeds(Path(args.out), args.data, variants, args.seeds, args.set, COLUMNS)
    print_table(f"variant ({len(args.seeds)} seeds, test)", results, COLUMNS)


#: A sweep: its knob's name, the points, and the point whose validation NDCG@10 the choice must keep.
SWEEPS = {"steering": ("alpha", ALPHAS, 0.0), "blend": ("backbone weight", BACKBONE_WEIGHTS, 1e6)}


def sweep_runs(runs: list[Path], against: list[Path], sweep: str) -> None:
    knob, _, reference = SWEEPS[sweep]
    chosen_label = f"heads, {knob} chosen on validation"
    results: dict[str, list[dict[str, float]]] = {chosen_label: [], f"heads, {knob} {reference:g}": []}
    for run in runs:
        curve = sweep_curve(run, sweep)
        point = choose(curve, reference)
        results[chosen_label].append(curve[point]["test"])
        results[f"heads, {knob} {reference:g}"].append(curve[reference]["test"])
        print(f"\n{run}: {knob} chosen on validation = {point:g}\n")
        header = [f"valid {c}" for c in COLUMNS[:3]] + list(COLUMNS)
        print(f"| {knob} | " + " | ".join(header) + " |")
        print("|---" * (len(COLUMNS) + 4) + "|")
        for at, metrics in curve.items():
            valid = " | ".join(f"{metrics['valid'][c]:.4f}" for c in COLUMNS[:3])
            test = " | ".join(f"{metrics['test'][c]:.4f}" for c in COLUMNS)
            print(f"| {at:g}{' (chosen)' if at == point else ''} | {valid} | {test} |")
        plot_curve(run, curve, point, sweep)

    if against:
        results["no heads"] = [Recommender.load(run).evaluate("test") for run in against]
    print_table(f"test, {len(runs)} runs", results, COLUMNS)


def explore_runs(runs: list[Path], against: list[Path]) -> None:
    """The (w, u) grid of each heads run and the u grid of each no-heads run, tabulated at the points
    validation chooses (see the module docstring)."""
    results: dict[str, list[dict[str, float]]] = {}
    for label, folders, grid in (("heads", runs, explore_grid), ("no heads", against, boost_grid)):
        for run in folders:
            curve = grid(run)
            # the reference: the backbone alone, unsteered (w = 1e6 with heads; u = 1 without)
            floor = curve[(1e6 if label == "heads" else None, 1.0)]["valid"]["ndcg@10"]
            keeping = [at for at, metrics in curve.items() if metrics["valid"]["ndcg@10"] >= floor]
            point = max(keeping, key=lambda at: curve[at]["valid"]["explore_recall@10"])
            print(f"{run}: (w, u) chosen on validation = {point}", flush=True)
            for name, at in ((f"{label}, (w, u) chosen on validation", point), (label, (point[0], 1.0))):
                results.setdefault(name, []).append(curve[at]["test"])
    print_table(f"test, {len(runs)} runs", results, COLUMNS)


def explore_grid(run: Path) -> dict[tuple[float | None, float], dict[str, dict[str, float]]]:
    """Validation and test metrics of a heads run at every (w, u), kept in ``RUN/explore.json``."""
    saved = run / "explore.json"
    points = set(itertools.product(BACKBONE_WEIGHTS, UNEXPLORED_WEIGHTS))
    if _fresh(saved, run):
        curve = {tuple(json.loads(at)): metrics for at, metrics in json.loads(saved.read_text()).items()}
        if set(curve) == points:
            return curve
    recommender = heads_run(run)
    curve = {}
    for w in BACKBONE_WEIGHTS:
        for u in UNEXPLORED_WEIGHTS:
            steering = Steering(heads={NEXT_ITEM_HEAD: w}, unexplored=u)
            curve[(w, u)] = {on: recommender.evaluate(on, steering=steering) for on in ("valid", "test")}
            print(f"{run} w {w:g} u {u:g}  valid explore_recall@10 "
                  f"{curve[(w, u)]['valid']['explore_recall@10']:.4f}", flush=True)  # fmt: skip
    write_json(saved, {json.dumps(at): metrics for at, metrics in curve.items()})
    return curve


def boost_grid(run: Path) -> dict[tuple[float | None, float], dict[str, dict[str, float]]]:
    """The control: a run without heads, its logits plus ``log u`` on every item none of whose categories
    the user's whole history has, at each u."""
    recommender = Recommender.load(run)
    model, split = recommender.model, recommender.split
    features = ItemFeatures.from_dataset(recommender.dataset, split.train)
    # model indices (row 0 padding), where the model's scores are
    categories = F.pad(features.categories, (0, 0, 1, 0)).float().to(model.item_embedding.weight.device)
    config = recommender.config.eval.for_device(model.item_embedding.weight.device)

    def boosted(u: float) -> ScoreFn:
        def score(batch: PaddedBatch, histories: Sequences) -> torch.Tensor:
            items, timestamps, request_times = batch.tensors()
            logits = model.score_last(items, timestamps, request_times=request_times)[0]
            met = histories.rows_with(categories[1:]).float()  # (B, C); row 0 of categories is padding
            new = (met @ categories[1:].T == 0) & (categories[1:].sum(1) > 0)  # (B, n_items)
            return logits / model.temperature + math.log(u) * new

        return score

    curve = {}
    with torch.inference_mode():
        for u in UNEXPLORED_WEIGHTS:
            curve[(None, u)] = {
                on: evaluate(
                    boosted(u), getattr(split, on), recommender.config.model.max_len, config, features
                )
                for on in ("valid", "test")
            }
    return curve


def by_prior(runs: list[Path], against: list[Path]) -> None:
    """Test metrics of heads runs, and of the runs without heads paired with them, over each heads run's
    item prior (see the module docstring)."""
    results: dict[str, list[dict[str, float]]] = {}
    for run, plain in itertools.zip_longest(runs, against):
        heads = heads_run(run)
        prior = next((prior for prior in heads.model.heads.priors if prior.membership is not None), None)
        if prior is None:
            raise SystemExit(f"{run}: its heads have no item prior (taxonomy or clusters) to group items by")
        features = ItemFeatures.from_dataset(heads.dataset, heads.split.train)
        features = features.regrouped(prior.membership, prior.names)
        print(f"{run}: {len(prior.names)} {prior.kind} groups", flush=True)
        paired = [("heads", heads)] + ([("no heads", Recommender.load(plain))] if plain else [])
        for label, recommender in paired:
            results.setdefault(label, []).append(recommender.evaluate("test", features=features))
    print_table(f"test, {len(runs)} runs, categories = each heads run's {prior.kind}", results, COLUMNS)


def compare_merges(runs: list[Path]) -> None:
    results: dict[str, list[dict[str, float]]] = {}
    for run in runs:
        recommender = heads_run(run)
        for merge in get_args(Merge):
            steering = Steering(merge=merge)
            results.setdefault(f"heads, {merge} merge", []).append(recommender.evaluate(steering=steering))
        # the backbone's output, trained by the next-item loss next to the heads, ranks items on its own
        recommender.model.heads = None
        results.setdefault("backbone alone (heads off)", []).append(recommender.evaluate())
    print_table(f"test, {len(runs)} runs", results, COLUMNS)


def compare_queries(runs: list[Path]) -> None:
    print("| run | test users | states | head queries: mean | min | max | step / state |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        recommender = Recommender.load(run)
        inputs = recommender.split.test.history
        batch = pad_left(inputs, np.arange(len(inputs)), recommender.config.model.max_len)
        states = recommender.user_states(batch)
        row = f"| {run} | {len(inputs)} | {mean_pairwise_cosine(states):.3f} |"
        heads = recommender.model.heads
        if heads is not None:
            queries = recommender.user_queries(states)  # (users, H, D)
            alike = [mean_pairwise_cosine(queries[:, head]) for head in range(queries.shape[1])]
            row += f" {np.mean(alike):.3f} | {min(alike):.3f} | {max(alike):.3f} |"
            if heads.hierarchical:
                row += " – |"  # two blocks deep: no one block's step to measure
            else:
                with torch.no_grad():  # how far each head's block moves the state: |SiLU(W h + b)| / |h|
                    moved = F.silu(torch.einsum("ud,hed->uhe", states, heads.weight) + heads.bias)
                    row += f" {float((moved.norm(dim=-1) / states.norm(dim=-1, keepdim=True)).mean()):.2f} |"
        else:
            row += " | | | |"
        print(row)


def mean_pairwise_cosine(vectors: torch.Tensor) -> float:
    """Mean cosine similarity over the pairs of distinct rows of ``vectors (n, D)``."""
    unit = F.normalize(vectors.double(), dim=-1)
    n = len(unit)
    return float((unit.sum(0).square().sum() - n) / (n * (n - 1)))


def heads_run(run: Path) -> Recommender:
    """The trained run at ``run``; exits with a message if it has no prior heads."""
    recommender = Recommender.load(run)
    if recommender.model is None or recommender.model.heads is None:
        raise SystemExit(f"{run}: this run has no prior heads")
    return recommender


def _fresh(saved: Path, run: Path) -> bool:
    """Whether a sweep kept in ``saved`` was measured on the run's weights as they are (not on those a
    later ``resume`` or ``fit --overwrite`` replaced)."""
    return saved.is_file() and saved.stat().st_mtime_ns >= (run / "model.safetensors").stat().st_mtime_ns


def sweep_curve(run: Path, sweep: str) -> dict[float, dict[str, dict[str, float]]]:
    """Validation and test metrics of ``run`` at every point of the sweep (see the module docstring).

    Kept in ``RUN/<sweep>.json`` and reused from there, so that runs can be swept side by side (one
    process each) and tabulated together afterwards.
    """
    _, points, _ = SWEEPS[sweep]
    saved = run / f"{sweep}.json"
    if _fresh(saved, run):
        curve = {float(at): metrics for at, metrics in json.loads(saved.read_text()).items()}
        if set(curve) == set(points):
            return curve
    recommender = heads_run(run)
    shares = recommender.breakdown("valid")["heads"] if sweep == "steering" else {}
    curve = {}
    for at in points:
        if sweep == "blend":
            steering = Steering(heads={NEXT_ITEM_HEAD: at})
        else:
            # a head that never reached a top 10 counts as having filled one slot in 10,000
            names = recommender.model.heads.names
            steering = Steering(heads={name: max(shares.get(name, 0.0), 1e-4) ** -at for name in names})
        curve[at] = {on: recommender.evaluate(on, steering=steering) for on in ("valid", "test")}
        print(f"{run} {sweep} {at:g}  valid ndcg@10 {curve[at]['valid']['ndcg@10']:.4f}", flush=True)
    write_json(saved, curve)
    return curve


def choose(curve: dict[float, dict[str, dict[str, float]]], reference: float) -> float:
    """The point with the most validation entropy@10 that keeps the reference's validation NDCG@10."""
    floor = curve[reference]["valid"]["ndcg@10"]
    keeping = [at for at, metrics in curve.items() if metrics["valid"]["ndcg@10"] >= floor]
    return max(keeping, key=lambda at: curve[at]["valid"]["entropy@10"])


def plot_curve(run: Path, curve: dict[float, dict[str, dict[str, float]]], chosen: float, sweep: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.6))
    for on, style in (("valid", "s--"), ("test", "o-")):
        points = [(m[on]["entropy@10"], m[on]["ndcg@10"]) for m in curve.values()]
        axes.plot(*zip(*points, strict=True), style, label=on)
    symbol = "α" if sweep == "steering" else "w"
    for at, metrics in curve.items():
        label = f"{symbol}={at:g}" + (" (chosen)" if at == chosen else "")
        axes.annotate(label, (metrics["test"]["entropy@10"], metrics["test"]["ndcg@10"]), fontsize=8)
    axes.set_xlabel("category entropy@10 (bits)")
    axes.set_ylabel("NDCG@10")
    axes.set_title(
        f"{'Steering the heads' if sweep == 'steering' else 'Weighing in the backbone'} of {run.name}"
    )
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(run / f"{sweep}.png", dpi=120)
    print(f"wrote {run / f'{sweep}.png'}")


if __name__ == "__main__":
    main()
