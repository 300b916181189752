"""tooltune: make small local MLX models reliable at tool calling for coding agents."""

__version__ = "0.1.0"
