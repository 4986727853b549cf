"""The training loop: repeatable with a seed, early stopping restores the best weights, Ctrl-C is clean."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from intentrec.data.split import split_dataset
from intentrec.errors import ConfigError
from intentrec.evaluation.evaluator import EvalConfig, evaluate
from intentrec.models.heads import HeadsConfig, PriorHeads
from intentrec.models.model import SequentialModel
from intentrec.models.priors import Prior
from intentrec.models.sasrec import SASRec, SASRecConfig
from intentrec.training.losses import LossConfig
from intentrec.training.trainer import (
    Checkpoint,
    TrainConfig,
    TrainResult,
    check_continuable,
    length_bucketed_batches,
    train,
)

MAX_LEN = 8
TIMING = {"train_seconds", "windows_per_second", "valid_seconds"}


def cyclic_rows(n_users: int = 40, n_items: int = 15, seed: int = 0) -> list[tuple[str, str, int]]:
    """Users walking the cycle ``i -> i + 1 (mod n_items)`` from a random start, 4..12 events each."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        start, length = rng.integers(n_items), rng.integers(4, 13)
        rows += [(f"u{user}", f"i{(start + t) % n_items}", 1000 + t) for t in range(length)]
    return rows


@pytest.fixture(scope="module")
def split(make_dataset):
    return split_dataset(make_dataset(cyclic_rows()))


def catalogue(split) -> int:
    """The number of items: every item is in a training sequence or a test history or target."""
    return 1 + int(max(s.items.max() for s in (split.train, split.test.history, split.test.targets)))


def new_model(n_items: int, seed: int = 0, dropout: float = 0.2) -> SequentialModel:
    torch.manual_seed(seed)
    return SequentialModel(SASRec(SASRecConfig(dim=8, n_blocks=1, dropout=dropout, max_len=MAX_LEN)), n_items)


def config(**values) -> TrainConfig:
    return TrainConfig(**{"batch_size": 8, "lr": 0.01, "threads": 1, "min_epochs": 1, **values})


def scripted(values: list[float]):
    """A validate() returning ``{"ndcg@10": values[epoch - 1]}``; the list is consumed as epochs pass."""
    remaining = list(values)
    return lambda: {"ndcg@10": remaining.pop(0)}


class Checkpoints:
    """An on_epoch_end that keeps a copy of the weights, result and checkpoint of every call."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []
        self.results: list[tuple[int, int, str]] = []  # (epochs so far, best epoch, stopped)
        self.resumable: list[Checkpoint | None] = []

    def __call__(
        self, result: TrainResult, state: dict[str, torch.Tensor], checkpoint: Checkpoint | None
    ) -> None:
        self.states.append({name: tensor.clone() for name, tensor in state.items()})
        self.results.append((len(result.history), result.best_epoch, result.stopped))
        if checkpoint is not None:  # a deep copy: the tensors are the model's own, trained on after this
            checkpoint = Checkpoint(
                {name: tensor.clone() for name, tensor in checkpoint.tensors.items()},
                json.loads(json.dumps(checkpoint.meta)),  # as it is saved
            )
        self.resumable.append(checkpoint)


def assert_same_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name]), name


def test_same_seed_gives_identical_weights_and_history(split) -> None:
    n_items = catalogue(split)
    runs = []
    for _ in range(2):
        model = new_model(n_items)  # dropout on and sampled negatives: both must follow the seed
        result = train(
            model,
            split.train,
            LossConfig(kind="sampled_softmax", negatives=5),
            config(epochs=2, seed=7, monitor="ndcg@5"),
            MAX_LEN,
            validate=lambda model=model: evaluate(
                model_scores(model), split.valid, MAX_LEN, EvalConfig(ks=[1, 5])
            ),
        )
        history = [{k: v for k, v in record.items() if k not in TIMING} for record in result.history]
        runs.append((model.state_dict(), history, result.best_epoch))
    (state_a, history_a, best_a), (state_b, history_b, best_b) = runs
    assert history_a == history_b and best_a == best_b
    assert len(history_a) == 2
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name
    # and another seed gives other weights, so the comparison above is not vacuous
    other = new_model(n_items)
    train(other, split.train, LossConfig(), config(epochs=2, seed=8), MAX_LEN, scripted([0.1, 0.2]))
    assert not torch.equal(other.state_dict()["item_embedding.weight"], state_a["item_embedding.weight"])


def model_scores(model: SequentialModel):
    def score(batch, histories):
        return model.score_last(torch.from_numpy(batch.items), torch.from_numpy(batch.timestamps))[0]

    return score


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_training_learns_the_cycle(split, precision: str) -> None:
    n_items = catalogue(split)
    model = new_model(n_items, dropout=0.0)
    validate = lambda: evaluate(model_scores(model), split.valid, MAX_LEN, EvalConfig(ks=[1, 5]))  # noqa: E731
    before = validate()["hr@1"]
    trained_in = []  # the dtype of the backbone's first matrix product, at each training step
    first_product = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.Linear))
    first_product.register_forward_hook(
        lambda module, inputs, output: trained_in.append(output.dtype) if module.training else None
    )
    settings = config(epochs=6, monitor="hr@1", precision=precision)
    result = train(model, split.train, LossConfig(), settings, MAX_LEN, validate=validate)
    assert set(trained_in) == {getattr(torch, precision)}
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float32}
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.best_valid["hr@1"] > max(0.8, before + 0.3)


@pytest.mark.parametrize("end_to_end", [False, True])
def test_heads_not_trained_end_to_end_leave_the_backbone_as_the_next_item_loss_trains_it(
    split, end_to_end: bool
) -> None:
    """``heads.end_to_end=false``: the heads learn, and the backbone and items train exactly as they would
    without heads (end to end they do not, so the comparison is not vacuous)."""
    n_items = catalogue(split)
    plain = new_model(n_items)
    with_heads = new_model(n_items)
    parity = [[i % 2 == 0, i % 2 == 1] for i in range(n_items)]
    with_heads.heads = PriorHeads(
        8,
        n_items,
        [Prior("taxonomy", ["even", "odd"], membership=torch.tensor(parity))],
        HeadsConfig(priors=["taxonomy"], end_to_end=end_to_end),
    )
    for model in (plain, with_heads):
        train(model, split.train, LossConfig(), config(epochs=2), MAX_LEN, scripted([0.1, 0.2]))
    assert with_heads.heads.weight.abs().sum() > 0  # the heads started at zero and learned
    heads_state = with_heads.state_dict()
    same = [torch.allclose(tensor, heads_state[name]) for name, tensor in plain.state_dict().items()]
    assert all(same) if not end_to_end else not any(same)


def test_heads_not_trained_end_to_end_need_the_next_item_loss() -> None:
    with pytest.raises(ValueError, match="next_item_loss must be > 0"):
        HeadsConfig(priors=["taxonomy"], end_to_end=False, next_item_loss=0)
    assert HeadsConfig(priors=["horizon"], end_to_end=False).next_item_weight == 1.0


def test_early_stopping_after_patience_restores_the_best_weights(split) -> None:
    model = new_model(catalogue(split))
    checkpoints = Checkpoints()
    result = train(
        model,
        split.train,
        LossConfig(),
        config(epochs=10, patience=2),
        MAX_LEN,
        validate=scripted([0.1, 0.3, 0.2, 0.25, 0.9]),
        on_epoch_end=checkpoints,
    )
    assert result.stopped == "early_stopping"
    assert [record["epoch"] for record in result.history] == [1, 2, 3, 4]  # 2 epochs without gain
    assert result.best_epoch == 2 and result.best_valid == {"ndcg@10": 0.3}
    assert [record["valid_ndcg@10"] for record in result.history] == [0.1, 0.3, 0.2, 0.25]
    assert_same_state(model, checkpoints.states[1])  # the weights after epoch 2
    after_epoch = [state["item_embedding.weight"] for state in checkpoints.states]
    assert not torch.equal(after_epoch[3], after_epoch[1])  # so restoring epoch 2 did something
    assert not model.training


def test_learning_rate_drops_after_a_plateau_and_not_before(split) -> None:
    result = train(
        new_model(catalogue(split)),
        split.train,
        LossConfig(),
        config(epochs=6, patience=10, lr=1e-3, lr_decay_patience=2, lr_decay_factor=0.5),
        MAX_LEN,
        validate=scripted([0.1, 0.3, 0.2, 0.2, 0.2, 0.2]),
    )
    # the lr logged for an epoch is the one it trained with; epochs 3 and 4 bring no gain over epoch 2
    assert [record["lr"] for record in result.history] == [1e-3, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4]


def test_no_learning_rate_cut_and_no_stop_before_min_epochs(split) -> None:
    def run(min_epochs: int, patience: int) -> TrainResult:
        settings = dict(epochs=8, lr=1e-3, lr_decay_patience=1, lr_decay_factor=0.5)
        return train(
            new_model(catalogue(split)),
            split.train,
            LossConfig(),
            config(min_epochs=min_epochs, patience=patience, **settings),
            MAX_LEN,
            validate=scripted([0.3] + [0.1] * 7),  # the popularity peak, then a dip
        )

    assert [record["lr"] for record in run(min_epochs=1, patience=4).history] == [
        1e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4
    ]  # fmt: skip
    # epochs 2-3 without gain are ignored; epoch 4 is the first counted, so the lr drops after it
    assert [record["lr"] for record in run(min_epochs=4, patience=4).history] == [1e-3] * 4 + [5e-4]
    assert len(run(min_epochs=1, patience=2).history) == 3
    assert len(run(min_epochs=6, patience=2).history) == 6


def test_learning_rate_is_constant_without_decay(split) -> None:
    result = train(
        new_model(catalogue(split)),
        split.train,
        LossConfig(),
        config(epochs=4, patience=10, lr=1e-3, lr_decay_patience=None),
        MAX_LEN,
        validate=scripted([0.3, 0.2, 0.2, 0.2]),
    )
    assert {record["lr"] for record in result.history} == {1e-3}


def test_runs_to_max_epochs_while_improving(split) -> None:
    model = new_model(catalogue(split))
    result = train(model, split.train, LossConfig(), config(epochs=3), MAX_LEN, scripted([0.1, 0.2, 0.3]))
    assert result.stopped == "max_epochs" and result.best_epoch == 3 and len(result.history) == 3


def test_keyboard_interrupt_before_any_epoch_ends_keeps_nothing(split) -> None:
    def validate() -> dict[str, float]:
        raise KeyboardInterrupt  # Ctrl-C while validating epoch 1

    checkpoints = Checkpoints()
    with pytest.raises(KeyboardInterrupt):  # no weights to keep or measure
        train(
            new_model(catalogue(split)), split.train, LossConfig(), config(), MAX_LEN, validate, checkpoints
        )
    assert checkpoints.results == []


def test_keyboard_interrupt_keeps_the_best_weights_and_checkpoints(split) -> None:
    model = new_model(catalogue(split))
    checkpoints = Checkpoints()
    calls = []

    def validate() -> dict[str, float]:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while validating epoch 2
        return {"ndcg@10": 0.5}

    result = train(
        model, split.train, LossConfig(), config(epochs=5), MAX_LEN, validate, on_epoch_end=checkpoints
    )
    assert result.stopped == "interrupted"
    assert result.best_epoch == 1 and len(result.history) == 1
    assert checkpoints.results == [(1, 1, "max_epochs"), (1, 1, "interrupted")]
    assert_same_state(model, checkpoints.states[0])  # best = epoch 1 is loaded
    # the checkpoint written on interruption holds the last weights (epoch 2 was trained)
    last = checkpoints.states[1]["item_embedding.weight"]
    assert not torch.equal(last, checkpoints.states[0]["item_embedding.weight"])
    assert not model.training


def test_training_that_diverges_stops_and_keeps_the_epochs_before_it(split) -> None:
    model = new_model(catalogue(split))
    kept = {}

    def lose_the_weights_after_epoch_2(result, state, checkpoint) -> None:
        if len(result.history) == 2:  # the state is the model's own: its numbers are gone from here on
            kept.update({name: tensor.clone() for name, tensor in state.items()})
            state["item_embedding.weight"].fill_(float("nan"))

    result = train(
        model,
        split.train,
        LossConfig(),
        config(epochs=10),
        MAX_LEN,
        validate=scripted([0.1, 0.3, 0.9]),
        on_epoch_end=lose_the_weights_after_epoch_2,
    )
    assert result.stopped == "diverged"
    assert result.best_epoch == 2 and len(result.history) == 2  # epoch 3 is neither validated nor kept
    assert_same_state(model, kept)


def test_training_that_diverges_before_any_epoch_is_kept_is_a_config_error(split) -> None:
    model = new_model(catalogue(split))
    with torch.no_grad():
        model.item_embedding.weight.fill_(float("nan"))
    with pytest.raises(ConfigError, match=r"diverged in epoch 1 .*lower train.lr \(now 0.01\)"):
        train(model, split.train, LossConfig(), config(epochs=3), MAX_LEN, validate=scripted([0.1] * 3))


def test_resuming_from_a_checkpoint_continues_as_if_training_never_stopped(split) -> None:
    # dropout, sampled negatives, shuffled batches, a plateau cut of the lr and a best epoch before the
    # checkpoint: everything the rest of training depends on must come back from the checkpoint
    settings = config(epochs=5, patience=10, lr_decay_patience=2, lr_decay_factor=0.5, seed=3)
    loss = LossConfig(kind="sampled_softmax", negatives=5)
    scores = [0.5, 0.4, 0.3, 0.2, 0.1]
    straight, straight_epochs = new_model(catalogue(split)), Checkpoints()
    full = train(straight, split.train, loss, settings, MAX_LEN, scripted(scores), straight_epochs)

    resumed, resumed_epochs = new_model(catalogue(split), seed=9), Checkpoints()  # other initial weights
    checkpoint = straight_epochs.resumable[1]  # after epoch 2; the best epoch, 1, is stored beside it
    assert checkpoint is not None and checkpoint.epoch == 2
    result = train(
        resumed, split.train, loss, settings, MAX_LEN, scripted(scores[2:]), resumed_epochs, checkpoint
    )

    untimed = [
        [{k: v for k, v in r.items() if k not in TIMING} for r in run.history] for run in (full, result)
    ]
    assert untimed[0] == untimed[1] and len(untimed[1]) == 5
    assert [record["lr"] for record in result.history] == [0.01, 0.01, 0.01, 0.005, 0.005]
    assert result.best_epoch == 1 and result.resumed_at == [2] and full.resumed_at == []
    assert_same_state(resumed, straight.state_dict())  # the best weights, restored from the checkpoint
    for after_straight, after_resumed in zip(straight_epochs.states[2:], resumed_epochs.states, strict=True):
        for name, tensor in after_straight.items():  # the weights after epochs 3, 4, 5
            assert torch.equal(tensor, after_resumed[name]), name
    # and the test can fail: another checkpoint's weights give other weights after epoch 5
    other = new_model(catalogue(split), seed=9)
    mixed = Checkpoint(dict(checkpoint.tensors), dict(checkpoint.meta))
    mixed.tensors |= {f"model.{name}": t for name, t in straight_epochs.states[0].items()}
    train(other, split.train, loss, settings, MAX_LEN, scripted(scores[2:]), resume=mixed)
    assert not torch.equal(other.item_embedding.weight, resumed_epochs.states[-1]["item_embedding.weight"])


def test_a_checkpoint_that_would_stop_at_once_is_refused_with_what_to_raise(split) -> None:
    epochs = Checkpoints()
    train(new_model(catalogue(split)), split.train, LossConfig(), config(epochs=3, patience=2), MAX_LEN,
          scripted([0.3, 0.2, 0.1]), epochs)  # fmt: skip
    last = epochs.resumable[-1]
    assert last is not None and last.epoch == 3 and last.meta["best_epoch"] == 1
    with pytest.raises(ConfigError, match=r"raise train\.epochs"):
        check_continuable(last, config(epochs=3, patience=5))
    with pytest.raises(ConfigError, match=r"2 epochs without gain.*train.patience = 2"):
        check_continuable(last, config(epochs=10, patience=2))
    check_continuable(last, config(epochs=10, patience=3))
    # an HSTU saved when its blocks shared one bias: the optimiser's moments no longer fit the parameters
    older = Checkpoint({**last.tensors, "model.backbone.bias.position": torch.zeros(3)}, last.meta)
    with pytest.raises(ConfigError, match=r"shared one relative attention bias.*fit it anew"):
        check_continuable(older, config(epochs=10, patience=3))


def test_no_checkpoint_when_not_resumable(split) -> None:
    epochs = Checkpoints()
    settings = config(epochs=2, resumable=False)
    train(
        new_model(catalogue(split)),
        split.train,
        LossConfig(),
        settings,
        MAX_LEN,
        scripted([0.1, 0.2]),
        epochs,
    )
    assert epochs.resumable == [None, None] and len(epochs.states) == 2


def test_validate_runs_in_eval_mode_without_gradients(split) -> None:
    model = new_model(catalogue(split))
    seen = []

    def validate() -> dict[str, float]:
        seen.append((model.training, torch.is_grad_enabled()))
        return {"ndcg@10": 0.0}

    train(model, split.train, LossConfig(), config(epochs=2), MAX_LEN, validate)
    assert seen == [(False, False), (False, False)]


# --- batching ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_rows", "batch_size"), [(0, 4), (1, 4), (10, 3), (200, 1), (1000, 7), (70, 128)])
def test_length_bucketed_batches_cover_every_row_once(n_rows: int, batch_size: int) -> None:
    rng = np.random.default_rng(n_rows)
    lengths = rng.integers(2, 60, n_rows)
    for epoch in range(2):  # a new order each epoch, still a partition
        batches = length_bucketed_batches(lengths, batch_size, np.random.default_rng(epoch))
        rows = np.concatenate(batches) if batches else np.array([], dtype=int)
        assert np.array_equal(np.sort(rows), np.arange(n_rows))
        assert all(1 <= len(batch) <= batch_size for batch in batches)


def test_length_bucketed_batches_group_similar_lengths() -> None:
    # 50 rows in one pool (< 64 batches): the batches tile the sorted lengths without overlapping
    lengths = np.random.default_rng(0).integers(1, 1000, 50)
    batches = length_bucketed_batches(lengths, 5, np.random.default_rng(0))
    spans = sorted((lengths[batch].min(), lengths[batch].max()) for batch in batches)
    assert all(high <= next_low for (_, high), (next_low, _) in itertools.pairwise(spans))
    first = length_bucketed_batches(lengths, 5, np.random.default_rng(1))
    assert [b.tolist() for b in first] != [b.tolist() for b in batches]  # the order is shuffled
