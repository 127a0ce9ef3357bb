"""resexp/train/cuda.py, the lines only a GPU runs, on the CPU against tests/fake_cuda.py: every line runs
here, and each fake call checks what PyTorch checks at it."""
import pytest
import torch

from resexp.errors import UserError
from resexp.train import cuda
from resexp.train.graphs import GraphedStep
from resexp.train.loop import build_training
from resexp.train.speed import pick_device
from tests import fake_cuda
from tests.test_speed import same_steps

# crop and flip drawn inside the graph, both lr drops after the capture (steps 12 and 24 of 40)
LONG = ["trainer.epochs=10", "dataset.augment.flip=true", "dataset.augment.crop_padding=2",
        "schedule.milestones=[0.3,0.6]"]
GPU = torch.device("cuda:0")


@pytest.fixture
def fake(monkeypatch):
    return fake_cuda.install(monkeypatch)


def params(tr):
    return [p.detach().clone() for p in tr.model.parameters()]


def on_fake_gpu(tr, **kwargs) -> GraphedStep:
    """Train `tr` (built on the CPU) through the CUDA backend, its calls going to the fake."""
    tr.run_step = GraphedStep(tr.step, cuda.CudaGraphs(GPU), **kwargs)
    return tr.run_step


def test_device_cuda_is_indexed_before_set_device_sees_it(fake):
    cuda.use_device(pick_device("cuda"))  # set_device refuses a bare "cuda" (the fake as torch does)
    assert fake.calls == [("set_device", 0)]
    with pytest.raises(ValueError, match="specified index"):
        cuda.use_device(torch.device("cuda"))


@pytest.mark.parametrize("optimizer", [[], ["optimizer=adam", "optimizer.lr=0.01"]], ids=["sgd", "adam"])
def test_the_cuda_backend_captures_on_a_side_stream_into_its_own_pool_and_trains_as_eager(compose_cfg, fake,
                                                                                          optimizer):
    eager = build_training(compose_cfg(*LONG, *optimizer))
    graphed = build_training(compose_cfg(*LONG, *optimizer, "trainer.cuda_graph=emulate"))
    runner = on_fake_gpu(graphed)
    same_steps((eager, graphed), 40)
    assert runner.state == "captured"
    begin = [c for c in fake.calls if c[0] == "capture_begin"]
    assert begin == [("capture_begin", (0, 1))]  # the handle from graph_pool_handle
    assert ("synchronize", GPU) in fake.calls and not fake.capturing
    assert all(torch.equal(a, b) for a, b in zip(params(eager), params(graphed)))
    assert float(graphed.optimizer.param_groups[0]["lr"]) == pytest.approx(float(eager.optimizer.param_groups[0]["lr"]))


@pytest.mark.parametrize("fallback", [False, True])
def test_a_failed_capture_leaves_the_allocator_clean(compose_cfg, fake, fallback):
    """A sync inside the capture invalidates it; capture_end then throws before the allocator stops routing
    to the pool. The backend ends and releases the pool itself: empty_cache then works, and a fallback
    trains on."""
    from tests.test_graphs import ReadsTheLoss
    eager, graphed = build_training(compose_cfg()), build_training(compose_cfg())
    graphed.run_step = runner = GraphedStep(ReadsTheLoss(graphed.step), cuda.CudaGraphs(GPU), eager_steps=2,
                                            fallback=fallback)
    if not fallback:
        with pytest.raises(UserError, match="CUDA graph capture failed"):
            same_steps([graphed], 4)
    else:
        same_steps((eager, graphed), 4)
        assert runner.state.startswith("fell back") and runner.eager
        assert all(torch.equal(a, b) for a, b in zip(params(eager), params(graphed)))
    assert not fake.capturing and not fake.pools
    assert [c[0] for c in fake.calls if c[0] in ("endAllocateToPool", "releasePool")] == [
        "endAllocateToPool", "releasePool"]
    fake.empty_cache()  # would hit captures_underway.empty() had the pool stayed open


def test_a_capture_that_fails_in_python_leaves_the_pool_to_the_graph(fake):
    """An error that does not invalidate the capture: capture_end succeeds and the graph owns the pool (its
    destructor releases it); releasing it here too would assert in that destructor."""
    graph = fake.CUDAGraph()

    def broken():
        raise KeyError("a bug in the step")
    with pytest.raises(KeyError):
        cuda.CudaGraphs(GPU).capture(graph, broken)
    assert graph.ended and fake.pools == {(0, 1): 1} and not fake.capturing


def test_under_ddp_a_failed_capture_stops_instead_of_falling_back(compose_cfg, fake):
    from tests.test_graphs import ReadsTheLoss
    tr = build_training(compose_cfg())
    tr.run_step = GraphedStep(ReadsTheLoss(tr.step), cuda.CudaGraphs(GPU), eager_steps=2, fallback=True, ddp=True)
    with pytest.raises(UserError, match="under DDP, which cannot fall back"):
        same_steps([tr], 4)


@pytest.mark.parametrize("eager_steps,ok", [(cuda.DDP_EAGER_STEPS, True), (3, False)])
def test_ddp_is_built_on_a_side_stream_and_runs_11_times_before_the_capture(compose_cfg, fake, monkeypatch,
                                                                           eager_steps, ok):
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.delenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", raising=False)
    assert cuda.join_settings(local_rank=1) == "cpu:gloo,cuda:nccl"
    fake.set_device(0)
    tr = build_training(compose_cfg("trainer.epochs=4"))
    tr.step.forward = ddp = cuda.wrap_ddp(tr.model, GPU)
    assert isinstance(ddp, fake_cuda.FakeDDP) and ("set_device", 1 % fake.count) in fake.calls
    runner = on_fake_gpu(tr, eager_steps=eager_steps, ddp=True)
    if ok:
        same_steps([tr], 14)
        assert runner.state == "captured" and ddp.forwards == 12  # 11 eager steps and the capture
    else:
        with pytest.raises(UserError, match="at least 11 are needed"):
            same_steps([tr], 5)


def test_ddp_on_the_default_stream_is_refused(fake):
    with pytest.raises(RuntimeError, match="default stream"):
        fake_cuda.FakeDDP(fake, torch.nn.Linear(2, 2), [GPU])


def test_a_capture_on_the_default_stream_is_refused(fake):
    graph = fake.CUDAGraph()
    with pytest.raises(RuntimeError, match="non-default stream"):
        graph.capture_begin(pool=fake.graph_pool_handle())
    with pytest.raises(RuntimeError, match="without a preceding successful capture"):
        graph.pool()


def test_liveness_checks_are_asked_for_only_where_torch_has_them(fake):
    graph, x = fake.CUDAGraph(), torch.ones(3)
    cuda.CudaGraphs(GPU, check_liveness=cuda.can_check_liveness()).capture(graph, lambda: x.mul_(2))
    graph.replay()
    assert torch.equal(x, torch.full((3,), 2.0))  # the capture ran nothing; the replay did


def test_random_state_memory_names_and_determinism(fake, monkeypatch):
    state = cuda.rng_state(GPU)
    cuda.set_rng_state(state, GPU)  # from a checkpoint: a CPU ByteTensor, as torch requires
    assert ("set_rng_state", 0) in fake.calls
    assert cuda.device_names() == ["Fake GPU 0"]
    assert cuda.PeakMemory().gib() == pytest.approx(0.5)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cuda.deterministic_env(":4096:8")
    assert __import__("os").environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_a_checkpoint_keeps_and_restores_the_gpu_random_state(compose_cfg, fake, tmp_path, monkeypatch):
    from resexp.train import checkpoint
    from resexp.train.checkpoint import RunState, resume, save
    load = checkpoint.load_checkpoint
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda path, device: load(path, "cpu"))
    tr = build_training(compose_cfg())
    tr.device = GPU  # the run's device as the checkpoint code sees it; its tensors stay on the CPU
    save(tmp_path, tr, RunState(step=1), elapsed=1.0, keep=2)
    assert resume(tmp_path, tr).step == 1 and ("set_rng_state", 0) in fake.calls


def test_deterministic_on_a_gpu_fixes_cublas_workspace(fake, monkeypatch):
    from resexp.train.speed import set_determinism
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    set_determinism(False, GPU)
    assert "CUBLAS_WORKSPACE_CONFIG" not in __import__("os").environ
    set_determinism(True, GPU)
    assert __import__("os").environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    set_determinism(False, GPU)
