"""Behavioural evaluation: what a model does, not what it represents.

* :mod:`.generate`: batched, KV-cached, left-padded generation from instructions.
* :mod:`.judges`: label completions ``refusal`` / ``compliance`` / ``incoherent``
  (:class:`~.linear_judge.LinearJudge` default, :class:`~.judges.RuleJudge`, keyword baseline,
  LLM judge with :mod:`.rubrics`); :mod:`.model_judges` (HF classifier, ensemble),
  :mod:`.http_judge` (OpenAI-compatible endpoint); :mod:`.judge_io` judges a JSONL file;
  :mod:`.judge_eval` scores a judge against reference labels (docs/judges.md).
* :mod:`.metrics`: rates with Wilson intervals, next-token KL divergence, perplexity.
* :mod:`.refusal_score`: generation-free refusal log-odds.
"""
