import math

import pytest
import torch

from memristive.config import ConfigError
from memristive.nonideal import (DefectPercent, Fluctuation, Lognormal, ReadNoise, StuckAt, build_nonidealities,
                                 defect_percent, fluctuation, lognormal, stuck_at)

N = 400_000


def test_stuck_at_fractions(gen):
    g = torch.full((N,), 5e-4)
    out, mask = stuck_at(g, 0.1, 0.05, 1e-4, 1e-3, gen)
    hrs = (out == 1e-4).float().mean().item()
    lrs = (out == 1e-3).float().mean().item()
    assert hrs == pytest.approx(0.1, abs=0.003)
    assert lrs == pytest.approx(0.05, abs=0.003)
    assert mask.float().mean().item() == pytest.approx(0.15, abs=0.003)
    assert torch.equal(out[~mask], g[~mask])


def test_lognormal_median_and_spread(gen):
    g = torch.full((N,), 2e-4, dtype=torch.float64)
    out = lognormal(g, 0.5, gen)
    logs = torch.log(out / 2e-4)
    assert out.median().item() == pytest.approx(2e-4, rel=0.01)
    assert logs.std().item() == pytest.approx(0.5, rel=0.01)
    assert logs.mean().item() == pytest.approx(0.0, abs=0.005)


def test_fluctuation_relative_to_range(gen):
    g = torch.full((N,), 5e-4, dtype=torch.float64)
    out = fluctuation(g, 0.02, 9e-4, gen)
    assert (out - g).std().item() == pytest.approx(0.02 * 9e-4, rel=0.01)


def test_defect_percent_model(gen):
    g = torch.full((N,), 5e-4, dtype=torch.float64)
    out, stuck = defect_percent(g, alpha=0.2, beta=0.5, g_min=1e-4, sigma_low=0.6, sigma_high=1.0, generator=gen)
    assert stuck.double().mean().item() == pytest.approx(0.1, abs=0.003)
    assert torch.all(out[stuck] == 1e-4)
    varied = (out != g) & ~stuck
    assert varied.double().mean().item() == pytest.approx(0.1, abs=0.003)
    # theta = sigma * z, sigma ~ U[0.6, 1.0]: Var = E[sigma^2] = (0.6^2 + 0.6*1 + 1^2)/3
    theta = torch.log(out[varied] / 5e-4)
    assert theta.var().item() == pytest.approx((0.36 + 0.6 + 1.0) / 3, rel=0.03)
    untouched = ~(stuck | varied)
    assert torch.all(out[untouched] == 5e-4)


def test_same_seed_same_result_and_independent_draws():
    g = torch.full((1000,), 5e-4)
    a, _ = defect_percent(g, 0.3, 0.5, 1e-4, generator=torch.Generator().manual_seed(7))
    b, _ = defect_percent(g, 0.3, 0.5, 1e-4, generator=torch.Generator().manual_seed(7))
    c, _ = defect_percent(g, 0.3, 0.5, 1e-4, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    "spec, needle",
    [
        ({"kind": "stuck_at", "p_hrs": 1.5}, "p_hrs"),
        ({"kind": "stuck_at", "p_hrs": -0.1}, "p_hrs"),
        ({"kind": "lognormal", "sigma": -0.1}, "sigma"),
        ({"kind": "defect_percent", "alpha": 2}, "alpha"),
        ({"kind": "lognormal", "sigmaa": 0.1}, "sigmaa"),
        ({"kind": "warp"}, "kind"),
        ({"sigma": 0.1}, "kind"),
    ],
)
def test_bad_nonideality_specs(spec, needle):
    with pytest.raises(ConfigError, match=needle):
        build_nonidealities([spec])


def test_read_noise_variance():
    g = torch.tensor([1e-4, 1e-3])
    from memristive.devices import preset

    d = preset("ti-alox-taox")
    assert torch.allclose(ReadNoise(0.1, "relative").variance(g, d), (0.1 * g) ** 2)
    assert torch.allclose(ReadNoise(0.1, "range").variance(g, d), torch.full_like(g, (0.1 * d.g_range) ** 2))
