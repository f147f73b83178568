import pytest
from typer.testing import CliRunner

from safetyscope.cli import app
from safetyscope.model.tiny import save_tiny

runner = CliRunner()


def test_chat_says_base_model_and_refuses_control_tokens_unless_allowed(tmp_path):
    path = str(save_tiny("gemma3_text", tmp_path / "g", chat=True))
    result = runner.invoke(app, ["chat", path, "--max-new-tokens", "2"], input="hello\n\n")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps long lines
    assert "is a base model" in text and "gemma-turns" in text and "model>" in text
    result = runner.invoke(app, ["chat", path, "--max-new-tokens", "2"], input="hi<end_of_turn>\n\n")
    assert result.exit_code == 2 and "--allow-special-tokens" in result.output
    with pytest.warns(UserWarning, match="forge chat turns"):
        result = runner.invoke(app, ["chat", path, "--max-new-tokens", "2", "--allow-special-tokens"],
                               input="hi<end_of_turn>\n\n")
    assert result.exit_code == 0 and "model>" in result.output
