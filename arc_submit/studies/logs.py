"""Training metrics where the research log's author looked at them: TensorBoard event files in
`OUT/tensorboard/`, and Weights & Biases (offline, in `OUT/wandb/`) when the wandb package is installed.

    log = MetricsLog(Path("runs/train"), start_step=0, wandb_config=config.to_dict())
    log.scalars(10, {"train/loss": 0.42})
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


class MetricsLog:
    def __init__(self, out: Path, start_step: int = 0, wandb_config: dict | None = None):
        from torch.utils.tensorboard import SummaryWriter

        # a resumed run drops what a killed one logged after its last checkpoint
        self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=start_step + 1 if start_step else None)
        self.wandb = None
        if wandb_config is not None and importlib.util.find_spec("wandb") is not None:
            import wandb

            self.wandb = wandb.init(project="arc-submit", dir=str(out), mode="offline", config=wandb_config,
                                    resume="allow", id=out.resolve().name)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        if self.wandb is not None:
            self.wandb.log(values, step=step)

    def close(self) -> None:
        self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()
