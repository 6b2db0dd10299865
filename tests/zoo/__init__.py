"""The adversarial self-evaluation zoo: models with known truth that the checker must get right on every seed.

``zoo.plugin`` registers them (suite ``zoo``); ``tests/test_zoo.py`` checks each on seeds 0..19
with default settings; ``python -m zoo.report`` (with ``tests`` on ``PYTHONPATH``) writes
``reports/self_evaluation.md``.
"""
