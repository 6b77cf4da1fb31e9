"""SharpTimeGS temporal functions against hand-computed values."""

import math

import torch

from sharptime_ns import temporal


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_motion_factor_hand_values():
    # f = 1 + max(1, (σt + r)²)
    torch.testing.assert_close(temporal.motion_factor(t(0.1, 2.0, 0.5), t(0.2, 1.0, 1.0)), t(2.0, 10.0, 3.25))


def test_position_at_hand_values():
    means, v = t(1.0, 2.0, 3.0)[None], t(4.0, 0.0, -2.0)[None]
    # σt + r = 3 → f = 10; X_t = X + v/10 · (t − T) with t − T = 0.5
    out = temporal.position_at(means, v, t(1.5)[None], t(2.5)[None], t(0.5)[None], 2.0)
    torch.testing.assert_close(out, t(1.2, 2.0, 2.9)[None])


def test_lifespan_flat_top_and_boundary():
    times, tscale, radius = t(1.0, 1.0, 1.0, 1.0), t(0.5, 0.5, 0.5, 0.5), t(0.2, 0.2, 0.2, 0.2)
    values = torch.stack(
        [temporal.lifespan(times[i], tscale[i], radius[i], ti) for i, ti in enumerate((1.1, 1.2, 1.7, 0.3))]
    )
    # inside |t − T| ≤ r → 1; boundary exactly r → 1; 0.5 beyond r → exp(−((0.7 − 0.2)/0.5)²) = e⁻¹; 0.7 → e^(−1)
    torch.testing.assert_close(values, t(1.0, 1.0, math.exp(-1.0), math.exp(-1.0)))


def test_lifespan_gradients_reach_radius_and_tscale():
    times = t(0.0)
    tscale = t(0.4).requires_grad_(True)
    radius = t(0.1).requires_grad_(True)
    life = temporal.lifespan(times, tscale, radius, 0.5)  # x = (0.5 − 0.1)/0.4 = 1 → e⁻¹
    life.backward()
    e = math.exp(-1.0)
    # dl/dr = 2x/σt · e^(−x²) = 5e⁻¹;  dl/dσt = 2x²/σt · e^(−x²) = 5e⁻¹
    torch.testing.assert_close(radius.grad, t(5 * e))
    torch.testing.assert_close(tscale.grad, t(5 * e))
    # inside the flat top nothing flows to σt or r
    tscale.grad, radius.grad = None, None
    temporal.lifespan(times, tscale, radius, 0.05).backward()
    assert float(tscale.grad) == 0.0 and float(radius.grad) == 0.0


def test_alive_matches_threshold():
    times, tscale, radius = torch.zeros(1000), torch.full((1000,), 0.3), torch.full((1000,), 0.1)
    ts = torch.linspace(-2, 2, 1000)
    life = torch.stack([temporal.lifespan(times[i], tscale[i], radius[i], float(ts[i])) for i in range(1000)])
    alive = torch.stack([temporal.alive_at(times[i], tscale[i], radius[i], float(ts[i]), 0.01) for i in range(1000)])
    assert torch.equal(alive, life >= 0.01 - 1e-7)


def test_motion_score_and_lifespan_loss_hand_values():
    v = t(3.0, 4.0, 0.0)[None]  # ‖v‖ = 5
    score = temporal.motion_score(v, t(2.0)[None], t(0.0)[None])  # σt = 2, r = 0 → f = 5
    torch.testing.assert_close(score, t(1 - math.exp(-6 / 5))[None])
    loss = temporal.lifespan_loss(t(0.5, 1.0), t(0.0, 0.5), 0.01)
    k = math.sqrt(-2 * math.log(0.01))
    torch.testing.assert_close(loss, torch.tensor((1 / (0.5 * k) + 1 / (k + 0.5)) / 2, dtype=torch.float64))


def test_densification_score_hand_values():
    # E normalised by its maximum; the motion term of a Gaussian at rest with f = 5 is 1 − e^(−1/5)
    error, opacity = t(2.0, 4.0), t(0.5, 0.1)
    velocities, tscale, radius = torch.zeros(2, 3, dtype=torch.float64), t(2.0, 2.0)[:, None], t(0.0, 0.0)[:, None]
    score = temporal.densification_score(error, opacity, velocities, tscale, radius, (1.0, 0.5, 0.5))
    motion = 1 - math.exp(-1 / 5)
    torch.testing.assert_close(score, t(0.5 + 0.25 + 0.5 * motion, 1.0 + 0.05 + 0.5 * motion))


def test_temporal_radius_is_zero_unless_learned():
    log_r = t(-1.0, 0.0)
    torch.testing.assert_close(temporal.temporal_radius(log_r, True), log_r.exp())
    assert torch.count_nonzero(temporal.temporal_radius(log_r, False)) == 0
