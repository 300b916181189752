"""Which backend MLX children run on: the CPU unless MLX's CUDA package and an NVIDIA driver are both
there (or TOOLTUNE_DEVICE says so); a GPU gets no OpenBLAS preload and bfloat16 models."""

from __future__ import annotations

from pathlib import Path

import pytest

from tooltune import config, device
from tooltune.device import DEVICE_ENV, Device, detect_device
from tooltune.serving import blas


@pytest.fixture
def driver(tmp_path: Path) -> Path:
    proc = tmp_path / "nvidia-version"
    proc.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module\n")
    return proc


@pytest.fixture(autouse=True)
def not_a_mac(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "is_apple_silicon", lambda: False)


def test_cpu_without_the_cuda_package(monkeypatch: pytest.MonkeyPatch, driver: Path) -> None:
    monkeypatch.setattr(device, "mlx_cuda_distribution", lambda: None)
    got = detect_device({}, proc_file=driver)
    assert got.kind == "cpu" and "tooltune[cuda]" in got.reason


def test_cuda_needs_the_package_and_a_driver(
    monkeypatch: pytest.MonkeyPatch, driver: Path, tmp_path: Path
) -> None:
    monkeypatch.setattr(device, "mlx_cuda_distribution", lambda: "mlx-cuda-13")
    assert detect_device({}, proc_file=driver) == Device("cuda", "mlx-cuda-13 and an NVIDIA driver")
    no_driver = detect_device({}, proc_file=tmp_path / "absent")
    assert no_driver.kind == "cpu" and "no NVIDIA driver" in no_driver.reason


def test_the_environment_overrides_detection(monkeypatch: pytest.MonkeyPatch, driver: Path) -> None:
    monkeypatch.setattr(device, "mlx_cuda_distribution", lambda: "mlx-cuda-13")
    assert detect_device({DEVICE_ENV: "cpu"}, proc_file=driver).kind == "cpu"
    assert detect_device({DEVICE_ENV: "auto"}, proc_file=driver).kind == "cuda"
    monkeypatch.setattr(device, "mlx_cuda_distribution", lambda: None)
    assert detect_device({DEVICE_ENV: "cuda"}, proc_file=driver).kind == "cuda"
    with pytest.raises(ValueError, match="TOOLTUNE_DEVICE='gpu'"):
        detect_device({DEVICE_ENV: "gpu"}, proc_file=driver)


def test_this_machine_has_no_cuda_backend() -> None:
    # CI and the dev machines are CPU-only: the product must see that by itself
    if device.mlx_cuda_distribution() is not None and device.nvidia_gpu_present():
        pytest.skip("an MLX CUDA backend and an NVIDIA driver are present on this machine")
    assert detect_device({}).kind == "cpu"


def test_a_gpu_gets_no_blas_preload_and_bfloat16(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    gpu = Device("cuda", "mlx-cuda-13 and an NVIDIA driver")
    monkeypatch.setattr(blas, "detect_device", lambda: gpu)
    monkeypatch.setattr(config, "detect_device", lambda: gpu)
    choice = blas.blas_env(tmp_path, enabled=True, check=False)
    assert choice.name == "cublas" and choice.env == {} and "GPU" in choice.reason
    assert "LD_PRELOAD" not in blas.subprocess_env(tmp_path, enabled=True, base={})
    assert (config.default_dtype(), config.default_quantize_bits()) == ("bfloat16", None)
    cpu = Device("cpu", "no MLX CUDA backend installed")
    monkeypatch.setattr(config, "detect_device", lambda: cpu)
    assert (config.default_dtype(), config.default_quantize_bits()) == ("float32", None)


class _Entry:
    """A RECORD entry as importlib.metadata gives it: a path, its recorded size, where it lies."""

    def __init__(self, path: Path, size: int) -> None:
        self._path, self.size = path, size
        self.name, self.parent = path.name, path.parent

    def locate(self) -> Path:
        return self._path


def test_the_cuda_package_counts_only_when_its_libmlx_is_on_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lib = tmp_path / "mlx" / "lib" / "libmlx.so"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"x" * 145)  # the CUDA build's bytes (sizes differ between the two builds)

    def files(name: str) -> list[_Entry]:
        if name != "mlx-cuda-13":
            raise device.importlib.metadata.PackageNotFoundError(name)
        return [_Entry(lib, 145)]

    monkeypatch.setattr(device.importlib.metadata, "files", files)
    assert device.mlx_cuda_distribution() == "mlx-cuda-13"
    lib.write_bytes(b"x" * 21)  # mlx-cpu reinstalled over it: its own libmlx.so is what loads
    assert device.mlx_cuda_distribution() is None


def test_a_cpu_choice_keeps_mlx_itself_on_the_cpu() -> None:
    """TOOLTUNE_DEVICE=cpu on a machine whose MLX sees a GPU: each MLX child (training worker, model
    server, probe reference) sets MLX's default device to the CPU; a GPU choice, or MLX already on the
    CPU, changes nothing. MLX's own device objects, on a stand-in that starts on the GPU."""
    import mlx.core as real

    class CudaMx:  # a CUDA build of mlx.core picks the GPU by itself
        cpu = real.cpu

        def __init__(self) -> None:
            self.device = real.Device(real.gpu)

        def default_device(self) -> object:
            return self.device

        def set_default_device(self, d: object) -> None:
            self.device = real.Device(d) if not isinstance(d, real.Device) else d

    mx = CudaMx()
    assert not device.keep_mlx_on(Device("cuda", "mlx-cuda-13 and an NVIDIA driver"), mx)
    assert mx.device == real.Device(real.gpu)
    assert device.keep_mlx_on(Device("cpu", f"{DEVICE_ENV}=cpu"), mx) and mx.device == real.Device(real.cpu)
    assert not device.keep_mlx_on(Device("cpu", f"{DEVICE_ENV}=cpu"), mx)  # already there
    assert not device.keep_mlx_on(Device("cpu", "no MLX CUDA backend"), real)  # this machine's MLX


def test_the_mlx_child_puts_mlx_on_the_device_then_runs_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m tooltune.serving.mlx_child mlx_lm.server ARGS`: keep_mlx_on with tooltune's device
    first, then the module as __main__ with its own arguments (as `python -m mlx_lm.server ARGS`)."""
    import sys

    from tooltune.serving import mlx_child

    order: list[tuple] = []
    chosen = Device("cpu", f"{DEVICE_ENV}=cpu")
    monkeypatch.setattr(mlx_child, "detect_device", lambda: chosen)
    monkeypatch.setattr(mlx_child, "keep_mlx_on", lambda d, mx: order.append(("keep", d)))
    monkeypatch.setattr(
        mlx_child.runpy, "run_module",
        lambda name, run_name, alter_sys: order.append(("run", name, run_name, list(sys.argv))),
    )  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["mlx_child.py", "mlx_lm.server", "--model", "m", "--port", "1"])
    mlx_child.main()
    assert order == [
        ("keep", chosen),
        ("run", "mlx_lm.server", "__main__", ["mlx_lm.server", "--model", "m", "--port", "1"]),
    ]


def test_mlx_children_start_through_the_device_keeper() -> None:
    """The model server's and the test endpoint's child is mlx_lm.server run by tooltune.serving.mlx_child
    with the server's own arguments; the worker and the probe reference call keep_mlx_on themselves."""
    import inspect
    import subprocess
    import sys

    from tooltune.adapters import fingerprint
    from tooltune.serving import model_server
    from tooltune.testing import mlx_endpoint
    from tooltune.training import worker

    spawn = inspect.getsource(model_server.ModelServer._spawn)
    assert '"-m", "tooltune.serving.mlx_child", "mlx_lm.server"' in spawn
    assert '"tooltune.serving.mlx_child",' in inspect.getsource(mlx_endpoint)
    assert "keep_mlx_on(detect_device(), mx)" in inspect.getsource(worker.Worker.main)
    assert "keep_mlx_on(detect_device(), mx)" in inspect.getsource(fingerprint._reference_main)
    # the real child: mlx_lm.server gets its own arguments
    done = subprocess.run(
        [sys.executable, "-m", "tooltune.serving.mlx_child", "mlx_lm.server", "--help"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "--adapter-path" in done.stdout
