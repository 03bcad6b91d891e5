"""Model shapes for every architecture and input size the configs allow."""

from __future__ import annotations

import pytest
import torch

from deepspark.config.architectures import CNNConfig, MLPConfig, RNNConfig
from deepspark.config.train import TrainConfig
from deepspark.models import build_model
from deepspark.train.augment import random_affine


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_cnn_adapts_to_the_input_size(shape, batch_norm):
    cfg = TrainConfig(model="cnn", cnn=CNNConfig(batch_norm=batch_norm, dropout=0.5))
    net = build_model(cfg, shape, 10)
    x = torch.rand(5, int(torch.tensor(shape).prod()))  # flat rows, as the Parquet holds them
    assert net(x).shape == (5, 10)
    pools = sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert pools == 2  # 8x8 -> 4x4 -> 2x2; 28x28 -> 14x14 -> 7x7


def test_cnn_skips_pooling_when_the_map_would_vanish():
    net = build_model(TrainConfig(model="cnn"), (1, 3, 3), 4)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert net(torch.rand(2, 9)).shape == (2, 4)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_rnn_cells_forecast_one_value_in_target_units(cell):
    cfg = TrainConfig(model="rnn", rnn=RNNConfig(cell=cell, hidden=(64, 32)))
    net = build_model(cfg, (24, 11), 1, y_scale=(14.0, 25.0))
    layers = [type(m).__name__ for m in net.core.layers]
    assert layers == [cell.upper()] * 2
    assert [m.hidden_size for m in net.core.layers] == [64, 32]
    torch.nn.init.zeros_(net.core.head.weight)
    torch.nn.init.zeros_(net.core.head.bias)
    out = net(torch.randn(3, 24 * 11))
    assert out.shape == (3,) and torch.allclose(out, torch.full((3,), 14.0))  # 0 * std + mean


def test_the_residual_is_added_to_the_core_in_standardized_units_and_never_trains():
    cfg = TrainConfig(model="rnn", rnn=RNNConfig(hidden=(8,)))
    # 2 steps x 2 inputs; the persistence target is input 1, the linear part reads x[0] and x[3].
    weight, bias = [0.5, 0.0, 0.0, -1.0], 0.25
    x = torch.tensor([[2.0, 3.0, 5.0, 7.0], [0.0, 0.0, 0.0, 1.0]])
    for kwargs, standardized in (
        ({}, [0.0, 0.0]),
        ({"persistence": 1}, [7.0, 1.0]),  # the last step's input 1
        ({"linear": (weight, bias)}, [0.5 * 2 - 7 + 0.25, -1 + 0.25]),
    ):
        net = build_model(cfg, (2, 2), 1, y_scale=(10.0, 2.0), **kwargs)
        torch.nn.init.zeros_(net.core.head.weight)
        torch.nn.init.zeros_(net.core.head.bias)  # the core adds nothing
        expected = torch.tensor(standardized) * 2.0 + 10.0
        assert torch.allclose(net(x), expected), kwargs
        assert all("linear" not in name for name, _ in net.named_parameters())
    assert set(net.state_dict()) >= {"linear_weight", "linear_bias"}  # saved with the model
    fresh = build_model(cfg, (2, 2), 1, y_scale=(10.0, 2.0), linear=(weight, bias))
    assert torch.allclose(fresh(x), expected)  # untrained, it is the linear forecast exactly


def test_a_linear_residual_must_fit_the_row():
    with pytest.raises(ValueError, match="linear: 3 weights for rows of 4"):
        build_model(TrainConfig(model="rnn"), (2, 2), 1, y_scale=(0.0, 1.0), linear=([1] * 3, 0))


def test_mlp_without_hidden_layers_is_linear():
    net = build_model(TrainConfig(model="mlp", mlp=MLPConfig()), (24, 11), 1, y_scale=(0.0, 1.0))
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(264, 1)]


def test_kind_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"cnn: expected image features \[channels, height"):
        build_model(TrainConfig(model="cnn"), (24, 11), 1)


def test_augmentation_is_identity_when_off_and_seeded_when_on():
    x = torch.rand(4, 1, 8, 8)
    assert random_affine(x, shift=0, rotate=0) is x
    a = random_affine(x, shift=1, rotate=10, generator=torch.Generator().manual_seed(3))
    b = random_affine(x, shift=1, rotate=10, generator=torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)


def test_a_shift_moves_the_image_by_the_drawn_number_of_pixels():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4, 4] = 1.0
    out = random_affine(x, shift=1, rotate=0, generator=torch.Generator().manual_seed(0))
    # The same draws as the transform: the angle (0 here), then the x and y shifts in pixels.
    draws = torch.Generator().manual_seed(0)
    _, tx, ty = ((torch.rand(1, generator=draws) * 2 - 1).item() for _ in range(3))
    assert min(abs(tx), abs(ty)) > 0.1  # this seed moves the pixel in both directions
    assert torch.isclose(out.sum(), torch.tensor(1.0), atol=1e-5)  # moved, not lost
    # Output pixel p samples input p + t, so the bright pixel's centre of mass moves by -t.
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    centre = ((out[0, 0] * cols).sum().item(), (out[0, 0] * rows).sum().item())
    assert centre == pytest.approx((4 - tx, 4 - ty), abs=1e-4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "epochs: expected >= 1, found 0"),
        ({"warmup_epochs": 5, "epochs": 5}, r"warmup_epochs: in \[0, epochs\)"),
    ],
)
def test_train_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(model="cnn", **overrides)
