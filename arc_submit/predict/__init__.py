"""The predict wing: samplers (vLLM, transformers) with weights pushed in place, candidates
decoded and mapped back through their augmentations, and voting over them."""
