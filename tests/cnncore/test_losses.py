"""Softmax, cross-entropy, binary cross-entropy and focal loss against torch and against a focal
loss written straight from Lin et al. (2017), eq. 5, on random inputs."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncore.errors import CNNCoreError
from cnncore.losses import compute_loss, focal_loss, softmax_with_temperature

LN = {"e": 1.0, "2": math.log(2), "10": math.log(10)}


def _reference_focal(z, target, gamma, alpha, temperature=1.0):
    """FL(p_t) = −α_t (1 − p_t)^γ log p_t, straight from the paper (natural log).

    One logit: p = σ(z), p_t = p if y = 1 else 1 − p, α_t = α if y = 1 else 1 − α (their §3.1).
    Several: p = softmax(z), p_t = p[target], α_t = α for every class.
    """
    if z.numel() == 1:
        p = torch.sigmoid(z / temperature)[0]
        p_t = p if target == 1 else 1 - p
        alpha_t = 1.0 if alpha is None else (alpha if target == 1 else 1 - alpha)
    else:
        p_t = torch.softmax(z / temperature, dim=0)[target]
        alpha_t = 1.0 if alpha is None else alpha
    return -alpha_t * (1 - p_t) ** gamma * torch.log(p_t)


logit_lists = st.lists(st.floats(-8, 8, allow_nan=False), min_size=2, max_size=12)


@settings(max_examples=80, deadline=None)
@given(logit_lists, st.data(), st.sampled_from(["e", "2", "10"]), st.floats(0.2, 5.0))
def test_cross_entropy_matches_torch_and_its_gradient_is_p_minus_y(logits, data, base, temp):
    target = data.draw(st.integers(0, len(logits) - 1))
    result = compute_loss("cross_entropy", target, logits=logits, log_base=base,
                          temperature=temp)
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    expected = F.cross_entropy(z[None] / temp, torch.tensor([target])) / LN[base]
    (expected_grad,) = torch.autograd.grad(expected, z)
    assert result.loss == pytest.approx(expected.item(), rel=1e-12, abs=1e-12)
    torch.testing.assert_close(result.grad, expected_grad)
    p = torch.softmax(z.detach() / temp, dim=0)
    torch.testing.assert_close(result.probs, p)
    torch.testing.assert_close(result.grad, (p - result.target) / (temp * LN[base]))
    assert result.terms.sum().item() == pytest.approx(result.loss, rel=1e-12, abs=1e-12)
    assert [i for i, t in enumerate(result.terms.tolist()) if t != 0] in ([], [target])


@settings(max_examples=60, deadline=None)
@given(logit_lists, st.data())
def test_soft_targets_match_torchs_probability_targets(logits, data):
    raw = torch.tensor(data.draw(st.lists(st.floats(0.01, 1.0), min_size=len(logits),
                                          max_size=len(logits))), dtype=torch.float64)
    soft = (raw / raw.sum()).tolist()
    result = compute_loss("cross_entropy", soft, logits=logits)
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    expected = F.cross_entropy(z[None], torch.tensor([soft], dtype=torch.float64))
    (expected_grad,) = torch.autograd.grad(expected, z)
    assert result.loss == pytest.approx(expected.item(), rel=1e-10)
    torch.testing.assert_close(result.grad, expected_grad)
    p = torch.softmax(z.detach(), 0)
    torch.testing.assert_close(result.terms, -torch.tensor(soft, dtype=torch.float64) * p.log())


@settings(max_examples=60, deadline=None)
@given(st.floats(-10, 10), st.floats(0, 1), st.sampled_from(["e", "2"]), st.floats(0.5, 3.0))
def test_binary_cross_entropy_matches_torch(logit, y, base, temp):
    result = compute_loss("binary_cross_entropy", y, logits=[logit], log_base=base,
                          temperature=temp)
    z = torch.tensor([logit], dtype=torch.float64, requires_grad=True)
    expected = F.binary_cross_entropy_with_logits(
        z / temp, torch.tensor([y], dtype=torch.float64)
    ) / LN[base]
    (expected_grad,) = torch.autograd.grad(expected, z)
    assert result.loss == pytest.approx(expected.item(), rel=1e-10, abs=1e-12)
    torch.testing.assert_close(result.grad, expected_grad)
    p = torch.sigmoid(torch.tensor(logit / temp, dtype=torch.float64))
    torch.testing.assert_close(result.probs, torch.stack((1 - p, p)))
    torch.testing.assert_close(result.grad[0], (p - y) / (temp * LN[base]))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-6, 6), min_size=1, max_size=8), st.data(), st.floats(0, 5),
       st.one_of(st.none(), st.floats(0.05, 1.0)), st.floats(0.5, 2.0))
def test_focal_loss_matches_the_paper_formula_and_its_autograd(logits, data, gamma, alpha, temp):
    binary = len(logits) == 1
    target = data.draw(st.integers(0, 1 if binary else len(logits) - 1))
    result = compute_loss("focal", target, logits=logits, gamma=gamma, alpha=alpha,
                          temperature=temp)
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    expected = _reference_focal(z, target, gamma, alpha, temp)
    (expected_grad,) = torch.autograd.grad(expected, z)
    assert result.loss == pytest.approx(expected.item(), rel=1e-9, abs=1e-12)
    torch.testing.assert_close(result.grad, expected_grad, rtol=1e-7, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(2, 6), st.floats(0, 5), st.integers(0, 2**31 - 1))
def test_training_focal_loss_is_the_mean_of_the_explorers_examples(rows, classes, gamma, seed):
    """One formula: the batched training loss averages what the explorer writes out per example,
    value and gradient, and matches the paper's formula near p_t = 1 (easy examples)."""
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(rows, classes, generator=generator, dtype=torch.float64) * 6)
    logits.requires_grad_(True)
    target = torch.randint(0, classes, (rows,), generator=generator)
    batched = focal_loss(logits, target, gamma)
    (batched_grad,) = torch.autograd.grad(batched, logits)
    examples = [compute_loss("focal", int(t), logits=row.tolist(), gamma=gamma)
                for row, t in zip(logits.detach(), target, strict=True)]
    assert batched.item() == pytest.approx(sum(e.loss for e in examples) / rows, rel=1e-9,
                                           abs=1e-12)
    torch.testing.assert_close(batched_grad, torch.stack([e.grad for e in examples]) / rows,
                               rtol=1e-7, atol=1e-12)
    expected = torch.stack([_reference_focal(row, int(t), gamma, None)
                            for row, t in zip(logits.detach(), target, strict=True)]).mean()
    assert batched.item() == pytest.approx(expected.item(), rel=1e-9, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(logit_lists, st.data())
def test_focal_with_gamma_zero_and_no_alpha_is_cross_entropy(logits, data):
    target = data.draw(st.integers(0, len(logits) - 1))
    focal = compute_loss("focal", target, logits=logits, gamma=0.0)
    expected = F.cross_entropy(torch.tensor([logits], dtype=torch.float64),
                               torch.tensor([target]))
    assert focal.loss == pytest.approx(expected.item(), rel=1e-12, abs=1e-12)
    cross_entropy = compute_loss("cross_entropy", target, logits=logits)
    torch.testing.assert_close(focal.grad, cross_entropy.grad)
    assert focal.comparison[0].ratio == pytest.approx(1.0) or focal.loss == 0


def test_focal_comparison_shows_the_papers_100x_for_an_easy_example():
    result = compute_loss("focal", 0, logits=[2.0, 0.0, -1.0], gamma=2.0)
    examples = {e.example: e for e in result.comparison}
    # Lin et al. §3.2: with γ = 2, p_t = 0.9 gets 100× less loss than under cross-entropy.
    assert examples["easy"].p_t == 0.9 and examples["easy"].ratio == pytest.approx(100.0)
    assert examples["hard"].ratio == pytest.approx(1 / 0.81)
    current = examples["current"]
    p_t = torch.softmax(torch.tensor([2.0, 0.0, -1.0], dtype=torch.float64), 0)[0].item()
    assert current.p_t == pytest.approx(p_t)
    assert current.cross_entropy == pytest.approx(-math.log(p_t))
    assert current.ratio == pytest.approx(1 / (1 - p_t) ** 2)
    weighted = compute_loss("focal", 0, logits=[2.0, 0.0, -1.0], gamma=2.0, alpha=0.25)
    assert {e.example: e for e in weighted.comparison}["easy"].ratio == pytest.approx(400.0)


def test_probabilities_in_give_the_same_loss_as_their_logits():
    logits = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    probs = torch.softmax(logits, 0).tolist()
    from_probs = compute_loss("cross_entropy", 2, probs=probs, log_base=2, temperature=1.5)
    from_logits = compute_loss("cross_entropy", 2, logits=logits.tolist(), log_base=2,
                               temperature=1.5)
    assert from_probs.loss == pytest.approx(from_logits.loss, rel=1e-12)
    torch.testing.assert_close(from_probs.grad, from_logits.grad)
    binary = compute_loss("binary_cross_entropy", 1, probs=[0.8])
    assert binary.loss == pytest.approx(-math.log(0.8)) and binary.logits.item() == pytest.approx(
        math.log(4.0))


def test_temperature_flattens_and_sharpens():
    logits = torch.tensor([1.0, 2.0, 3.0])
    hot, cold = softmax_with_temperature(logits, 10.0), softmax_with_temperature(logits, 0.1)
    assert hot.max() < softmax_with_temperature(logits).max() < cold.max()
    assert cold[2].item() > 0.99 and (hot - 1 / 3).abs().max().item() < 0.04


def test_extreme_logits_stay_finite():
    result = compute_loss("cross_entropy", 0, logits=[-800.0, 800.0])
    assert result.loss == pytest.approx(1600.0) and torch.isfinite(result.grad).all()
    focal = compute_loss("focal", 1, logits=[-800.0, 800.0], gamma=0.5)
    assert focal.loss == 0.0 and torch.isfinite(focal.grad).all()


@pytest.mark.parametrize(
    ("kind", "target", "kwargs", "field"),
    [
        ("hinge", 0, {"logits": [1.0, 2.0]}, "kind"),
        ("cross_entropy", 0, {"logits": []}, "logits"),
        ("cross_entropy", 0, {"logits": [1.0]}, "logits"),
        ("cross_entropy", 0, {}, "logits"),
        ("cross_entropy", 0, {"logits": [1.0, 2.0], "probs": [0.5, 0.5]}, "logits"),
        ("cross_entropy", 0, {"logits": [1.0, float("nan")]}, "logits"),
        ("cross_entropy", 0, {"probs": [0.5, 0.6]}, "probs"),
        ("cross_entropy", 0, {"probs": [1.0, 0.0]}, "probs"),
        ("cross_entropy", 2, {"logits": [1.0, 2.0]}, "target"),
        ("cross_entropy", -1, {"logits": [1.0, 2.0]}, "target"),
        ("cross_entropy", [0.5, 0.4], {"logits": [1.0, 2.0]}, "target"),
        ("cross_entropy", [1.0], {"logits": [1.0, 2.0]}, "target"),
        ("cross_entropy", 0, {"logits": [1.0, 2.0], "log_base": 3}, "log_base"),
        ("cross_entropy", 0, {"logits": [1.0, 2.0], "temperature": 0.0}, "temperature"),
        ("binary_cross_entropy", 0, {"logits": [1.0, 2.0]}, "logits"),
        ("binary_cross_entropy", 2, {"logits": [1.0]}, "target"),
        ("binary_cross_entropy", 1, {"probs": [1.0]}, "probs"),
        ("focal", 0, {"logits": [1.0, 2.0], "gamma": -1.0}, "gamma"),
        ("focal", 0, {"logits": [1.0, 2.0], "alpha": 1.5}, "alpha"),
    ],
)
def test_bad_input_names_its_field(kind, target, kwargs, field):
    with pytest.raises(CNNCoreError) as info:
        compute_loss(kind, target, **kwargs)
    assert info.value.field == field


def test_an_integral_float_target_is_a_class_index():
    as_float = compute_loss("cross_entropy", 1.0, logits=[0.1, 0.2, 0.3])
    as_int = compute_loss("cross_entropy", 1, logits=[0.1, 0.2, 0.3])
    assert as_float.loss == as_int.loss and torch.equal(as_float.target, as_int.target)
    with pytest.raises(CNNCoreError):
        compute_loss("cross_entropy", 1.5, logits=[0.1, 0.2, 0.3])
