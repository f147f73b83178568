"""The attribute pipeline and CLI: JSON contract, files, errors."""

import json

import pytest

from safetyscope.circuits import AttributionResult, attribute, curve_sizes, node_circuit
from safetyscope.circuits.graph import build_graph
from safetyscope.errors import SafetyscopeError

from .conftest import CLEAN, CORRUPT


@pytest.mark.parametrize("method", ["atp", "eap", "eap-ig", "exact"])
def test_attribute_methods_round_trip(llama, method, tmp_path):
    res = attribute(llama, CLEAN, CORRUPT, method=method, chat=False, top=8, random_draws=2)
    again = AttributionResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert again == res
    curve = res.faithfulness
    assert curve[-1]["n_edges"] == res.graph["info"]["n_edges"] and curve[-1]["value"] == pytest.approx(
        1, abs=1e-4
    )
    assert len(res.circuit["random_faithfulness"]) == len(res.circuit["random_connected_faithfulness"]) == 2
    if method == "atp":
        assert res.nodes and res.top_edges() == [] and curve[0]["value"] == pytest.approx(0, abs=1e-4)
    else:
        assert len(res.top_edges()) == res.graph["info"]["n_edges"] and res.circuit["k"] == 8
        assert curve[0] == {"n_edges": 0, "value": pytest.approx(0.0, abs=1e-6)}
    paths = res.save(tmp_path)
    assert paths["figure"].read_text().startswith("<svg")
    assert AttributionResult.load(paths["graph"]) == res


def test_exact_and_eap_ig_agree_on_the_top_edge(llama):
    exact = attribute(llama, CLEAN, CORRUPT, method="exact", chat=False, evaluate=False)
    ig = attribute(llama, CLEAN, CORRUPT, method="eap-ig", steps=16, chat=False, evaluate=False)
    assert exact.top_edges(1)[0]["src"] == ig.top_edges(1)[0]["src"]
    assert exact.faithfulness == [] and exact.circuit == {}


def test_curve_sizes_and_node_circuits(llama):
    assert curve_sizes(190, 50) == [0, 1, 2, 5, 10, 20, 50, 100, 190]
    g = build_graph(llama)
    import torch

    none = node_circuit(g, torch.zeros(len(g.senders), dtype=torch.bool))
    assert none.nonzero().tolist() == [[0, len(g.receivers) - 1]]  # input -> logits only
    assert torch.equal(node_circuit(g, torch.ones(len(g.senders), dtype=torch.bool)), g.mask)


def test_bad_input(llama):
    with pytest.raises(SafetyscopeError, match="Unknown method"):
        attribute(llama, CLEAN, CORRUPT, method="magic", chat=False)
    with pytest.raises(SafetyscopeError, match="same top token"):
        attribute(llama, CLEAN, CLEAN, chat=False)


def test_cli_json_contract_and_out_dir(tmp_path):
    from typer.testing import CliRunner

    from safetyscope.cli import app
    from safetyscope.model.tiny import save_tiny

    model = save_tiny("llama", tmp_path / "m")
    (tmp_path / "c.txt").write_text("\n".join(CLEAN) + "\n")
    (tmp_path / "x.txt").write_text("\n".join(CORRUPT) + "\n")
    args = [
        "attribute",
        str(model),
        "--clean",
        str(tmp_path / "c.txt"),
        "--corrupt",
        str(tmp_path / "x.txt"),
        "--raw",
        "--method",
        "eap",
        "--top",
        "5",
        "--random-draws",
        "1",
    ]
    run = CliRunner().invoke(app, [*args, "--json", "--out", str(tmp_path / "out")])
    assert run.exit_code == 0, run.output
    data = json.loads(run.stdout)
    assert data["method"] == "eap" and data["seconds"] > 0
    assert set(data["edges"][0]) == {"src", "dst", "score"}
    assert {"n_edges", "value"} <= set(data["faithfulness"][0])
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {
        "graph.json",
        "circuit.json",
        "faithfulness.json",
        "top_edges.svg",
    }
    again = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert again.exit_code == 2 and "--force" in again.output
    bad = CliRunner().invoke(app, [*args[:-6], "--method", "nope"])
    assert bad.exit_code == 2 and "error:" in bad.output
