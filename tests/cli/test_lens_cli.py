import json

from typer.testing import CliRunner

from safetyscope.cli import app

runner = CliRunner()
LENSES = ("logit", "tuned", "entropy", "concept", "future", "patchscope", "latent-language")


def test_lens_group_lists_every_lens():
    res = runner.invoke(app, ["lens", "--help"])
    assert res.exit_code == 0
    assert all(name in res.output for name in LENSES)


def test_bad_input_is_one_error_line(organism_dir, tmp_path):
    res = runner.invoke(app, ["lens", "patchscope", str(organism_dir)])
    assert res.exit_code == 2 and "--source" in res.output
    res = runner.invoke(app, ["lens", "entropy", str(organism_dir), "--figure", str(tmp_path / "f.txt")])
    assert res.exit_code == 2 and ".png" in res.output
    res = runner.invoke(app, ["lens", "latent-language", str(organism_dir), "--tasks", "en-fr"])
    assert res.exit_code == 2 and "English" in res.output


def test_tuned_then_logit_and_entropy_through_it(organism_dir, tmp_path):
    lens = tmp_path / "lens.safetensors"
    res = runner.invoke(
        app,
        [
            "lens",
            "tuned",
            str(organism_dir),
            "--steps",
            "20",
            "--n-train",
            "40",
            "--n",
            "8",
            "--save",
            str(lens),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert lens.is_file() and len(json.loads(res.output)["layers"]) == 3
    out, fig = tmp_path / "logit.json", tmp_path / "logit.svg"
    args = [
        "lens",
        "logit",
        str(organism_dir),
        "--tuned-lens",
        str(lens),
        "--n",
        "8",
        "--out",
        str(out),
        "--figure",
        str(fig),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["lens"] == "tuned" and fig.read_text().startswith("<?xml")
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already exists" in again.output
    res = runner.invoke(app, ["lens", "entropy", str(organism_dir), "--n", "8", "--json"])
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.output)["profiles"]) == {"harmful", "harmless"}


def test_concept_and_paired_patchscope_on_the_organism(organism_dir, tmp_path):
    from safetyscope import load_model
    from safetyscope.directions import collect_contrast
    from safetyscope.organism.dataset import build_corpus

    corpus = build_corpus(seed=0)
    contrast = collect_contrast(
        load_model(organism_dir),
        corpus.prompts("harmful", "train")[:20],
        corpus.prompts("harmless", "train")[:20],
    )
    path = contrast.directions("diff_means").save(tmp_path / "refusal.safetensors")
    res = runner.invoke(
        app, ["lens", "concept", str(organism_dir), "--direction", str(path), "--n", "8", "--json"]
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["concepts"]["refusal"]
    assert all(r["gap"] > r["gap_random"] for r in rows)
    res = runner.invoke(
        app,
        [
            "lens",
            "patchscope",
            str(organism_dir),
            "--trigger",
            "prod",
            "--control-tag",
            "dev",
            "--n",
            "6",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["sites"][0]["site"] == "L0.resid_pre"


def test_future_and_latent_language_on_a_tiny_model(tmp_path):
    from safetyscope.model.tiny import save_tiny

    model = str(save_tiny("llama", tmp_path / "llama"))
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"the cat sat on mat number {i}" for i in range(8)) + "\n")
    res = runner.invoke(
        app, ["lens", "future", model, "--texts", str(texts), "--n", "8", "--steps", "2", "--json"]
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["k"] == 2 and len(rep["layers"]) == 3 and 0 <= rep["current_token"] <= 1
    words = tmp_path / "words.tsv"
    words.write_text(
        "# test\nen\tfr\tzh\n"
        + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in ["abc", "def", "ghi", "jkl", "mno", "pqr"])
    )
    res = runner.invoke(
        app,
        [
            "lens",
            "latent-language",
            model,
            "--words",
            str(words),
            "--tasks",
            "fr-zh",
            "--max-per-task",
            "4",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["n_prompts"] == 4 and {c["task"] for c in rep["curves"]} == {"translation", "fr-zh"}
