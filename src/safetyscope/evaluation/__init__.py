"""Behavioural evaluation: what a model does, not what it represents.

* :mod:`.generate`: batched, KV-cached, left-padded generation from instructions.
* :mod:`.judges`: label completions ``refusal`` / ``compliance`` / ``incoherent``
  (:class:`~.judges.RuleJudge` default, keyword baseline, optional LLM judge);
  :mod:`.judge_io` judges a JSONL file.
* :mod:`.metrics`: rates with Wilson intervals, next-token KL divergence, perplexity.
* :mod:`.refusal_score`: generation-free refusal log-odds.
"""
