"""minishop: a tiny shop backend in plain Python."""
