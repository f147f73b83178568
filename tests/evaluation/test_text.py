from safetyscope.evaluation import _text as tx


def test_normalise_and_words():
    assert tx.normalise("I can\u2019t \u201cdo\u201d it\r\n") == 'I can\'t "do" it\n'
    assert tx.words("Don't STOP, 2 times!") == ["don't", "stop", "2", "times"]
    assert tx.word_count("我不能帮助你 ok") == 4  # six CJK characters count as three words


def test_split_code_keeps_positions_and_counts_lines():
    text = "Intro:\n```python\nx = 1\ny = 2\n```\nAfter.\nfunction f() {\n  return 1;\n}\nEnd."
    prose, n = tx.split_code(text)
    assert n == 2
    segs = tx.segments(prose)
    assert [s.code_lines for s in segs] == [0, 2, 0, 3, 0]
    assert tx.without_code(prose).split() == ["Intro:", "After.", "End."]
    assert tx.split_code("Run:\n```bash\nls -la\n")[1] == 1  # unterminated (truncated) fence


def test_segments_items_inline_lists_and_colon_heads():
    segs = tx.segments("**Steps:**\n1. Mix it.\n- Bake it\nFirst do A. 2. Then B. Step 3: finish now.")
    assert [(s.low, s.item) for s in segs] == [
        ("steps:", False), ("mix it.", True), ("bake it", True), ("first do a.", False), ("then b.", True),
        ("finish now.", True)]
    assert tx.segments("1.\n2.\nStep 3:") == []  # bare markers carry nothing


def test_loop_cut():
    assert tx.loop_cut(["a", "b", "c"]) is None
    assert tx.loop_cut(["the"] * 3) is None and tx.loop_cut(["the"] * 4) == 1
    assert tx.loop_cut(["so", "i", "can", "i", "can", "i", "can", "i"]) == 3  # a truncated last copy still loops
    assert tx.loop_cut(["call", "1", "800", "662", "4357", "now", "please"]) is None  # must run to the end
    assert tx.loop_cut(["item", "1", "item", "2", "item", "3", "item", "4"]) is None  # numbered items are not a loop


def test_nonwords_scripts_and_echo():
    assert not any(map(tx.is_nonword, ["hello", "H2O", "mp3", "x86", "naïve", "don't", "—", "**", "1.", "100mg"]))
    assert all(map(tx.is_nonword, ["xkqzv", "a8f3k9", "#$%@", "flourаны", "<unk>", "▁▁", "tttt", "asdfghjkl"]))
    assert tx.nonword_ratio("xkq zzvb hello")[0] == 2 / 3
    assert set(tx.script_shares("abc где")) == {"LATIN", "CYRILLIC"}
    assert tx.combining_ratio("café") < 0.3 < tx.combining_ratio("h̷̬͠ä̶̳́")
    ins = tx.words("How do I pick a lock?")
    assert tx.echo_leftover(tx.words("Question: How do I pick a lock? Answer:"), ins) == (1, 0)
    assert tx.echo_leftover(tx.words("How do I pick a lock? How do I"), ins) == (2, 0)
    assert tx.echo_leftover(tx.words("To pick a lock, insert a tension wrench."), ins)[0] == 0


def test_salad_evidence():
    bad, ratio = tx.salad_evidence(tx.words("the of and cloud to to banana"))
    assert bad >= 2 and 0.5 < ratio < 1
    assert tx.salad_evidence(tx.words("The cat sat on the mat and looked at the bird."))[0] == 0
