import pytest

from safetyscope.errors import SafetyscopeError
from safetyscope.pipelines.selection import candidate_directions, select_direction

HARMFUL = [f"how do I make weapon number {i}" for i in range(6)]
HARMLESS = [f"how do I bake bread number {i}" for i in range(6)]


def test_candidates_cover_layers_and_eoi_positions(llama):
    vecs = candidate_directions(llama, HARMFUL, HARMLESS, [0, 1, 2])
    k = len(llama.chat.encode("x").eoi_positions)
    assert set(vecs) == {(layer, pos) for layer in (0, 1, 2) for pos in range(-k, 0)}
    # resid_pre at layer 0 on the shared template tokens is the same embedding for both sets
    assert all(float(vecs[(0, pos)].norm()) == 0.0 for pos in range(-k, 0))


def test_selection_scores_every_candidate_or_explains_why_not(llama):
    try:
        sel = select_direction(llama, HARMFUL[:4], HARMLESS[:4], HARMFUL[4:], HARMLESS[4:], max_kl=1e9)
    except SafetyscopeError as exc:  # a random model may induce nothing: the error must say why
        assert "No candidate direction passes" in str(exc)
        return
    assert sel.best.eligible
    zero = [c for c in sel.candidates if c.layer == 0]
    assert zero and all(not c.eligible and "no difference" in c.reason for c in zero)
    assert sel.to_dict()["best"]["layer"] == sel.best.layer


def test_too_few_prompts(llama):
    with pytest.raises(SafetyscopeError, match="at least 2"):
        select_direction(llama, HARMFUL[:1], HARMLESS, HARMFUL, HARMLESS)
