"""Speed switches (precision, channels_last, CUDA graph, compile, determinism) and `resexp bench`.

Without a GPU (CI) the graph path runs on the CPU emulation of CUDA graphs (trainer.cuda_graph=emulate,
tests/test_graphs.py); the tests marked needs_cuda (or parametrized over DEVICES) run the real thing where
a GPU is at hand: python -m pytest tests/test_speed.py tests/test_reliability.py -k cuda"""
import contextlib
import json
import math
import os

import pytest
import torch

from resexp.cli import main
from resexp.models import build_model
from resexp.train.loop import build_training, train
from resexp.train.speed import channels_last_safe, speed_modes
from tests.conftest import DEVICES, needs_cuda
from tests.test_reliability import rows


def final(result):
    return {k: v for k, v in result.items() if k != "wall_time"}


@pytest.mark.parametrize("override,expected", [
    ("trainer.precision=fp16", "trainer.precision='fp16' is invalid; choose one of: auto, fp32, bf16"),
    ("trainer.channels_last=maybe", "trainer.channels_last='maybe' is invalid; choose one of: auto, true, false, on, off"),
    ("trainer.cuda_graph=sometimes", "trainer.cuda_graph='sometimes' is invalid; choose one of: auto, true, false, on, off"),
    ("trainer.cuda_graph=true", "trainer.cuda_graph=true needs a CUDA GPU"),
    ("trainer.cuda_graph=on", "trainer.cuda_graph=true needs a CUDA GPU"),
    ("trainer.compile=auto", "trainer.compile='auto' is invalid; choose one of: true, false"),
    ("deterministic=2", "deterministic=2 is invalid; choose one of: true, false"),
    ("trainer.channels_last=true model.width=4", "trainer.channels_last=true with model.width=4 hangs torch's CPU"),
])
def test_speed_keys_are_validated_as_one_line(override, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "device=cpu", *override.split()]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("units,precision,why", [("none", "fp32", "auto: no bf16 units"), ("amx", "bf16", "auto: AMX"),
                                                  ("avx512_bf16", "timed", "auto: AVX512-BF16")])
def test_auto_modes_per_device(compose_cfg, monkeypatch, units, precision, why):
    """The CPU's precision follows what torch reports of its bf16 units (faked here, as on each kind of CPU)."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: units == "amx")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: units != "none")
    t = compose_cfg("trainer.precision=auto").trainer
    assert speed_modes(t, torch.device("cpu"), build_model("resnet", 20)) == {
        "precision": precision, "precision_why": why, "channels_last": True, "cuda_graph": False, "compile": False}
    # a strided 1x1 projection of 4 channels hangs torch's channels_last CPU kernels: auto keeps NCHW there
    narrow = build_model("resnet", 20, width=4, shortcut="B")
    assert not channels_last_safe(narrow) and channels_last_safe(build_model("resnet", 20, width=4, shortcut="A"))
    assert speed_modes(t, torch.device("cpu"), narrow)["channels_last"] is False
    assert speed_modes(t, torch.device("cuda")) == {"precision": "bf16", "precision_why": "auto: CUDA",
                                                     "channels_last": True, "cuda_graph": True, "compile": False}
    for off in ("off", "false"):  # on/off as typed, true/false as YAML reads them
        modes = speed_modes(compose_cfg(f"trainer.cuda_graph={off}", f"trainer.channels_last={off}").trainer,
                            torch.device("cuda"))
        assert modes["cuda_graph"] is False and modes["channels_last"] is False
    assert speed_modes(compose_cfg().trainer, torch.device("cpu"))["precision_why"] is None  # pinned: no why


def test_an_undecided_cpu_times_both_precisions_once_and_remembers(compose_cfg, monkeypatch):
    """AVX512-BF16 without AMX: bf16 was faster on one such CPU and slower on another, so the run's own
    step is timed in each (on throwaway copies), the choice kept for the next run; timing leaves the random
    stream as it was, so a run trains the same whether it timed or remembered."""
    from resexp.train import speed
    monkeypatch.setattr(speed, "cpu_bf16_units", lambda: "avx512_bf16")
    cfg = compose_cfg("trainer.precision=auto", "dataset.augment.flip=true")  # the timed steps draw
    first = build_training(cfg)
    timed_rng = torch.get_rng_state()
    assert first.modes["precision"] in ("fp32", "bf16")
    assert first.modes["precision_why"].startswith("auto: timed on this CPU, fp32 ")
    monkeypatch.setattr(speed, "remember", lambda *a: pytest.fail("timed again"))
    second = build_training(cfg)
    assert second.modes == first.modes and torch.equal(torch.get_rng_state(), timed_rng)
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)


def test_a_remembered_choice_is_used_and_a_broken_cache_is_ignored(compose_cfg, monkeypatch, tmp_path):
    from resexp.train import speed
    monkeypatch.setattr(speed, "cpu_bf16_units", lambda: "avx512_bf16")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "resexp").mkdir()
    (tmp_path / "resexp" / "precision.json").write_text("not json")
    choice = {"precision": "bf16", "ms_per_step": {"fp32": 2, "bf16": 1}, "bf16_non_finite": False}
    speed.remember("k", choice)  # replaces what it cannot read: it is resexp's own cache file
    assert speed.remembered("k") == choice and speed.remembered("other") is None
    speed.remember("bad", {"precision": "fp8"})
    assert speed.remembered("bad") is None  # an entry that is not a choice: timed again
    tr = build_training(compose_cfg("trainer.precision=auto"))
    key = next(k for k in json.loads((tmp_path / "resexp" / "precision.json").read_text()) if " | " in k)
    speed.remember(key, {"precision": "bf16", "ms_per_step": {"fp32": 9.0, "bf16": 3.0}, "bf16_non_finite": False})
    tr = build_training(compose_cfg("trainer.precision=auto"))
    assert tr.modes["precision"] == "bf16" and tr.modes["precision_why"].endswith("fp32 9 ms, bf16 3 ms a step")


def test_channels_last_and_determinism_give_the_fp32_run(compose_cfg, tmp_path):
    base = final(train(compose_cfg("trainer.channels_last=false"), tmp_path / "a"))
    nhwc = final(train(compose_cfg("trainer.channels_last=true"), tmp_path / "b"))
    assert nhwc.keys() == base.keys()
    for key in ("final_test_error", "final_train_error"):
        assert nhwc[key] == pytest.approx(base[key], abs=1.0)  # a different summation order, same run
    exact = final(train(compose_cfg("trainer.channels_last=false", "deterministic=true"), tmp_path / "c"))
    assert exact == base  # the CPU is deterministic either way


def test_bf16_trains_close_to_fp32(compose_cfg, tmp_path):
    cfg = ["trainer.channels_last=false", "trainer.epochs=2", "trainer.eval_every=4"]
    fp32 = train(compose_cfg(*cfg, "trainer.precision=fp32"), tmp_path / "a")
    bf16 = train(compose_cfg(*cfg, "trainer.precision=bf16"), tmp_path / "b")
    rows = [[json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in "ab"]
    for a, b in zip(*rows):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.05)  # bf16 keeps ~3 significant digits
    assert bf16["steps"] == fp32["steps"] == 8


def test_the_last_partial_batch_is_dropped(compose_cfg):
    tr = build_training(compose_cfg("dataset.train_size=250"))  # 250 // 64 = 3 full batches
    assert tr.steps_per_epoch == 3 and tr.total_steps == 3


def test_a_batch_larger_than_the_training_split_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "device=cpu", "dataset.train_size=100", "trainer.batch_size=128"]) == 2
    assert "trainer.batch_size=128 is larger than the training split (100 images)" in capsys.readouterr().err


def same_steps(trainings, steps):
    """`steps` training steps of each Training through the loop's own per-step function, from the same
    augmentation draws (each Training's data order comes from its own seeded generator)."""
    for tr in trainings:
        torch.manual_seed(1)  # the augmentation's generator
        for done in range(1, steps + 1):
            tr.advance(done)


# bf16 on a GPU: the graph and eager runs take the same kernels; what is allowed is the rounding of a
# different reduction order where cuDNN picks another algorithm, over 40 steps.
TOLERANCE = {"fp32": {"rtol": 1e-4, "atol": 1e-5}, "bf16": {"rtol": 2e-2, "atol": 2e-3}}


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("optimizer", [[], ["optimizer=adam", "optimizer.lr=0.01"]], ids=["sgd", "adam"])
def test_cuda_graph_trains_as_eager_with_augmentation_and_lr_drops_after_the_capture(compose_cfg, precision,
                                                                                    optimizer):
    """40 steps, crop and flip drawn inside the graph, the lr dropping at steps 12 and 24 (the capture is at
    step 4): a graph that froze the lr or the random draws would drift from the eager run."""
    base = ["device=cuda", "deterministic=true", f"trainer.precision={precision}", "trainer.channels_last=false",
            "trainer.epochs=10", "dataset.augment.flip=true", "dataset.augment.crop_padding=2",
            "schedule.milestones=[0.3,0.6]", *optimizer]
    eager = build_training(compose_cfg(*base, "trainer.cuda_graph=false"))
    graphed = build_training(compose_cfg(*base, "trainer.cuda_graph=true"))
    same_steps((eager, graphed), 40)
    assert graphed.graph_state() == "captured"
    lr = float(graphed.optimizer.param_groups[0]["lr"])
    assert lr == pytest.approx(float(eager.optimizer.param_groups[0]["lr"])) and lr < 0.002
    for a, b in zip(eager.model.parameters(), graphed.model.parameters()):
        torch.testing.assert_close(b, a, **TOLERANCE[precision])
    e, g = eager.read_log(), graphed.read_log()
    assert g.totals == pytest.approx(e.totals, rel=TOLERANCE[precision]["rtol"])


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_runs_are_identical(compose_cfg, tmp_path, device):
    cfg = compose_cfg("trainer.epochs=2", "trainer.eval_every=3", *device)
    first, second = train(cfg, tmp_path / "a"), train(cfg, tmp_path / "b")
    assert final(first) == final(second)
    if device != ["device=cpu"]:
        assert first["modes"]["cuda_graph"] in ("captured", "emulated: captured")
    assert rows(tmp_path / "a") == rows(tmp_path / "b") and [r["step"] for r in rows(tmp_path / "a")] == [3, 6, 8]


def test_divergence_flag_records_the_first_bad_step(compose_cfg):
    tr = build_training(compose_cfg("trainer.divergence_loss=1e-9"))  # every loss is "exploding"
    order = torch.arange(len(tr.data.train_y))
    for done in (1, 2):
        tr.take_step(done, order)
    _, bad, lr, norms, *_ = tr.read_log()
    assert bad == 1 and lr == pytest.approx(0.1) and all(math.isfinite(n) for n in norms)


def test_bench_times_each_mode_and_projects_the_presets(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--depths", "8,14", "--steps", "1", "--warmup-steps", "1", "--image-size", "8",
                 "--batch-size", "4", "--device", "cpu", "--modes", "eager-fp32,eager-fp32-cl",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {(r["model"], r["depth"], r["mode"]) for r in report["results"]}
    assert rows == {(m, d, mode) for m in ("plain", "resnet") for d in (8, 14) for mode in ("eager-fp32", "eager-fp32-cl")}
    assert all(r["images_per_s"] > 0 and r["ms_per_step"] > 0 for r in report["results"])
    for mode in ("eager-fp32", "eager-fp32-cl"):
        assert report["projected_hours"][mode]["cifar10_fig6"] > 0  # 9 nets x 64k steps
        assert report["projected_hours"][mode]["cifar10_table6"] > 0  # up to ResNet-1202
    text = capsys.readouterr().out
    assert "eager-fp32-cl" in text and "cifar10_fig6" in text
    assert "measured at batch 4, 8x8; scaled by pixels per step" in " ".join(text.split())


@pytest.mark.slow  # ~20 s: three whole `resexp train` processes
def test_bench_jobs_measures_k_whole_processes_at_once_against_one(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--models", "resnet", "--depths", "8", "--steps", "1", "--warmup-steps", "1",
                 "--image-size", "8", "--batch-size", "4", "--device", "cpu", "--modes", "eager-fp32", "--jobs", "2",
                 "--json", str(out)]) == 0
    [row] = json.loads(out.read_text())["jobs_at_once"]
    assert (row["model"], row["depth"], row["mode"], row["jobs"], row["steps"]) == ("resnet", 8, "eager-fp32", 2, 10)
    assert row["images_per_s"] > 0 and row["one_job_images_per_s"] > 0
    text = " ".join(capsys.readouterr().out.split())
    assert "2 jobs at once against one" in text and "start-up included, 10 steps of 4 images each" in text


@pytest.mark.parametrize("args,says", [(["--jobs", "0"], "--jobs=0 is invalid; it must be a positive integer"),
                                       (["--jobs", "two"], "--jobs")])
def test_bench_refuses_a_bad_job_count(capsys, args, says):
    assert main(["bench", *args]) == 2
    assert says in capsys.readouterr().err


def test_bench_refuses_a_bad_mode(capsys):
    assert main(["bench", "--modes", "turbo-fp32"]) == 2
    assert "mode 'turbo-fp32' is invalid" in capsys.readouterr().err


@pytest.mark.slow
def test_compile_trains_like_eager(compose_cfg, tmp_path):
    eager = final(train(compose_cfg("trainer.channels_last=false"), tmp_path / "a"))
    compiled = final(train(compose_cfg("trainer.channels_last=false", "trainer.compile=true"), tmp_path / "b"))
    assert compiled["final_train_error"] == pytest.approx(eager["final_train_error"], abs=2.0)


@contextlib.contextmanager
def no_host_reads():
    """Every way a tensor's value reaches Python raises: what a CUDA graph capture cannot contain."""
    names = ["item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy"]
    saved = {name: getattr(torch.Tensor, name) for name in names}

    def refuse(name):
        def read(self, *args, **kwargs):
            raise AssertionError(f"the step read a tensor back to the host (Tensor.{name})")
        return read
    try:
        for name in names:
            setattr(torch.Tensor, name, refuse(name))
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


@pytest.mark.parametrize("overrides", [[], ["optimizer=adam"], ["trainer.precision=bf16"], ["model=plain"]])
def test_the_step_never_reads_back_to_the_host(compose_cfg, overrides):
    """The captured part of a step (batch, augmentation, forward, backward, optimizer, sums, flag, norms)
    runs without a host sync, so it can be one CUDA graph; the log point's read is the one sync."""
    tr = build_training(compose_cfg(*overrides))
    order = torch.randperm(len(tr.data.train_y))
    tr.take_step(1, order)  # the first step creates the optimizer's state, as the eager steps before a capture do
    with no_host_reads():
        for _ in range(3):
            tr.run_step()
            tr.schedule.step()  # the lr is written in place on the device between steps
        with pytest.raises(AssertionError, match="read a tensor back"):
            tr.read_log()
    assert tr.read_log().totals.images == 4 * tr.batch_size


def test_adam_keeps_its_state_on_the_device_when_graphed(compose_cfg):
    """torch refuses to capture a fused Adam whose step count lives on the host (capturable=False)."""
    from resexp.train.optim import make_optimizer
    cfg = compose_cfg("optimizer=adam").optimizer
    params = list(build_model(depth=8, width=4).parameters())
    assert make_optimizer(cfg, params, graphed=True).param_groups[0]["capturable"] is True
    assert make_optimizer(cfg, params, graphed=False).param_groups[0]["capturable"] is False


# aten ops that torch.use_deterministic_algorithms(True) refuses on CUDA (its documented list, torch 2.13):
# a model using one could not train with deterministic=true on a GPU, though it trains on the CPU.
NO_DETERMINISTIC_CUDA_KERNEL = {
    "aten::_adaptive_avg_pool2d_backward", "aten::_adaptive_avg_pool3d_backward",
    "aten::adaptive_max_pool2d_backward", "aten::avg_pool3d_backward", "aten::fractional_max_pool2d_backward",
    "aten::fractional_max_pool3d_backward", "aten::max_unpool2d", "aten::max_unpool3d",
    "aten::upsample_linear1d_backward", "aten::upsample_bilinear2d_backward", "aten::upsample_bicubic2d_backward",
    "aten::upsample_trilinear3d_backward", "aten::reflection_pad1d_backward", "aten::reflection_pad2d_backward",
    "aten::reflection_pad3d_backward", "aten::nll_loss2d_forward", "aten::_ctc_loss_backward", "aten::put_",
    "aten::histc", "aten::median", "aten::grid_sampler_2d_backward", "aten::cumsum",
}


@pytest.mark.parametrize("overrides", [
    ["model=plain"], ["model=resnet"], ["model=resnet_bottleneck", "depth=11"], ["model=preact_resnet"],
    ["model=highway"], ["model=densenet", "depth=10"], ["model=densenet_bc", "depth=10"],
    ["model=resnext", "depth=11", "model.width=4", "model.cardinality=2", "model.base_width=2"],
    ["model=vgg", "depth=11", "model.width=4"], ["model=vgg", "depth=11", "model.width=2", "model.layout=imagenet"],
    ["model=imagenet_resnet", "depth=18", "model.width=4"], ["model=linear_deep", "depth=4"],
], ids=" ".join)
def test_every_family_can_train_deterministically_on_a_gpu(compose_cfg, overrides):
    """The whole step (augmentation, forward, loss, backward, norms, optimizer) of every family uses only
    ops with a deterministic CUDA kernel, so deterministic=true can hold on a GPU. VGG's ImageNet layout
    (7x7 pooling of a 1x1 map here) is the case that once used AdaptiveAvgPool2d's backward."""
    tr = build_training(compose_cfg(*overrides))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        tr.take_step(1, torch.arange(len(tr.data.train_y)))
    ops = {event.key for event in profiler.key_averages()}
    assert "aten::convolution_backward" in ops or "aten::mm" in ops  # the profile saw the step
    assert not ops & NO_DETERMINISTIC_CUDA_KERNEL


@pytest.mark.parametrize("values,expected", [("false,true", ":4096:8"), ("false", None)])
def test_a_sweep_with_a_deterministic_job_sets_cublas_before_its_first_job(monkeypatch, values, expected):
    """cuBLAS reads CUBLAS_WORKSPACE_CONFIG once per process: job 0 (deterministic=false) must not start it
    without the setting that job 1 (deterministic=true) needs."""
    from resexp.sweep import precheck
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")  # absent now, and again after the test
    precheck(["device=cpu", f"deterministic={values}"], multirun=True)
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == expected


@pytest.mark.parametrize("gpus,per_gpu,expected", [(0, 3, None), (4, 1, 4), (4, 2, 8), (1, 4, 4)])
def test_the_parallel_launcher_runs_jobs_per_gpu_or_one_per_core(monkeypatch, gpus, per_gpu, expected):
    import os
    from resexp.config import side_by_side
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert side_by_side(per_gpu) == (expected or len(os.sched_getaffinity(0)))


def test_a_job_beside_others_takes_its_share_of_the_cores(monkeypatch):
    import os
    from resexp.train.speed import share_cores
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})  # 4 cores
    share_cores(1)
    assert torch.get_num_threads() == 1  # one job alone: left as it was (the tests pin 1)
    share_cores(2)
    assert torch.get_num_threads() == 2
    share_cores(8)
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("jobs,n_jobs,gpus,line", [
    (6, 2, 0, "sweep of 6 jobs, 2 at once on 4 CPU cores, 2 threads each, the costliest first"),
    (6, -1, 0, "sweep of 6 jobs, 4 at once on 4 CPU cores, 1 thread each, the costliest first"),
    (3, 8, 0, "sweep of 3 jobs, 3 at once on 4 CPU cores, 1 thread each, the costliest first"),
    (12, 8, 2, "sweep of 12 jobs, 8 at once on 2 GPUs, 4 per GPU, the costliest first"),
    (1, 1, 1, "sweep of 1 job, 1 at once on 1 GPU, 1 per GPU, the costliest first")])
def test_a_parallel_sweep_starts_with_how_its_jobs_share_the_machine(monkeypatch, jobs, n_jobs, gpus, line):
    import os
    from resexp.train.speed import sweep_split
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})  # 4 cores
    assert sweep_split(jobs, n_jobs, gpus) == line


def test_jobs_per_gpu_must_be_positive(capsys):
    from tests.conftest import refused
    assert "jobs_per_gpu=0 is invalid; it must be a positive integer" in refused(capsys, "train", "jobs_per_gpu=0")


@pytest.mark.slow  # about 3 minutes on 2 cores: `python -m pytest -m slow`
@pytest.mark.skipif(not torch.cpu._is_avx512_bf16_supported(), reason="bf16 is emulated without bf16 units (9x slower)")
def test_bf16_shows_the_degradation_as_fp32_does(tmp_path):
    """precision=auto may pick bf16 on a CPU: degradation_quick's picture must not change with it. Final
    training error: plain-56 well above plain-20, ResNet-56 well below plain-56."""
    from hydra import compose, initialize_config_module
    errors = {}
    for model, depth in (("plain", 20), ("plain", 56), ("resnet", 56)):
        with initialize_config_module("resexp.conf", version_base="1.3"):
            cfg = compose("train", overrides=["+experiment=degradation_quick", f"model={model}", f"depth={depth}",
                                              "trainer.precision=bf16", "device=cpu"])
        errors[model, depth] = train(cfg, tmp_path / f"{model}{depth}")["final_train_error"]
    assert errors["plain", 56] >= 1.5 * errors["plain", 20], errors
    assert errors["resnet", 56] <= errors["plain", 56] / 1.5, errors


def test_a_net_whose_bf16_steps_go_non_finite_trains_in_fp32(compose_cfg, monkeypatch):
    """However much faster: torch's CPU bf16 kernels gave an ImageNet-layout plain net infinite gradients."""
    from resexp.train import speed
    from resexp.train.step import TrainStep
    monkeypatch.setattr(speed, "cpu_bf16_units", lambda: "avx512_bf16")
    from resexp.train import loop
    monkeypatch.setattr(loop, "BF16_MARGIN", 1e9)  # bf16 counts as faster whatever the clock says
    step = TrainStep.__call__

    def broken_in_bf16(self):
        step(self)
        if self.precision == "bf16":
            self.norms.fill_(math.inf)
    monkeypatch.setattr(TrainStep, "__call__", broken_in_bf16)
    tr = build_training(compose_cfg("trainer.precision=auto"))
    assert tr.modes["precision"] == "fp32" and tr.modes["precision_why"].endswith("a step, bf16 non-finite")
    monkeypatch.setattr(TrainStep, "__call__", step)
    monkeypatch.setenv("XDG_CACHE_HOME", str(__import__("tempfile").mkdtemp()))
    assert build_training(compose_cfg("trainer.precision=auto")).modes["precision"] == "bf16"


@pytest.mark.parametrize("units,modes", [("none", ["eager-fp32", "eager-fp32-cl"]),
                                         ("avx512_bf16", ["eager-fp32", "eager-fp32-cl", "eager-bf16-cl"])])
def test_bench_times_bf16_on_a_cpu_that_has_bf16_units(monkeypatch, units, modes):
    from resexp.bench import default_modes
    from resexp.train import speed
    monkeypatch.setattr(speed, "cpu_bf16_units", lambda: units)
    assert default_modes(cuda=False) == modes


def test_an_undecided_cpu_under_several_processes_trains_fp32_untimed(compose_cfg, monkeypatch):
    """Timing builds throwaway copies of the run, and under torchrun each would build DDP, whose
    construction every rank must join: rank 0 alone timing would hang the others."""
    from resexp.train import loop
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(loop, "build_training", lambda *a: pytest.fail("timed under several processes"))
    assert loop.timed_precision(compose_cfg(), data=None) == ("fp32", "auto: AVX512-BF16, not timed over several processes")
