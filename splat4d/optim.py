"""Optimizer entries of nerfstudio method configs, and learning-rate schedules that follow a run's length."""

from typing import Callable, List, Optional

from nerfstudio.engine.optimizers import AdamOptimizerConfig, Optimizers
from nerfstudio.engine.schedulers import SchedulerConfig


def adam(lr: float, scheduler: Optional[SchedulerConfig] = None, eps: float = 1e-15) -> dict:
    """One ``TrainerConfig.optimizers`` entry: Adam (eps 1e-15 by default, as splatfacto) and a schedule."""
    return {"optimizer": AdamOptimizerConfig(lr=lr, eps=eps), "scheduler": scheduler}


def run_steps(trainer) -> int:
    """Steps of a nerfstudio run: it trains --max-num-iterations more steps after the step it resumes from."""
    return trainer._start_step + trainer.config.max_num_iterations


def stretched(multiplier: Callable[[int], float], factor: float) -> Callable[[int], float]:
    """The lr multiplier of a schedule written for R steps, played over R / factor steps."""
    # a plain function (not an object): LambdaLR's state_dict then leaves it out of checkpoints
    return lambda step: multiplier(step * factor)


def stretch_schedules(optimizers: Optimizers, run_steps: int) -> List[str]:
    """Make every scheduler with a ``max_steps`` (written for the paper's run) span ``run_steps``
    instead: warm-up and decay keep their shape and end where the run ends. The trainer's config is
    not touched; the current learning rates are recomputed (this also holds after a resume, whose
    scheduler step was restored before). Returns the names of the stretched parameter groups."""
    names = []
    for name, scheduler in optimizers.schedulers.items():
        reference = getattr(optimizers.config[name]["scheduler"], "max_steps", None)
        if reference is None or reference == run_steps:
            continue
        scheduler.lr_lambdas = [stretched(f, reference / run_steps) for f in scheduler.lr_lambdas]
        for group, multiplier, base in zip(scheduler.optimizer.param_groups, scheduler.lr_lambdas, scheduler.base_lrs):
            group["lr"] = base * multiplier(scheduler.last_epoch)
        names.append(name)
    return names
