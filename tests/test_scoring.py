"""Scores against numpy references written from the formulas, incl. ties and one-hot rows."""
import numpy as np
import pytest

from jaxal import scoring


def np_least_confidence(p):
  return 1.0 - p.max(-1)


def np_margin(p):
  s = np.sort(p, -1)
  return 1.0 - (s[..., -1] - s[..., -2])


def np_largest_margin(p):
  s = np.sort(p, -1)
  return 1.0 - (s[..., -1] - s[..., 0])


def np_entropy(p):
  out = np.zeros(p.shape[:-1])
  for idx in np.ndindex(p.shape[:-1]):
    row = p[idx]
    out[idx] = -sum(v * np.log(v) for v in row if v > 0)
  return out


REFS = {"least_confidence": np_least_confidence, "margin": np_margin,
        "largest_margin": np_largest_margin, "entropy": np_entropy}


def random_probs(rng, n, c):
  logits = rng.normal(size=(n, c)) * rng.uniform(0.1, 5, size=(n, 1))
  p = np.exp(logits - logits.max(-1, keepdims=True))
  return (p / p.sum(-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("name", list(REFS))
@pytest.mark.parametrize("c", [2, 3, 10])
def test_score_matches_numpy_on_random_probabilities(name, c):
  p = random_probs(np.random.default_rng(c), 500, c)
  np.testing.assert_allclose(scoring.SCORES[name](p), REFS[name](p.astype(np.float64)),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(REFS))
def test_score_matches_numpy_on_ties_and_one_hot_rows(name):
  p = np.array([[1, 0, 0, 0],          # one-hot
                [0, 0, 0, 1],          # one-hot, other class
                [0.25, 0.25, 0.25, 0.25],  # all tied
                [0.4, 0.4, 0.2, 0.0],  # tie at the top, a zero
                [0.5, 0.5, 0.0, 0.0]], np.float32)
  np.testing.assert_allclose(scoring.SCORES[name](p), REFS[name](p.astype(np.float64)),
                             rtol=1e-6, atol=1e-6)


def test_hand_worked_values():
  p = np.array([[0.7, 0.2, 0.1]], np.float32)
  np.testing.assert_allclose(scoring.least_confidence(p), [0.3], atol=1e-6)
  np.testing.assert_allclose(scoring.margin(p), [1 - 0.5], atol=1e-6)
  np.testing.assert_allclose(scoring.largest_margin(p), [1 - 0.6], atol=1e-6)
  np.testing.assert_allclose(scoring.entropy(p),
                             [-(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))],
                             atol=1e-6)


def test_one_hot_is_least_uncertain_and_uniform_most():
  c = 5
  p = np.stack([np.eye(c)[0], np.full(c, 1 / c)]).astype(np.float32)
  for name, fn in scoring.SCORES.items():
    s = np.asarray(fn(p))
    assert s[0] == pytest.approx(0.0, abs=1e-6), name
    assert s[1] > s[0], name
  assert float(scoring.entropy(p)[1]) == pytest.approx(np.log(c), rel=1e-6)


def test_scores_accept_leading_axes():
  p = random_probs(np.random.default_rng(0), 24, 4).reshape(2, 3, 4, 4)
  for name, ref in REFS.items():
    np.testing.assert_allclose(scoring.SCORES[name](p), ref(p.astype(np.float64)), rtol=1e-5,
                               atol=1e-6)


def test_unknown_score_names_accepted_values():
  with pytest.raises(ValueError, match="least_confidence"):
    scoring.get_score("nope")
