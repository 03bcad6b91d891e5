"""Evaluation metrics and attributions on tiny arrays with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, precision_recall_fscore_support

from deepspark.baselines import mae
from deepspark.config.evaluate import EvaluateConfig
from deepspark.evaluate.attribution import (
    completeness_error,
    integrated_gradients,
    permutation_importance,
)
from deepspark.evaluate.inference import to_images
from deepspark.evaluate.metrics import (
    classification_metrics,
    confusion_matrix,
    forecast_metrics,
    mape,
    per_class,
)

Y = np.array([0, 0, 1, 1, 2, 2])
PRED = np.array([0, 1, 1, 1, 2, 0])


def test_confusion_matrix_rows_are_truth_columns_predictions():
    assert confusion_matrix(Y, PRED, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_per_class_precision_recall_f1_and_macro_averages():
    table = per_class(confusion_matrix(Y, PRED, 3), ["a", "b", "c"])
    assert table["class"].tolist() == ["a", "b", "c"]
    # a: 1 of 2 predicted right, 1 of 2 found; b: 2 of 3 predicted, 2 of 2 found; c: 1/1, 1/2.
    assert table["precision"].tolist() == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert table["recall"].tolist() == pytest.approx([1 / 2, 1.0, 1 / 2])
    assert table["f1"].tolist() == pytest.approx([1 / 2, 4 / 5, 2 / 3])
    assert table["support"].tolist() == [2, 2, 2] and table["predicted"].tolist() == [2, 3, 1]
    m = classification_metrics(table)
    assert m["rows"] == 6 and m["accuracy"] == pytest.approx(4 / 6)
    assert m["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)


def test_a_never_predicted_class_scores_zero_like_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    pred = np.where(y == 3, 0, rng.integers(0, 3, 200))  # class 3 is never predicted
    table = per_class(confusion_matrix(y, pred, 4))
    p, r, f, _ = precision_recall_fscore_support(y, pred, labels=range(4), zero_division=0)
    assert table["precision"].tolist() == pytest.approx(p.tolist())
    assert table["recall"].tolist() == pytest.approx(r.tolist())
    assert table["precision"].iloc[3] == 0.0
    assert classification_metrics(table)["macro_f1"] == pytest.approx(
        f1_score(y, pred, labels=range(4), average="macro", zero_division=0)
    )


def test_confusion_matrix_refuses_out_of_range_classes():
    with pytest.raises(ValueError, match=r"expected values in \[0, 2\), found 1 not"):
        confusion_matrix(np.array([0, 2]), np.array([0, 1]), 2)


def test_mape_skips_targets_near_zero_and_keeps_negative_ones():
    y = np.array([100.0, -50.0, 0.5, 0.0])
    pred = np.array([110.0, -40.0, 5.0, 1.0])
    # Only |y| >= 1 counts: 10/100 and 10/50 -> 15 %; the 0.5 and 0 minute targets are left out.
    assert mape(pred, y, min_abs=1.0) == (pytest.approx(15.0), 2)
    value, rows = mape(pred, y, min_abs=200.0)
    assert np.isnan(value) and rows == 0
    m = forecast_metrics(pred, y, mape_min_abs=1.0)
    assert m["mae"] == pytest.approx((10 + 10 + 4.5 + 1) / 4)
    assert m["rmse"] == pytest.approx(np.sqrt((100 + 100 + 20.25 + 1) / 4))
    assert m["mape"] == pytest.approx(15.0)


def _smooth_net(seed: int, n_out: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, n_out)
    ).double()


@pytest.mark.parametrize("n_out", [1, 3])
def test_integrated_gradients_are_complete(n_out):
    net = _smooth_net(1, n_out)
    model = net if n_out > 1 else (lambda x: net(x).squeeze(-1))
    x = np.random.default_rng(2).normal(size=(5, 6))
    target = np.array([0, 1, 2, 1, 0]) if n_out > 1 else None
    with torch.no_grad():
        out = net(torch.as_tensor(x)).numpy()
        base = net(torch.zeros(1, 6, dtype=torch.float64)).numpy()
    rows = np.arange(5)
    col = target if n_out > 1 else np.zeros(5, dtype=int)
    expected = out[rows, col] - base[0, col]
    attr, delta = integrated_gradients(
        _Float64(model), x, steps=64, target=target, batch_rows=64 * 2
    )
    assert attr.shape == x.shape
    assert delta == pytest.approx(expected, abs=1e-5)
    # Completeness: the attributions add up to f(x) - f(0), up to the Riemann sum's error.
    assert attr.sum(1) == pytest.approx(expected, abs=2e-3)
    assert completeness_error(attr, delta) < 1e-3


def test_integrated_gradients_of_a_linear_model_are_weight_times_input():
    layer = torch.nn.Linear(4, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 0.0, 3.0]]))
        layer.bias.fill_(5.0)
    x = np.array([[1.0, 1.0, 7.0, 2.0]], dtype=np.float32)
    attr, delta = integrated_gradients(layer, x, steps=4, baseline=np.zeros(4))
    assert attr.tolist() == [pytest.approx([1.0, -2.0, 0.0, 6.0])]
    assert delta.tolist() == pytest.approx([5.0])


def test_permutation_importance_ranks_the_informative_input_first():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3, 2))  # 400 windows, 3 steps, 2 inputs

    def predict(w):
        return 2.0 * w[:, :, 0].sum(1)  # input 1 is ignored entirely

    y = predict(x) + rng.normal(scale=0.1, size=400)
    base, increase = permutation_importance(predict, x, y, score=mae, repeats=3, seed=1)
    assert base == pytest.approx(mae(predict(x), y))
    assert increase.shape == (2, 3)
    assert (increase[0] > 1.0).all()  # shuffling the signal costs a lot
    assert (increase[1] == 0.0).all()  # shuffling an unused input costs nothing


def test_to_images_reshapes_grey_and_colour():
    grey = to_images(np.arange(8, dtype=np.float32).reshape(2, 4) / 10, (1, 2, 2))
    assert grey.shape == (2, 2, 2)
    assert grey[1].ravel().tolist() == pytest.approx([0.4, 0.5, 0.6, 0.7])
    assert to_images(np.zeros((1, 12)), (3, 2, 2)).shape == (1, 2, 2, 3)


def test_evaluate_config_rejects_bad_settings():
    assert EvaluateConfig().model == "champion" and EvaluateConfig().ig_steps == 32
    with pytest.raises(ValueError, match="ig_steps: expected >= 1, found 0"):
        EvaluateConfig(ig_steps=0)
    with pytest.raises(ValueError, match="expected an alias or a version number"):
        EvaluateConfig(model="models:/x")


class _Float64(torch.nn.Module):
    """Runs a float64 model on the float32 tensors integrated_gradients builds."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x.double())
