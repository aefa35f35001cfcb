"""The data wing: ARC tasks and their validation, grid encoders, invertible augmentations, prompts,
submissions, the official score and the research metrics. Plain Python and numpy; no model stack."""
