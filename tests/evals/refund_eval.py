"""The refund eval over the mock provider, as the Python API and pytest plugin tests write it."""

CONFIG = """\
models:
  - name: fast
    deployments:
      - provider: mock
        model: fast-1
        mock:
          rules: [{match: refund, reply: "Refunds within 30 days."}]
          reply: "No idea."
"""

EVAL = """\
name: refund
dataset: data.jsonl
target:
  model: fast
  messages: [{role: user, content: "{{ input }}"}]
scorers:
  - contains: "{{ expected }}"
"""
