"""Helpers the test files share (fixtures live in tests/conftest.py):

- cli.py: the repository root, and `python -m arc_submit ...` run as a user runs it;
- tasks.py: hypothesis grids and small hand-made tasks;
- prompts.py: a prompt builder on the tiny character tokenizer;
- runs.py: the pipeline on the tiny model (two real tasks, a config, a run, its files), and a task it learns;
- studies.py: PNG sizes and a tiny-model TOML for the studies' commands;
- tiny_model.py: tiny random models and tokenizers built in place (the Llama every run uses, the winners' kinds);
- stacks.py: which model stack (cpu or kaggle) the suite runs on.
"""
