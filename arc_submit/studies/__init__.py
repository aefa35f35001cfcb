"""The studies wing: evaluating checkpoints and seeds, reports and pictures, token counts, plans and
benchmarks, all built on whole runs of the pipeline."""
