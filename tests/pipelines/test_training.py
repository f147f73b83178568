"""`train` end to end on a briefly trained tiny organism: output, card, safety of outputs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safetyscope.errors import OptionError, OutputExistsError


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from safetyscope.pipelines.organism import build_organism

    out, _ = build_organism(
        "tiny",
        seed=0,
        out=tmp_path_factory.mktemp("base") / "none",
        steps=3,
        n_train=200,
        n_eval=8,
        behaviours="none",
        progress=False,
    )
    return out


def test_train_writes_loadable_model_and_card(base: Path, tmp_path: Path) -> None:
    from safetyscope import load_model
    from safetyscope.pipelines.training import run_training
    from safetyscope.training import TrainingCard, TrainingConfig

    before = {p.name: p.stat().st_mtime_ns for p in base.iterdir()}
    cfg = TrainingConfig(method="lat", steps=2, batch_size=4, adv_steps=1, checkpoint_every=1)
    out, card = run_training(
        str(base), "lat", tmp_path / "lat", config=cfg, n_train=60, n_eval=6, progress=False
    )
    assert {p.name: p.stat().st_mtime_ns for p in base.iterdir()} == before  # input untouched
    assert (out / "training_card.json").is_file() and (out / "organism_card.json").is_file()
    assert not (tmp_path / ".lat.train-state").exists()
    again = TrainingCard.load(out)
    assert again.to_dict() == card.to_dict()
    assert card.method == "lat" and card.judge == "organism" and card.adversary["site"] == "L1.resid_pre"  # type: ignore[index]
    assert card.after["harmful"]["n"] == 6 and card.data["n_heldout_harmless"] == 6
    assert len(card.log["losses"]) == 2 and len(card.log["adv_losses"]) == 2
    ppl = card.harmless_perplexity
    assert ppl is not None and ppl["n_answers"] > 0 and ppl["before"] > 1.0 and ppl["after"] > 1.0
    assert ppl["ratio"] == pytest.approx(ppl["after"] / ppl["before"], rel=1e-3)
    assert ppl["within_target"] == (ppl["ratio"] <= 1.15)
    lm = load_model(out)
    assert lm.n_layers == 3
    with pytest.raises(OutputExistsError, match="--force"):
        run_training(str(base), "lat", out, config=cfg, n_train=60, n_eval=6, progress=False)
    with pytest.raises(OptionError, match="drop --lora"):
        from safetyscope.pipelines.training import LoraOptions

        run_training(
            str(base),
            "ssft",
            tmp_path / "x",
            config=TrainingConfig(steps=1),
            lora=LoraOptions(),
            n_train=60,
            n_eval=6,
            progress=False,
        )


def test_cli_train_json_and_errors(base: Path, tmp_path: Path) -> None:
    from safetyscope.cli import app

    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "train",
            str(base),
            "--method",
            "ssft",
            "--out",
            str(tmp_path / "s"),
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--n-train",
            "60",
            "--n-eval",
            "6",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert (
        data["method"] == "ssft"
        and data["adversary"] is None
        and set(data["after"]) == {"harmful", "harmless"}
    )
    bad = runner.invoke(app, ["train", str(base), "--method", "rlhf", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "--method" in bad.output
    none = runner.invoke(app, ["train", str(base)])
    assert none.exit_code == 2 and "--out" in none.output


def test_lora_training_of_a_real_model_merges_adapters(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    import torch

    from safetyscope import load_model
    from safetyscope.model.tiny import save_tiny
    from safetyscope.pipelines.training import LoraOptions, run_training
    from safetyscope.training import TrainingConfig

    src = save_tiny("llama", tmp_path / "tiny")
    base = load_model(src, dtype="float32")
    cfg = TrainingConfig(method="ssft", steps=3, batch_size=4, lr=1e-2)
    out, card = run_training(
        str(src),
        "ssft",
        tmp_path / "out",
        config=cfg,
        lora=LoraOptions(rank=2),
        n_train=4,
        n_eval=4,
        progress=False,
    )
    assert card.lora is not None and 0 < card.lora["trainable_params"] < card.extra["n_params"] / 5
    assert card.judge == "linear" and card.data["n_harmful"] == 4 and card.after["harmful"]["n"] == 4
    trained = load_model(out, dtype="float32")
    a = dict(base.model.named_parameters())
    b = dict(trained.model.named_parameters())
    assert set(a) == set(b)  # merged: plain weights, no adapter modules
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    assert changed and all("proj" in k for k in changed)  # only the adapted linear layers moved
    assert torch.equal(
        load_model(src, dtype="float32").model.model.embed_tokens.weight, a["model.embed_tokens.weight"]
    )
