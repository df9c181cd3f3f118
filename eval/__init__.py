"""Evaluation tools for LM-MSN: the paper's tables and figures, reproducibly.

Each module is a command-line tool (`python -m eval.<tool> --help`) and a small
library: reconstruction (Table I), fad (Figure 3), captioning (Table II), genre
(Table III), consistency (batch size / seed / prompt sensitivity), mos
(predicted MOS), answers (single-choice answer extraction) and run_all (one
YAML -> one report folder). Every result file records its settings, library
versions, seed, device, dtype and batch size (`eval.common`).
"""
