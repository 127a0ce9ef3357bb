"""`hydra/launcher=parallel`: Hydra's joblib launcher, with the sweep's costliest jobs started first.

Jobs run k at a time in worker processes; each keeps the number the sweep gives it (`0_plain8` stays
job 0 whenever it starts), and Hydra gets their results in sweep order. Without the ordering a sweep
listed shallow-first (`depth=8,20,56`) starts its deepest nets last and ends on one of them alone.
"""
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import configure_log, setup_globals
from hydra_plugins.hydra_joblib_launcher import _core
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher


class ParallelLauncher(JoblibLauncher):

    def launch(self, job_overrides, initial_job_idx):
        from joblib import Parallel, delayed

        import torch

        from resexp.console import say
        from resexp.sweep import job_cost, longest_first
        from resexp.train.speed import sweep_split
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        configs = [self.hydra_context.config_loader.load_sweep_config(self.config, list(o)) for o in job_overrides]
        order = longest_first([job_cost(cfg) for cfg in configs])
        options = dict(self.joblib, backend="loky")  # Hydra's state does not survive threads
        _core.process_joblib_cfg(options)
        gpus = torch.cuda.device_count() if configs and configs[0].device != "cpu" else 0
        say(sweep_split(len(order), int(options["n_jobs"]), gpus))
        state = Singleton.get_state()
        runs = Parallel(**options)(
            delayed(_core.execute_job)(initial_job_idx + i, job_overrides[i], self.hydra_context, self.config,
                                       self.task_function, state) for i in order)
        in_sweep_order = [None] * len(order)
        for i, run in zip(order, runs):
            in_sweep_order[i] = run
        return in_sweep_order
