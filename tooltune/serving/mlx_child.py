"""MLX children (the model server, the probe reference) run where tooltune decided: on a machine whose
MLX could use a GPU, ``TOOLTUNE_DEVICE=cpu`` must keep MLX itself on the CPU, not only change how
tooltune starts it (no OpenBLAS preload, float32 imports). MLX picks the GPU by itself when its CUDA
backend sees one, so each child sets MLX's default device before it loads a model.

    python -m tooltune.serving.mlx_child mlx_lm.server --model M ...   # runs mlx_lm.server's main there
"""

from __future__ import annotations

import runpy
import sys

from tooltune.device import detect_device, keep_mlx_on


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m tooltune.serving.mlx_child MODULE [ARGS...]")
    import mlx.core as mx

    keep_mlx_on(detect_device(), mx)
    module, sys.argv = sys.argv[1], sys.argv[1:]  # the module sees its own arguments, as with -m
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
